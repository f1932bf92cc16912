"""Operators over real processes (SPEC §6 "Operators"): live workers judged by their heartbeats,
and metrics that add up across web processes and workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import requests
from click.testing import CliRunner

from snapasset.cli import cli, web_command
from snapasset.config import Env
from tests.conftest import ROOT, InProcessWorker, free_port, sample, settings_env, stop_process, wait_for
from tests.fake_providers import Refusing
from workers.bootstrap import bootstrap
from workers.terminal_events import build_worker

JOB = {"prompt": "A beautiful sunset over mountains", "platforms": ["facebook-cover"]}


@pytest.fixture
def admin(make_token):
    return {"Authorization": f"Bearer {make_token(admin=True)}"}


proc_logs: list = []


def worker_logs() -> str:
    """What the workers of the running test printed, for a failure message."""
    return "\n".join(f"--- {path.name}:\n{path.read_text(errors='replace')[-3000:]}" for path in proc_logs
                     if path.exists())


@pytest.fixture
def worker_group(settings, tmp_path):
    """`snapasset worker` processes, each the leader of its own process group (worker and render
    processes), so that a test can SIGKILL one whole, as a lost dyno."""
    started = []

    def start(extra_env: dict) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")
        proc_logs.append(tmp_path / f"worker-{len(started)}.log")
        proc = subprocess.Popen([sys.executable, "-m", "snapasset", "worker"],
                                env={**settings_env(settings), **extra_env}, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append((proc, log))
        return proc

    yield start
    proc_logs.clear()
    for proc, log in started:
        if proc.poll() is None:
            stop_process(proc)
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # render processes left by a killed worker
        except ProcessLookupError:
            pass
        log.close()


def test_operator_routes_are_for_admins_only(client, auth):
    anonymous = client.get("/api/admin/workers")
    assert anonymous.status_code == 401 and anonymous.json["code"] == "UNAUTHORIZED"
    user = client.get("/api/admin/workers", headers=auth)
    assert user.status_code == 403 and user.json["code"] == "FORBIDDEN"


def test_workers_lists_live_workers_with_their_jobs_and_drops_a_killed_one(client, admin, auth, settings,
                                                                           worker_group):
    # beats every 2 s: listed while 3 beats are not missed, which a loaded 2-core CI machine can
    # stretch past 3 s for one beat; a killed worker still drops out within seconds
    env = {Env.WORKER_HEARTBEAT: "2", Env.LOCAL_LATENCY: "4", Env.WORKER_CONCURRENCY: "4"}
    doomed, survivor = worker_group(env), worker_group(env)

    seen = []

    def listed(count: int):
        body = client.get("/api/admin/workers", headers=admin).json
        seen[:] = [body]
        return body if body["count"] == count else None

    def listed_within(count: int, timeout: float):
        try:
            return wait_for(lambda: listed(count), timeout=timeout, interval=0.2)
        except AssertionError:
            raise AssertionError(f"{count} workers not listed within {timeout}s; last listing {seen}, "
                                 f"exit codes {[doomed.poll(), survivor.poll()]}\n{worker_logs()}") from None

    body = listed_within(2, 60)
    assert {w["pid"] for w in body["workers"]} == {doomed.pid, survivor.pid}
    assert body["queue"] == settings.queue_name
    for worker in body["workers"]:
        assert worker["concurrency"] == 4 and worker["hostname"] and worker["startedAt"].endswith("Z")
        beat = datetime.fromisoformat(worker["lastHeartbeat"].replace("Z", "+00:00"))
        assert (datetime.now(timezone.utc) - beat).total_seconds() < 10

    job_id = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    running = wait_for(lambda: [w for w in client.get("/api/admin/workers", headers=admin).json["workers"]
                                if job_id in w["currentJobs"]], timeout=30, interval=0.1)
    assert len(running) == 1 and running[0]["state"] == "busy"

    os.killpg(doomed.pid, signal.SIGKILL)   # no goodbye: its registration stays in Redis
    doomed.wait()
    body = listed_within(1, 60)   # 3 missed beats of 2 s
    assert [w["pid"] for w in body["workers"]] == [survivor.pid]

    result = CliRunner().invoke(cli, ["workers", "--json"], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    assert '"count": 1' in result.output and f'"pid": {survivor.pid}' in result.output
    table = CliRunner().invoke(cli, ["workers"], env=settings_env(settings))
    assert str(survivor.pid) in table.output and str(doomed.pid) not in table.output



def test_metrics_add_up_over_two_web_processes_and_the_workers(settings, tmp_path, worker_process, make_token,
                                                               redis_handle):
    """gunicorn with two worker processes, as the Procfile runs it: whichever process answers a
    scrape, it shows every process's requests and every worker's job outcomes."""
    folder = tmp_path / "prometheus"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web_settings = settings.replace(public_url=base)
    log = open(tmp_path / "web.log", "wb")
    web = subprocess.Popen(web_command(web_settings, workers=2, bind=f"127.0.0.1:{port}"),
                           env={**settings_env(web_settings), Env.PROMETHEUS_MULTIPROC_DIR: str(folder)},
                           cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        def answers():
            try:
                return requests.get(f"{base}/health", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False
        wait_for(answers, timeout=30, interval=0.1)

        # A new connection per request: the kernel spreads them over both processes.
        made = 0

        def both_processes_answered():
            nonlocal made
            for _ in range(10):
                assert requests.get(f"{base}/api/platforms", headers={"Connection": "close"}, timeout=5).ok
                made += 1
            return len(list(folder.glob("counter_*.db"))) >= 2
        wait_for(both_processes_answered, timeout=60, interval=0)

        headers = {"Authorization": f"Bearer {make_token('metrics-user')}"}
        refused = requests.post(f"{base}/api/jobs", json=JOB, headers=headers, timeout=5).json()["jobId"]
        # a worker whose model refuses, run in this process, then a real worker process
        build_worker(bootstrap(settings, redis=redis_handle, provider=Refusing()), InProcessWorker).work(burst=True)
        assert requests.get(f"{base}/api/jobs/{refused}", headers=headers, timeout=5).json()["status"] == "failed"
        completed = requests.post(f"{base}/api/jobs", json=JOB, headers=headers, timeout=5).json()["jobId"]
        worker_process()
        wait_for(lambda: requests.get(f"{base}/api/jobs/{completed}", headers=headers,
                                      timeout=5).json()["status"] == "completed", timeout=60, interval=0.2)

        scrapes = [requests.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=5).text
                   for _ in range(6)]
    finally:
        stop_process(web)
        log.close()

    queue = settings.queue_name
    for text in scrapes:
        assert sample(text, "snapasset_http_requests_total", method="GET", endpoint="/api/platforms",
                      status="200") == made
        assert sample(text, "snapasset_jobs_total", queue=queue, outcome="completed", provider="local") == 1
        assert sample(text, "snapasset_jobs_total", queue=queue, outcome="failed",
                      code="CONTENT_POLICY_VIOLATION") == 1
        for name in ("queue_wait", "model", "render", "end_to_end"):
            assert sample(text, f"snapasset_job_{name}_seconds_count", queue=queue, provider="local") >= 1, name
        assert sample(text, "snapasset_workers", queue=queue) == 1


def _poll_status(base: str, headers: dict, job_id: str, wanted: str, timeout: float = 60):
    wait_for(lambda: requests.get(f"{base}/api/jobs/{job_id}", headers=headers, timeout=5).json()["status"] == wanted,
             timeout=timeout, interval=0.2)


def test_admin_lists_every_users_jobs_and_retries_the_failed_ones_by_code(web_server, worker_process, make_token,
                                                                        settings):
    """Two users' jobs fail in two ways on real worker processes (a refusing model, then a model
    that is down); an operator finds them across users, by owner and by error code, and queues
    the provider errors again once the model is back."""
    base, _ = web_server
    alice, bob = "alice-ops", "bob-ops"
    as_alice = {"Authorization": f"Bearer {make_token(alice)}"}
    as_bob = {"Authorization": f"Bearer {make_token(bob)}"}
    admin = {"Authorization": f"Bearer {make_token('ops', admin=True)}"}

    def create(headers) -> str:
        response = requests.post(f"{base}/api/jobs", json=JOB, headers=headers, timeout=5)
        assert response.status_code == 201, response.text
        return response.json()["jobId"]

    refused = create(as_alice)
    refusing = worker_process({Env.PROVIDER: "tests.fake_providers:refusing"})
    _poll_status(base, as_alice, refused, "failed")
    stop_process(refusing)
    down = [create(as_bob), create(as_alice), create(as_bob)]
    failing = worker_process({Env.PROVIDER: "tests.fake_providers:failing", Env.JOB_ATTEMPTS: "1"})
    for job_id in down:
        _poll_status(base, as_bob if job_id != down[1] else as_alice, job_id, "failed")
    stop_process(failing)
    waiting = create(as_bob)

    def admin_list(query: str) -> dict:
        response = requests.get(f"{base}/api/admin/jobs?{query}", headers=admin, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    everything = admin_list("limit=100")
    assert [j["jobId"] for j in everything["jobs"]] == [waiting, *reversed(down), refused]   # newest first
    owners = {j["jobId"]: j["userId"] for j in everything["jobs"]}
    assert owners == {refused: alice, down[0]: bob, down[1]: alice, down[2]: bob, waiting: bob}
    by_id = {j["jobId"]: j for j in everything["jobs"]}
    assert by_id[refused]["error"]["code"] == "CONTENT_POLICY_VIOLATION"
    assert by_id[down[0]]["error"] == {"code": "PROVIDER_ERROR", "message": "The model is unavailable"}
    assert by_id[waiting]["status"] == "waiting" and "error" not in by_id[waiting]

    assert [j["jobId"] for j in admin_list(f"userId={alice}")["jobs"]] == [down[1], refused]
    assert [j["jobId"] for j in admin_list(f"userId={bob}&status=failed")["jobs"]] == [down[2], down[0]]
    provider_errors = admin_list("errorCode=PROVIDER_ERROR")
    assert provider_errors["status"] == "failed" and provider_errors["count"] == 3
    assert [j["jobId"] for j in admin_list(f"errorCode=PROVIDER_ERROR&userId={alice}")["jobs"]] == [down[1]]
    # cursor pages: one at a time, each job once
    seen, cursor = [], None
    while True:
        page = admin_list("status=failed&limit=1" + (f"&cursor={cursor}" if cursor else ""))
        seen += [j["jobId"] for j in page["jobs"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [*reversed(down), refused]
    bad = requests.get(f"{base}/api/admin/jobs?errorCode=NOPE&status=active", headers=admin, timeout=5)
    assert bad.status_code == 400 and set(bad.json()["details"]) == {"errorCode"}
    forbidden = requests.get(f"{base}/api/admin/jobs", headers=as_alice, timeout=5)
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "FORBIDDEN"

    # the model is back: retry the provider errors, two at most, then the rest
    worker_process()
    first = requests.post(f"{base}/api/admin/jobs/retry", json={"errorCode": "PROVIDER_ERROR", "limit": 2},
                          headers=admin, timeout=10).json()
    assert first["retried"] == 2 and first["jobIds"] == [down[2], down[1]] and first["errorCode"] == "PROVIDER_ERROR"
    rest = requests.post(f"{base}/api/admin/jobs/retry", json={"status": "failed", "errorCode": "PROVIDER_ERROR"},
                         headers=admin, timeout=10).json()
    assert rest["retried"] == 1 and rest["jobIds"] == [down[0]]
    for job_id, headers in ((down[0], as_bob), (down[1], as_alice), (down[2], as_bob)):
        _poll_status(base, headers, job_id, "completed")
    _poll_status(base, as_bob, waiting, "completed")
    assert admin_list("errorCode=PROVIDER_ERROR")["jobs"] == []
    assert [j["jobId"] for j in admin_list("status=failed")["jobs"]] == [refused]   # a refusal is not retried
    assert [j["jobId"] for j in admin_list(f"status=completed&userId={bob}")["jobs"]] == [waiting, down[2], down[0]]
    stats = requests.get(f"{base}/api/queue/stats", headers=admin, timeout=5).json()
    assert (stats["failed"], stats["completed"], stats["waiting"]) == (1, 4, 0)


JOBS_KEY = "jobs-key-0123456789abcdef"
PRIORITY_KEY = "priority-key-0123456789abcdef"


def test_high_priority_is_refused_to_plain_callers(make_app, make_token):
    from snapasset.config import ApiKey
    app = make_app(api_keys=(ApiKey("backend", JOBS_KEY, frozenset({"jobs"})),
                             ApiKey("paid", PRIORITY_KEY, frozenset({"jobs", "priority"}))))
    client = app.test_client()
    high = {**JOB, "options": {"priority": "high"}}
    as_user = {"Authorization": f"Bearer {make_token()}"}
    refused = client.post("/api/jobs", json=high, headers=as_user)
    assert refused.status_code == 403 and refused.json["code"] == "FORBIDDEN"
    assert "priority" in refused.json["message"]
    keyed = client.post("/api/jobs", json={**high, "userId": "customer-1"}, headers={"X-API-Key": JOBS_KEY})
    assert keyed.status_code == 403 and keyed.json["code"] == "FORBIDDEN"
    for low_or_normal in ("low", "normal"):
        ok = client.post("/api/jobs", json={**JOB, "options": {"priority": low_or_normal}}, headers=as_user)
        assert ok.status_code == 201
    paid = client.post("/api/jobs", json={**high, "userId": "customer-2"}, headers={"X-API-Key": PRIORITY_KEY})
    assert paid.status_code == 201
    admin = client.post("/api/jobs", json=high, headers={"Authorization": f"Bearer {make_token(admin=True)}"})
    assert admin.status_code == 201
    bad = client.post("/api/jobs", json={**JOB, "options": {"priority": "urgent"}}, headers=as_user)
    assert bad.status_code == 400 and "options.priority" in bad.json["details"]


def test_workers_take_high_before_normal_before_low_with_one_slot(make_app, make_token, worker_process):
    client = make_app(max_active_jobs=10).test_client()
    admin = {"Authorization": f"Bearer {make_token('lanes-admin', admin=True)}"}
    order = ["low", "normal", "high", "low", "normal", "high"]
    created = [client.post("/api/jobs", json={**JOB, "options": {"priority": p}}, headers=admin).json["jobId"]
               for p in order]
    by_priority = {p: [job_id for job_id, q in zip(created, order) if q == p] for p in ("high", "normal", "low")}
    expected = by_priority["high"] + by_priority["normal"] + by_priority["low"]
    # before any worker: each waiting job counts the lanes ahead of its own
    positions = {job_id: client.get(f"/api/jobs/{job_id}", headers=admin).json["queuePosition"] for job_id in created}
    assert [positions[job_id] for job_id in expected] == [0, 1, 2, 3, 4, 5]

    worker_process({Env.WORKER_CONCURRENCY: "1", Env.LOCAL_LATENCY: "0.2"})
    wait_for(lambda: all(client.get(f"/api/jobs/{job_id}", headers=admin).json["status"] == "completed"
                         for job_id in created), timeout=90, interval=0.2)
    started = {job_id: client.get(f"/api/jobs/{job_id}", headers=admin).json["processedAt"] for job_id in created}
    assert sorted(created, key=started.get) == expected
