"""What a request may ask beyond prompt and platforms (SPEC §6), through the API, a real Redis and
the real pipeline run by an in-process worker: variants, seeds, transparency, custom sizes,
reference pictures; and waiting in one call, queue positions, deletion."""

from __future__ import annotations

import base64
import io
import time
import uuid

import pytest
import requests
from PIL import Image

from snapasset import keys
from snapasset.auth import mint_access_token
from snapasset.records.sqlite import SqliteRecords
from workers.pipeline import generation_id_for

PROMPT = "A hot air balloon over a green valley at dawn"


def create(client, auth, platforms=("og-image",), **options):
    response = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": list(platforms), "options": options},
                           headers=auth)
    assert response.status_code == 201, response.json
    return response.json["jobId"]


def completed(client, auth, job_id) -> dict:
    job = client.get(f"/api/jobs/{job_id}", headers=auth).json
    assert job["status"] == "completed", job
    return job


def stored(settings, image) -> Image.Image:
    picture = Image.open(settings.media_dir / image["url"].split("/media/", 1)[1])
    picture.load()
    return picture


def png_data_url(size=(200, 150), colour=(255, 0, 255)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# -- transparency ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, pil_format", [("png", "PNG"), ("webp", "WEBP"), ("avif", "AVIF")])
def test_a_transparent_background_stays_transparent_in_every_output(client, auth, settings, run_jobs, fmt, pil_format):
    job_id = create(client, auth, ("instagram-post", "twitter-header"), background="transparent", format=fmt)
    run_jobs()
    job = completed(client, auth, job_id)
    assert job["data"]["options"]["background"] == job["result"]["background"] == "transparent"
    for image in job["result"]["images"]:
        picture = stored(settings, image)
        assert picture.format == pil_format and picture.mode == "RGBA", (image, picture.mode)
        low, high = picture.getchannel("A").getextrema()
        assert low < 128 and high == 255                           # a see-through sky, opaque land
        assert (picture.width, picture.height) == (image["width"], image["height"])


def test_transparency_is_refused_for_jpeg(client, auth):
    for options in ({"background": "transparent"}, {"background": "transparent", "format": "jpeg"}):
        r = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"], "options": options},
                        headers=auth)
        assert r.status_code == 400 and "png, webp, avif" in r.json["details"]["options.background"]


# -- custom sizes, variants, seeds, references -------------------------------------------------

def test_a_custom_platform_is_rendered_at_its_size_under_its_cap(client, auth, settings, run_jobs):
    banner = {"id": "shop-banner", "width": 1600, "height": 400, "maxBytes": 150_000}
    job_id = create(client, auth, (), customPlatforms=[banner], format="png")
    run_jobs()
    job = completed(client, auth, job_id)
    [image] = job["result"]["images"]
    assert (image["platformId"], image["platform"], image["width"], image["height"]) == (
        "shop-banner", "shop-banner", 1600, 400)
    assert image["size"] <= 150_000
    assert stored(settings, image).size == (1600, 400)
    assert job["data"]["options"]["customPlatforms"] == [{**banner, "name": "shop-banner"}]


def test_variants_are_distinct_pictures_and_a_seed_draws_them_again(client, auth, settings, run_jobs):
    first = create(client, auth, ("og-image", "instagram-post"), n=3, seed=11, format="png")
    again = create(client, auth, ("og-image", "instagram-post"), seed=12, format="png")   # the same size asked
    run_jobs()
    images = completed(client, auth, first)["result"]["images"]
    assert [(i["variant"], i["platformId"]) for i in images] == [
        (v, p) for v in range(3) for p in ("og-image", "instagram-post")]
    og = [stored(settings, i).tobytes() for i in images if i["platformId"] == "og-image"]
    assert len(set(og)) == 3
    redrawn = completed(client, auth, again)["result"]
    assert redrawn["seed"] == 12
    assert stored(settings, redrawn["images"][0]).tobytes() == og[1]    # variant 1 was drawn with seed 12


