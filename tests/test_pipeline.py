"""A prompt becomes platform images: through the HTTP API, a real Redis and a real worker process."""

import io
import sqlite3
import time

import pytest
from PIL import Image

from snapasset.platforms import PLATFORMS
from tests.conftest import job_history, wait_for

PROMPT = "A lighthouse on a rocky coast at sunset"
STAGE_ORDER = ["starting", "generating", "downloading", "saving", "processing"]
PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}


def create(client, auth, platforms, **options):
    body = {"prompt": PROMPT, "platforms": platforms}
    if options:
        body["options"] = options
    r = client.post("/api/jobs", json=body, headers=auth)
    assert r.status_code == 201, r.json
    return r.json


def watch(client, auth, job_id, until=("completed", "failed", "cancelled"), timeout=60):
    """Poll the job like a client would, recording every distinct (status, progress) seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=auth).json
        if not seen or seen[-1] != (job["status"], job["progress"]):
            seen.append((job["status"], job["progress"]))
        if job["status"] in until:
            return job, seen
        time.sleep(0.02)
    raise AssertionError(f"job still {seen[-1]} after {timeout}s")


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_job_runs_end_to_end(client, auth, settings, worker_process, fmt):
    platforms = ["instagram-post", "instagram-story", "twitter-post", "youtube-thumbnail"]
    created = create(client, auth, platforms, format=fmt, quality="hd")
    assert created["status"] == "queued"
    assert created["jobId"].startswith("gen-")
    assert created["statusUrl"].endswith(f"/api/jobs/{created['jobId']}")
    worker_process()
    job, seen = watch(client, auth, created["jobId"])
    assert job["status"] == "completed", job
    statuses = [status for status, _ in seen]
    assert statuses[0] in ("waiting", "active") and statuses[-1] == "completed"
    assert "failed" not in statuses

    assert job["attemptsMade"] == 1
    assert job["processedAt"] and job["finishedAt"] and job["createdAt"]
    assert job["logs"][:5] == ["Starting image generation...", "Generating image with snapasset-local-1...",
                               "Image generated successfully", "Downloading image...", "Saving to database..."]
    for name in ("Instagram Post", "Instagram Story", "Twitter Post", "YouTube Thumbnail"):
        assert f"Processing {name}..." in job["logs"]

    result = job["result"]
    assert result["success"] is True and result["provider"] == "local"
    assert [image["platformId"] for image in result["images"]] == platforms
    for image in result["images"]:
        platform = PLATFORMS[image["platformId"]]
        assert image["platform"] == platform.name
        assert image["url"].startswith("http://testserver/media/")
        data = client.get(image["url"].removeprefix("http://testserver")).data
        assert len(data) == image["size"] <= platform.max_bytes
        decoded = Image.open(io.BytesIO(data))
        assert decoded.format == PIL_FORMATS[fmt] and image["format"] == fmt
        assert decoded.size == (platform.width, platform.height) == (image["width"], image["height"])
        assert isinstance(image["blurhash"], str) and len(image["blurhash"]) >= 6

    # the event history: monotonic progress through every stage, in order, then done
    conn = client.application.extensions["snapasset"].redis.client
    history = wait_for(lambda: (h := [e for _, e in job_history(conn, created["jobId"])])
                       [-1]["type"] == "done" and h)
    progress = [e["progress"] for e in history if "progress" in e]
    assert progress == sorted(progress) and progress[-1] == 100
    stages = [e["stage"] for e in history if e["type"] == "progress"]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == STAGE_ORDER
    assert [e["image"]["platformId"] for e in history if e["type"] == "image"] == platforms
    assert history[-1]["type"] == "done" and history[-1]["result"]["images"] == [
        {**image, "url": image["url"].removeprefix("http://testserver")} for image in result["images"]]

    # one generation row and one image row per platform
    with sqlite3.connect(settings.database) as db:
        assert db.execute("SELECT count(*), max(status) FROM generations").fetchone() == (1, "completed")
        assert db.execute("SELECT count(*) FROM generated_images").fetchone() == (len(platforms),)


def test_every_platform_fits(client, auth, worker_process):
    created = create(client, auth, list(PLATFORMS))
    worker_process()
    job, _ = watch(client, auth, created["jobId"])
    assert job["status"] == "completed", job
    for image in job["result"]["images"]:
        platform = PLATFORMS[image["platformId"]]
        assert (image["width"], image["height"]) == (platform.width, platform.height)
        assert image["size"] <= platform.max_bytes


def test_a_contain_job_in_avif_shows_the_whole_picture_from_one_picture_per_shape(client, auth, worker_process):
    platforms = ["instagram-story", "twitter-header", "facebook-post", "og-image"]
    created = create(client, auth, platforms, fit="contain", format="avif")
    worker_process()
    job, _ = watch(client, auth, created["jobId"])
    assert job["status"] == "completed", job
    assert job["data"]["options"]["fit"] == "contain"
    images = job["result"]["images"]
    assert [image["platformId"] for image in images] == platforms
    # the story, the 3:1 header and the two link cards: three shapes, three pictures; the two
    # link cards share theirs
    assert [image["sourceIndex"] for image in images] == [0, 1, 2, 2]
    for image in images:
        platform = PLATFORMS[image["platformId"]]
        decoded = Image.open(io.BytesIO(client.get(image["url"].removeprefix("http://testserver")).data))
        assert decoded.format == "AVIF" and image["format"] == "avif"
        assert decoded.size == (platform.width, platform.height)


def test_failed_attempt_is_retried_after_a_delay(client, auth, settings, worker_process, redis_handle):
    created = create(client, auth, ["instagram-post", "twitter-post"])
    worker_process({"SNAPASSET_PROVIDER": "tests.fake_providers:failing_first_attempt"})
    job, seen = watch(client, auth, created["jobId"], timeout=90)
    assert job["status"] == "completed", job
    assert "delayed" in [status for status, _ in seen]
    assert job["attemptsMade"] == 2
    history = wait_for(lambda: (h := [e for _, e in job_history(redis_handle.client, created["jobId"])])
                       [-1]["type"] == "done" and h)
    failed = [e for e in history if e["type"] == "failed"]
    assert len(failed) == 1 and failed[0]["willRetry"] is True
    assert failed[0]["error"]["code"] == "PROVIDER_ERROR"
    assert history[-1]["type"] == "done"
    # the retried attempt left exactly one row per image and one file per image
    with sqlite3.connect(settings.database) as db:
        assert db.execute("SELECT count(*) FROM generations").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM generated_images").fetchone() == (2,)
    files = [p for p in settings.media_dir.rglob("*") if p.is_file()]
    assert len(files) == 2


def test_content_policy_refusal_is_not_retried(client, auth, worker_process, redis_handle):
    created = create(client, auth, ["instagram-post"])
    worker_process({"SNAPASSET_PROVIDER": "tests.fake_providers:refusing"})
    job, seen = watch(client, auth, created["jobId"])
    assert job["status"] == "failed"
    assert job["attemptsMade"] == 1
    assert job["error"] == {"code": "CONTENT_POLICY_VIOLATION",
                            "message": "The prompt was refused by the safety system"}
    assert job["failedReason"] == job["error"]["message"]
    assert "delayed" not in [status for status, _ in seen]
    # the terminal event follows the stored outcome
    last = wait_for(lambda: (e := job_history(redis_handle.client, created["jobId"])[-1][1])
                    ["type"] != "progress" and e)
    assert last["type"] == "failed" and last["willRetry"] is False
    assert last["error"]["code"] == "CONTENT_POLICY_VIOLATION"


def test_a_picture_larger_than_the_model_may_send_is_refused_unread(client, auth, worker_process):
    """Checked by its header against the provider's largest size: never decoded, not retried."""
    created = create(client, auth, ["instagram-post", "twitter-post"])
    worker_process({"SNAPASSET_PROVIDER": "tests.fake_providers:oversized"})
    job, _ = watch(client, auth, created["jobId"])
    assert job["status"] == "failed" and job["attemptsMade"] == 1
    assert job["error"]["code"] == "INVALID_IMAGE"
    assert "6000×6000" in job["error"]["message"] and "1,572,864" in job["error"]["message"]


