"""Production hardening over real processes (issue 11): `snapasset worker` and the Procfile's web
process against a redis-server of the test's own — a Redis without persistence, a Redis that goes
away, a worker that dies."""

from __future__ import annotations

import json
import time
import uuid

import psutil
import pytest
import redis as redis_lib
from rq.job import Job
from rq.registry import StartedJobRegistry

from snapasset import keys
from snapasset.config import Env
from snapasset.connections import NOT_PERSISTENT
from snapasset.jobs import JobService
from snapasset.live_workers import live_workers
from snapasset.schema import parse_job_request
from tests.conftest import running_web, wait_for
from tests.stubs.webhook_receiver import WebhookReceiver

WEBHOOK_SECRET = "whsec_c25hcGFzc2V0LXRlc3Qtd2ViaG9vay1zZWNyZXQ="

PRODUCTION = {Env.ENV: "production"}
STARTED = "up to"   # the worker's "Worker …: up to N jobs at once" line, once it listens


def _log(tmp_path, index: int = 0) -> str:
    return (tmp_path / f"worker-{index}.log").read_text()


@pytest.mark.parametrize("options, warned", [
    (("--save", "", "--appendonly", "no"), True),
    (("--save", "", "--appendonly", "yes"), False),
    (("--save", "3600", "1", "--appendonly", "no"), False),
    (("--save", "", "--appendonly", "no", "--rename-command", "CONFIG", ""), False),   # CONFIG forbidden
])
def test_a_production_worker_warns_once_when_redis_keeps_nothing(redis_server, worker_process, tmp_path,
                                                                 options, warned):
    server = redis_server(*options)
    worker_process({**PRODUCTION, Env.REDIS_URL: server.url})
    wait_for(lambda: STARTED in _log(tmp_path), timeout=60, interval=0.1)
    assert _log(tmp_path).count(NOT_PERSISTENT) == (1 if warned else 0), _log(tmp_path)


def test_a_production_web_process_warns_too(settings, redis_server, tmp_path):
    server = redis_server("--save", "", "--appendonly", "no")
    log = tmp_path / "web.log"
    with running_web(settings.replace(redis_url=server.url), log, PRODUCTION):
        pass
    assert log.read_text().count(NOT_PERSISTENT) == 1, log.read_text()


# -- a worker that dies --------------------------------------------------------------------------
def _tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE   # dead, waiting for a parent to reap it
    except psutil.NoSuchProcess:
        return True


def test_no_process_is_left_after_sigkill_of_the_workers_main_process(worker_process):
    """Scheduler, forkserver, render processes and resource tracker all go with the worker."""
    worker = worker_process({Env.RENDER_PROCESSES: "2"})
    # resource tracker + forkserver + 2 render processes + RQ's scheduler
    children = wait_for(lambda: len(tree := _tree(worker.pid)) >= 5 and tree, timeout=60, interval=0.2)
    names = " ".join(" ".join(child.cmdline()) for child in children)
    assert "forkserver" in names and "resource_tracker" in names, names
    worker.kill()
    worker.wait(10)
    wait_for(lambda: all(_gone(child) for child in children), timeout=15, interval=0.1)


def _create(settings, conn, **payload) -> str:
    request = parse_job_request({"prompt": "A lighthouse on a rocky coast at dusk", "platforms": ["og-image"],
                                 **payload}, settings)
    return JobService(conn, settings).create(f"user-{uuid.uuid4().hex[:8]}", request).job_id


def _status(conn, job_id: str) -> str | None:
    raw = conn.hget(Job.key_for(job_id), "status")
    return raw.decode() if raw else None


def _events(conn, job_id: str) -> list[dict]:
    return [json.loads(fields[b"data"]) for _, fields in conn.xrange(keys.job_events(job_id))]


FAST_BEATS = {Env.WORKER_HEARTBEAT: "1"}   # lost after 3 s without a heartbeat, checked every second


def test_a_sigkilled_workers_jobs_come_back_with_their_events_and_the_last_attempt_fails_with_its_webhook(
        settings, redis_handle, worker_process, tmp_path):
    conn = redis_handle.client
    receiver = WebhookReceiver.start()
    hooks = {Env.WEBHOOK_SECRET: WEBHOOK_SECRET, Env.WEBHOOK_ALLOW_PRIVATE: "true"}
    try:
        retried = _create(settings, conn)                                              # 3 attempts
        last_try = _create(settings.replace(job_attempts=1, webhook_allow_private=True), conn, webhookUrl=f"{receiver.url}/hook")
        victim = worker_process({**FAST_BEATS, Env.LOCAL_LATENCY: "60"})
        wait_for(lambda: _status(conn, retried) == _status(conn, last_try) == "started", timeout=60, interval=0.1)
        worker_process({**FAST_BEATS, **hooks, Env.LOCAL_LATENCY: "0"})   # a second dyno, idle
        wait_for(lambda: "up to" in (tmp_path / "worker-1.log").read_text(), timeout=60, interval=0.1)
        victim.kill()
        died = time.monotonic()

        wait_for(lambda: any(e["type"] == "failed" for e in _events(conn, retried)), timeout=60, interval=0.1)
        recovered_in = time.monotonic() - died
        assert recovered_in < 60, recovered_in
        failed = next(e for e in _events(conn, retried) if e["type"] == "failed")
        assert failed["willRetry"] is True and failed["error"]["code"] == "WORKER_LOST"
        wait_for(lambda: _status(conn, retried) == "finished", timeout=60, interval=0.1)
        assert _events(conn, retried)[-1]["type"] == "done"

        wait_for(lambda: _status(conn, last_try) == "failed", timeout=60, interval=0.1)
        final = [e for e in _events(conn, last_try) if e["type"] == "failed"]
        assert len(final) == 1 and final[0]["willRetry"] is False and final[0]["error"]["code"] == "WORKER_LOST"
        post = wait_for(lambda: receiver.posts, timeout=60, interval=0.1)[0]
        body = json.loads(post.body)
        assert body["type"] == "job.failed" and body["jobId"] == last_try
        assert body["error"]["code"] == "WORKER_LOST"
    finally:
        receiver.stop()


