"""Rate limits through HTTP on a real Redis: the general limit, the job-creation limit, the
unfinished-jobs limit, their headers and 429s, sharing between apps, proxies, and Redis outages."""

from __future__ import annotations

import threading
import time
import uuid

import redis as redis_lib

from snapasset.config import Settings
from snapasset.connections import RedisHandle
from snapasset.jobs import open_queue
from tests.conftest import running_web

SPEC = Settings()   # the defaults SPEC §3 names
JOB = {"prompt": "A beautiful sunset over mountains", "platforms": ["facebook-cover"]}


def bearer(make_token, user_id=None):
    return {"Authorization": f"Bearer {make_token(user_id or str(uuid.uuid4()))}"}


def assert_rate_headers(response, limit=None, remaining=None):
    headers = response.headers
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(headers.keys()), \
        dict(headers)
    if limit is not None:
        assert headers["X-RateLimit-Limit"] == str(limit)
    if remaining is not None:
        assert headers["X-RateLimit-Remaining"] == str(remaining)
    reset = int(headers["X-RateLimit-Reset"])
    assert time.time() - 5 < reset < time.time() + 24 * 3600   # unix seconds, not a duration


def assert_429(response, code):
    assert response.status_code == 429, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == code
    assert set(body) >= {"error", "message", "code", "timestamp", "retryAfter"}
    retry_after = int(response.headers["Retry-After"])
    assert body["retryAfter"] == retry_after
    assert 1 <= retry_after < 3600 + 5          # seconds to wait, never an epoch
    return body


# -- the general limit -------------------------------------------------------------

def test_the_101st_request_in_the_window_is_refused_with_spec_defaults(make_app, make_token):
    assert SPEC.rate_limit == "100 per 15 minutes"
    client = make_app(rate_limit=SPEC.rate_limit).test_client()
    auth = bearer(make_token)
    for n in range(100):
        r = client.get("/api/jobs", headers=auth)
        assert r.status_code == 200, (n, r.json)
        assert_rate_headers(r, limit=100, remaining=99 - n)
    r = client.get("/api/jobs", headers=auth)
    body = assert_429(r, "RATE_LIMIT_EXCEEDED")
    assert_rate_headers(r, limit=100, remaining=0)
    assert 0 < body["retryAfter"] <= 15 * 60
    # the limit is per user: somebody else is not affected
    assert client.get("/api/jobs", headers=bearer(make_token)).status_code == 200


def test_every_response_carries_the_headers_errors_included(make_app, make_token):
    client = make_app(rate_limit="10 per minute").test_client()
    auth = bearer(make_token)
    responses = [
        client.get("/api/platforms"),                           # anonymous, per IP
        client.get("/api/jobs", headers=auth),
        client.get("/api/jobs"),                                 # 401
        client.get("/api/jobs/gen-1-nothinghere0", headers=auth),  # 404 JOB_NOT_FOUND
        client.get("/no/such/path", headers=auth),               # 404 NOT_FOUND
        client.put("/api/jobs", headers=auth),                   # 405
        client.post("/api/jobs", data="{", headers={**auth, "Content-Type": "application/json"}),  # 400
    ]
    for response in responses:
        assert_rate_headers(response, limit=10)
        assert "Retry-After" not in response.headers
    assert responses[2].status_code == 401 and responses[4].status_code == 404


def test_probes_and_media_are_not_limited(make_app):
    client = make_app(rate_limit="2 per minute").test_client()
    for _ in range(5):
        assert client.get("/health").status_code == 200
    assert client.get("/api/platforms").status_code == 200


def test_event_stream_reconnects_are_not_limited(make_app, make_token, redis_handle):
    """EventSource reconnects on its own and gives up on a 429: streams do not spend the budget."""
    from snapasset import jobrecord
    client = make_app(rate_limit="2 per minute").test_client()
    user = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    created = client.post("/api/jobs", json=JOB, headers=headers)
    job_id = created.json["jobId"]
    jobrecord.publish(redis_handle.client, job_id, user, jobrecord.Cancelled(), ttl=60, replay_window=60)
    for _ in range(4):   # each reads the history, up to the terminal event, and ends
        r = client.get(f"/api/sse/jobs/{job_id}", headers=headers)
        assert r.status_code == 200 and b'"type":"cancelled"' in r.data
    assert client.get("/api/jobs", headers=headers).status_code == 200
    assert_429(client.get("/api/jobs", headers=headers), "RATE_LIMIT_EXCEEDED")


