"""snapasset.admission against a real Redis: a refusal writes nothing, the checks see what is
stored at the moment the writes run."""

from __future__ import annotations

import uuid

from rq.job import JobStatus

from snapasset import admission, rqcompat


def _admission(**overrides) -> admission.Admission:
    prefix, field = rqcompat.status_location()
    fields = dict(job_id=f"gen-1-{uuid.uuid4().hex[:12]}", active_key=f"test:active:{uuid.uuid4().hex}",
                  job_hash_prefix=prefix, status_field=field,
                  live_statuses=frozenset({JobStatus.QUEUED.value, JobStatus.STARTED.value}), active_ttl=60,
                  max_active=2)
    fields.update(overrides)
    return admission.Admission(**fields)


def _writes(conn, target: str) -> list[tuple]:
    with conn.pipeline() as pipe:
        pipe.multi()
        pipe.hset(target, mapping={"written": "yes", "n": 3})
        pipe.rpush(target + ":list", "a", "b")
        pipe.expire(target, 60)
        return admission.recorded_commands(pipe)


def test_admitted_writes_run_in_order_and_the_quota_is_counted(redis_handle):
    conn = redis_handle.client
    target, quota = f"test:target:{uuid.uuid4().hex}", f"test:quota:{uuid.uuid4().hex}"
    adm = _admission(quota_key=quota, quota_amount=3, quota_expiry=600,
                     commit=(target + ":claim", "job|fp|committed", 60))
    assert admission.admit(conn, adm, _writes(conn, target))[0] == 1
    assert conn.hgetall(target) == {b"written": b"yes", b"n": b"3"}
    assert conn.lrange(target + ":list", 0, -1) == [b"a", b"b"]
    assert 0 < conn.ttl(target) <= 60
    assert conn.smembers(adm.active_key) == {adm.job_id.encode()}
    assert conn.get(quota) == b"1" and 590 < conn.ttl(quota) <= 600
    assert conn.get(target + ":claim") == b"job|fp|committed"


def test_a_spent_quota_refuses_and_writes_nothing(redis_handle):
    conn = redis_handle.client
    target, quota = f"test:target:{uuid.uuid4().hex}", f"test:quota:{uuid.uuid4().hex}"
    conn.set(quota, 3, ex=600)
    adm = _admission(quota_key=quota, quota_amount=3, quota_expiry=600)
    assert admission.admit(conn, adm, _writes(conn, target))[0] == admission.Refused("quota", 3)
    assert not conn.exists(target, target + ":list", adm.active_key)
    assert conn.get(quota) == b"3"


def test_unfinished_jobs_are_counted_from_their_stored_status_and_finished_ones_pruned(redis_handle):
    conn = redis_handle.client
    prefix, field = rqcompat.status_location()
    adm = _admission()
    running = [f"gen-1-run{i}{uuid.uuid4().hex[:8]}" for i in range(2)]
    done = f"gen-1-done{uuid.uuid4().hex[:8]}"
    for job_id, status in ((running[0], "queued"), (running[1], "started"), (done, "finished")):
        conn.hset(prefix + job_id, field, status)
        conn.sadd(adm.active_key, job_id)
    target = f"test:target:{uuid.uuid4().hex}"
    assert admission.admit(conn, adm, _writes(conn, target))[0] == admission.Refused("active", 2)
    assert not conn.exists(target)
    assert len(conn.smembers(adm.active_key)) == 3         # a refusal prunes nothing either
    conn.hset(prefix + running[1], field, "failed")          # one of them ends
    assert admission.admit(conn, adm, _writes(conn, target))[0] == 0
    assert conn.smembers(adm.active_key) == {running[0].encode(), adm.job_id.encode()}
    assert conn.exists(target)


def test_a_retry_is_refused_when_the_job_changed_status_after_the_caller_looked(redis_handle):
    """The caller reads the job (failed), records its writes; meanwhile another retry queued it."""
    conn = redis_handle.client
    prefix, field = rqcompat.status_location()
    adm = _admission(required_statuses=frozenset({"failed", "canceled"}), max_active=None)
    conn.hset(prefix + adm.job_id, field, "failed")
    target = f"test:target:{uuid.uuid4().hex}"
    commands = _writes(conn, target)
    conn.hset(prefix + adm.job_id, field, "queued")
    assert admission.admit(conn, adm, commands)[0] == admission.Refused("status", "queued")
    assert not conn.exists(target, adm.active_key)
    conn.delete(prefix + adm.job_id)                          # deleted meanwhile
    assert admission.admit(conn, adm, commands)[0] == admission.Refused("status", None)


def test_a_redis_that_lost_its_scripts_still_admits_and_answers_with_the_estimate_and_headers(
        make_app, make_token, redis_server):
    """A create runs the admission script by its hash, with the estimate and the limits' windows
    read in the same round trip; a Redis that restarted (or flushed its scripts) knows no hash,
    so the script is loaded and the whole round trip sent again — once, with nothing written
    twice."""
    import redis as redis_lib

    from snapasset.connections import RedisHandle

    server = redis_server()
    handle = RedisHandle(client=redis_lib.Redis.from_url(server.url), url=server.url)
    client = make_app(redis=handle, job_rate_limit="5 per hour", rate_limit="100 per minute").test_client()
    auth = {"Authorization": f"Bearer {make_token('script-user')}"}
    job = {"prompt": "A lighthouse on a rocky coast at sunset", "platforms": ["twitter-post"]}
    for expected_remaining in (4, 3):
        handle.client.script_flush()
        created = client.post("/api/jobs", json=job, headers=auth)
        assert created.status_code == 201, created.get_json()
        assert created.headers["X-RateLimit-Limit"] == "5"          # the allowance is nearest to running out
        assert created.headers["X-RateLimit-Remaining"] == str(expected_remaining)
        assert created.get_json()["estimatedTime"] == "unknown (no job has finished yet)"
    waiting = sum(handle.client.llen(key) for key in handle.client.keys("rq:queue:*"))
    assert waiting == 2                                               # each job queued once
