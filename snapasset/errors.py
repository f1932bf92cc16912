"""Errors: the API's JSON error shape (SPEC §4), the job service's refusals (domain errors, which
init_app maps to that shape in one table) and the coded failures of a job.

Every code the wire contract knows is defined here once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from werkzeug.exceptions import HTTPException

from snapasset.redaction import clean_message

__all__ = [
    "APIError", "ErrorCode", "DomainError", "JobNotFound", "JobNotRetryable", "JobNotCancellable", "JobNotDeletable",
    "JobLimitExceeded", "IdempotencyConflict", "JobFailure", "ContentPolicyViolation", "ProviderError",
    "ProviderRateLimited", "InvalidImage", "StorageFailure", "JobTimedOut", "JobCancelled",
    "error_body", "init_app", "utcnow_iso",
]

log = logging.getLogger(__name__)


class ErrorCode:
    INVALID_REQUEST = "INVALID_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    JOB_NOT_RETRYABLE = "JOB_NOT_RETRYABLE"
    JOB_NOT_CANCELLABLE = "JOB_NOT_CANCELLABLE"
    JOB_NOT_DELETABLE = "JOB_NOT_DELETABLE"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    JOB_LIMIT_EXCEEDED = "JOB_LIMIT_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    # failed-job codes
    CONTENT_POLICY_VIOLATION = "CONTENT_POLICY_VIOLATION"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    PROVIDER_RATE_LIMITED = "PROVIDER_RATE_LIMITED"
    INVALID_IMAGE = "INVALID_IMAGE"
    STORAGE_ERROR = "STORAGE_ERROR"
    TIMEOUT = "TIMEOUT"
    WORKER_LOST = "WORKER_LOST"
    JOB_FAILURES = (CONTENT_POLICY_VIOLATION, PROVIDER_ERROR, PROVIDER_RATE_LIMITED, INVALID_IMAGE,
                    STORAGE_ERROR, TIMEOUT, WORKER_LOST, INTERNAL_ERROR)   # what a failed job carries


# The short human title for each HTTP status, as in the spec's example ("Invalid request").
_TITLES = {
    400: "Invalid request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 413: "Payload too large",
    429: "Too many requests", 500: "Internal server error", 503: "Service unavailable",
}


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class APIError(HTTPException):
    """An error answered to an API client in the shape of SPEC §4."""

    def __init__(self, status: int, code: str, message: str, *, details: dict | None = None,
                 headers: dict | None = None, extra: dict | None = None):
        super().__init__(description=message)
        self.code = status  # werkzeug's name for the HTTP status
        self.error_code = code
        self.message = message
        self.details = details
        self.extra_headers = headers or {}
        self.extra = extra or {}

    def get_body(self, environ=None, scope=None) -> str:  # pragma: no cover - we answer via to_response
        import json
        return json.dumps(self.body())

    def body(self) -> dict:
        return error_body(self.code, self.error_code, self.message, self.details, **self.extra)


def error_body(status: int, code: str, message: str, details: dict | None = None, **extra) -> dict:
    body = {"error": _TITLES.get(status, "Error"), "message": message, "code": code,
            "timestamp": utcnow_iso()}
    if details:
        body["details"] = details
    body.update(extra)
    return body


# Standard HTTP errors raised by werkzeug/flask (unknown route, wrong method, ...) → spec codes.
_HTTP_CODES = {400: ErrorCode.INVALID_REQUEST, 401: ErrorCode.UNAUTHORIZED, 403: ErrorCode.FORBIDDEN,
               404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED,
               413: ErrorCode.PAYLOAD_TOO_LARGE, 429: ErrorCode.RATE_LIMIT_EXCEEDED,
               503: ErrorCode.SERVICE_UNAVAILABLE}


class DomainError(Exception):
    """A request the job service refuses, in its own terms (no HTTP); `retry_after`: seconds
    after which the same request may succeed."""

    def __init__(self, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class JobNotFound(DomainError):
    def __init__(self):
        super().__init__("Job not found")


class JobNotRetryable(DomainError):
    pass


class JobNotCancellable(DomainError):
    pass


class JobNotDeletable(DomainError):
    pass


class JobLimitExceeded(DomainError):
    """All of the user's unfinished-job slots are taken."""


class IdempotencyConflict(DomainError):
    pass


