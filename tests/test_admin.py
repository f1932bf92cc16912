"""Queue administration through HTTP and the CLI: who may, stats, clean, pause and resume."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from click.testing import CliRunner

from snapasset import keys
from snapasset.cli import cli, parse_duration_ms
from tests.conftest import job_history, InProcessWorker, settings_env, wait_for
from tests.fake_providers import Refusing
from workers.bootstrap import bootstrap
from workers.terminal_events import build_worker

JOB = {"prompt": "A beautiful sunset over mountains", "platforms": ["facebook-cover"]}
ADMIN_ROUTES = [("get", "/api/queue/stats"), ("post", "/api/queue/clean"), ("post", "/api/queue/pause"),
                ("post", "/api/queue/resume")]


@pytest.fixture
def admin(make_token):
    return {"Authorization": f"Bearer {make_token(admin=True)}"}


@pytest.fixture
def resumed(redis_handle):
    """Pausing is global to the Redis server: always resume after the test."""
    yield
    from rq.suspension import resume
    resume(redis_handle.client)


@pytest.fixture
def mixed_jobs(client, auth, run_jobs, settings, redis_handle):
    """Two completed, one failed, one cancelled and one waiting job of one user."""
    completed = [client.post("/api/jobs", json=JOB, headers=auth).json["jobId"] for _ in range(2)]
    run_jobs()
    ctx = bootstrap(settings, redis=redis_handle, provider=Refusing())
    failed = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    build_worker(ctx, InProcessWorker).work(burst=True)
    cancelled = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    client.delete(f"/api/jobs/{cancelled}/cancel", headers=auth)
    waiting = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    states = {job_id: client.get(f"/api/jobs/{job_id}", headers=auth).json["status"]
              for job_id in [*completed, failed, cancelled, waiting]}
    assert list(states.values()) == ["completed", "completed", "failed", "cancelled", "waiting"]
    return {"completed": completed, "failed": [failed], "cancelled": [cancelled], "waiting": [waiting]}


def test_admin_routes_need_credentials_and_an_admin(client, auth):
    for method, path in ADMIN_ROUTES:
        anonymous = getattr(client, method)(path)
        assert anonymous.status_code == 401 and anonymous.json["code"] == "UNAUTHORIZED"
        user = getattr(client, method)(path, headers=auth)
        assert user.status_code == 403 and user.json["code"] == "FORBIDDEN"


def test_stats_counts_each_state(client, admin, mixed_jobs):
    r = client.get("/api/queue/stats", headers=admin)
    assert r.status_code == 200
    body = r.json
    assert {k: body[k] for k in ("waiting", "active", "completed", "failed", "delayed", "cancelled")} == \
        {"waiting": 1, "active": 0, "completed": 2, "failed": 1, "delayed": 0, "cancelled": 1}
    assert body["total"] == 5 and body["paused"] is False and body["timestamp"].endswith("Z")


def test_clean_removes_exactly_the_old_jobs_of_that_state(client, auth, admin, mixed_jobs, settings, redis_handle):
    r = client.post("/api/queue/clean", json={"grace": 3_600_000, "status": "completed", "limit": 100},
                    headers=admin)
    assert r.status_code == 200 and r.json["removed"] == 0          # none finished an hour ago
    images = sorted(p for p in settings.media_dir.rglob("*") if p.is_file())
    assert len(images) == 2

    time.sleep(1.1)
    r = client.post("/api/queue/clean", json={"grace": 1000, "status": "completed", "limit": 1}, headers=admin)
    assert r.json["removed"] == 1 and r.json["status"] == "completed" and r.json["grace"] == 1000
    r = client.post("/api/queue/clean", json={"grace": 1000, "status": "completed", "limit": 100}, headers=admin)
    assert r.json["removed"] == 1

    for job_id in mixed_jobs["completed"]:
        assert client.get(f"/api/jobs/{job_id}", headers=auth).status_code == 404
        assert not redis_handle.client.exists(keys.job_events(job_id))
        assert redis_handle.client.zscore(keys.user_jobs(mixed_jobs_user(client, auth)), job_id) is None
    listed = {job["jobId"] for job in client.get("/api/jobs", headers=auth).json["jobs"]}
    assert listed == {*mixed_jobs["failed"], *mixed_jobs["cancelled"], *mixed_jobs["waiting"]}
    # images and generation records stay
    assert sorted(p for p in settings.media_dir.rglob("*") if p.is_file()) == images
    with sqlite3.connect(settings.database) as db:
        assert db.execute("select count(*) from generations").fetchone()[0] == 2
        assert db.execute("select count(*) from generated_images").fetchone()[0] == 2

    for status in ("failed", "cancelled"):
        r = client.post("/api/queue/clean", json={"grace": 0, "status": status}, headers=admin)
        assert r.json["removed"] == 1, status
        (job_id,) = mixed_jobs[status]
        assert client.get(f"/api/jobs/{job_id}", headers=auth).status_code == 404
        assert not job_history(redis_handle.client, job_id)
    stats = client.get("/api/queue/stats", headers=admin).json
    assert stats["total"] == stats["waiting"] == 1
    assert client.get(f"/api/jobs/{mixed_jobs['waiting'][0]}", headers=auth).status_code == 200


def mixed_jobs_user(client, auth):
    job = client.get("/api/jobs", headers=auth).json["jobs"][0]
    return client.get(f"/api/jobs/{job['jobId']}", headers=auth).json["data"]["userId"]


@pytest.mark.parametrize("body, field", [
    ({"status": "waiting"}, "status"),
    ({"status": "active"}, "status"),
    ({"grace": -1}, "grace"),
    ({"grace": "24h"}, "grace"),
    ({"grace": 1.5}, "grace"),
    ({"limit": 0}, "limit"),
    ({"limit": 10001}, "limit"),
    ({"limit": True}, "limit"),
    ({"older": 1}, "older"),
])
def test_clean_validates_its_input(client, admin, body, field):
    r = client.post("/api/queue/clean", json=body, headers=admin)
    assert r.status_code == 400 and r.json["code"] == "INVALID_REQUEST"
    assert field in r.json["details"], r.json


def test_clean_rejects_malformed_json(client, admin):
    r = client.post("/api/queue/clean", data="{", headers={**admin, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["code"] == "INVALID_REQUEST"
    r = client.post("/api/queue/clean", json=[1], headers=admin)
    assert r.status_code == 400


def test_pause_stops_a_worker_taking_jobs_and_resume_lets_it(client, auth, admin, worker_process, resumed):
    r = client.post("/api/queue/pause", headers=admin)
    assert r.status_code == 200 and r.json["paused"] is True
    assert client.get("/api/queue/stats", headers=admin).json["paused"] is True
    worker_process()
    job_id = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    time.sleep(4)
    assert client.get(f"/api/jobs/{job_id}", headers=auth).json["status"] == "waiting"

    r = client.post("/api/queue/resume", headers=admin)
    assert r.status_code == 200 and r.json["paused"] is False
    wait_for(lambda: client.get(f"/api/jobs/{job_id}", headers=auth).json["status"] == "completed", timeout=60)


def test_pause_lets_the_running_job_finish(make_app, make_token, admin, settings, redis_handle, worker_process,
                                           resumed):
    worker_process({"SNAPASSET_LOCAL_LATENCY": "2"})
    client = make_app().test_client()
    auth = {"Authorization": f"Bearer {make_token()}"}
    running = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    wait_for(lambda: client.get(f"/api/jobs/{running}", headers=auth).json["status"] == "active", timeout=30)
    client.post("/api/queue/pause", headers=admin)
    queued = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    wait_for(lambda: client.get(f"/api/jobs/{running}", headers=auth).json["status"] == "completed", timeout=30)
    time.sleep(1.5)
    assert client.get(f"/api/jobs/{queued}", headers=auth).json["status"] == "waiting"


# -- CLI -----------------------------------------------------------------------------------------

def test_cli_stats_and_clean_work_on_the_configured_redis(mixed_jobs, settings, client, auth):
    runner = CliRunner()
    env = settings_env(settings)
    result = runner.invoke(cli, ["stats", "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert (counts["completed"], counts["failed"], counts["cancelled"], counts["waiting"]) == (2, 1, 1, 1)
    result = runner.invoke(cli, ["stats"], env=env, catch_exceptions=False)
    assert "completed  2" in result.output

    result = runner.invoke(cli, ["clean", "--status", "completed", "--grace", "24h"], env=env)
    assert result.exit_code == 0 and "removed 0 completed jobs" in result.output
    result = runner.invoke(cli, ["clean", "--status", "completed", "--grace", "0s", "--limit", "1"], env=env)
    assert "removed 1 completed job " in result.output
    result = runner.invoke(cli, ["clean", "--status", "failed", "--grace", "0ms"], env=env)
    assert "removed 1 failed job" in result.output
    assert runner.invoke(cli, ["clean", "--grace", "soon"], env=env).exit_code != 0
    assert runner.invoke(cli, ["clean", "--status", "waiting"], env=env).exit_code != 0
    remaining = {j["jobId"] for j in client.get("/api/jobs", headers=auth).json["jobs"]}
    assert len(remaining) == 3


@pytest.mark.parametrize("text, ms", [("24h", 86_400_000), ("30m", 1_800_000), ("90s", 90_000),
                                      ("250ms", 250), ("2d", 172_800_000), ("1000", 1000)])
def test_durations(text, ms):
    assert parse_duration_ms(text) == ms


def test_cli_jobs_and_retry_for_operators(mixed_jobs, settings, client, auth, user):
    runner = CliRunner()
    env = settings_env(settings)
    result = runner.invoke(cli, ["jobs", "--json", "--user", user], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = json.loads(result.output)
    assert [j["jobId"] for j in page["jobs"]] == [*mixed_jobs["waiting"], *mixed_jobs["cancelled"],
                                                  *mixed_jobs["failed"], *reversed(mixed_jobs["completed"])]
    assert {j["userId"] for j in page["jobs"]} == {user}
    table = runner.invoke(cli, ["jobs", "--code", "CONTENT_POLICY_VIOLATION"], env=env).output
    assert mixed_jobs["failed"][0] in table and "CONTENT_POLICY_VIOLATION: " in table
    assert mixed_jobs["waiting"][0] not in table
    paged = runner.invoke(cli, ["jobs", "--limit", "2"], env=env).output
    assert "next: --cursor " in paged
    assert runner.invoke(cli, ["jobs", "--code", "NOPE"], env=env).exit_code != 0

    assert runner.invoke(cli, ["retry"], env=env).exit_code != 0      # --failed is required
    none = runner.invoke(cli, ["retry", "--failed", "--code", "TIMEOUT"], env=env, catch_exceptions=False)
    assert none.exit_code == 0 and "retried 0 failed jobs with TIMEOUT" in none.output
    result = runner.invoke(cli, ["retry", "--failed", "--code", "CONTENT_POLICY_VIOLATION"], env=env)
    assert result.exit_code == 0 and f"queued {mixed_jobs['failed'][0]}" in result.output
    assert "retried 1 failed job with CONTENT_POLICY_VIOLATION" in result.output
    assert client.get(f"/api/jobs/{mixed_jobs['failed'][0]}", headers=auth).json["status"] == "waiting"


def test_cli_reindex_files_jobs_that_predate_the_status_indexes(mixed_jobs, settings, client, auth, admin, user,
                                                                 redis_handle):
    """A Redis upgraded from before the per-status indexes holds jobs that are in their user's
    list only: `?status=` lists and the admin list miss them until `snapasset reindex` has run."""
    from snapasset.errors import ErrorCode
    from snapasset.jobrecord import Status
    conn, queue = redis_handle.client, settings.queue_name
    conn.delete(keys.queue_jobs(queue), *(keys.queue_status_jobs(queue, s) for s in Status.ALL),
                *(keys.user_status_jobs(user, s) for s in Status.ALL),
                *(keys.queue_error_jobs(queue, c) for c in ErrorCode.JOB_FAILURES))   # as before the indexes
    everyone = {"/api/jobs": auth, "/api/admin/jobs": admin}

    def listed(path: str, **query) -> list[str]:
        answer = client.get(path, query_string=query, headers=everyone[path])
        assert answer.status_code == 200, answer.json
        return [job["jobId"] for job in answer.json["jobs"]]

    assert listed("/api/jobs", status="failed") == [] and listed("/api/admin/jobs") == []
    result = CliRunner().invoke(cli, ["reindex"], env=settings_env(settings), catch_exceptions=False)
    assert result.exit_code == 0 and f"filed 5 jobs of queue {queue}" in result.output, result.output
    for status, ids in mixed_jobs.items():
        assert listed("/api/jobs", status=status) == list(reversed(ids))
    assert listed("/api/admin/jobs", errorCode="CONTENT_POLICY_VIOLATION") == mixed_jobs["failed"]
    assert len(listed("/api/admin/jobs")) == 5
    again = CliRunner().invoke(cli, ["reindex"], env=settings_env(settings), catch_exceptions=False)
    assert "filed 5 jobs" in again.output and len(listed("/api/admin/jobs")) == 5   # running it again changes nothing
