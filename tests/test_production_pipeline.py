"""The production adapters in a real job: the HTTP API, a real Redis and a real `snapasset worker`
process whose `openai` client talks to a local Images API, whose `supabase` client talks to a
local Storage/PostgREST, and whose completion webhooks reach a local receiver.

Each test asserts what a client sees: the job's final status, error code and attempts, and the
events on the job's stream."""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import re
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests
from PIL import Image
from rq.suspension import resume, suspend
from standardwebhooks import Webhook

from snapasset import create_app, framing
from snapasset.config import Env, Settings
from snapasset.jobs import open_webhook_queue
from snapasset.platforms import PLATFORMS
from snapasset.records.sqlite import SqliteRecords
from tests.conftest import job_history, ROOT, sample, TEST_JWT_SECRET, settings_env, stop_process, wait_for
from tests.stubs.openai_images import (
    DEFAULT_USAGE, EDIT_PAINT, OpenAIImagesStub, form_fields, garbage, moderation_blocked, rate_limited, server_error,
    slow, stream,
)
from tests.stubs.supabase import SupabaseStub
from tests.stubs.webhook_receiver import WebhookReceiver
from workers.pipeline import generation_id_for
from workers.webhooks import RETRY_INTERVALS

PROMPT = "A lighthouse on a rocky coast at sunset"
BUCKET = "generated-images"
SERVICE_KEY = "service-role-test-key"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()
PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}


# -- the stack: stubs and worker processes shared by the module ------------------------------
# Starting and stopping a worker process costs seconds, so the tests share two, each on its own
# queue: `main` (gpt-image-1.5, Supabase, webhooks to private addresses allowed) and `strict`
# (gpt-image-2, local storage and records, a 1.5 s model timeout, private webhook targets refused).
# Every stub is emptied before each test; tests run one job at a time.

OPENAI_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def settings(tmp_path_factory, redis_url) -> Settings:
    tmp = tmp_path_factory.mktemp("production")
    return Settings(
        redis_url=redis_url, jwt_secret=TEST_JWT_SECRET, media_dir=tmp / "media", database=tmp / "snapasset.db",
        data_dir=tmp / "data", queue_name=f"test-{uuid.uuid4().hex[:10]}", job_timeout=60,
        retry_backoff=0.6,   # retries after 1 s, then 2 s (Settings.retry_intervals rounds to seconds)
        public_url="http://testserver", rate_limit="10000 per minute",
        webhook_allow_private=True, image_models=("gpt-image-1.5", "gpt-image-2.5-flare"), image_model="gpt-image-1.5",
    )


@pytest.fixture(scope="module")
def strict_settings(settings) -> Settings:
    return settings.replace(queue_name=f"{settings.queue_name}-strict", webhook_allow_private=False,
                            image_model="gpt-image-2", image_models=("gpt-image-2",))


@pytest.fixture(scope="module")
def openai_stub():
    stub = OpenAIImagesStub.start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def supabase_stub():
    stub = SupabaseStub.start(buckets=[BUCKET])
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def receiver():
    stub = WebhookReceiver.start()
    yield stub
    stub.stop()


@pytest.fixture(autouse=True)
def _empty_stubs(openai_stub, supabase_stub, receiver):
    for stub in (openai_stub, supabase_stub, receiver):
        stub.reset()


def _start_worker(settings: Settings, extra_env: dict, log_path):
    """`snapasset worker` as the Procfile runs it (conftest's worker_process, for a whole module)."""
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "snapasset", "worker"],
                            env={**settings_env(settings), **extra_env}, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def _stop_worker(proc, log) -> None:
    stop_process(proc)
    log.close()


@pytest.fixture(scope="module")
def main_worker(settings, openai_stub, supabase_stub, tmp_path_factory):
    # one picture per job (SNAPASSET_MAX_SOURCES=1): the tests on this worker count one model call
    # per attempt; the strict worker draws one per shape family, the default
    env = {**openai_env(openai_stub), **supabase_env(supabase_stub), **webhook_env(allow_private=True),
           Env.MAX_SOURCES: "1"}
    proc, log = _start_worker(settings, env, tmp_path_factory.mktemp("logs") / "main-worker.log")
    yield proc
    _stop_worker(proc, log)


