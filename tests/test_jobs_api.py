"""Retry, cancel and Idempotency-Key through HTTP on a real Redis, with real workers."""

from __future__ import annotations

import sqlite3
import threading
import uuid

import pytest

from snapasset import keys
from snapasset.jobs import open_queue
from tests.conftest import job_history, InProcessWorker, wait_for
from tests.fake_providers import FailingFirstAttempt
from workers.bootstrap import bootstrap
from workers.terminal_events import build_worker

JOB = {"prompt": "A beautiful sunset over mountains", "platforms": ["facebook-cover"]}
EVERY_PLATFORM = ["instagram-post", "instagram-portrait", "instagram-story", "twitter-post", "twitter-header",
                  "facebook-post", "facebook-cover", "linkedin-post", "pinterest-pin", "youtube-thumbnail",
                  "og-image"]


def run_at_once(n, call):
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def event_types(redis_handle, job_id):
    return [event["type"] for _, event in job_history(redis_handle.client, job_id)]


# -- Idempotency-Key ------------------------------------------------------------------------------

def test_two_identical_requests_at_once_enqueue_exactly_one_job(app, auth, settings, redis_handle):
    headers = {**auth, "Idempotency-Key": f"order-{uuid.uuid4()}"}

    def post():
        r = app.test_client().post("/api/jobs", json=JOB, headers=headers)
        return r.status_code, r.json["jobId"]

    for _ in range(3):   # several rounds: the race must never let two through
        headers["Idempotency-Key"] = f"order-{uuid.uuid4()}"
        results = run_at_once(2, post)
        assert sorted(status for status, _ in results) == [200, 201], results
        assert results[0][1] == results[1][1]
    assert open_queue(redis_handle.client, settings).count == 3


def test_replay_returns_the_first_job_and_a_changed_body_conflicts(client, auth, make_token, settings,
                                                                     redis_handle):
    headers = {**auth, "Idempotency-Key": "abc-123"}
    first = client.post("/api/jobs", json=JOB, headers=headers)
    again = client.post("/api/jobs", json=JOB, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["jobId"] == first.json["jobId"] and again.json["streamUrl"]
    changed = client.post("/api/jobs", json={**JOB, "prompt": "A different prompt entirely"}, headers=headers)
    assert changed.status_code == 409 and changed.json["code"] == "IDEMPOTENCY_CONFLICT"
    # keys are per user
    other = client.post("/api/jobs", json=JOB, headers={"Authorization": f"Bearer {make_token()}",
                                                        "Idempotency-Key": "abc-123"})
    assert other.status_code == 201 and other.json["jobId"] != first.json["jobId"]
    assert open_queue(redis_handle.client, settings).count == 2


def test_a_refused_request_frees_its_idempotency_key(make_app, make_token):
    client = make_app(max_active_jobs=1).test_client()
    auth = {"Authorization": f"Bearer {make_token()}"}
    first = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    refused = client.post("/api/jobs", json=JOB, headers={**auth, "Idempotency-Key": "k"})
    assert refused.status_code == 429 and refused.json["code"] == "JOB_LIMIT_EXCEEDED"
    client.delete(f"/api/jobs/{first}/cancel", headers=auth)
    assert client.post("/api/jobs", json=JOB, headers={**auth, "Idempotency-Key": "k"}).status_code == 201


# -- cancel ----------------------------------------------------------------------------------------

def test_cancel_a_waiting_job(client, auth, run_jobs, redis_handle):
    job_id = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    r = client.delete(f"/api/jobs/{job_id}/cancel", headers=auth)
    assert r.status_code == 200
    assert r.json == {"jobId": job_id, "status": "cancelled", "message": "Job cancelled successfully"}
    cancelled = client.get(f"/api/jobs/{job_id}", headers=auth).json
    assert (cancelled["status"], cancelled["stage"]) == ("cancelled", "cancelled")
    assert event_types(redis_handle, job_id) == ["cancelled"]
    run_jobs()   # no worker picks it up
    assert client.get(f"/api/jobs/{job_id}", headers=auth).json["status"] == "cancelled"
    again = client.delete(f"/api/jobs/{job_id}/cancel", headers=auth)
    assert again.status_code == 409 and again.json["code"] == "JOB_NOT_CANCELLABLE"


def test_finished_jobs_cannot_be_cancelled_and_unfinished_ones_cannot_be_retried(client, auth, run_jobs):
    job_id = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    r = client.post(f"/api/jobs/{job_id}/retry", headers=auth)
    assert r.status_code == 409 and r.json["code"] == "JOB_NOT_RETRYABLE"
    run_jobs()
    assert client.get(f"/api/jobs/{job_id}", headers=auth).json["status"] == "completed"
    r = client.delete(f"/api/jobs/{job_id}/cancel", headers=auth)
    assert r.status_code == 409 and r.json["code"] == "JOB_NOT_CANCELLABLE"
    r = client.post(f"/api/jobs/{job_id}/retry", headers=auth)
    assert r.status_code == 409 and r.json["code"] == "JOB_NOT_RETRYABLE"


def test_cancel_an_active_job_mid_render_on_a_real_worker(client, auth, settings, redis_handle, worker_process):
    worker_process()
    # 4 variants × every platform: enough renders that the cancel lands while they are under way
    body = {"prompt": "A lighthouse on a cliff at dusk", "platforms": EVERY_PLATFORM,
            "options": {"format": "png", "n": 4}}
    job_id = client.post("/api/jobs", json=body, headers=auth).json["jobId"]
    # wait until the worker has uploaded and recorded at least one image
    wait_for(lambda: "image" in event_types(redis_handle, job_id), timeout=60, interval=0.01)
    r = client.delete(f"/api/jobs/{job_id}/cancel", headers=auth)
    assert r.status_code == 200 and r.json["status"] == "cancelled"

    wait_for(lambda: client.get(f"/api/jobs/{job_id}", headers=auth).json["status"] == "cancelled", timeout=30)
    # stopped while processing its platforms: its stage ends with it
    assert client.get(f"/api/jobs/{job_id}", headers=auth).json["stage"] == "cancelled"
    wait_for(lambda: "cancelled" in event_types(redis_handle, job_id), timeout=30)
    types = event_types(redis_handle, job_id)
    assert "done" not in types and types[-1] == "cancelled"
    media = settings.media_dir
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()], list(media.rglob("*"))
    with sqlite3.connect(settings.database) as db:
        assert db.execute("select count(*) from generations").fetchone()[0] == 0
        assert db.execute("select count(*) from generated_images").fetchone()[0] == 0
    assert client.delete(f"/api/jobs/{job_id}/cancel", headers=auth).status_code == 409