def test_a_job_counts_once_against_the_unfinished_jobs_limit_whatever_its_n(make_app, make_token):
    client = make_app(max_active_jobs=2).test_client()
    auth = {"Authorization": f"Bearer {make_token()}"}
    for _ in range(2):
        create(client, auth, n=4)
    r = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"]}, headers=auth)
    assert r.status_code == 429 and r.json["code"] == "JOB_LIMIT_EXCEEDED"


def test_an_uploaded_reference_is_worked_into_the_local_picture(client, auth, settings, run_jobs):
    job_id = create(client, auth, ("og-image",), inputImages=[png_data_url((400, 300))], format="png", seed=3)
    plain = create(client, auth, ("og-image",), format="png", seed=3)
    run_jobs()
    job = completed(client, auth, job_id)
    [url] = job["data"]["options"]["inputImages"]
    assert url.startswith("http://testserver/media/") and url.endswith("/references/reference-0.png")
    picture = stored(settings, job["result"]["images"][0]).convert("RGB")
    assert picture.getpixel((600, 330)) == (255, 0, 255)          # the reference sits mid-frame
    other = stored(settings, completed(client, auth, plain)["result"]["images"][0]).convert("RGB")
    assert other.getpixel((600, 330)) != (255, 0, 255)


@pytest.mark.parametrize("images, problem", [
    (["http://example.com/a.png"], "https://"),
    (["https://127.0.0.1/a.png"], "loopback"),
    (["https://[fd00::1]/a.png"], "private"),
    (["data:image/png;base64,bm90IGFuIGltYWdl"], "not a picture"),
    (["data:text/plain;base64,aGVsbG8="], "https://"),
    (["https://example.com/a.png"] * 5, "1 to 4"),
])
def test_reference_pictures_are_checked_at_create(client, auth, images, problem):
    r = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"],
                                       "options": {"inputImages": images}}, headers=auth)
    assert r.status_code == 400, r.json
    assert any(problem in text for field, text in r.json["details"].items() if field.startswith("options.inputImages"))


@pytest.mark.parametrize("options, field", [
    ({"n": 0}, "options.n"), ({"n": 5}, "options.n"), ({"n": True}, "options.n"),
    ({"seed": -1}, "options.seed"), ({"seed": 2**31}, "options.seed"), ({"seed": "7"}, "options.seed"),
    ({"background": "clear"}, "options.background"),
    ({"model": "dall-e-3"}, "options.model"),
    ({"customPlatforms": [{"id": "og-image", "width": 100, "height": 100}]}, "options.customPlatforms[0].id"),
    ({"customPlatforms": [{"id": "Banner!", "width": 100, "height": 100}]}, "options.customPlatforms[0].id"),
    ({"customPlatforms": [{"id": "tiny", "width": 63, "height": 100}]}, "options.customPlatforms[0].width"),
    ({"customPlatforms": [{"id": "huge", "width": 100, "height": 4097}]}, "options.customPlatforms[0].height"),
])
def test_new_options_are_validated_field_by_field(client, auth, options, field):
    r = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"], "options": options},
                    headers=auth)
    assert r.status_code == 400 and field in r.json["details"], r.json


def test_the_model_must_be_one_the_deployment_offers(client, auth):
    r = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"],
                                       "options": {"model": "gpt-image-1.5"}}, headers=auth)
    assert r.status_code == 400 and r.json["details"]["options.model"] == "must be one of gpt-image-2"


# -- queue position ------------------------------------------------------------------------------