@pytest.fixture(scope="module")
def strict_worker(strict_settings, openai_stub, tmp_path_factory):
    env = {**openai_env(openai_stub, model="gpt-image-2", **{Env.OPENAI_TIMEOUT: str(OPENAI_TIMEOUT)}),
           **webhook_env(allow_private=False)}
    proc, log = _start_worker(strict_settings, env, tmp_path_factory.mktemp("logs") / "strict-worker.log")
    yield proc
    _stop_worker(proc, log)


@pytest.fixture
def strict_client(strict_settings, redis_handle):
    app = create_app(strict_settings, redis=redis_handle)
    app.config["TESTING"] = True
    return app.test_client()


# -- helpers -------------------------------------------------------------------------------

def openai_env(stub: OpenAIImagesStub, model: str = "gpt-image-1.5", **extra: str) -> dict:
    return {Env.OPENAI_API_KEY: "test-key", Env.PROVIDER: "openai", Env.OPENAI_BASE_URL: stub.base_url,
            Env.IMAGE_MODEL: model, Env.IMAGE_MODELS: "gpt-image-2.5-flare", Env.RENDER_PROCESSES: "1", **extra}


def supabase_env(stub: SupabaseStub) -> dict:
    return {Env.SUPABASE_URL: stub.url, Env.SUPABASE_KEY: SERVICE_KEY, Env.SUPABASE_BUCKET: BUCKET}


def webhook_env(*, allow_private: bool = True) -> dict:
    env = {Env.WEBHOOK_SECRET: WEBHOOK_SECRET}
    if allow_private:
        env[Env.WEBHOOK_ALLOW_PRIVATE] = "true"
    return env


def create(client, auth, platforms, *, webhook_url: str | None = None, **options) -> str:
    body = {"prompt": PROMPT, "platforms": platforms}
    if options:
        body["options"] = options
    if webhook_url:
        body["webhookUrl"] = webhook_url
    r = client.post("/api/jobs", json=body, headers=auth)
    assert r.status_code == 201, r.json
    return r.json["jobId"]


def finish(client, auth, job_id: str, timeout: float = 40) -> tuple[dict, list[str], list[dict]]:
    """Follow the job to its end as a client would: (final job, statuses seen, its event history)."""
    statuses = []
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}", headers=auth).json
        if not statuses or statuses[-1] != job["status"]:
            statuses.append(job["status"])
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout}s: {job}"
        time.sleep(0.05)
    conn = client.application.extensions["snapasset"].redis.client

    def ended():
        history = [event for _, event in job_history(conn, job_id)]
        last = history[-1] if history else {}
        final = last.get("type") in ("done", "cancelled") or (last.get("type") == "failed"
                                                                and last["willRetry"] is False)
        return history if final else None
    return job, statuses, wait_for(ended, timeout=10)


def failures(history: list[dict]) -> list[dict]:
    return [e for e in history if e["type"] == "failed"]


def assert_images_match_platforms(result: dict, fetch) -> None:
    for image in result["images"]:
        platform = PLATFORMS[image["platformId"]]
        data = fetch(image["url"])
        assert len(data) == image["size"] <= platform.max_bytes
        decoded = Image.open(io.BytesIO(data))
        assert decoded.format == PIL_FORMATS[image["format"]]
        assert decoded.size == (platform.width, platform.height) == (image["width"], image["height"])


# -- the image model -----------------------------------------------------------------------