def test_storage_failure_leaves_nothing_behind(client, auth, settings, worker_process, user):
    """The second platform's file cannot be written: every attempt fails, and no orphan file or row stays."""
    from workers.pipeline import generation_id_for
    created = create(client, auth, ["instagram-post", "twitter-post"])
    blocker = settings.media_dir / user / generation_id_for(created["jobId"]) / "twitter-post-1200x675.jpg"
    blocker.mkdir(parents=True)   # a folder where the file should go: the write fails
    (blocker / "keep").touch()
    worker_process()
    job, _ = watch(client, auth, created["jobId"], timeout=90)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "STORAGE_ERROR"
    assert job["attemptsMade"] == settings.job_attempts
    files = [p for p in settings.media_dir.rglob("*") if p.is_file() and p.name != "keep"]
    assert files == []
    with sqlite3.connect(settings.database) as db:
        assert db.execute("SELECT count(*) FROM generations").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM generated_images").fetchone() == (0,)


def test_list_jobs_newest_first_with_cursor(client, auth):
    ids = [create(client, auth, ["og-image"])["jobId"] for _ in range(5)]
    page = client.get("/api/jobs?limit=2", headers=auth).json
    assert [j["jobId"] for j in page["jobs"]] == ids[::-1][:2]
    assert page["count"] == 2 and page["nextCursor"]
    seen = [j["jobId"] for j in page["jobs"]]
    while page["nextCursor"]:
        page = client.get(f"/api/jobs?limit=2&cursor={page['nextCursor']}", headers=auth).json
        seen += [j["jobId"] for j in page["jobs"]]
    assert seen == ids[::-1]
    waiting = client.get("/api/jobs?status=waiting", headers=auth).json
    assert waiting["status"] == "waiting" and waiting["count"] == 5
    assert client.get("/api/jobs?status=completed", headers=auth).json["jobs"] == []
