"""/api/sse: live job events as Server-Sent Events (SPEC §8).

Every message is unnamed (no `event:` line, so `EventSource.onmessage` sees them all), carries
the Redis Stream id as its `id:` and a JSON `data:` whose `type` says what it is. A client
that reconnects with `Last-Event-ID` (or `?lastEventId=` where it cannot set headers) gets
exactly what it missed. No client holds a Redis connection: they all listen through the
app's `StreamHub` (snapasset.streaming).
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, request, stream_with_context

from snapasset import jobrecord, keys, rqcompat
from snapasset.api import presentation
from snapasset.api.common import absolutize_image, absolutize_result, job_owner, principal, require_user, services
from snapasset.errors import APIError, ErrorCode, JobNotFound
from snapasset.jobrecord import Status, api_status, is_terminal, status_of
from snapasset.jobs import JobService
from snapasset.streaming import Entry, StreamHub, is_stream_id

__all__ = ["bp", "stream_state", "close_stream_state", "RETRY_MS", "MAX_HEARTBEAT"]

bp = Blueprint("sse", __name__, url_prefix="/api/sse")

EXTENSION = "snapasset.sse"
RETRY_MS = 3000            # the `retry:` hint: how long a browser waits before reconnecting
MAX_HEARTBEAT = 15.0       # SPEC §8: a comment at least every 15 s
# A job RQ reports finished whose terminal event has still not arrived this long after it
# ended (its worker died before publishing) gets one made from the stored job, so no client
# waits forever.
TERMINAL_GRACE = 10.0
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
RECENT_JOBS_ON_CONNECT = 20
GONE = object()

_state_lock = threading.Lock()


@dataclass
class StreamState:
    """Per app: the hub and the job lookups the streams make, over the hub's bounded pool."""
    hub: StreamHub
    jobs: JobService


def stream_state(app) -> StreamState:
    """The app's stream hub, built on first use (never at import or app creation)."""
    state = app.extensions.get(EXTENSION)
    if state is None:
        with _state_lock:
            state = app.extensions.get(EXTENSION)
            if state is None:
                svc = app.extensions["snapasset"]
                hub = StreamHub(svc.redis.url)
                state = app.extensions[EXTENSION] = StreamState(hub=hub, jobs=JobService(hub.client, svc.settings))
    return state


def close_stream_state(app) -> None:
    state = app.extensions.pop(EXTENSION, None)
    if state is not None:
        state.hub.close()


# -- the wire format ----------------------------------------------------------------------------
def sse_message(entry_id: str, data: str, *, retry: int | None = None) -> str:
    """One unnamed SSE message; `data` is JSON, which never holds a raw newline."""
    head = f"retry: {retry}\n" if retry is not None else ""
    return f"{head}id: {entry_id}\ndata: {data}\n\n"


PING = ": ping\n\n"