def test_openai_success_lands_in_supabase_with_usage(client, auth, user, main_worker, openai_stub, supabase_stub):
    platforms = ["instagram-post", "twitter-post"]
    job_id = create(client, auth, platforms, quality="hd", format="webp")
    job, statuses, history = finish(client, auth, job_id)

    assert job["status"] == "completed", job
    assert job["attemptsMade"] == 1 and "failed" not in statuses and not failures(history)
    assert "Generating image with gpt-image-1.5..." in job["logs"]
    result = job["result"]
    assert result["provider"] == "openai" and result["model"] == "gpt-image-1.5"
    # GPT image models return no revised prompt (DALL·E 3 did): none is made up
    assert result["revisedPrompt"] is None
    assert [image["platformId"] for image in result["images"]] == platforms
    assert history[-1]["type"] == "done" and history[-1]["result"] == result

    # one request, for what the job asked: the model, a size it draws, hd → high
    [call] = openai_stub.generations
    assert call.headers["authorization"] == "Bearer test-key"
    params = call.json
    assert params["model"] == "gpt-image-1.5" and params["n"] == 1 and params["prompt"] == PROMPT
    assert params["size"] in ("1024x1024", "1536x1024", "1024x1536") and params["quality"] == "high"
    assert "style" not in params and "response_format" not in params   # GPT image models reject both

    # objects at <userId>/<generationId>/<platform>-<w>x<h>.<ext>, typed, cached, served by public URL
    generation_id = generation_id_for(job_id)
    assert result["generationId"] == generation_id
    stored = supabase_stub.objects[BUCKET]
    keys = {f"{user}/{generation_id}/{p}-{PLATFORMS[p].width}x{PLATFORMS[p].height}.webp" for p in platforms}
    assert set(stored) == keys
    assert all(obj.content_type == "image/webp" and "max-age=31536000" in obj.cache_control
               for obj in stored.values())
    for image in result["images"]:
        key = f"{user}/{generation_id}/{image['platformId']}-{image['width']}x{image['height']}.webp"
        assert image["url"] == f"{supabase_stub.url}/storage/v1/object/public/{BUCKET}/{key}"
    assert_images_match_platforms(result, lambda url: requests.get(url, timeout=5).content)

    # one generation row (with the model's usage) and one row per image
    [row] = supabase_stub.tables["generations"]
    assert (row["id"], row["job_id"], row["user_id"]) == (generation_id, job_id, user)
    assert row["status"] == "completed" and row["provider"] == "openai" and row["model"] == "gpt-image-1.5"
    assert row["usage"] == DEFAULT_USAGE
    images = supabase_stub.tables["generated_images"]
    assert sorted(r["platform_id"] for r in images) == sorted(platforms)
    assert {r["url"] for r in images} == {i["url"] for i in result["images"]}
    assert all(r["user_id"] == user and r["generation_id"] == generation_id for r in images)


def test_streamed_partial_images_reach_clients_as_previews(strict_client, auth, strict_settings, strict_worker,
                                                           openai_stub):
    openai_stub.script([stream(partials=3)])
    conn = strict_client.application.extensions["snapasset"].redis.client
    suspend(conn)   # a client following live from the start: previews are live-only
    try:
        job_id = create(strict_client, auth, ["twitter-header"], format="png")
        live = strict_client.get(f"/api/sse/jobs/{job_id}", headers=auth, buffered=False)
    finally:
        resume(conn)
    history = []
    for chunk in live.response:
        text = chunk if isinstance(chunk, str) else chunk.decode()
        history += [json.loads(line[len("data: "):]) for line in text.split("\n") if line.startswith("data: ")]
        if history and history[-1]["type"] == "done":
            break
    live.close()
    job, _, stored = finish(strict_client, auth, job_id)
    assert not [e for e in stored if "preview" in e]   # gone from Redis once the job ended

    assert job["status"] == "completed", job
    assert job["attemptsMade"] == 1
    assert (job["result"]["provider"], job["result"]["model"]) == ("openai", "gpt-image-2")
    [call] = openai_stub.generations
    assert call.json["stream"] is True and call.json["partial_images"] >= 1
    # gpt-image-2 draws at the platform's 3:1 instead of cropping a square
    width, height = map(int, call.json["size"].split("x"))
    assert width % 16 == 0 and height % 16 == 0 and width / height == pytest.approx(3, rel=0.05)

    previews = [e for e in history if e["type"] == "progress" and "preview" in e]
    assert len(previews) == 3
    for event in previews:
        assert event["stage"] == "generating" and 10 < event["progress"] < 30
        assert event["preview"].startswith("data:image/jpeg;base64,")
        Image.open(io.BytesIO(base64.b64decode(event["preview"].split(",", 1)[1]))).verify()
    progress = [e["progress"] for e in history if "progress" in e]
    assert progress == sorted(progress) and progress[-1] == 100
    assert_images_match_platforms(job["result"],
                                  lambda url: strict_client.get(url.removeprefix("http://testserver")).data)
    generation = SqliteRecords(strict_settings.database).get_generation(job["result"]["generationId"])
    assert generation["model"] == "gpt-image-2" and generation["usage"] == DEFAULT_USAGE