# -- retry -------------------------------------------------------------------------------------------

@pytest.fixture
def flaky(settings, redis_handle, tmp_path):
    """An app and an in-process worker without automatic retries, whose model fails once per prompt."""
    one_attempt = settings.replace(job_attempts=1)
    from snapasset import create_app
    app = create_app(one_attempt, redis=redis_handle)
    ctx = bootstrap(one_attempt, redis=redis_handle, provider=FailingFirstAttempt(tmp_path / "markers"))

    def run():
        build_worker(ctx, InProcessWorker).work(burst=True, with_scheduler=True)
    return app.test_client(), run


def test_retry_a_failed_job(flaky, auth, redis_handle):
    client, run = flaky
    job_id = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    run()
    failed = client.get(f"/api/jobs/{job_id}", headers=auth).json
    assert failed["status"] == "failed" and failed["error"]["code"] == "PROVIDER_ERROR"
    assert failed["stage"] == "failed"
    assert event_types(redis_handle, job_id)[-1] == "failed"

    r = client.post(f"/api/jobs/{job_id}/retry", headers=auth)
    assert r.status_code == 200
    assert r.json == {"jobId": job_id, "status": "retrying", "message": "Job has been queued for retry"}
    waiting = client.get(f"/api/jobs/{job_id}", headers=auth).json
    assert waiting["status"] == "waiting" and waiting["progress"] == 0 and waiting["stage"] is None
    assert "error" not in waiting and waiting["attemptsMade"] == 0
    assert event_types(redis_handle, job_id) == []        # nothing stale for a stream opened now
    assert client.post(f"/api/jobs/{job_id}/retry", headers=auth).status_code == 409

    run()
    done = client.get(f"/api/jobs/{job_id}", headers=auth).json
    assert done["status"] == "completed", done
    assert done["stage"] == "done"    # not the "processing" of its last step
    assert done["result"]["images"][0]["platformId"] == "facebook-cover"
    types = event_types(redis_handle, job_id)
    assert types[-1] == "done" and "failed" not in types


def test_retry_a_cancelled_job(client, auth, run_jobs, redis_handle):
    job_id = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    client.delete(f"/api/jobs/{job_id}/cancel", headers=auth)
    assert client.post(f"/api/jobs/{job_id}/retry", headers=auth).status_code == 200
    assert not redis_handle.client.exists(keys.job_cancel(job_id))
    run_jobs()
    assert client.get(f"/api/jobs/{job_id}", headers=auth).json["status"] == "completed"
    assert event_types(redis_handle, job_id)[-1] == "done"


def test_two_retries_at_once_requeue_once(client, app, auth, settings, redis_handle):
    job_id = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    client.delete(f"/api/jobs/{job_id}/cancel", headers=auth)
    statuses = run_at_once(4, lambda: app.test_client().post(f"/api/jobs/{job_id}/retry", headers=auth).status_code)
    assert sorted(statuses) == [200, 409, 409, 409]
    assert open_queue(redis_handle.client, settings).get_job_ids() == [job_id]


def test_retry_respects_the_unfinished_jobs_limit(make_app, make_token):
    client = make_app(max_active_jobs=1).test_client()
    auth = {"Authorization": f"Bearer {make_token()}"}
    first = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
    client.delete(f"/api/jobs/{first}/cancel", headers=auth)
    client.post("/api/jobs", json=JOB, headers=auth)
    r = client.post(f"/api/jobs/{first}/retry", headers=auth)
    assert r.status_code == 429 and r.json["code"] == "JOB_LIMIT_EXCEEDED"