def test_stats_and_metrics_never_recover_lost_jobs_themselves(client, settings, redis_handle, make_token,
                                                                 worker_process):
    """Reading the queue's counts must not run RQ's started-registry cleanup: with no worker left,
    a dead worker's job stays `active` for readers until a worker recovers it."""
    conn = redis_handle.client
    job_id = _create(settings, conn)
    victim = worker_process({**FAST_BEATS, Env.LOCAL_LATENCY: "60"})
    wait_for(lambda: _status(conn, job_id) == "started", timeout=60, interval=0.1)
    victim.kill()
    victim.wait(10)
    started = StartedJobRegistry(settings.queue_name, connection=conn).key
    wait_for(lambda: conn.zrangebyscore(started, 0, time.time()), timeout=30, interval=0.2)   # now it is lost
    admin = {"Authorization": f"Bearer {make_token(admin=True)}"}
    for _ in range(3):
        assert client.get("/api/queue/stats", headers=admin).json["active"] == 1
        client.get("/metrics")
    assert _status(conn, job_id) == "started"
    assert not any(event["type"] == "failed" for event in _events(conn, job_id))


# -- a Redis that goes away ---------------------------------------------------------------------
@pytest.mark.parametrize("persistence", [("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
                                         ("--appendonly", "no", "--save", "")], ids=["aof", "none"])
def test_the_worker_outlives_a_redis_outage_and_finishes_what_it_had(settings, redis_server, worker_process,
                                                                       tmp_path, persistence):
    """Redis stopped for 10 s under a running worker and a job in flight. With an append-only
    file Redis comes back with everything; without one it comes back empty, and the worker
    registers again and puts the job it was running back whole."""
    server = redis_server(*persistence)
    settings = settings.replace(redis_url=server.url)
    conn = redis_lib.Redis.from_url(server.url)
    worker = worker_process({Env.REDIS_URL: server.url, Env.LOCAL_LATENCY: "3", **FAST_BEATS})
    wait_for(lambda: STARTED in _log(tmp_path), timeout=60, interval=0.1)
    in_flight = _create(settings, conn)
    wait_for(lambda: _status(conn, in_flight) == "started", timeout=30, interval=0.05)

    server.stop()
    time.sleep(10)
    assert worker.poll() is None, _log(tmp_path)[-3000:]
    server.start()

    wait_for(lambda: _status(conn, in_flight) == "finished", timeout=60, interval=0.2)
    assert len(live_workers(conn, settings.queue_name, default_interval=settings.worker_heartbeat)) == 1
    after = _create(settings, conn)
    wait_for(lambda: _status(conn, after) == "finished", timeout=60, interval=0.2)
    assert worker.poll() is None
    log = _log(tmp_path)
    assert log.count("Redis is unreachable") == 1 and log.count("Redis is back") == 1, log[-3000:]
    conn.close()


def test_an_open_event_stream_rides_out_a_redis_outage_and_the_web_log_says_so_once(settings, redis_server,
                                                                                     tmp_path, make_token):
    """The Procfile's web process with a browser's event stream open while its Redis is away for
    4 s: the stream stays open, carries the next event once Redis is back, and the log has one
    line when the outage starts and one when it ends — no traceback per retry."""
    import requests

    server = redis_server("--save", "", "--appendonly", "no")
    settings = settings.replace(redis_url=server.url)
    log = tmp_path / "web.log"
    user = str(uuid.uuid4())
    # pings every second: the closed stream is noticed at once, and the web process stops quickly
    with running_web(settings, log, {Env.SSE_HEARTBEAT: "1"}) as (base, _):
        stream = requests.get(f"{base}/api/sse/jobs", params={"access_token": make_token(user)}, stream=True,
                              timeout=60)
        lines = stream.iter_lines(decode_unicode=True)
        assert '"type":"connected"' in next(line for line in lines if line.startswith("data:"))
        server.stop()
        time.sleep(4)
        server.start()
        conn = redis_lib.Redis.from_url(server.url)
        request = parse_job_request({"prompt": "A lighthouse on a rocky coast at dusk", "platforms": ["og-image"]},
                                    settings)
        service = JobService(conn, settings)
        job_id = service.create(user, request).job_id
        service.cancel(job_id, user)
        cancelled = next(line for line in lines if line.startswith("data:") and job_id in line)
        assert '"type":"cancelled"' in cancelled
        stream.close()
        conn.close()
    text = log.read_text()
    assert text.count("stream hub: Redis unreachable") == 1, text[-3000:]
    assert text.count("stream hub: reading again") == 1, text[-3000:]
    # (what follows the stop is gunicorn's and gevent's: gevent 24.2 prints an ignored exception
    # from logging's shutdown as its greenlets are finalized)
    served = text.split("Handling signal: term")[0]
    assert "Traceback" not in served and "read failed" not in served, served[-3000:]