def test_anonymous_and_bad_credentials_count_per_ip(make_app):
    client = make_app(rate_limit="3 per minute").test_client()
    bad = {"Authorization": "Bearer not-a-token"}
    statuses = [client.get("/api/jobs", headers=bad).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    assert_429(client.get("/api/platforms"), "RATE_LIMIT_EXCEEDED")
    other_ip = client.get("/api/platforms", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert other_ip.status_code == 200


def test_x_forwarded_for_cannot_be_spoofed_without_trusted_proxies(make_app):
    client = make_app(rate_limit="2 per minute").test_client()
    for n in range(2):
        assert client.get("/api/platforms", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code == 200
    r = client.get("/api/platforms", headers={"X-Forwarded-For": "198.51.100.77"})
    assert_429(r, "RATE_LIMIT_EXCEEDED")


def test_behind_one_trusted_proxy_the_hop_it_appended_counts(make_app):
    client = make_app(rate_limit="2 per minute", trusted_proxies=1).test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.1"}

    def get(xff):
        return client.get("/api/platforms", headers={"X-Forwarded-For": xff}, environ_base=proxy)

    # the client forges leading entries; the proxy appends the address it really saw
    assert get("1.1.1.1, 192.0.2.10").status_code == 200
    assert get("2.2.2.2, 192.0.2.10").status_code == 200
    assert_429(get("3.3.3.3, 192.0.2.10"), "RATE_LIMIT_EXCEEDED")
    assert get("3.3.3.3, 192.0.2.11").status_code == 200     # a different real client


def test_limits_are_shared_by_two_apps_on_one_redis(make_app, make_token):
    first = make_app(rate_limit="4 per minute").test_client()
    second = make_app(rate_limit="4 per minute").test_client()
    auth = bearer(make_token)
    assert [c.get("/api/jobs", headers=auth).status_code for c in (first, second, first, second)] == [200] * 4
    assert_429(first.get("/api/jobs", headers=auth), "RATE_LIMIT_EXCEEDED")
    assert_429(second.get("/api/jobs", headers=auth), "RATE_LIMIT_EXCEEDED")


# -- the job-creation limit -------------------------------------------------------------

def test_the_21st_job_in_an_hour_is_refused_with_spec_defaults(make_app, make_token, settings):
    assert SPEC.job_rate_limit == "20 per hour"
    # only the hourly limit in play
    client = make_app(job_rate_limit=SPEC.job_rate_limit, max_active_jobs=100).test_client()
    auth = bearer(make_token)
    for n in range(20):
        r = client.post("/api/jobs", json=JOB, headers=auth)
        assert r.status_code == 201, (n, r.json)
        assert_rate_headers(r, limit=20, remaining=19 - n)
    r = client.post("/api/jobs", json=JOB, headers=auth)
    body = assert_429(r, "RATE_LIMIT_EXCEEDED")
    assert_rate_headers(r, limit=20, remaining=0)
    assert 0 < body["retryAfter"] <= 3600
    # development: what to do about it, and when
    assert body["message"].startswith("Job creation limit reached (20 per hour); try again in ")
    assert body["message"].endswith("In development, set SNAPASSET_JOB_RATE_LIMIT to raise it "
                                    "(e.g. SNAPASSET_JOB_RATE_LIMIT='200 per hour')")
    queue = open_queue(client.application.extensions["snapasset"].redis.client, settings)
    assert queue.count == 20


def test_only_accepted_jobs_count(make_app, make_token):
    client = make_app(job_rate_limit="2 per hour", max_active_jobs=1).test_client()
    auth = bearer(make_token)
    assert client.post("/api/jobs", json={"prompt": "short"}, headers=auth).status_code == 400
    first = client.post("/api/jobs", json=JOB, headers={**auth, "Idempotency-Key": "k1"})
    assert first.status_code == 201
    assert_rate_headers(first, limit=2, remaining=1)
    replay = client.post("/api/jobs", json=JOB, headers={**auth, "Idempotency-Key": "k1"})
    assert replay.status_code == 200 and replay.json["jobId"] == first.json["jobId"]
    # refused by the unfinished-jobs limit: not counted either
    assert_429(client.post("/api/jobs", json=JOB, headers=auth), "JOB_LIMIT_EXCEEDED")
    assert client.delete(f"/api/jobs/{first.json['jobId']}/cancel", headers=auth).status_code == 200
    second = client.post("/api/jobs", json=JOB, headers=auth)
    assert second.status_code == 201
    assert_rate_headers(second, limit=2, remaining=0)
    client.delete(f"/api/jobs/{second.json['jobId']}/cancel", headers=auth)
    assert_429(client.post("/api/jobs", json=JOB, headers=auth), "RATE_LIMIT_EXCEEDED")


def test_job_limit_is_exact_under_concurrent_requests(make_app, make_token, settings, redis_handle):
    app = make_app(job_rate_limit="3 per hour", max_active_jobs=100)
    auth = bearer(make_token)
    statuses = run_at_once(8, lambda: app.test_client().post("/api/jobs", json=JOB, headers=auth).status_code)
    assert sorted(statuses) == [201] * 3 + [429] * 5
    assert open_queue(redis_handle.client, settings).count == 3


def _burst(base: str, token: str, n: int = 40) -> list:
    import requests
    from concurrent.futures import ThreadPoolExecutor

    def create(_):
        return requests.post(f"{base}/api/jobs", json=JOB, headers={"Authorization": f"Bearer {token}"},
                             timeout=30)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(create, range(n)))


def test_a_burst_of_creates_is_never_refused_for_the_hourly_limit_while_units_remain(settings, make_token,
                                                                                       tmp_path):
    """40 creates at once for one user on the web process as the Procfile runs it (gevent: all in
    flight together), with the spec's limits: 5 accepted, 35 refused for the unfinished-jobs
    limit — none for the hourly one, and 15 of its 20 units left."""
    spec_limits = settings.replace(job_rate_limit=SPEC.job_rate_limit, max_active_jobs=SPEC.max_active_jobs)
    with running_web(spec_limits, tmp_path / "web.log") as (base, _):
        responses = _burst(base, make_token())
    codes = sorted(r.json().get("code", str(r.status_code)) for r in responses)
    assert codes == ["201"] * 5 + ["JOB_LIMIT_EXCEEDED"] * 35, codes
    remaining = min(int(r.headers["X-RateLimit-Remaining"]) for r in responses)
    assert remaining == 15
    assert open_queue(redis_lib.Redis.from_url(settings.redis_url), settings).count == 5


def test_a_burst_past_the_hourly_limit_takes_exactly_the_allowance(settings, make_token, tmp_path):
    roomy = settings.replace(job_rate_limit=SPEC.job_rate_limit, max_active_jobs=100)
    with running_web(roomy, tmp_path / "web.log") as (base, _):
        responses = _burst(base, make_token())
    codes = sorted(r.json().get("code", str(r.status_code)) for r in responses)
    assert codes == ["201"] * 20 + ["RATE_LIMIT_EXCEEDED"] * 20, codes
    assert open_queue(redis_lib.Redis.from_url(settings.redis_url), settings).count == 20


# -- unfinished jobs per user ------------------------------------------------------------

def test_the_sixth_unfinished_job_is_refused(make_app, make_token, run_jobs):
    assert SPEC.max_active_jobs == 5
    client = make_app(max_active_jobs=SPEC.max_active_jobs).test_client()
    auth = bearer(make_token)
    for _ in range(5):
        assert client.post("/api/jobs", json=JOB, headers=auth).status_code == 201
    r = client.post("/api/jobs", json=JOB, headers=auth)
    body = assert_429(r, "JOB_LIMIT_EXCEEDED")
    assert "5" in body["message"]
    assert_rate_headers(r)
    # another user is not affected; and once the jobs finished there is room again
    assert client.post("/api/jobs", json=JOB, headers=bearer(make_token)).status_code == 201
    run_jobs()
    assert client.post("/api/jobs", json=JOB, headers=auth).status_code == 201


def test_unfinished_limit_is_atomic_under_concurrent_requests(make_app, make_token, settings, redis_handle):
    app = make_app(max_active_jobs=5)
    auth = bearer(make_token)
    statuses = run_at_once(12, lambda: app.test_client().post("/api/jobs", json=JOB, headers=auth).status_code)
    assert sorted(statuses) == [201] * 5 + [429] * 7
    assert open_queue(redis_handle.client, settings).count == 5


def run_at_once(n, call):
    barrier = threading.Barrier(n)
    results = []

    def worker():
        barrier.wait()
        results.append(call())

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


# -- Redis unreachable ---------------------------------------------------------------------

def test_limiter_survives_redis_going_away_and_comes_back(make_app, make_token, redis_server):
    """Redis down: no 500s, limits still enforced (in memory, per process); Redis back: shared again."""
    server = redis_server()
    port, url = server.port, server.url
    handle = RedisHandle(client=redis_lib.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5),
                         url=url)
    try:
        app = make_app(redis=handle, rate_limit="3 per minute")
        client = app.test_client()
        auth = bearer(make_token)
        assert client.get("/api/platforms", headers=auth).status_code == 200

        server.stop()
        # requests that need no Redis still work, with headers from the in-memory fallback
        fallback = [client.get("/api/platforms", headers=auth) for _ in range(3)]
        assert [r.status_code for r in fallback] == [200, 200, 200]
        assert_rate_headers(fallback[0], limit=3)
        assert_429(client.get("/api/platforms", headers=auth), "RATE_LIMIT_EXCEEDED")  # still limited
        # requests that do need Redis say so honestly
        r = client.get("/api/jobs", headers=bearer(make_token))
        assert r.status_code == 503 and r.json["code"] == "SERVICE_UNAVAILABLE"

        server.start()   # back, empty
        limiter = app.extensions["snapasset.limits"].limiter

        def recovered():
            client.get("/api/platforms", headers=bearer(make_token))
            return not limiter._storage_dead
        deadline = time.monotonic() + 40   # Flask-Limiter re-probes with a backoff of at most 32 s
        while not recovered():
            assert time.monotonic() < deadline, "the limiter never went back to Redis"
            time.sleep(0.5)
        fresh = bearer(make_token)
        client.get("/api/platforms", headers=fresh)
        keys = redis_lib.Redis(port=port).keys("LIMITS:*")
        assert keys, "counters are written to Redis again"
    finally:
        handle.client.close()


def test_production_429s_do_not_name_the_operators_settings(make_app, make_token):
    client = make_app(env="production", job_rate_limit="1 per hour", rate_limit="3 per 15 minutes",
                      max_active_jobs=100).test_client()
    auth = bearer(make_token)
    assert client.post("/api/jobs", json=JOB, headers=auth).status_code == 201
    job = assert_429(client.post("/api/jobs", json=JOB, headers=auth), "RATE_LIMIT_EXCEEDED")
    assert job["message"].startswith("Job creation limit reached (1 per hour); try again in ")
    assert "SNAPASSET_" not in job["message"]
    for _ in range(3):   # anonymous: counted per address, apart from the user's
        client.get("/api/platforms")
    general = assert_429(client.get("/api/platforms"), "RATE_LIMIT_EXCEEDED")
    assert general["message"] == "Rate limit exceeded (3 per 15 minutes); try again in 15 minutes"


def test_development_429s_name_the_setting_that_raises_them(make_app):
    client = make_app(rate_limit="2 per 15 minutes").test_client()
    for _ in range(2):
        client.get("/api/platforms")
    body = assert_429(client.get("/api/platforms"), "RATE_LIMIT_EXCEEDED")
    assert body["message"] == ("Rate limit exceeded (2 per 15 minutes); try again in 15 minutes. In development, "
                               "set SNAPASSET_RATE_LIMIT to raise it (e.g. SNAPASSET_RATE_LIMIT='20 per 15 minutes')")