def test_the_readme_job_draws_one_picture_per_shape_and_enlarges_nothing_past_125(
        strict_client, auth, strict_settings, strict_worker, openai_stub):
    platforms = ["instagram-post", "instagram-story", "twitter-post", "facebook-post"]
    job_id = create(strict_client, auth, platforms)
    job, _, history = finish(strict_client, auth, job_id)

    assert job["status"] == "completed", job
    calls = openai_stub.generations
    assert 1 < len(calls) <= 3
    sizes = [tuple(map(int, call.json["size"].split("x"))) for call in calls]
    images = job["result"]["images"]
    assert [image["platformId"] for image in images] == platforms
    assert sorted({image["sourceIndex"] for image in images}) == list(range(len(calls)))
    for image in images:
        platform = PLATFORMS[image["platformId"]]
        source_w, source_h = sizes[image["sourceIndex"]]
        box_w, box_h = framing.cover_box((source_w, source_h), platform.width, platform.height)
        assert platform.width / box_w <= 1.25 + 1e-9, (image["platformId"], sizes[image["sourceIndex"]])
        assert box_w * box_h >= 0.75 * source_w * source_h, (image["platformId"], sizes[image["sourceIndex"]])
    # one job: progress never goes back across the model calls, and one generation row with their usage
    progress = [e["progress"] for e in history if "progress" in e]
    assert progress == sorted(progress) and progress[-1] == 100
    assert job["logs"].count("Generating image with gpt-image-2...") == 1
    generation = SqliteRecords(strict_settings.database).get_generation(job["result"]["generationId"])
    assert generation["usage"]["total_tokens"] == len(calls) * DEFAULT_USAGE["total_tokens"]


def test_fit_extend_has_the_model_paint_the_rest_of_the_frame(strict_client, auth, strict_worker, openai_stub):
    # one picture (16:9) for both; the 1.91:1 link card is wider, so its sides are painted
    platforms = ["twitter-post", "facebook-post"]
    job_id = create(strict_client, auth, platforms, fit="extend", format="png")
    job, _, _ = finish(strict_client, auth, job_id)

    assert job["status"] == "completed", job
    assert len(openai_stub.generations) == 1
    [edit] = openai_stub.edits
    width, height = map(int, form_fields(edit)["size"].decode().split("x"))
    assert width / height == pytest.approx(1200 / 630, rel=0.05)
    fetch = lambda url: strict_client.get(url.removeprefix("http://testserver")).data  # noqa: E731
    twitter, facebook = (Image.open(io.BytesIO(fetch(i["url"]))).convert("RGB") for i in job["result"]["images"])
    assert facebook.getpixel((3, 315)) == pytest.approx(EDIT_PAINT, abs=12)          # painted by the model
    assert facebook.getpixel((1196, 315)) == pytest.approx(EDIT_PAINT, abs=12)
    assert twitter.getpixel((3, 337)) != pytest.approx(EDIT_PAINT, abs=12)          # its own shape: not edited


def test_moderation_refusal_fails_at_once_without_retry(client, auth, main_worker, openai_stub):
    openai_stub.script([moderation_blocked()])
    job_id = create(client, auth, ["instagram-post"])
    job, statuses, history = finish(client, auth, job_id)

    assert job["status"] == "failed" and "delayed" not in statuses
    assert job["error"]["code"] == "CONTENT_POLICY_VIOLATION" and "safety system" in job["error"]["message"]
    assert job["attemptsMade"] == 1
    assert [(e["error"]["code"], e["willRetry"]) for e in failures(history)] == [("CONTENT_POLICY_VIOLATION", False)]
    time.sleep(1.5)   # longer than the first retry interval: nothing comes back
    assert len(openai_stub.generations) == 1


def test_a_failed_jobs_outcome_is_counted_under_the_model_it_chose(client, auth, main_worker, openai_stub):
    """A failed attempt has no result to name the model that drew; its outcome in /metrics is
    labelled with the model the job chose, not the worker's default (gpt-image-1.5 here)."""
    openai_stub.script([moderation_blocked()])
    job_id = create(client, auth, ["instagram-post"], model="gpt-image-2.5-flare")
    job, _, _ = finish(client, auth, job_id)
    assert job["status"] == "failed"
    assert openai_stub.generations[-1].json["model"] == "gpt-image-2.5-flare"
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "snapasset_jobs_total", outcome="failed", code="CONTENT_POLICY_VIOLATION",
                  model="gpt-image-2.5-flare") == 1