# Each domain error as the API answers it: (status, code, whether retryAfter is in the body too).
_DOMAIN_ERRORS = {
    JobNotFound: (404, ErrorCode.JOB_NOT_FOUND, False),
    JobNotRetryable: (409, ErrorCode.JOB_NOT_RETRYABLE, False),
    JobNotCancellable: (409, ErrorCode.JOB_NOT_CANCELLABLE, False),
    JobNotDeletable: (409, ErrorCode.JOB_NOT_DELETABLE, False),
    IdempotencyConflict: (409, ErrorCode.IDEMPOTENCY_CONFLICT, False),
    JobLimitExceeded: (429, ErrorCode.JOB_LIMIT_EXCEEDED, True),
}


def api_error_for(exc: DomainError) -> APIError:
    status, code, retry_after_in_body = _DOMAIN_ERRORS[type(exc)]
    headers = extra = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
        if retry_after_in_body:
            extra = {"retryAfter": exc.retry_after}
    return APIError(status, code, exc.message, headers=headers, extra=extra)


def _kilobytes(size: int) -> str:
    return f"{size / 1024:g} kB" if size < 1024 * 1024 else f"{size / 1024 / 1024:g} MB"


def init_app(app) -> None:
    """Answer every error of the app, ours and werkzeug's, with the JSON shape."""
    from flask import jsonify, request
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    def respond(status: int, body: dict, headers: dict | None = None):
        response = jsonify(body)
        response.status_code = status
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    @app.errorhandler(APIError)
    def handle_api_error(exc: APIError):
        return respond(exc.code, exc.body(), exc.extra_headers)

    @app.errorhandler(DomainError)
    def handle_domain_error(exc: DomainError):
        return handle_api_error(api_error_for(exc))

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status, ErrorCode.INTERNAL_ERROR if status >= 500 else ErrorCode.INVALID_REQUEST)
        message = {404: "The requested URL was not found",
                   405: "The method is not allowed for the requested URL"}.get(status, exc.description or "")
        details = None
        if status == 413:
            limit = request.max_content_length   # the app's, or a route's own (the create body)
            message = f"The request body is larger than this API accepts ({_kilobytes(limit)})"
            details = {"body": f"must be at most {limit} bytes"}
        headers = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        return respond(status, error_body(status, code, message, details), headers)

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def handle_redis_down(exc):
        log.error("redis unreachable: %s", exc)
        return respond(503, error_body(503, ErrorCode.SERVICE_UNAVAILABLE,
                                       "The job store is unreachable; try again shortly"),
                       {"Retry-After": "5"})

    @app.errorhandler(StorageFailure)
    def handle_storage_down(exc: StorageFailure):
        log.error("storage failed: %s", exc.message)
        return respond(503, error_body(503, ErrorCode.SERVICE_UNAVAILABLE,
                                       "The image storage is unreachable; try again shortly"),
                       {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        log.exception("unhandled error")
        return respond(500, error_body(500, ErrorCode.INTERNAL_ERROR, "An internal error occurred"))


class JobFailure(Exception):
    """A known reason a generation failed, with the code a client sees.

    ``retryable`` says whether another attempt could succeed; a non-retryable failure
    ends the job at once. The message is what the job's owner reads: whatever text it was built
    from (a provider's answer, an exception), it is cleaned of secrets and Python reprs here.
    """

    code = ErrorCode.INTERNAL_ERROR
    retryable = True

    def __init__(self, message: str, *, retryable: bool | None = None, retry_after: float | None = None):
        message = clean_message(message)
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message}


class ContentPolicyViolation(JobFailure):
    code = ErrorCode.CONTENT_POLICY_VIOLATION
    retryable = False


class ProviderError(JobFailure):
    code = ErrorCode.PROVIDER_ERROR


class ProviderRateLimited(JobFailure):
    code = ErrorCode.PROVIDER_RATE_LIMITED


class InvalidImage(JobFailure):
    code = ErrorCode.INVALID_IMAGE
    retryable = False


class StorageFailure(JobFailure):
    code = ErrorCode.STORAGE_ERROR


class JobTimedOut(JobFailure):
    code = ErrorCode.TIMEOUT


class JobCancelled(Exception):
    """Raised inside a running job when its owner cancelled it; not a failure."""
