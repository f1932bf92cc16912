"""Typed errors from error answers, and the retries a user sees (or does not)."""

from __future__ import annotations

import pytest
import requests

from sdk_fakes import BASE
from snapasset_sdk import (
    APIConnectionError, AuthError, ConflictError, ForbiddenError, NotFoundError,
    RateLimitError, ServerError, SnapAssetError, ValidationError,
)

JOB = f"{BASE}/api/jobs/gen-1-abcdefghij"


def error_body(status_title, message, code, details=None, **extra):
    return {"error": status_title, "message": message, "code": code,
            "timestamp": "2024-01-24T10:00:00Z", "details": details, **extra}


@pytest.mark.parametrize("status, code, cls", [
    (400, "INVALID_REQUEST", ValidationError),
    (401, "UNAUTHORIZED", AuthError),
    (403, "FORBIDDEN", ForbiddenError),
    (404, "JOB_NOT_FOUND", NotFoundError),
    (409, "JOB_NOT_CANCELLABLE", ConflictError),
    (413, "PAYLOAD_TOO_LARGE", ValidationError),
    (429, "RATE_LIMIT_EXCEEDED", RateLimitError),
    (500, "INTERNAL_ERROR", ServerError),
    (405, "METHOD_NOT_ALLOWED", SnapAssetError),
])
def test_each_status_raises_its_class(mocked, status, code, cls):
    mocked.get(JOB, status=status, json=error_body("Oops", "Something specific", code))
    client = _client(max_retries=0)
    with pytest.raises(cls) as caught:
        client.get_job("gen-1-abcdefghij")
    error = caught.value
    assert type(error) is cls
    assert (error.status, error.code, error.message) == (status, code, "Something specific")
    assert error.response.status_code == status
    assert str(error) == f"Something specific ({status} {code})"


def test_validation_error_names_each_field(client, mocked):
    mocked.post(f"{BASE}/api/jobs", status=400, json=error_body(
        "Invalid request", "Missing required field: prompt", "INVALID_REQUEST",
        {"prompt": "is required"}))
    with pytest.raises(ValidationError) as caught:
        client.create_job("", ["og-image"])
    assert caught.value.details == {"prompt": "is required"}


def test_a_body_that_is_not_json_still_makes_a_readable_error(mocked):
    mocked.get(JOB, status=502, body="<html><h1>502 Bad Gateway</h1></html>",
               content_type="text/html")
    with pytest.raises(ServerError) as caught:
        _client(max_retries=0).get_job("gen-1-abcdefghij")
    assert caught.value.status == 502 and caught.value.code is None
    assert "502 Bad Gateway" in str(caught.value)


def test_an_empty_error_body(mocked):
    mocked.delete(f"{JOB}/cancel", status=404, body="")
    with pytest.raises(NotFoundError, match="HTTP 404 Not Found"):
        _client().cancel_job("gen-1-abcdefghij")


def test_every_error_is_a_snapasset_error():
    for cls in (AuthError, ForbiddenError, NotFoundError, ValidationError, ConflictError,
                RateLimitError, ServerError, APIConnectionError):
        assert issubclass(cls, SnapAssetError)
    assert issubclass(APIConnectionError, ConnectionError)


# -- retries --------------------------------------------------------------


def _client(**options):
    from snapasset_sdk import SnapAssetClient
    return SnapAssetClient(BASE, token="t", sleep=options.pop("sleep", lambda _: None),
                           **options)


def rate_limited(retry_after="2", body_retry_after=None):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    extra = {"retryAfter": body_retry_after} if body_retry_after is not None else {}
    return dict(status=429, headers=headers, json=error_body(
        "Too many requests", "Rate limit exceeded", "RATE_LIMIT_EXCEEDED", **extra))


def test_429_is_retried_after_retry_after(client, mocked, sleeps):
    mocked.get(JOB, **rate_limited("2"))
    mocked.get(JOB, **rate_limited("5"))
    mocked.get(JOB, json={"jobId": "gen-1-abcdefghij", "status": "active", "progress": 40})
    assert client.get_job("gen-1-abcdefghij").progress == 40
    assert sleeps == [2.0, 5.0]


def test_429_gives_up_after_max_retries_with_retry_after(client, mocked, sleeps):
    for _ in range(4):
        mocked.get(JOB, **rate_limited("3"))
    with pytest.raises(RateLimitError) as caught:
        client.get_job("gen-1-abcdefghij")
    assert caught.value.retry_after == 3.0
    assert sleeps == [3.0, 3.0, 3.0] and len(mocked.calls) == 4


