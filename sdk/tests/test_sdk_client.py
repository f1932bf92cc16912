"""Each client method: the request it sends and how the answer is read."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import responses
from responses import matchers

from sdk_fakes import BASE
from snapasset_sdk import (
    CleanResult, Image, Job, JobResult, Platform, QueueState, QueueStats, SnapAssetClient,
)

JOB_ID = "gen-1700000000-abc123def0"

COMPLETED = {
    "jobId": JOB_ID, "status": "completed", "progress": 100,
    "data": {"userId": "u-1", "prompt": "A beautiful sunset over mountains",
             "platforms": ["instagram-post"], "options": {}},
    "logs": ["Starting image generation...", "Processing Instagram Post..."],
    "attemptsMade": 1, "createdAt": "2024-01-24T10:00:00Z",
    "processedAt": "2024-01-24T10:00:05Z", "finishedAt": "2024-01-24T10:00:30.250+00:00",
    "result": {"success": True, "generationId": "g-1",
               "images": [{"platform": "Instagram Post", "platformId": "instagram-post",
                           "url": "https://cdn.test/1.jpg", "width": 1080, "height": 1080,
                           "size": 245000, "format": "jpeg", "blurhash": "LKO2?U%2Tw=w",
                           "sourceIndex": 0, "futureField": 1}],
               "revisedPrompt": "A sunset", "provider": "local", "model": "local-v1"},
    "someNewField": {"ignored": True},
}


def sent_json(call) -> dict:
    return json.loads(call.request.body)


# -- configuration --------------------------------------------------------


def test_defaults_to_localhost_3001():
    assert SnapAssetClient().base_url == "http://localhost:3001"


def test_base_url_and_token_from_the_environment(monkeypatch, mocked):
    monkeypatch.setenv("SNAPASSET_URL", "http://env.test:9000/")
    monkeypatch.setenv("SNAPASSET_TOKEN", "env-token")
    mocked.get("http://env.test:9000/api/platforms", json=[],
               match=[matchers.header_matcher({"Authorization": "Bearer env-token"})])
    assert SnapAssetClient().platforms() == []


def test_api_key_from_the_environment_is_sent_as_x_api_key(monkeypatch, mocked):
    monkeypatch.setenv("SNAPASSET_API_KEY", "svc-key")
    mocked.get(f"{BASE}/api/platforms", json=[])
    SnapAssetClient(BASE).platforms()
    headers = mocked.calls[0].request.headers
    assert headers["X-API-Key"] == "svc-key" and "Authorization" not in headers


def test_explicit_credentials_win_over_the_environment(monkeypatch, mocked):
    monkeypatch.setenv("SNAPASSET_TOKEN", "env-token")
    mocked.get(f"{BASE}/api/platforms", json=[])
    SnapAssetClient(BASE, api_key="explicit").platforms()
    headers = mocked.calls[0].request.headers
    assert headers["X-API-Key"] == "explicit" and "Authorization" not in headers


def test_token_and_api_key_together_are_refused():
    with pytest.raises(ValueError):
        SnapAssetClient(BASE, token="t", api_key="k")


def test_session_is_built_on_first_use_and_closed_with_the_client(mocked):
    mocked.get(f"{BASE}/api/platforms", json=[])
    client = SnapAssetClient(BASE, token="t")
    assert client._session is None
    with client:
        client.platforms()
        assert client._session is not None
        assert client.session.headers["User-Agent"].startswith("snapasset-sdk/")
    assert client._session is None


# -- jobs -----------------------------------------------------------------


def test_create_job_sends_the_documented_body_and_headers(client, mocked):
    mocked.post(f"{BASE}/api/jobs", status=201, json={
        "jobId": JOB_ID, "status": "queued", "message": "Job created successfully",
        "estimatedTime": "30 seconds", "estimatedSeconds": 29.5, "statusUrl": f"/api/jobs/{JOB_ID}",
        "streamUrl": f"/api/sse/jobs/{JOB_ID}?token=abc"})
    job = client.create_job("A beautiful sunset over mountains",
                            ["instagram-post", "twitter-post"],
                            options={"quality": "high", "format": "png"}, user_id="u-1",
                            webhook_url="https://example.com/hook", idempotency_key="key-1")
    request = mocked.calls[0].request
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert request.headers["Idempotency-Key"] == "key-1"
    assert sent_json(mocked.calls[0]) == {
        "prompt": "A beautiful sunset over mountains",
        "platforms": ["instagram-post", "twitter-post"],
        "options": {"quality": "high", "format": "png"}, "userId": "u-1",
        "webhookUrl": "https://example.com/hook"}
    assert isinstance(job, Job)
    assert (job.job_id, job.status, job.estimated_time, job.estimated_seconds) == (JOB_ID, "queued", "30 seconds", 29.5)
    assert job.stream_url == f"/api/sse/jobs/{JOB_ID}?token=abc"
    assert job.status_url == f"/api/jobs/{JOB_ID}"


def test_create_job_fit_is_sent_as_an_option(client, mocked):
    mocked.post(f"{BASE}/api/jobs", status=201, json={"jobId": JOB_ID, "status": "queued"})
    client.create_job("A beautiful sunset over mountains", "instagram-story", fit="contain")
    client.create_job("A beautiful sunset over mountains", "instagram-story", fit="extend",
                      options={"format": "avif"})
    assert sent_json(mocked.calls[0])["options"] == {"fit": "contain"}
    assert sent_json(mocked.calls[1])["options"] == {"format": "avif", "fit": "extend"}


def test_create_job_sends_only_what_was_given(client, mocked):
    mocked.post(f"{BASE}/api/jobs", status=201, json={"jobId": JOB_ID, "status": "queued"})
    client.create_job("A beautiful sunset over mountains", "instagram-post")
    # A single platform given as a string is not split into letters.
    assert sent_json(mocked.calls[0]) == {"prompt": "A beautiful sunset over mountains",
                                          "platforms": ["instagram-post"]}


def test_create_job_generates_an_idempotency_key_when_retries_are_on(client, mocked):
    mocked.post(f"{BASE}/api/jobs", status=201, json={"jobId": JOB_ID, "status": "queued"})
    mocked.post(f"{BASE}/api/jobs", status=201, json={"jobId": "gen-2", "status": "queued"})
    client.create_job("A beautiful sunset over mountains", ["og-image"])
    client.create_job("A beautiful sunset over mountains", ["og-image"])
    keys = [call.request.headers["Idempotency-Key"] for call in mocked.calls]
    assert all(keys) and keys[0] != keys[1]


def test_create_job_without_retries_sends_no_idempotency_key(mocked):
    mocked.post(f"{BASE}/api/jobs", status=201, json={"jobId": JOB_ID, "status": "queued"})
    SnapAssetClient(BASE, token="t", max_retries=0).create_job("A sunset over hills", ["og-image"])
    assert "Idempotency-Key" not in mocked.calls[0].request.headers


def test_get_job_reads_every_field(client, mocked):
    mocked.get(f"{BASE}/api/jobs/{JOB_ID}", json=COMPLETED)
    job = client.get_job(JOB_ID)
    assert job.status == "completed" and job.progress == 100 and job.attempts_made == 1
    assert job.data["platforms"] == ["instagram-post"]
    assert job.logs[-1] == "Processing Instagram Post..."
    assert job.created_at == datetime(2024, 1, 24, 10, 0, tzinfo=timezone.utc)
    assert job.processed_at == datetime(2024, 1, 24, 10, 0, 5, tzinfo=timezone.utc)
    assert job.finished_at == datetime(2024, 1, 24, 10, 0, 30, 250000, tzinfo=timezone.utc)
    assert job.is_finished and job.error is None
    assert job.result == JobResult(
        success=True, generation_id="g-1", revised_prompt="A sunset", provider="local",
        model="local-v1", images=[Image(platform="Instagram Post", platform_id="instagram-post",
                                        url="https://cdn.test/1.jpg", width=1080, height=1080,
                                        size=245000, format="jpeg", blurhash="LKO2?U%2Tw=w",
                                        source_index=0)])
    assert job.raw["someNewField"] == {"ignored": True}


def test_get_job_of_a_failed_job(client, mocked):
    mocked.get(f"{BASE}/api/jobs/{JOB_ID}", json={
        "jobId": JOB_ID, "status": "failed", "failedReason": "Refused by the model",
        "error": {"code": "CONTENT_POLICY_VIOLATION", "message": "Refused by the model"}})
    job = client.get_job(JOB_ID)
    assert job.error.code == "CONTENT_POLICY_VIOLATION"
    assert job.failed_reason == "Refused by the model" and job.result is None


def test_job_ids_are_escaped_into_the_path(client, mocked):
    mocked.get(f"{BASE}/api/jobs/..%2Fqueue%2Fstats", json={"jobId": "x", "status": "waiting"})
    client.get_job("../queue/stats")


def test_list_jobs_follows_cursors_across_pages(client, mocked):
    mocked.get(f"{BASE}/api/jobs", match=[matchers.query_param_matcher(
        {"status": "completed", "limit": "100"})], json={
        "jobs": [{"jobId": "gen-3", "status": "completed", "progress": 100,
                  "createdAt": "2024-01-24T10:00:03Z"},
                 {"jobId": "gen-2", "status": "completed", "progress": 100,
                  "createdAt": "2024-01-24T10:00:02Z"}],
        "count": 2, "status": "completed", "nextCursor": "c-2"})
    mocked.get(f"{BASE}/api/jobs", match=[matchers.query_param_matcher(
        {"status": "completed", "limit": "100", "cursor": "c-2"})], json={
        "jobs": [{"jobId": "gen-1", "status": "completed", "progress": 100,
                  "createdAt": "2024-01-24T10:00:01Z"}],
        "count": 1, "status": "completed", "nextCursor": None})
    jobs = list(client.list_jobs(status="completed"))
    assert [j.job_id for j in jobs] == ["gen-3", "gen-2", "gen-1"]
    assert jobs[0].created_at == datetime(2024, 1, 24, 10, 0, 3, tzinfo=timezone.utc)


def test_list_jobs_limit_caps_the_total(client, mocked):
    page = {"jobs": [{"jobId": f"gen-{n}", "status": "waiting"} for n in range(3)],
            "nextCursor": "more"}
    mocked.get(f"{BASE}/api/jobs", match=[matchers.query_param_matcher({"limit": "3"})],
               json=page)
    assert [j.job_id for j in client.list_jobs(limit=3)] == ["gen-0", "gen-1", "gen-2"]


def test_list_jobs_is_lazy(client, mocked):
    jobs = client.list_jobs()
    assert len(mocked.calls) == 0
    mocked.get(f"{BASE}/api/jobs", json={"jobs": [], "nextCursor": None})
    assert list(jobs) == []


def test_retry_job(client, mocked):
    mocked.post(f"{BASE}/api/jobs/{JOB_ID}/retry", json={
        "jobId": JOB_ID, "status": "retrying", "message": "Job has been queued for retry"})
    job = client.retry_job(JOB_ID)
    assert (job.job_id, job.status, job.message) == (JOB_ID, "retrying",
                                                     "Job has been queued for retry")


def test_cancel_job(client, mocked):
    mocked.delete(f"{BASE}/api/jobs/{JOB_ID}/cancel", json={
        "jobId": JOB_ID, "status": "cancelled", "message": "Job cancelled successfully"})
    assert client.cancel_job(JOB_ID).status == "cancelled"


# -- queue administration -------------------------------------------------


def test_queue_stats(client, mocked):
    mocked.get(f"{BASE}/api/queue/stats", json={
        "waiting": 5, "active": 2, "completed": 150, "failed": 3, "delayed": 0, "total": 160,
        "timestamp": "2024-01-24T10:00:00Z"})
    stats = client.queue_stats()
    assert isinstance(stats, QueueStats)
    assert (stats.waiting, stats.active, stats.completed, stats.failed, stats.total) == (
        5, 2, 150, 3, 160)


def test_clean_queue_defaults(client, mocked):
    mocked.post(f"{BASE}/api/queue/clean", json={
        "removed": 42, "status": "completed", "grace": 86400000,
        "timestamp": "2024-01-24T10:00:00Z"})
    result = client.clean_queue()
    assert sent_json(mocked.calls[0]) == {"status": "completed", "grace": 86400000,
                                          "limit": 1000}
    assert result == CleanResult(removed=42, status="completed", grace_ms=86400000,
                                 timestamp=datetime(2024, 1, 24, 10, tzinfo=timezone.utc))


def test_clean_queue_arguments(client, mocked):
    mocked.post(f"{BASE}/api/queue/clean", json={"removed": 0, "status": "failed",
                                                  "grace": 3600000})
    client.clean_queue(status="failed", grace_ms=3_600_000, limit=10)
    assert sent_json(mocked.calls[0]) == {"status": "failed", "grace": 3600000, "limit": 10}


def test_pause_and_resume(client, mocked):
    mocked.post(f"{BASE}/api/queue/pause", json={"paused": True, "timestamp": None})
    mocked.post(f"{BASE}/api/queue/resume", json={"paused": False})
    assert client.pause_queue() == QueueState(paused=True, timestamp=None)
    assert client.resume_queue().paused is False


@pytest.mark.parametrize("body", [
    [{"id": "og-image", "name": "Open Graph Image", "width": 1200, "height": 630,
      "maxBytes": 8388608}],
    {"platforms": [{"id": "og-image", "name": "Open Graph Image", "width": 1200,
                    "height": 630, "maxBytes": 8388608}]},
    {"platforms": {"og-image": {"name": "Open Graph Image", "width": 1200, "height": 630,
                                "maxBytes": 8388608}}},
])
def test_platforms_in_any_of_the_plausible_shapes(client, mocked, body):
    mocked.get(f"{BASE}/api/platforms", json=body)
    assert client.platforms() == [Platform(id="og-image", name="Open Graph Image", width=1200,
                                           height=630, max_bytes=8388608)]


def test_a_success_answer_that_is_not_json_is_an_error(client, mocked):
    from snapasset_sdk import SnapAssetError
    mocked.get(f"{BASE}/api/queue/stats", body="<html>proxy page</html>",
               content_type="text/html")
    with pytest.raises(SnapAssetError, match="expected JSON"):
        client.queue_stats()


@responses.activate
def test_a_client_pointed_elsewhere_talks_only_to_that_base_url():
    responses.get("http://other.test/prefix/api/platforms", json=[])
    SnapAssetClient("http://other.test/prefix/", token="t").platforms()


def test_create_job_takes_every_option_as_a_keyword(client, mocked, tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    path = tmp_path / "reference.png"
    path.write_bytes(png)
    mocked.post(f"{BASE}/api/jobs", status=201, json={"jobId": JOB_ID, "status": "completed", "queuePosition": None})
    client.create_job("A beautiful sunset over mountains", [], model="gpt-image-2", n=3, seed=42,
                      background="transparent", format="webp", quality="high",
                      input_images=["https://example.com/a.jpg", path, png],
                      custom_platforms=[{"id": "shop-banner", "width": 1600, "height": 400}],
                      options={"n": 1, "future": "kept"}, wait=20)
    call = mocked.calls[0]
    data_url = "data:image/png;base64," + __import__("base64").b64encode(png).decode()
    assert sent_json(call)["options"] == {
        "n": 3, "future": "kept", "model": "gpt-image-2", "seed": 42, "background": "transparent",
        "format": "webp", "quality": "high", "inputImages": ["https://example.com/a.jpg", data_url, data_url],
        "customPlatforms": [{"id": "shop-banner", "width": 1600, "height": 400}]}
    assert sent_json(call)["platforms"] == []
    assert call.request.headers["Prefer"] == "wait=20"


def test_an_input_image_that_is_no_picture_is_refused_before_sending(client, mocked):
    with pytest.raises(ValueError, match="not a PNG"):
        client.create_job("A beautiful sunset over mountains", ["og-image"], input_images=[b"hello"])
    assert not mocked.calls


def test_delete_job_and_the_new_job_fields(client, mocked):
    mocked.delete(f"{BASE}/api/jobs/{JOB_ID}", status=204)
    assert client.delete_job(JOB_ID) is None
    mocked.get(f"{BASE}/api/jobs/{JOB_ID}", json={
        **COMPLETED, "status": "waiting", "queuePosition": 2,
        "webhook": {"status": "delivered", "attempts": 1, "lastError": None, "deliveredAt": "2024-01-24T10:00:31Z"},
        "result": {**COMPLETED["result"], "seed": 9,
                   "images": [{**COMPLETED["result"]["images"][0], "variant": 1}]}})
    job = client.get_job(JOB_ID)
    assert job.queue_position == 2 and job.webhook.status == "delivered" and job.webhook.attempts == 1
    assert job.webhook.delivered_at == datetime(2024, 1, 24, 10, 0, 31, tzinfo=timezone.utc)
    assert job.result.seed == 9 and job.result.images[0].variant == 1
