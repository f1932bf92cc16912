"""What every blueprint shares: the app's services, the caller, the JSON body, absolute URLs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import current_app, g, request
from flask.json.provider import DefaultJSONProvider

from snapasset.auth import Authenticator, Principal, forbidden, unauthorized
from snapasset.config import Settings
from snapasset.connections import RedisHandle
from snapasset.errors import APIError, ErrorCode
from snapasset.jobs import JobService
from snapasset.queueadmin import QueueAdmin
from snapasset.stores import Stores

__all__ = ["Services", "services", "principal", "require_user", "require_admin", "caller_identity",
           "json_body", "absolute_url", "absolutize_result", "EXTENSION", "API_KEY_HEADER",
           "StrictJSONProvider", "MAX_JSON_DEPTH"]

EXTENSION = "snapasset"
API_KEY_HEADER = "X-API-Key"
USER_ID_MAX = 128
USER_ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._@-]{{0,{USER_ID_MAX - 1}}}")
# No request of this API nests deeper than 4 levels; 32 leaves room to spare.
MAX_JSON_DEPTH = 32


def _json_problem(value) -> tuple[str, str] | None:
    """(field, problem) for the first thing in a parsed body the API never takes: nesting deeper
    than MAX_JSON_DEPTH, or a string (key or value) that is not valid Unicode text (JSON's
    `\\ud800` escape yields a lone surrogate, which no UTF-8 encoder, database or model takes).
    Walks with its own stack: a deep body must not exhaust Python's recursion here either."""
    stack = [(value, "body", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:   # a bad key is named as `\udc00`, never echoed as it came
                return (path.encode("utf-8", "backslashreplace").decode(),
                        "must be valid Unicode text (it holds an unpaired surrogate)")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= MAX_JSON_DEPTH:
            return "body", f"must nest at most {MAX_JSON_DEPTH} levels deep"
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in pairs:
            child_path = str(key) if path == "body" else f"{path}.{key}"
            stack.append((child, child_path, depth + 1))
            if isinstance(key, str):
                stack.append((key, child_path, depth + 1))
    return None


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing (400) what the API never takes: bodies nested deeper than
    MAX_JSON_DEPTH and strings that are not valid Unicode. Every JSON body the app reads (json_body,
    request.get_json) goes through here."""

    def loads(self, s, **kwargs):
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:   # thousands of `[`: far past any limit of ours
            value, problem = None, ("body", f"must nest at most {MAX_JSON_DEPTH} levels deep")
        else:
            problem = _json_problem(value)
        if problem:
            field, detail = problem
            raise APIError(400, ErrorCode.INVALID_REQUEST, f"Invalid field {field}: {detail}",
                           details={field: detail})
        return value


@dataclass
class Services:
    settings: Settings
    redis: RedisHandle
    jobs: JobService
    queue_admin: QueueAdmin
    auth: Authenticator
    stores: Stores       # storage and records: uploads, deletion, readiness


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


def _header_credentials() -> Principal | None:
    """The caller named by a header (Bearer token or API key), verified; None when neither is sent."""
    token = _bearer()
    api_key = request.headers.get(API_KEY_HEADER)
    if token and api_key is not None:
        raise unauthorized(f"Send either a Bearer token or an {API_KEY_HEADER}, not both")
    if token:
        return services().auth.verify_access_token(token)
    if api_key is not None:
        return services().auth.verify_api_key(api_key.strip())
    return None


def principal(*, allow_query_token: bool = False, job_id: str | None = None) -> Principal:
    """The authenticated caller, or 401. Cached on the request.

    Only header credentials are cached: a query token is good for the endpoint that allowed it.
    """
    cached = g.get("principal")
    if cached is not None:
        return cached
    auth = services().auth
    found = _header_credentials()
    if found is not None:
        g.principal = found
        return found
    if allow_query_token and request.args.get("access_token"):
        found = auth.verify_access_token(request.args["access_token"])
    elif allow_query_token and job_id and request.args.get("token"):
        found = auth.verify_stream_token(request.args["token"], job_id)
    if found is None:
        raise unauthorized()
    return found


def caller_identity() -> Principal | None:
    """Who seems to be calling, for rate-limit keys; never raises (bad credentials → None)."""
    try:
        found = _header_credentials()
    except Exception:   # the view answers 401 (or 503) itself
        return None
    if found is not None:
        g.principal = found
        return found
    try:
        if request.args.get("access_token"):
            return services().auth.verify_access_token(request.args["access_token"])
        job_id = (request.view_args or {}).get("job_id")
        if job_id and request.args.get("token"):
            return services().auth.verify_stream_token(request.args["token"], job_id)
    except Exception:
        return None
    return None


def require_user(body_user_id: str | None = None, *, caller: Principal | None = None) -> str:
    """The user the request acts for.

    A JWT user acts for themself only (a different `userId` → 403). An API key with the `jobs`
    scope acts for the `userId` given in the body (POST) or the query (GET/DELETE), which it must
    give.
    """
    caller = caller or principal()
    acting = body_user_id if body_user_id is not None else request.args.get("userId")
    if caller.via == "api_key":
        if "jobs" not in caller.scopes:
            raise forbidden("This API key has no 'jobs' scope")
        if acting is None:
            raise APIError(400, ErrorCode.INVALID_REQUEST, "Missing required field: userId",
                           details={"userId": "is required when calling with an API key"})
        if not isinstance(acting, str) or not USER_ID_PATTERN.fullmatch(acting):
            # it becomes part of Redis keys and storage paths: no '/', ':' or spaces
            raise APIError(400, ErrorCode.INVALID_REQUEST, "Invalid field userId",
                           details={"userId": f"must be 1 to {USER_ID_MAX} letters, digits or . _ @ -"})
        return acting
    if acting is not None and acting != caller.user_id:
        raise APIError(403, ErrorCode.FORBIDDEN, "userId must match the authenticated user")
    if not caller.user_id:
        raise unauthorized()
    return caller.user_id


def job_owner(body_user_id: str | None = None, *, caller: Principal | None = None) -> str | None:
    """For a route naming one job: whose job it must be, or None for anyone's.

    Like require_user, except that an API key with the `jobs` scope may name no user here: it may
    act for any user, and the job names its owner. A userId it does give must be the owner's.
    """
    caller = caller or principal()
    acting = body_user_id if body_user_id is not None else request.args.get("userId")
    if caller.via == "api_key" and acting is None:
        if "jobs" not in caller.scopes:
            raise forbidden("This API key has no 'jobs' scope")
        return None
    return require_user(body_user_id, caller=caller)


def require_admin() -> Principal:
    """An admin caller (an `admin`-scoped API key, or a JWT with app_metadata.role = admin); else 401/403."""
    caller = principal()
    if not caller.is_admin:
        raise forbidden("Queue administration needs an admin")
    return caller


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
        return current_app.json.loads(raw)
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
