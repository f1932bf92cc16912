"""stream_job / stream_jobs / wait over a mocked event stream: typed events,
reconnects with Last-Event-ID, terminal events, and what wait() returns or raises."""

from __future__ import annotations

import pytest

from sdk_fakes import BASE, arriving, sse
from snapasset_sdk import (
    APIConnectionError, AuthError, Event, JobCancelledError, JobFailedError, NotFoundError,
    ServerError, WaitTimeoutError,
)
from snapasset_sdk.client import SnapAssetClient

JOB_ID = "gen-1700000000-abc123def0"
STREAM = f"{BASE}/api/sse/jobs/{JOB_ID}"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

IMAGE = {"platform": "Instagram Post", "platformId": "instagram-post",
         "url": "https://cdn.test/1.jpg", "width": 1080, "height": 1080, "size": 245000,
         "format": "jpeg", "blurhash": "LKO2?U%2Tw=w"}
RESULT = {"success": True, "generationId": "g-1", "images": [IMAGE], "provider": "local",
          "model": "local-v1"}

CONNECTED = sse("1-0", {"type": "connected", "jobId": JOB_ID, "status": "waiting",
                        "progress": 0})
P10 = sse("2-0", {"type": "progress", "jobId": JOB_ID, "progress": 10, "stage": "generating",
                  "message": "Generating image with local-v1..."})
P60 = sse("3-0", {"type": "progress", "jobId": JOB_ID, "progress": 60, "stage": "processing",
                  "message": "Processing Instagram Post...", "preview": "data:image/png;base64,AA"})
IMG = sse("4-0", {"type": "image", "jobId": JOB_ID, "image": IMAGE})
DONE = sse("5-0", {"type": "done", "jobId": JOB_ID, "result": RESULT})


def add_stream(mocked, body, status=200):
    mocked.get(STREAM, body=body, status=status, headers=SSE_HEADERS,
               content_type="text/event-stream")


def summary(events):
    return [(e.id, e.type, e.progress) for e in events]


def test_events_are_typed(client, mocked):
    add_stream(mocked, ": ping\n\nretry: 2000\n" + CONNECTED + P10 + P60 + IMG + DONE)
    events = list(client.stream_job(JOB_ID))
    assert all(isinstance(e, Event) for e in events)
    assert [e.type for e in events] == ["connected", "progress", "progress", "image", "done"]
    connected, p10, p60, image, done = events
    assert (connected.status, connected.progress, connected.job_id) == ("waiting", 0, JOB_ID)
    assert (p10.id, p10.stage, p10.message) == ("2-0", "generating",
                                                "Generating image with local-v1...")
    assert p60.preview == "data:image/png;base64,AA"
    assert image.image.platform_id == "instagram-post" and image.image.width == 1080
    assert done.result.images[0].url == "https://cdn.test/1.jpg" and done.is_terminal
    request = mocked.calls[0].request
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert "Last-Event-ID" not in request.headers


def test_events_split_across_network_reads(client, mocked):
    wire = (CONNECTED + P10 + DONE).replace("\n", "\r\n").encode()
    add_stream(mocked, arriving(*(wire[i:i + 7] for i in range(0, len(wire), 7))))
    assert summary(client.stream_job(JOB_ID)) == [("1-0", "connected", 0),
                                                  ("2-0", "progress", 10), ("5-0", "done", None)]


def test_events_of_a_chunked_response(client, mocked):
    mocked.get(STREAM, body=arriving(CONNECTED, P10[:9], P10[9:] + DONE),
               headers={**SSE_HEADERS, "Transfer-Encoding": "chunked"},
               content_type="text/event-stream")
    assert [e.type for e in client.stream_job(JOB_ID)] == ["connected", "progress", "done"]


def test_a_dropped_connection_is_resumed_with_last_event_id(client, mocked, sleeps):
    # First connection: breaks in the middle of the third event.
    add_stream(mocked, arriving(CONNECTED, P10, P60[:20], drop=True))
    # Second: the server starts again with "connected", then resends 2-0 (which we
    # already have) and everything after it.
    add_stream(mocked, arriving(sse("9-0", {"type": "connected", "jobId": JOB_ID,
                                            "status": "active", "progress": 10}),
                                P10, P60, IMG, DONE))
    events = list(client.stream_job(JOB_ID))
    assert summary(events) == [("1-0", "connected", 0), ("2-0", "progress", 10),
                               ("3-0", "progress", 60), ("4-0", "image", None),
                               ("5-0", "done", None)]
    assert mocked.calls[1].request.headers["Last-Event-ID"] == "2-0"
    assert sleeps == [1.0]


