"""Exceptions raised by the SDK: one base class, one subclass per kind of failure.

HTTP errors are built from the API's error body (SPEC §4:
``{"error", "message", "code", "details"}``); a body that is not JSON still
gives a readable message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .retries import parse_retry_after

if TYPE_CHECKING:
    import requests

    from .models import Job

__all__ = [
    "SnapAssetError", "AuthError", "ForbiddenError", "NotFoundError", "ValidationError",
    "ConflictError", "RateLimitError", "ServerError", "JobFailedError", "JobCancelledError",
    "WaitTimeoutError", "APIConnectionError", "error_from_response",
]

_BODY_SNIPPET = 200


class SnapAssetError(Exception):
    """Base of every error the SDK raises.

    ``status`` is the HTTP status (None when no response was received), ``code``
    the API's machine-readable code (``JOB_NOT_FOUND``, ...), ``response`` the
    ``requests.Response`` and ``details`` the per-field details of a 400.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 response: requests.Response | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.response = response
        self.details = details

    def __str__(self) -> str:
        label = " ".join(str(part) for part in (self.status, self.code) if part)
        return f"{self.message} ({label})" if label else self.message


class AuthError(SnapAssetError):
    """401: missing, expired or invalid token / API key."""


class ForbiddenError(SnapAssetError):
    """403: authenticated, but not allowed (e.g. admin endpoints)."""


class NotFoundError(SnapAssetError):
    """404: unknown path, or a job that does not exist or is not yours."""


class ValidationError(SnapAssetError):
    """400 or 413: the request was refused; ``details`` names each bad field."""


class ConflictError(SnapAssetError):
    """409: job not retryable / not cancellable, or an idempotency-key conflict."""


class RateLimitError(SnapAssetError):
    """429: ``retry_after`` is how many seconds the server asked us to wait (or None)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(SnapAssetError):
    """5xx: the server or something behind it (Redis, storage) failed."""


class APIConnectionError(SnapAssetError, ConnectionError):
    """No usable response: connection refused or reset, DNS failure, timeout."""


class JobFailedError(SnapAssetError):
    """The job ended ``failed``; ``code`` is its error code (``CONTENT_POLICY_VIOLATION``, ...)."""

    def __init__(self, message: str, *, code: str | None = None, job: Job | None = None,
                 **kwargs: Any):
        super().__init__(message, code=code, **kwargs)
        self.job = job


class JobCancelledError(SnapAssetError):
    """The job was cancelled before it finished."""

    def __init__(self, message: str, *, job: Job | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.job = job


class WaitTimeoutError(SnapAssetError, TimeoutError):
    """``wait()`` gave up: the job did not finish within the timeout. The job keeps running."""


_BY_STATUS: dict[int, type[SnapAssetError]] = {
    400: ValidationError, 401: AuthError, 403: ForbiddenError, 404: NotFoundError,
    409: ConflictError, 413: ValidationError, 429: RateLimitError,
}


def _error_class(status: int) -> type[SnapAssetError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, SnapAssetError)


def error_from_response(response: requests.Response) -> SnapAssetError:
    """The exception that describes this error response."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or body.get("error")
    if not message:
        text = (response.text or "").strip()[:_BODY_SNIPPET]
        message = f"HTTP {status} {response.reason or ''}".strip() + (f": {text}" if text else "")
    kwargs: dict[str, Any] = dict(status=status, code=body.get("code"), response=response,
                                  details=body.get("details"))
    cls = _error_class(status)
    if cls is RateLimitError:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = parse_retry_after(body.get("retryAfter"))
        return RateLimitError(str(message), retry_after=retry_after, **kwargs)
    return cls(str(message), **kwargs)