def test_rate_limit_is_retried_after_retry_after(client, auth, main_worker, openai_stub):
    retry_after = 3   # longer than the first backoff step (1 s here), so it decides the wait
    openai_stub.script([rate_limited(retry_after=retry_after)])
    job_id = create(client, auth, ["instagram-post"])
    job, statuses, history = finish(client, auth, job_id)

    assert job["status"] == "completed", job
    assert job["attemptsMade"] == 2 and "delayed" in statuses
    [failed] = failures(history)
    assert failed["willRetry"] is True and failed["error"]["code"] == "PROVIDER_RATE_LIMITED"
    assert failed["retryIn"] >= retry_after
    assert history[-1]["type"] == "done"
    first, second = openai_stub.generations
    waited = second.received_at - first.received_at
    # RQ schedules a retry at a whole second, rounded down; stretch_next_retry adds that second
    assert waited >= retry_after, f"Retry-After {retry_after}s honoured as {waited:.2f}s"


def test_server_errors_until_attempts_run_out(client, auth, settings, main_worker, openai_stub):
    openai_stub.script([server_error(500)] * settings.job_attempts)
    job_id = create(client, auth, ["instagram-post"])
    job, statuses, history = finish(client, auth, job_id)

    assert job["status"] == "failed" and "delayed" in statuses
    assert job["error"]["code"] == "PROVIDER_ERROR" and "500" in job["error"]["message"]
    assert job["attemptsMade"] == settings.job_attempts == 3
    assert [e["willRetry"] for e in failures(history)] == [True, True, False]
    assert [e["attemptsMade"] for e in failures(history)] == [1, 2, 3]
    assert len(openai_stub.generations) == 3


def test_bytes_that_are_no_image_fail_as_invalid_image(client, auth, main_worker, openai_stub):
    openai_stub.script([garbage()])
    job_id = create(client, auth, ["instagram-post"])
    job, _, history = finish(client, auth, job_id)

    assert job["status"] == "failed"
    assert job["error"]["code"] == "INVALID_IMAGE" and job["attemptsMade"] == 1
    assert [(e["error"]["code"], e["willRetry"]) for e in failures(history)] == [("INVALID_IMAGE", False)]
    assert len(openai_stub.generations) == 1


def test_a_slow_model_times_out_within_the_configured_bound(strict_client, auth, strict_settings, strict_worker,
                                                            openai_stub):
    openai_stub.script([slow(6)] * strict_settings.job_attempts)
    job_id = create(strict_client, auth, ["instagram-post"])
    started = time.monotonic()
    job, statuses, history = finish(strict_client, auth, job_id)

    assert job["status"] == "failed" and "delayed" in statuses
    assert job["error"]["code"] == "TIMEOUT" and f"{OPENAI_TIMEOUT:g}s" in job["error"]["message"]
    assert job["attemptsMade"] == 3
    assert [e["willRetry"] for e in failures(history)] == [True, True, False]
    # three bounded attempts and two backoffs (1 s, 2 s), far from three 6 s answers
    assert time.monotonic() - started < 3 * OPENAI_TIMEOUT + 3 + 4


# -- Supabase across retries and failures ---------------------------------------------------

def test_supabase_rows_are_written_once_across_a_retry(client, auth, main_worker, openai_stub, supabase_stub):
    platforms = ["instagram-post", "twitter-post"]
    openai_stub.script([server_error(503)])
    job_id = create(client, auth, platforms)
    job, _, history = finish(client, auth, job_id)

    assert job["status"] == "completed", job
    assert job["attemptsMade"] == 2
    assert [e["willRetry"] for e in failures(history)] == [True]
    assert [row["job_id"] for row in supabase_stub.tables["generations"]] == [job_id]
    assert len(supabase_stub.tables["generated_images"]) == len(platforms)
    assert len(supabase_stub.objects[BUCKET]) == len(platforms)


