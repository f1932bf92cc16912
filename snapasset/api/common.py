"""What every blueprint shares: the app's services, the caller, the JSON body, absolute URLs."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import current_app, g, request

from snapasset.auth import Authenticator, Principal, unauthorized
from snapasset.config import Settings
from snapasset.connections import RedisHandle
from snapasset.errors import APIError, ErrorCode
from snapasset.jobs import JobService

__all__ = ["Services", "services", "principal", "require_user", "json_body", "absolute_url",
           "absolutize_result", "EXTENSION"]

EXTENSION = "snapasset"


@dataclass
class Services:
    settings: Settings
    redis: RedisHandle
    jobs: JobService
    auth: Authenticator


def services() -> Services:
    return current_app.extensions[EXTENSION]


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if header:
        raise unauthorized("The Authorization header must be 'Bearer <token>'")
    return None


def principal(*, allow_query_token: bool = False, job_id: str | None = None) -> Principal:
    """The authenticated caller, or 401. Cached on the request."""
    cached = g.get("principal")
    if cached is not None:
        return cached
    auth = services().auth
    token = _bearer()
    found: Principal | None = None
    if token:
        found = auth.verify_access_token(token)
    elif allow_query_token and request.args.get("access_token"):
        found = auth.verify_access_token(request.args["access_token"])
    elif allow_query_token and job_id and request.args.get("token"):
        found = auth.verify_stream_token(request.args["token"], job_id)
    if found is None:
        raise unauthorized()
    g.principal = found
    return found


def require_user(body_user_id: str | None = None) -> str:
    """The user the request acts for; a JWT user may only act for themself."""
    caller = principal()
    if body_user_id is not None and body_user_id != caller.user_id:
        raise APIError(403, ErrorCode.FORBIDDEN, "userId must match the authenticated user")
    if not caller.user_id:
        raise unauthorized()
    return caller.user_id


def json_body():
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise APIError(400, ErrorCode.INVALID_REQUEST, "The request body must be JSON",
                       details={"body": "is required"})
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise APIError(400, ErrorCode.INVALID_REQUEST, "Content-Type must be application/json",
                       details={"Content-Type": "must be application/json"})
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, ErrorCode.INVALID_REQUEST, f"Malformed JSON: {getattr(exc, 'msg', 'bad encoding')}",
                       details={"body": "is not valid JSON"}) from None


def absolute_url(url: str) -> str:
    if not url.startswith("/"):
        return url
    base = services().settings.public_url or request.host_url.rstrip("/")
    return base + url


def absolutize_result(result: dict | None) -> dict | None:
    """Local storage hands out /media/... paths; clients get absolute URLs."""
    if not result or not isinstance(result.get("images"), list):
        return result
    return {**result, "images": [absolutize_image(image) for image in result["images"]]}


def absolutize_image(image: dict) -> dict:
    return {**image, "url": absolute_url(image["url"])} if isinstance(image.get("url"), str) else image