def test_429_retry_after_from_the_body_when_the_header_is_missing(mocked):
    mocked.get(JOB, **rate_limited(None, body_retry_after=7))
    with pytest.raises(RateLimitError) as caught:
        _client(max_retries=0).get_job("gen-1-abcdefghij")
    assert caught.value.retry_after == 7.0


def test_429_asking_for_a_long_wait_is_raised_at_once(client, mocked, sleeps):
    mocked.post(f"{BASE}/api/jobs", **rate_limited("1800"))
    with pytest.raises(RateLimitError) as caught:
        client.create_job("A beautiful sunset", ["og-image"])
    assert caught.value.retry_after == 1800.0 and sleeps == []


def test_429_on_a_post_without_idempotency_key_is_retried(client, mocked, sleeps):
    mocked.post(f"{JOB}/retry", **rate_limited("1"))
    mocked.post(f"{JOB}/retry", json={"jobId": "gen-1-abcdefghij", "status": "retrying"})
    assert client.retry_job("gen-1-abcdefghij").status == "retrying"
    assert sleeps == [1.0]


def test_503_on_a_post_without_idempotency_key_is_not_retried(client, mocked, sleeps):
    mocked.post(f"{JOB}/retry", status=503, json=error_body(
        "Service unavailable", "Redis unreachable", "SERVICE_UNAVAILABLE"))
    with pytest.raises(ServerError):
        client.retry_job("gen-1-abcdefghij")
    assert len(mocked.calls) == 1 and sleeps == []


def test_503_on_create_job_is_retried_with_the_same_idempotency_key(client, mocked, sleeps):
    mocked.post(f"{BASE}/api/jobs", status=503, json=error_body(
        "Service unavailable", "Redis unreachable", "SERVICE_UNAVAILABLE"))
    mocked.post(f"{BASE}/api/jobs", status=200, json={"jobId": "gen-1-abcdefghij",
                                                      "status": "queued"})
    assert client.create_job("A beautiful sunset", ["og-image"]).job_id == "gen-1-abcdefghij"
    keys = {call.request.headers["Idempotency-Key"] for call in mocked.calls}
    assert len(keys) == 1 and len(sleeps) == 1


def test_create_job_without_retries_is_sent_once(mocked):
    mocked.post(f"{BASE}/api/jobs", status=504, body="")
    with pytest.raises(ServerError):
        _client(max_retries=0).create_job("A beautiful sunset", ["og-image"])
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_on_get_are_retried_with_backoff(client, mocked, sleeps, status):
    mocked.get(JOB, status=status, body="")
    mocked.get(JOB, status=status, body="")
    mocked.get(JOB, json={"jobId": "gen-1-abcdefghij", "status": "waiting"})
    assert client.get_job("gen-1-abcdefghij").status == "waiting"
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_503_retry_after_is_honoured(client, mocked, sleeps):
    mocked.get(JOB, status=503, headers={"Retry-After": "4"}, body="")
    mocked.get(JOB, json={"jobId": "gen-1-abcdefghij", "status": "waiting"})
    client.get_job("gen-1-abcdefghij")
    assert sleeps == [4.0]


def test_500_is_not_retried(client, mocked, sleeps):
    mocked.get(JOB, status=500, json=error_body("Internal server error", "Internal error",
                                                "INTERNAL_ERROR"))
    with pytest.raises(ServerError):
        client.get_job("gen-1-abcdefghij")
    assert sleeps == []


def test_connection_errors_on_delete_are_retried_then_raised(client, mocked, sleeps):
    for _ in range(4):
        mocked.delete(f"{JOB}/cancel", body=requests.ConnectionError("refused"))
    with pytest.raises(APIConnectionError, match="refused"):
        client.cancel_job("gen-1-abcdefghij")
    assert len(mocked.calls) == 4 and len(sleeps) == 3


def test_connection_error_on_post_without_key_is_not_retried(client, mocked, sleeps):
    mocked.post(f"{BASE}/api/queue/clean", body=requests.ConnectionError("reset"))
    with pytest.raises(APIConnectionError):
        client.clean_queue()
    assert len(mocked.calls) == 1 and sleeps == []


def test_pause_is_safe_to_repeat_and_so_is_retried(client, mocked, sleeps):
    mocked.post(f"{BASE}/api/queue/pause", status=503, body="")
    mocked.post(f"{BASE}/api/queue/pause", json={"paused": True})
    assert client.pause_queue().paused is True
    assert len(sleeps) == 1


def test_auth_errors_are_never_retried(client, mocked, sleeps):
    mocked.get(JOB, status=401, json=error_body("Unauthorized", "Token expired",
                                                "UNAUTHORIZED"))
    with pytest.raises(AuthError, match="Token expired"):
        client.get_job("gen-1-abcdefghij")
    assert len(mocked.calls) == 1 and sleeps == []
