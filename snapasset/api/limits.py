"""Rate limits (SPEC §3): Flask-Limiter counting in the app's Redis, so every web process shares them.

* **General**: ``settings.rate_limit`` (100 per 15 minutes) for the whole API, one bucket per
  caller across all routes (a Flask-Limiter *application* limit). The caller is the user of a
  verified token; an API key acting for a ``userId`` counts for that user, otherwise for the key;
  anonymous requests and bad credentials count per client IP. The IP is the socket peer, or —
  with ``SNAPASSET_TRUSTED_PROXIES=n`` — what the n proxies we trust appended to
  X-Forwarded-For (werkzeug's ProxyFix in ``create_app``), so a client cannot dodge the limit by
  sending its own X-Forwarded-For. Liveness/readiness/metrics probes, media and event streams
  are exempt (see EXEMPT_PREFIXES).
* **Job creation**: ``settings.job_rate_limit`` (20 per hour) per user, taken by :class:`JobQuota`
  inside ``JobService.create`` only when a job is accepted: a request refused for any reason
  (validation, too many unfinished jobs, Redis error) takes nothing, an idempotent replay takes
  none. The allowance is tested and counted by the same Redis script that admits the job
  (snapasset.admission), with nothing in between: so the count only ever holds accepted jobs,
  and a burst of requests is never refused for the hourly limit while units remain — a request
  that merely overlapped others holds none.
* **Unfinished jobs**: ``settings.max_active_jobs`` — see ``snapasset.jobs`` (a Redis transaction).

Every limited response carries ``X-RateLimit-Limit/Remaining/Reset`` (the limit nearest to
running out; Reset in unix seconds); a 429 also carries ``Retry-After`` and ``retryAfter`` (both
seconds to wait) in the spec's error shape.

**When Redis is unreachable** the limiter neither fails the request nor stops limiting: the
first storage error switches this process to an in-memory copy of the general limit
(``in_memory_fallback``), so the API keeps answering — with limits enforced per process instead
of across processes — and Flask-Limiter probes Redis again with a backoff of 1, 2, 4 … 32 s
(then from 1 s again) and switches back as soon as it answers. Calls to Redis time out after
``STORAGE_TIMEOUT`` seconds, so a hung Redis costs a request at most that much.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis
from flask import current_app, g, jsonify, request
from flask_limiter import ApplicationLimit, Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from limits import RateLimitItem, parse
from limits.storage import RedisStorage

from snapasset.api.common import caller_identity
from snapasset.config import Env, Settings
from snapasset.connections import RedisHandle
from snapasset.errors import APIError, ErrorCode, error_body

__all__ = ["RateLimits", "JobQuota", "init_app", "rate_limit_key", "storage_uri", "EXTENSION",
           "EXEMPT_PATHS"]

log = logging.getLogger(__name__)

EXTENSION = "snapasset.limits"
STORAGE_TIMEOUT = 0.5
STORAGE_CONNECTIONS = 8
JOB_SCOPE = "jobs:create"
EXEMPT_PATHS = ("/health", "/ready", "/metrics")
# Event streams are exempt too: EventSource reconnects by itself and gives up for good on any
# answer but 200, so counting reconnects would turn a flaky network into a dead page. A stream
# costs no Redis connection (snapasset.streaming) and needs a token for a job of the caller's.
EXEMPT_PREFIXES = ("/media/", "/api/sse/")
_QUOTA_LIMITS = "snapasset_quota_limits"
_READ_WINDOWS = "snapasset_read_windows"   # {storage key: (count, ttl)} read with the admission


class Header:
    LIMIT = "X-RateLimit-Limit"
    REMAINING = "X-RateLimit-Remaining"
    RESET = "X-RateLimit-Reset"
    RETRY_AFTER = "Retry-After"


def storage_uri(redis_url: str) -> str:
    """The `limits` storage URI for a redis-py URL (`unix://` sockets are `redis+unix://` there)."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


def rate_limit_key() -> str:
    """Whom a request counts against (see the module docstring)."""
    caller = caller_identity()
    if caller is None:
        return f"ip:{request.remote_addr or 'unknown'}"
    if caller.via == "api_key":
        acting = _acting_user()
        return f"user:{acting}" if acting else f"key:{caller.key_name}"
    return f"user:{caller.user_id}"


