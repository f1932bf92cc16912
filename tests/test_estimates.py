"""`estimatedTime` / `estimatedSeconds` come from how long this queue's jobs actually ran, not a
fixed guess: nothing to go by → no estimate; a sub-second provider → "under a second"; jobs
waiting ahead add rounds."""

from __future__ import annotations

from datetime import datetime

PROMPT = "A beautiful sunset over mountains"


def create(client, auth) -> dict:
    response = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"]}, headers=auth)
    assert response.status_code == 201, response.json
    return response.json


def seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_no_estimate_before_any_job_finished(client, auth):
    first = create(client, auth)
    assert first["estimatedSeconds"] is None
    assert first["estimatedTime"] == "unknown (no job has finished yet)"


def test_the_estimate_is_the_median_run_time_of_recent_jobs(client, auth, run_jobs):
    ids = [create(client, auth)["jobId"] for _ in range(3)]
    run_jobs()
    runs = sorted(seconds(job["finishedAt"]) - seconds(job["processedAt"])
                  for job in (client.get(f"/api/jobs/{job_id}", headers=auth).json for job_id in ids))
    created = create(client, auth)
    # the local provider runs a job in well under a second: no "30 seconds" here
    assert created["estimatedTime"] == "under a second"
    assert abs(created["estimatedSeconds"] - runs[1]) < 0.05, (created["estimatedSeconds"], runs)


def test_jobs_waiting_ahead_add_a_round_each_per_concurrency(make_app, make_token, run_jobs, settings):
    app = make_app(worker_concurrency=2)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_token()}"}
    create(client, auth)
    run_jobs()
    one_round = create(client, auth)["estimatedSeconds"]    # nothing was waiting ahead of it
    create(client, auth)                                     # two waiting now, a third asks
    assert abs(create(client, auth)["estimatedSeconds"] - 2 * one_round) < 0.015   # each rounded to 0.01 s