def _dumps(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"))


def _client_payload(entry: Entry) -> str:
    """The entry as clients see it: stored /media paths made absolute."""
    changed = jobrecord.with_absolute_urls(entry.event, absolutize_result, absolutize_image)
    return entry.raw if changed is None else _dumps(changed)


def _heartbeat() -> float:
    """This stream's quiet interval: the setting (≤ 15 s), less up to 20 % so that streams opened
    together do not all tick together."""
    return max(0.05, min(services().settings.sse_heartbeat, MAX_HEARTBEAT)) * random.uniform(0.8, 1.0)


def _stream_response(body, subscription) -> Response:
    response = Response(stream_with_context(body), mimetype="text/event-stream", headers=HEADERS)
    # The server closes the response however it ends, even unsent (a generator never started
    # would not run its own cleanup): the listener goes with it.
    response.call_on_close(subscription.close)
    return response


# -- request parsing ------------------------------------------------------------------------------
def _resume_id() -> str | None:
    """Where a reconnecting client left off: the Last-Event-ID header, or ?lastEventId=."""
    value = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if not is_stream_id(value):
        raise APIError(400, ErrorCode.INVALID_REQUEST, "Last-Event-ID is not an id this stream sent",
                       details={"Last-Event-ID": "must be a stream id like 1700000000000-0"})
    return value


# -- GET /api/sse/jobs/<job_id> -----------------------------------------------------------------
@bp.get("/jobs/<job_id>")
def job_stream(job_id: str):
    caller = principal(allow_query_token=True, job_id=job_id)
    owner = job_owner(caller=caller)   # None: an API key streaming any user's job
    after = _resume_id()
    state = stream_state(current_app._get_current_object())
    job = state.jobs.fetch(job_id, owner)           # 404 for a missing job and another user's
    status = status_of(job)
    stream_key = keys.job_events(job_id)
    if after is not None and status in Status.ENDED and _already_ended(state.hub, stream_key, after, job):
        return Response(status=204, headers=HEADERS)
    stored = jobrecord.state_of(job)
    connected = jobrecord.Connected(status=status, progress=stored.get("progress", 0),
                                    stage=jobrecord.stage_of(job, status)).to_wire(job_id)
    if after is None and status in Status.ENDED and state.hub.latest(stream_key) is None:
        # its history has passed the replay window (SNAPASSET_EVENTS_TTL): the outcome, from the record
        start = "0-0"
        return Response("".join((sse_message(start, _dumps(connected), retry=RETRY_MS),
                                 sse_message(start, _dumps(_final_event(job))))),
                        mimetype="text/event-stream", headers=HEADERS)
    heartbeat = _heartbeat()
    subscription = state.hub.subscribe(stream_key, after or "0-0")   # a Redis failure here is a JSON 503

    def body():
        with subscription:
            yield sse_message(after or "0-0", _dumps(connected), retry=RETRY_MS)
            ended_seen: float | None = None
            while True:
                backlog = bool(subscription.backlog)
                entries = subscription.receive(heartbeat)
                if not entries:
                    if subscription.closed:
                        return
                    yield PING
                    ended_seen, final = _check_stale(state.jobs, job_id, owner, ended_seen)
                    if final is GONE:
                        return
                    if final is not None:
                        yield sse_message(subscription.last_id, _dumps(final))
                        return
                    continue
                chunk, end = [], False
                for index, entry in enumerate(entries):
                    chunk.append(sse_message(entry.id, _client_payload(entry)))
                    # In the backlog a terminal event followed by more (the job was retried)
                    # is history, not the end.
                    if is_terminal(entry.event) and not (backlog and index < len(entries) - 1):
                        end = True
                        break
                yield "".join(chunk)
                if end:
                    return

    return _stream_response(body(), subscription)


def _already_ended(hub: StreamHub, stream_key: str, after: str, job) -> bool:
    """A reconnect after the end: nothing newer than `after` and the job is over (→ 204)."""
    last = hub.latest(stream_key)
    if last is None:
        return True                               # the history is gone; there is nothing to resume
    if last.order > tuple(map(int, after.split("-"))):
        return False
    if is_terminal(last.event):
        return True
    ended_at = job.ended_at
    if ended_at is None:
        return False
    if ended_at.tzinfo is None:
        ended_at = ended_at.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - ended_at).total_seconds() > TERMINAL_GRACE


def _check_stale(jobs: JobService, job_id: str, owner: str | None, ended_seen: float | None):
    """On a quiet heartbeat: has the job ended without its terminal event reaching the stream?

    Returns (when we first saw it ended, a terminal event to send, GONE, or None)."""
    # Thousands of quiet streams tick: one HGET each, the whole job only once it has ended.
    stored = rqcompat.stored_status(jobs.conn, job_id)
    if stored is None:                     # cleaned away meanwhile: a reconnect gets its 404
        return ended_seen, GONE
    if api_status(stored) not in Status.ENDED:
        return None, None
    now = time.monotonic()
    if ended_seen is None:
        return now, None
    if now - ended_seen < TERMINAL_GRACE:
        return ended_seen, None
    try:
        job = jobs.fetch(job_id, owner)
    except JobNotFound:
        return ended_seen, GONE
    return ended_seen, _final_event(job)


def _final_event(job) -> dict:
    """The terminal event of an ended job, made from its record."""
    status = status_of(job)
    described = presentation.describe(job)
    if status == Status.COMPLETED:
        final = jobrecord.Done(result=absolutize_result(described.get("result")))
    elif status == Status.CANCELLED:
        final = jobrecord.Cancelled()
    else:
        final = jobrecord.Failed(error=described.get("error"), willRetry=False)
    return final.to_wire(job.id)


# -- GET /api/sse/jobs --------------------------------------------------------------------------
@bp.get("/jobs")
def user_stream():
    caller = principal(allow_query_token=True)
    owner = require_user(caller=caller)   # an API key names the user whose jobs it follows
    after = _resume_id()
    state = stream_state(current_app._get_current_object())
    stream_key = keys.user_events(owner)
    if after is None:
        # A dashboard starts from now: `connected` lists the recent jobs' state, then live events.
        latest = state.hub.latest(stream_key)
        after = latest.id if latest else "0-0"
    recent, _ = state.jobs.list(owner, status=None, limit=RECENT_JOBS_ON_CONNECT, cursor=None)
    connected = jobrecord.UserConnected(
        userId=owner, jobs=[{"jobId": job.id, "status": status_of(job),
                             "progress": jobrecord.state_of(job).get("progress", 0)} for job in recent]).to_wire()
    heartbeat = _heartbeat()

    subscription = state.hub.subscribe(stream_key, after)

    def body():
        with subscription:
            yield sse_message(after, _dumps(connected), retry=RETRY_MS)
            while True:
                entries = subscription.receive(heartbeat)
                if not entries:
                    if subscription.closed:
                        return
                    yield PING
                    continue
                yield "".join(sse_message(entry.id, _client_payload(entry)) for entry in entries)

    return _stream_response(body(), subscription)