def _acting_user() -> str | None:
    acting = request.args.get("userId")
    if acting is None and request.is_json:
        try:
            body = request.get_json(silent=True)
        except Exception:   # too large and the like: the view answers that
            body = None
        acting = body.get("userId") if isinstance(body, dict) else None
    return acting if isinstance(acting, str) and acting else None


def _exempt() -> bool:
    path = request.path
    # a CORS preflight carries no credentials and runs no view (snapasset.cors)
    return request.method == "OPTIONS" or path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


@dataclass
class RateLimits:
    """The app's limiter and the job-creation limit (in app.extensions[EXTENSION])."""
    limiter: Limiter
    job_limit: RateLimitItem
    key_prefix: str
    name_settings: bool = False   # development: a 429 says which setting raises the limit

    def job_quota(self, user_id: str) -> JobQuota:
        return JobQuota(self, user_id)


class JobQuota:
    """One user's job-creation allowance (see snapasset.jobs.Quota): Flask-Limiter's storage
    key for it, which the admission script tests and counts, and the RequestLimit each outcome
    shows in the X-RateLimit headers. The windows those headers show (this allowance's and the
    general limit's) are read in the admission's round trip, not after the view."""

    def __init__(self, limits: RateLimits, user_id: str):
        self.limits = limits
        self.args = (limits.key_prefix, f"user:{user_id}", JOB_SCOPE)
        item = limits.job_limit
        self.key = limits.limiter.storage.prefixed_key(item.key_for(*self.args))
        self.amount = item.amount
        self.expiry = item.get_expiry()

    def _window_keys(self) -> list[str]:
        storage = self.limits.limiter.storage
        if not isinstance(storage, RedisStorage):   # the in-memory fallback: nothing to read in Redis
            return []
        return [self.key, *(storage.prefixed_key(limit.key) for limit in self.limits.limiter.current_limits)]

    def reads(self) -> list[tuple]:
        return [command for key in self._window_keys() for command in (("GET", key), ("TTL", key))]

    def _shown(self, breached: bool, replies: list) -> RequestLimit:
        windows = g.setdefault(_READ_WINDOWS, {})
        for key, count, ttl in zip(self._window_keys(), replies[::2], replies[1::2]):
            windows[key] = (count, ttl)
        limit = RequestLimit(self.limits.limiter, self.limits.job_limit, list(self.args), breached, True)
        g.setdefault(_QUOTA_LIMITS, []).append(limit)
        return limit

    def refused(self, used: int, replies: list) -> APIError:
        return rate_limited(self._shown(True, replies),
                            f"Job creation limit reached ({describe(self.limits.job_limit)})",
                            setting=Env.JOB_RATE_LIMIT if self.limits.name_settings else None)

    def taken(self, used: int, replies: list) -> None:
        self._shown(False, replies)


def _seconds_until(moment: float) -> int:
    return max(1, math.ceil(moment - time.time()))


def _in_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600)} hours"


def rate_limited(limit: RequestLimit, what: str, *, setting: str | None = None) -> APIError:
    """429 for `what` ("Job creation limit reached (20 per 1 hour)"), saying when to try again
    and, in development (`setting` given), which setting raises the limit."""
    reset = limit.window[0]
    retry_after = _seconds_until(reset)
    message = f"{what}; try again in {_in_words(retry_after)}"
    if setting:
        message += (f". In development, set {setting} to raise it "
                    f"(e.g. {setting}='{limit.limit.amount * 10} per {_window(limit.limit)}')")
    return APIError(429, ErrorCode.RATE_LIMIT_EXCEEDED, message,
                    headers={Header.RETRY_AFTER: str(retry_after)}, extra={"retryAfter": retry_after})


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def describe(item: RateLimitItem) -> str:
    """'20 per hour', '100 per 15 minutes': a limit as SNAPASSET_*_RATE_LIMIT writes it."""
    return f"{item.amount} per {_window(item)}"