def test_a_storage_failure_leaves_no_objects_and_no_rows(client, auth, user, settings, main_worker, supabase_stub):
    """The first platform's image is uploaded and recorded, the second's upload keeps failing:
    every attempt removes what it made, and the job ends STORAGE_ERROR."""
    job_id = create(client, auth, ["instagram-post", "twitter-post"])
    folder = f"/storage/v1/object/{BUCKET}/{user}/{generation_id_for(job_id)}/"
    supabase_stub.fail_next(1000, status=503, method="POST", path_prefix=folder + "twitter-post")
    job, _, history = finish(client, auth, job_id)

    assert job["status"] == "failed"
    assert job["error"]["code"] == "STORAGE_ERROR"
    assert job["attemptsMade"] == settings.job_attempts
    assert [e["willRetry"] for e in failures(history)] == [True, True, False]
    # each attempt uploaded and recorded the first image, then removed both again
    first_uploads = supabase_stub.requests_to("POST", folder + "instagram-post")
    assert len(first_uploads) == settings.job_attempts
    assert len(supabase_stub.requests_to("DELETE", f"/storage/v1/object/{BUCKET}")) >= settings.job_attempts
    assert supabase_stub.objects[BUCKET] == {}
    assert supabase_stub.tables == {"generations": [], "generated_images": []}


# -- what a request may choose: model, variants, background, a reference picture; deletion ----

@pytest.fixture
def supabase_client(settings, redis_handle, supabase_stub):
    """The API with the worker's storage and records (Supabase): uploads and deletions reach them."""
    app = create_app(settings.replace(supabase_url=supabase_stub.url, supabase_service_role_key=SERVICE_KEY,
                                      supabase_bucket=BUCKET), redis=redis_handle)
    app.config["TESTING"] = True
    return app.test_client()


def test_the_chosen_model_variants_and_background_reach_the_image_model(supabase_client, auth, user, main_worker,
                                                                        openai_stub, supabase_stub):
    job_id = create(supabase_client, auth, ["instagram-post", "og-image"], model="gpt-image-2.5-flare", n=2,
                    background="transparent", format="png", quality="max")
    job, _, _ = finish(supabase_client, auth, job_id)
    assert job["status"] == "completed", job

    [call] = openai_stub.generations
    params = call.json
    assert (params["model"], params["n"], params["background"], params["quality"]) == (
        "gpt-image-2.5-flare", 2, "transparent", "max")
    assert len(params["safety_identifier"]) == 64 and user not in params["safety_identifier"]
    result = job["result"]
    assert result["model"] == "gpt-image-2.5-flare" and result["seed"] is None   # OpenAI takes no seed
    assert [(i["variant"], i["platformId"]) for i in result["images"]] == [
        (0, "instagram-post"), (0, "og-image"), (1, "instagram-post"), (1, "og-image")]
    first, second = (requests.get(i["url"], timeout=5).content for i in result["images"][::2])
    assert first != second                                   # the stub draws each variant in its own colour
    generation_id = generation_id_for(job_id)
    assert f"{user}/{generation_id}/instagram-post-1080x1080-v1.png" in supabase_stub.objects[BUCKET]
    assert sorted((r["platform_id"], r["variant"]) for r in supabase_stub.tables["generated_images"]) == [
        ("instagram-post", 0), ("instagram-post", 1), ("og-image", 0), ("og-image", 1)]


def test_a_model_not_offered_is_refused_naming_the_allowed_ones(supabase_client, auth, openai_stub):
    r = supabase_client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"],
                                                "options": {"model": "gpt-image-2"}}, headers=auth)
    assert r.status_code == 400
    assert r.json["details"]["options.model"] == "must be one of gpt-image-1.5, gpt-image-2.5-flare"
    r = supabase_client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"],
                                                "options": {"quality": "xhigh"}}, headers=auth)
    assert r.status_code == 400 and "gpt-image-1.5" in r.json["details"]["options.quality"]
    assert openai_stub.requests == []