def test_waiting_jobs_know_their_place_in_the_queue(client, auth, run_jobs, settings, make_token):
    admin = {"Authorization": f"Bearer {make_token(admin=True)}"}
    assert client.post("/api/queue/pause", headers=admin).json["paused"] is True
    try:
        ids = [create(client, auth) for _ in range(3)]
        assert [client.get(f"/api/jobs/{i}", headers=auth).json["queuePosition"] for i in ids] == [0, 1, 2]
    finally:
        client.post("/api/queue/resume", headers=admin)
    run_jobs()
    assert "queuePosition" not in completed(client, auth, ids[0])


# -- deletion ------------------------------------------------------------------------------------

def test_deleting_a_job_removes_its_files_rows_and_history(client, auth, settings, run_jobs, redis_handle):
    job_id = create(client, auth, ("og-image", "instagram-post"), n=2, inputImages=[png_data_url()])
    run_jobs()
    job = completed(client, auth, job_id)
    folder = settings.media_dir / job["data"]["userId"] / generation_id_for(job_id)
    assert len([p for p in folder.rglob("*") if p.is_file()]) == 5    # 2 × 2 images and the reference
    records = SqliteRecords(settings.database)
    assert len(records.get_generation(generation_id_for(job_id))["images"]) == 4
    conn, user = redis_handle.client, job["data"]["userId"]
    indexes = [keys.queue_jobs(settings.queue_name), keys.queue_status_jobs(settings.queue_name, "completed"),
               keys.user_jobs(user), keys.user_status_jobs(user, "completed")]
    assert all(conn.zscore(index, job_id) is not None for index in indexes)

    assert client.delete(f"/api/jobs/{job_id}", headers=auth).status_code == 204
    assert not folder.exists()
    assert records.get_generation(generation_id_for(job_id)) is None
    assert client.get(f"/api/jobs/{job_id}", headers=auth).json["code"] == "JOB_NOT_FOUND"
    assert not redis_handle.client.exists(keys.job_events(job_id))
    assert [conn.zscore(index, job_id) for index in indexes] == [None] * len(indexes)   # not left for a list to find
    assert job_id not in [j["jobId"] for j in client.get("/api/jobs", headers=auth).json["jobs"]]


def test_an_unfinished_job_cannot_be_deleted_and_another_users_is_not_found(client, auth, make_token):
    job_id = create(client, auth)
    r = client.delete(f"/api/jobs/{job_id}", headers=auth)
    assert r.status_code == 409 and r.json["code"] == "JOB_NOT_DELETABLE"
    other = {"Authorization": f"Bearer {make_token()}"}
    assert client.delete(f"/api/jobs/{job_id}", headers=other).json["code"] == "JOB_NOT_FOUND"
    assert client.get(f"/api/jobs/{job_id}", headers=auth).json["status"] == "waiting"


# -- Prefer: wait ----------------------------------------------------------------------------------

def test_prefer_wait_answers_with_the_finished_job_in_one_call(live_stack):
    base, settings = live_stack
    headers = {"Authorization": f"Bearer {mint_access_token(settings, str(uuid.uuid4()))}", "Prefer": "wait=50"}
    started = time.monotonic()
    r = requests.post(f"{base}/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"]}, headers=headers,
                      timeout=70)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "completed" and body["progress"] == 100, body
    assert body["streamUrl"] and body["statusUrl"] == r.headers["Location"]          # the create fields too
    [image] = body["result"]["images"]
    assert image["url"].startswith(base) and requests.get(image["url"], timeout=5).status_code == 200
    assert r.headers["Preference-Applied"] == "wait=50"
    assert time.monotonic() - started < 50


def test_prefer_wait_answers_when_its_time_is_up_with_the_job_as_it_stands(client, auth):
    started = time.monotonic()
    r = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"]},
                    headers={**auth, "Prefer": "respond-async, wait=1"})
    assert r.status_code == 201 and r.json["status"] == "waiting" and r.json["jobId"]
    assert 1 <= time.monotonic() - started < 10
    bad = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"]},
                      headers={**auth, "Prefer": "wait=600"})
    assert bad.status_code == 400 and "Prefer" in bad.json["details"]