def test_a_stream_that_ends_without_a_terminal_event_is_reopened(client, mocked, sleeps):
    add_stream(mocked, "retry: 250\n" + CONNECTED + P10)
    add_stream(mocked, P60 + DONE)
    assert [e.id for e in client.stream_job(JOB_ID)] == ["1-0", "2-0", "3-0", "5-0"]
    assert mocked.calls[1].request.headers["Last-Event-ID"] == "2-0"
    assert sleeps == [0.25]  # the server's retry: hint


def test_an_event_missing_its_blank_line_when_the_stream_breaks_is_not_lost(client, mocked):
    add_stream(mocked, CONNECTED + P10 + P60.rstrip("\n") + "\n")
    add_stream(mocked, P60 + DONE)
    assert [e.id for e in client.stream_job(JOB_ID)] == ["1-0", "2-0", "3-0", "5-0"]
    # 3-0 was never dispatched, so we resume from the last event actually delivered.
    assert mocked.calls[1].request.headers["Last-Event-ID"] == "2-0"


def test_reconnects_back_off_and_give_up_after_max_retries(mocked, sleeps):
    client = SnapAssetClient(BASE, token="t", max_retries=2, sleep=sleeps.append)
    add_stream(mocked, CONNECTED + P10)
    for _ in range(3):
        add_stream(mocked, arriving(drop=True))
    with pytest.raises(APIConnectionError):
        list(client.stream_job(JOB_ID))
    assert sleeps == [1.0, 1.0, 2.0]
    assert all(c.request.headers["Last-Event-ID"] == "2-0" for c in mocked.calls[1:])


def test_a_server_error_on_reconnect_is_retried(client, mocked, sleeps):
    add_stream(mocked, CONNECTED + P10)
    mocked.get(STREAM, status=503, headers={"Retry-After": "3"}, json={
        "error": "Service unavailable", "message": "Redis unreachable",
        "code": "SERVICE_UNAVAILABLE"})
    add_stream(mocked, DONE)
    assert [e.id for e in client.stream_job(JOB_ID)] == ["1-0", "2-0", "5-0"]
    assert sleeps == [1.0, 3.0]


def test_204_on_reconnect_means_the_job_ended(client, mocked):
    add_stream(mocked, CONNECTED + P10)
    mocked.get(STREAM, status=204)
    assert [e.id for e in client.stream_job(JOB_ID)] == ["1-0", "2-0"]


def test_a_failed_event_that_will_retry_does_not_end_the_stream(client, mocked):
    retrying = sse("2-1", {"type": "failed", "jobId": JOB_ID, "willRetry": True,
                           "error": {"code": "PROVIDER_ERROR", "message": "upstream 500"}})
    add_stream(mocked, CONNECTED + P10 + retrying + P60 + DONE)
    events = list(client.stream_job(JOB_ID))
    assert [e.type for e in events] == ["connected", "progress", "failed", "progress", "done"]
    assert events[2].will_retry is True and events[2].error.code == "PROVIDER_ERROR"


@pytest.mark.parametrize("status, cls", [(401, AuthError), (404, NotFoundError),
                                         (500, ServerError)])
def test_errors_opening_the_stream_are_raised(client, mocked, sleeps, status, cls):
    mocked.get(STREAM, status=status, json={"error": "x", "message": "nope", "code": "X"})
    with pytest.raises(cls):
        list(client.stream_job(JOB_ID))
    assert sleeps == []


def test_closing_the_iterator_early_makes_no_further_requests(client, mocked):
    add_stream(mocked, CONNECTED + P10 + DONE)
    events = client.stream_job(JOB_ID)
    assert next(events).type == "connected"
    events.close()
    assert len(mocked.calls) == 1


def test_stream_jobs_follows_all_jobs_past_terminal_events(client, mocked):
    other = sse("6-0", {"type": "progress", "jobId": "gen-2", "progress": 30})
    mocked.get(f"{BASE}/api/sse/jobs", body=CONNECTED + DONE + other,
               content_type="text/event-stream")
    mocked.get(f"{BASE}/api/sse/jobs", status=204)
    events = list(client.stream_jobs())
    assert [(e.type, e.job_id) for e in events] == [
        ("connected", JOB_ID), ("done", JOB_ID), ("progress", "gen-2")]
    assert mocked.calls[1].request.headers["Last-Event-ID"] == "6-0"