def test_an_uploaded_reference_picture_goes_to_the_edit_endpoint(supabase_client, auth, user, main_worker,
                                                                 openai_stub, supabase_stub):
    from tests.stubs.openai_images import png_bytes

    picture = png_bytes(320, 240, (20, 160, 90))
    data_url = "data:image/png;base64," + base64.b64encode(picture).decode()
    job_id = create(supabase_client, auth, ["twitter-post"], inputImages=[data_url])
    job, _, _ = finish(supabase_client, auth, job_id)
    assert job["status"] == "completed", job

    assert openai_stub.generations == []
    [edit] = openai_stub.edits
    form = form_fields(edit)
    assert form["image[]"] == picture and form["model"] == b"gpt-image-1.5"
    key = f"{user}/{generation_id_for(job_id)}/references/reference-0.png"
    assert supabase_stub.objects[BUCKET][key].data == picture
    assert job["data"]["options"]["inputImages"] == [f"{supabase_stub.url}/storage/v1/object/public/{BUCKET}/{key}"]


def test_deleting_a_job_removes_its_supabase_objects_and_rows(supabase_client, auth, user, main_worker,
                                                              supabase_stub):
    from tests.stubs.openai_images import png_bytes

    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(100, 100)).decode()
    job_id = create(supabase_client, auth, ["instagram-post", "og-image"], inputImages=[data_url])
    kept = create(supabase_client, auth, ["og-image"])
    for each in (job_id, kept):
        assert finish(supabase_client, auth, each)[0]["status"] == "completed"
    mine = f"{user}/{generation_id_for(job_id)}/"
    assert len([k for k in supabase_stub.objects[BUCKET] if k.startswith(mine)]) == 3

    r = supabase_client.delete(f"/api/jobs/{job_id}", headers=auth)
    assert r.status_code == 204 and r.data == b""
    assert not [k for k in supabase_stub.objects[BUCKET] if k.startswith(mine)]
    assert [row["job_id"] for row in supabase_stub.tables["generations"]] == [kept]
    assert {row["generation_id"] for row in supabase_stub.tables["generated_images"]} == {generation_id_for(kept)}
    assert supabase_client.get(f"/api/jobs/{job_id}", headers=auth).status_code == 404
    assert supabase_client.delete(f"/api/jobs/{job_id}", headers=auth).status_code == 404


# -- completion webhooks -------------------------------------------------------------------

def test_completed_job_posts_one_signed_webhook(client, auth, main_worker, receiver):
    job_id = create(client, auth, ["instagram-post"], webhook_url=f"{receiver.url}/hooks/snapasset")
    job, _, _ = finish(client, auth, job_id)
    assert job["status"] == "completed", job

    [post] = wait_for(lambda: receiver.posts, timeout=10)
    assert post.path == "/hooks/snapasset" and post.headers["content-type"] == "application/json"
    payload = Webhook(WEBHOOK_SECRET).verify(post.body, post.headers)
    assert payload["type"] == "job.completed" and payload["jobId"] == job_id
    assert payload["result"] == job["result"] and payload["timestamp"]
    assert post.headers["webhook-id"].startswith("msg_")
    time.sleep(1)
    assert len(receiver.posts) == 1
    webhook = client.get(f"/api/jobs/{job_id}", headers=auth).json["webhook"]
    assert (webhook["status"], webhook["attempts"], webhook["lastError"]) == ("delivered", 1, None)
    assert webhook["deliveredAt"].endswith("Z")


def test_failed_job_posts_job_failed(client, auth, main_worker, openai_stub, receiver):
    openai_stub.script([moderation_blocked()])
    job_id = create(client, auth, ["instagram-post"], webhook_url=receiver.url)
    job, _, _ = finish(client, auth, job_id)
    assert job["status"] == "failed"

    [post] = wait_for(lambda: receiver.posts, timeout=10)
    payload = Webhook(WEBHOOK_SECRET).verify(post.body, post.headers)
    assert payload["type"] == "job.failed" and payload["jobId"] == job_id
    assert payload["error"] == job["error"] and payload["error"]["code"] == "CONTENT_POLICY_VIOLATION"
    assert "result" not in payload