def _windows(limits: list[RequestLimit], conn: redis.Redis) -> list[tuple[float, int]]:
    """Each limit's fixed window as (reset, remaining), read from the limiter's Redis (`conn`) in
    one round trip (`RequestLimit.window` costs two per limit, four on a create), or none where a
    create's admission read them already (JobQuota). Same arithmetic as `limits`'
    FixedWindowRateLimiter.get_window_stats; the in-memory fallback is asked directly."""
    storage = limits[0].limiter.storage if limits else None
    if not isinstance(storage, RedisStorage):
        return [limit.window for limit in limits]
    read = g.get(_READ_WINDOWS, {})
    keys = [storage.prefixed_key(limit.key) for limit in limits]
    missing = [key for key in keys if key not in read]
    if missing:
        with conn.pipeline(transaction=False) as pipe:
            for key in missing:
                pipe.get(key)
                pipe.ttl(key)
            replies = pipe.execute()
        read = {**read, **dict(zip(missing, zip(replies[::2], replies[1::2])))}
    now = time.time()
    return [(max(read[key][1], 0) + now, max(0, limit.limit.amount - int(read[key][0] or 0)))
            for limit, key in zip(limits, keys)]


def _headline(limits: list[RequestLimit], conn: redis.Redis) -> tuple[RequestLimit, tuple[float, int]] | None:
    """The limit to show: a breached one, else the one with the fewest requests left."""
    shown = None
    for limit, window in zip(limits, _windows(limits, conn)):
        if limit.breached:
            return limit, window
        if shown is None or window[1] < shown[1][1]:
            shown = (limit, window)
    return shown


def init_app(app, settings: Settings, redis_handle: RedisHandle) -> RateLimits:
    """Attach Flask-Limiter (storage: that Redis) and the SnapAsset headers and 429s."""
    redis_url = redis_handle.url
    # a bounded pool: however many requests arrive at once, the limiter holds at most
    # STORAGE_CONNECTIONS connections per process (a request waits STORAGE_TIMEOUT for one)
    pool = redis.BlockingConnectionPool.from_url(
        redis_url, max_connections=STORAGE_CONNECTIONS, timeout=STORAGE_TIMEOUT,
        socket_timeout=STORAGE_TIMEOUT, socket_connect_timeout=STORAGE_TIMEOUT)
    headers_conn = redis.Redis(connection_pool=pool)     # the limits' windows, read for the headers
    limiter = Limiter(
        rate_limit_key,
        application_limits=[settings.rate_limit],
        storage_uri=storage_uri(redis_url),
        storage_options={"connection_pool": pool},
        strategy="fixed-window",
        headers_enabled=False,            # ours below: on errors too, Retry-After only on 429
        in_memory_fallback_enabled=True,
        in_memory_fallback=[ApplicationLimit(limit_provider=settings.rate_limit, key_function=rate_limit_key)],
        swallow_errors=True,              # a limiter fault never turns into a 500
        # unknown paths and 405s count too (Flask-Limiter skips requests without an endpoint)
        request_identifier=lambda: request.endpoint or "unmatched",
        # one deployment (its queue) shares counters across processes; another one never sees them
        key_prefix=settings.queue_name,
    )
    limiter.request_filter(_exempt)
    limiter.init_app(app)
    limits = RateLimits(limiter=limiter, job_limit=parse(settings.job_rate_limit), key_prefix=settings.queue_name,
                        name_settings=not settings.production)
    app.extensions[EXTENSION] = limits

    @app.errorhandler(RateLimitExceeded)
    def handle_rate_limited(exc: RateLimitExceeded):
        breached = next((lim for lim in limiter.current_limits if lim.breached), limiter.current_limit)
        error = rate_limited(breached, f"Rate limit exceeded ({describe(exc.limit.limit)})",
                             setting=Env.RATE_LIMIT if limits.name_settings else None) \
            if breached is not None else APIError(429, ErrorCode.RATE_LIMIT_EXCEEDED, "Rate limit exceeded")
        response = jsonify(error_body(429, error.error_code, error.message, **error.extra))
        response.status_code = 429
        response.headers.update(error.extra_headers)
        return response

    @app.after_request
    def add_rate_limit_headers(response):
        try:
            shown = _headline(list(limiter.current_limits) + g.get(_QUOTA_LIMITS, []), headers_conn)
        except Exception:   # storage gone between the check and now: the answer goes out without them
            log.warning("rate-limit headers skipped: limiter storage unreachable")
            return response
        if shown is not None:
            limit, (reset, remaining) = shown
            response.headers[Header.LIMIT] = str(limit.limit.amount)
            response.headers[Header.REMAINING] = str(max(0, remaining))
            response.headers[Header.RESET] = str(math.ceil(reset))
        return response

    return limits


def current_limits() -> RateLimits:
    return current_app.extensions[EXTENSION]
