"""Hostile input gets a 4xx in the spec's shape, never a 500 (issue 11): deep JSON, job ids that
are not job ids, non-ASCII event ids, text that is not Unicode, and cancelled jobs in the
queue's counts."""

from __future__ import annotations

import json

import pytest
from rq import Queue

from snapasset.jobs import open_queue
from tests.conftest import InProcessWorker
from tests.test_validation import GOOD, assert_error
from workers.terminal_events import build_worker


@pytest.fixture
def admin(make_token):
    return {"Authorization": f"Bearer {make_token(admin=True)}"}


@pytest.fixture
def queue(app, settings, redis_handle):
    return open_queue(redis_handle.client, settings)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/api/jobs", "/api/jobs/gen-1700000000-abcdefghij/retry", "/api/queue/clean"])
@pytest.mark.parametrize("depth", [33, 1000, 25_000])
def test_deeply_nested_json_is_a_400(client, auth, admin, queue, path, depth):
    headers = admin if path.startswith("/api/queue") else auth
    r = client.post(path, data=_nested(depth), content_type="application/json", headers=headers)
    body = assert_error(r, 400, "INVALID_REQUEST")
    assert body["details"] == {"body": "must nest at most 32 levels deep"}
    assert queue.count == 0


def test_nesting_inside_a_field_counts_too(client, auth, queue):
    deep = {**GOOD, "options": json.loads(_nested(40))}
    body = assert_error(client.post("/api/jobs", json=deep, headers=auth), 400, "INVALID_REQUEST")
    assert "body" in body["details"]
    assert queue.count == 0


@pytest.mark.parametrize("text, field", [
    ('{"prompt": "A lighthouse \\ud800 on a rocky coast", "platforms": ["instagram-post"]}', "prompt"),
    ('{"prompt": "A lighthouse on a rocky coast \\udfff", "platforms": ["instagram-post"]}', "prompt"),
    ('{"prompt": "A lighthouse on a rocky coast", "platforms": ["instagram-post\\ud83d"]}', "platforms.0"),
    ('{"prompt": "A lighthouse on a rocky coast", "platforms": ["instagram-post"], "\\udc00": 1}', "\\udc00"),
])
def test_text_that_is_not_unicode_is_a_400_naming_the_field(client, auth, queue, text, field):
    r = client.post("/api/jobs", data=text, content_type="application/json", headers=auth)
    body = assert_error(r, 400, "INVALID_REQUEST")
    assert list(body["details"]) == [field]
    assert "valid Unicode" in body["message"]
    assert queue.count == 0


def test_a_surrogate_pair_is_a_real_character_and_welcome(client, auth):
    text = '{"prompt": "A lighthouse on a rocky coast \\ud83c\\udf05", "platforms": ["instagram-post"]}'
    r = client.post("/api/jobs", data=text, content_type="application/json", headers=auth)
    assert r.status_code == 201, r.json
    assert client.get(f"/api/jobs/{r.json['jobId']}", headers=auth).json["data"]["prompt"].endswith("\N{SUNRISE}")


BAD_JOB_IDS = ["gen-1700000000-abc.defghij", "gen-1700000000-*", "*", "gen-1700000000-abcdefghij%00",
               "gen-1700000000-abcdéfghij", "gen-1700000000-ABCDEFGHIJ", "gen-1700000000-short",
               "gen-%D9%A1%D9%A7-abcdefghij", "rq:job:gen-1-abcdefghij", "gen-1-" + "a" * 200,
               "..%2F..%2Fetc"]


@pytest.mark.parametrize("job_id", BAD_JOB_IDS)
def test_ids_that_are_not_job_ids_are_404_everywhere(client, auth, job_id):
    for response in (client.get(f"/api/jobs/{job_id}", headers=auth),
                     client.delete(f"/api/jobs/{job_id}/cancel", headers=auth),
                     client.post(f"/api/jobs/{job_id}/retry", headers=auth),
                     client.get(f"/api/sse/jobs/{job_id}", headers=auth)):
        if response.status_code == 404 and response.json["code"] == "NOT_FOUND":
            continue   # an id with a `/` in it is no route at all
        assert_error(response, 404, "JOB_NOT_FOUND")


@pytest.mark.parametrize("last_id", ["١٧٠٠٠٠٠٠٠٠٠٠٠-٠", "1700000000000-０", "1700000000000-0\u200b"])
def test_event_ids_must_be_ascii(client, auth, last_id):
    job_id = client.post("/api/jobs", json=GOOD, headers=auth).json["jobId"]
    as_query = client.get(f"/api/sse/jobs/{job_id}", query_string={"lastEventId": last_id}, headers=auth)
    assert_error(as_query, 400, "INVALID_REQUEST")
    # a header arrives as bytes, which the server reads as latin-1
    header = last_id.encode("utf-8").decode("latin-1")
    as_header = client.get(f"/api/sse/jobs/{job_id}", headers={**auth, "Last-Event-ID": header})
    assert_error(as_header, 400, "INVALID_REQUEST")


def test_a_job_cancelled_while_a_worker_takes_it_counts_once_and_cleans(client, auth, admin, worker_ctx, queue,
                                                                          redis_handle):
    """The worker has popped the job off the queue when its owner cancels it (still `waiting`
    then); the worker then starts it, sees the cancel flag and stops it. RQ holds the job in both
    its canceled and its failed (stopped) registry: one cancelled job all the same."""
    job_id = client.post("/api/jobs", json=GOOD, headers=auth).json["jobId"]
    worker = build_worker(worker_ctx, InProcessWorker)
    job, popped_from = Queue.dequeue_any([queue], None, connection=redis_handle.client, serializer=queue.serializer)
    assert client.delete(f"/api/jobs/{job_id}/cancel", headers=auth).status_code == 200
    worker.execute_job(job, popped_from)
    assert client.get(f"/api/jobs/{job_id}", headers=auth).json["status"] == "cancelled"

    stats = client.get("/api/queue/stats", headers=admin).json
    assert (stats["cancelled"], stats["failed"], stats["total"]) == (1, 0, 1)
    cleaned = client.post("/api/queue/clean", json={"status": "cancelled", "grace": 0}, headers=admin)
    assert cleaned.status_code == 200 and cleaned.json["removed"] == 1
    assert client.get(f"/api/jobs/{job_id}", headers=auth).status_code == 404
    stats = client.get("/api/queue/stats", headers=admin).json
    assert (stats["cancelled"], stats["total"]) == (0, 0)


def test_cleaning_every_state_with_nothing_to_clean_is_fine(client, admin):
    for status in ("completed", "failed", "cancelled"):
        r = client.post("/api/queue/clean", json={"status": status, "grace": 0}, headers=admin)
        assert r.status_code == 200 and r.json["removed"] == 0