def test_a_failing_receiver_is_retried_and_never_changes_the_job(client, auth, main_worker, receiver):
    receiver.script([503])
    job_id = create(client, auth, ["instagram-post"], webhook_url=receiver.url)
    job, _, history = finish(client, auth, job_id)
    assert job["status"] == "completed", job

    # the production schedule: the first retry comes RETRY_INTERVALS[0] (5 s) later
    first, second = wait_for(lambda: len(receiver.posts) >= 2 and receiver.posts, timeout=RETRY_INTERVALS[0] + 10)
    assert second.received_at - first.received_at >= RETRY_INTERVALS[0] - 1   # RQ rounds to whole seconds
    assert first.headers["webhook-id"] == second.headers["webhook-id"]          # one event, two attempts
    for post in (first, second):
        assert Webhook(WEBHOOK_SECRET).verify(post.body, post.headers)["type"] == "job.completed"
    after = client.get(f"/api/jobs/{job_id}", headers=auth).json
    assert after["status"] == "completed" and after["attemptsMade"] == 1 and "error" not in after
    webhook = wait_for(lambda: (w := client.get(f"/api/jobs/{job_id}", headers=auth).json["webhook"])
                       ["status"] == "delivered" and w)
    assert webhook["attempts"] == 2 and "503" in webhook["lastError"]
    conn = client.application.extensions["snapasset"].redis.client
    assert [e for _, e in job_history(conn, job_id)] == history   # no event about the webhook


def test_a_private_webhook_target_is_never_called_by_default(strict_client, auth, strict_settings, strict_worker,
                                                            receiver, redis_handle):
    # a host *name* passes at create; the worker finds it resolves to this machine
    host = socket.gethostname()
    if ipaddress.ip_address(socket.gethostbyname(host)).is_global:
        pytest.skip(f"{host} resolves to a public address here")
    job_id = create(strict_client, auth, ["instagram-post"], webhook_url=f"http://{host}:{receiver.port}/hooks")
    job, _, _ = finish(strict_client, auth, job_id)
    assert job["status"] == "completed", job

    webhook_queue = open_webhook_queue(redis_handle.client, strict_settings)
    delivery = wait_for(lambda: [j for j in map(webhook_queue.fetch_job,
                                                webhook_queue.finished_job_registry.get_job_ids())
                                 if j.args[1]["jobId"] == job_id], timeout=10)[0]
    outcome = delivery.return_value()
    assert outcome["delivered"] is False and re.search("loopback|private", outcome["reason"])
    assert receiver.requests == []
    assert webhook_queue.scheduled_job_registry.get_job_ids() == []   # refused, so not retried either
    after = strict_client.get(f"/api/jobs/{job_id}", headers=auth).json
    assert after["status"] == "completed"
    assert after["webhook"]["status"] == "refused" and after["webhook"]["attempts"] == 1
    assert "address" in after["webhook"]["lastError"] and after["webhook"]["deliveredAt"] is None


def test_a_webhook_target_that_is_literally_private_is_refused_at_create(strict_client, auth, receiver):
    for url in (f"{receiver.url}/hooks", "http://10.0.0.7/hook", "http://[::1]:8080/x", "http://169.254.169.254/"):
        r = strict_client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"], "webhookUrl": url},
                               headers=auth)
        assert r.status_code == 400 and r.json["code"] == "INVALID_REQUEST", (url, r.json)
        assert "address" in r.json["details"]["webhookUrl"]
    assert receiver.requests == []


def test_webhook_image_urls_are_absolute_for_local_storage(receiver, monkeypatch):
    """Local storage hands out /media/... paths; the receiver gets them under SNAPASSET_PUBLIC_URL."""
    from workers.webhooks import deliver_webhook

    for name, value in {**webhook_env(), Env.PUBLIC_URL: "https://snap.example"}.items():
        monkeypatch.setenv(name, value)
    images = [{"platformId": "og-image", "url": "/media/u/g/og-image-1200x630.jpg"},
              {"platformId": "twitter-post", "url": "https://cdn.example/u/g/twitter-post-1200x675.jpg"}]
    payload = {"type": "job.completed", "jobId": "gen-1-abcdefghij", "result": {"images": images},
               "timestamp": "2026-01-01T00:00:00Z"}
    assert deliver_webhook(receiver.url, payload, "msg_local")["delivered"] is True
    received = Webhook(WEBHOOK_SECRET).verify(receiver.posts[0].body, receiver.posts[0].headers)
    assert [image["url"] for image in received["result"]["images"]] == [
        "https://snap.example/media/u/g/og-image-1200x630.jpg", "https://cdn.example/u/g/twitter-post-1200x675.jpg"]