# -- wait() ----------------------------------------------------------------


def test_wait_returns_the_result_and_reports_progress(client, mocked):
    add_stream(mocked, CONNECTED + P10 + P60 + IMG + DONE)
    seen = []
    result = client.wait(JOB_ID, on_progress=seen.append)
    assert result.success and result.images[0].platform_id == "instagram-post"
    assert [e.type for e in seen] == ["connected", "progress", "progress", "image"]


def test_wait_raises_job_failed_with_its_code(client, mocked):
    failed = sse("3-0", {"type": "failed", "jobId": JOB_ID, "willRetry": False, "error": {
        "code": "CONTENT_POLICY_VIOLATION", "message": "The prompt was refused"}})
    add_stream(mocked, CONNECTED + P10 + failed)
    mocked.get(f"{BASE}/api/jobs/{JOB_ID}", json={
        "jobId": JOB_ID, "status": "failed", "attemptsMade": 1,
        "failedReason": "The prompt was refused",
        "error": {"code": "CONTENT_POLICY_VIOLATION", "message": "The prompt was refused"}})
    with pytest.raises(JobFailedError) as caught:
        client.wait(JOB_ID)
    assert caught.value.code == "CONTENT_POLICY_VIOLATION"
    assert caught.value.message == "The prompt was refused"
    assert caught.value.job.attempts_made == 1


def test_wait_raises_job_cancelled(client, mocked):
    add_stream(mocked, CONNECTED + sse("2-0", {"type": "cancelled", "jobId": JOB_ID}))
    mocked.get(f"{BASE}/api/jobs/{JOB_ID}", json={"jobId": JOB_ID, "status": "cancelled"})
    with pytest.raises(JobCancelledError) as caught:
        client.wait(JOB_ID)
    assert caught.value.job.status == "cancelled"


def test_wait_on_a_job_that_already_finished_reads_the_job(client, mocked):
    mocked.get(STREAM, status=204)
    mocked.get(f"{BASE}/api/jobs/{JOB_ID}", json={"jobId": JOB_ID, "status": "completed",
                                                   "result": RESULT})
    assert client.wait(JOB_ID).generation_id == "g-1"


def test_wait_on_a_job_that_already_failed_raises(client, mocked):
    mocked.get(STREAM, status=204)
    mocked.get(f"{BASE}/api/jobs/{JOB_ID}", json={
        "jobId": JOB_ID, "status": "failed", "failedReason": "Storage down",
        "error": {"code": "STORAGE_ERROR", "message": "Storage down"}})
    with pytest.raises(JobFailedError) as caught:
        client.wait(JOB_ID)
    assert caught.value.code == "STORAGE_ERROR"


def test_wait_survives_a_dropped_connection(client, mocked):
    add_stream(mocked, arriving(CONNECTED, P10, drop=True))
    add_stream(mocked, P10 + P60 + DONE)
    seen = []
    assert client.wait(JOB_ID, on_progress=seen.append).success
    assert [e.id for e in seen] == ["1-0", "2-0", "3-0"]


def test_wait_times_out(mocked, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("snapasset_sdk.client.time.monotonic", lambda: clock[0])

    def sleep(seconds):
        clock[0] += seconds

    client = SnapAssetClient(BASE, token="t", sleep=sleep)
    # A job stuck in the queue: the server keeps closing the stream after a heartbeat.
    add_stream(mocked, CONNECTED + P10)
    for _ in range(3):
        add_stream(mocked, ": ping\n\n")
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait(JOB_ID, timeout=2.5)
    assert isinstance(caught.value, TimeoutError)
    assert clock[0] == pytest.approx(1002.5)


@pytest.mark.parametrize("headers", [{}, {"Transfer-Encoding": "chunked"}],
                         ids=["close-delimited", "chunked"])
def test_each_event_is_delivered_as_soon_as_it_arrives(client, mocked, headers):
    body = arriving(CONNECTED, P10, P60, DONE)
    mocked.get(STREAM, body=body, headers={**SSE_HEADERS, **headers},
               content_type="text/event-stream")
    events = client.stream_job(JOB_ID)
    assert next(events).type == "connected"
    assert len(body.raw._pieces) == 3  # nothing read beyond the first event yet
    assert [e.type for e in events] == ["progress", "progress", "done"]
