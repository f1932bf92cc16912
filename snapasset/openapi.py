"""The OpenAPI 3.1 description of the HTTP API (SPEC §4, §6, §8), built from the same tables the
code validates against (platforms, statuses, option values, error codes), so it cannot drift
from them."""

from __future__ import annotations

from snapasset.cors import ALLOWED_HEADERS
from snapasset.errors import ErrorCode
from snapasset.image_models import DEFAULT_MODEL
from snapasset.jobrecord import EventType, Stage, Status, WebhookStatus
from snapasset.platforms import PLATFORMS
from snapasset.references import MAX_REFERENCES
from snapasset.schema import (
    BACKGROUNDS, CUSTOM_PLATFORMS_MAX, CUSTOM_SIDE, FITS, FORMATS_ALLOWED, PROMPT_MAX, PROMPT_MIN, QUALITIES,
    QUALITY_ALIASES, SEED_MAX, STYLES, TRANSPARENT_FORMATS, VARIANTS_MAX, WAIT_MAX, Priority,
)

__all__ = ["build_document", "OPENAPI_VERSION"]

OPENAPI_VERSION = "3.1.0"

ACCEPTED_QUALITIES = (*QUALITIES, *QUALITY_ALIASES)
JOB_FAILURE_CODES = ErrorCode.JOB_FAILURES
API_ERROR_CODES = (
    ErrorCode.INVALID_REQUEST, ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN, ErrorCode.JOB_NOT_FOUND,
    ErrorCode.NOT_FOUND, ErrorCode.METHOD_NOT_ALLOWED, ErrorCode.JOB_NOT_RETRYABLE,
    ErrorCode.JOB_NOT_CANCELLABLE, ErrorCode.JOB_NOT_DELETABLE, ErrorCode.IDEMPOTENCY_CONFLICT,
    ErrorCode.PAYLOAD_TOO_LARGE,
    ErrorCode.RATE_LIMIT_EXCEEDED, ErrorCode.JOB_LIMIT_EXCEEDED, ErrorCode.INTERNAL_ERROR,
    ErrorCode.SERVICE_UNAVAILABLE,
)

USER_AUTH = [{"bearerAuth": []}, {"apiKey": []}]
ADMIN_AUTH = USER_AUTH   # an admin-scoped key, or a JWT whose app_metadata.role is admin
STREAM_AUTH = [{"bearerAuth": []}, {"apiKey": []}, {"streamToken": []}, {"accessTokenQuery": []}]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return {"$ref": f"#/components/responses/{description}"}


def _errors(*names: str) -> dict:
    statuses = {"InvalidRequest": "400", "Unauthorized": "401", "Forbidden": "403", "NotFound": "404",
                "Conflict": "409", "PayloadTooLarge": "413", "TooManyRequests": "429",
                "InternalError": "500", "ServiceUnavailable": "503"}
    return {statuses[name]: _error(name) for name in names}


JOB_ID = {"name": "jobId", "in": "path", "required": True,
          "schema": {"type": "string", "pattern": r"^gen-\d+-[a-z0-9]{10,}$"},
          "description": "The job's id, `gen-<unix seconds>-<random>`."}
USER_ID = {"name": "userId", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 128},
           "description": "With an API key (scope `jobs`): the user to act for (required then). "
                          "With a JWT: optional, must equal `sub`."}
PAGE_PARAMETERS = [
    {"name": "status", "in": "query", "required": False, "schema": _ref("Status")},
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "`nextCursor` of the previous page."},
]
RATE_HEADERS = {
    "X-RateLimit-Limit": {"$ref": "#/components/headers/X-RateLimit-Limit"},
    "X-RateLimit-Remaining": {"$ref": "#/components/headers/X-RateLimit-Remaining"},
    "X-RateLimit-Reset": {"$ref": "#/components/headers/X-RateLimit-Reset"},
}


def _schemas(models: tuple[str, ...]) -> dict:
    platform_ids = list(PLATFORMS)
    low, high = CUSTOM_SIDE
    image = {
        "type": "object",
        "required": ["platform", "platformId", "url", "width", "height", "size", "format"],
        "properties": {
            "platform": {"type": "string", "examples": ["Instagram Post"]},
            "platformId": {"type": "string", "description": "A built-in platform id, or a custom platform's id."},
            "url": {"type": "string", "format": "uri"},
            "width": {"type": "integer"}, "height": {"type": "integer"},
            "size": {"type": "integer", "description": "Bytes."},
            "format": {"type": "string", "enum": list(FORMATS_ALLOWED)},
            "blurhash": {"type": "string", "description": "A BlurHash placeholder of the image."},
            "sourceIndex": {"type": "integer", "minimum": 0,
                            "description": "Which of the job's pictures (one per shape family, in the order "
                                           "they were drawn) the image was cut from."},
            "variant": {"type": "integer", "minimum": 0, "maximum": VARIANTS_MAX - 1,
                        "description": "Which of the job's `n` pictures this image is rendered from."},
        },
    }
    return {
        "Error": {
            "type": "object", "required": ["error", "message", "code", "timestamp"],
            "properties": {
                "error": {"type": "string", "examples": ["Invalid request"]},
                "message": {"type": "string"},
                "code": {"type": "string", "enum": list(API_ERROR_CODES)},
                "timestamp": {"type": "string", "format": "date-time"},
                "details": {"type": "object", "additionalProperties": {"type": "string"},
                            "description": "One entry per offending field."},
                "retryAfter": {"type": "integer", "description": "Seconds; on 429 only."},
            },
        },
        "JobError": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string", "enum": list(JOB_FAILURE_CODES)},
                           "message": {"type": "string"}},
        },
        "PlatformId": {"type": "string", "enum": platform_ids},
        "Platform": {
            "type": "object", "required": ["id", "name", "width", "height", "maxBytes"],
            "properties": {"id": _ref("PlatformId"), "name": {"type": "string"},
                           "width": {"type": "integer"}, "height": {"type": "integer"},
                           "maxBytes": {"type": "integer"}},
        },
        "Status": {"type": "string", "enum": list(Status.ALL)},
        "Options": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "quality": {"type": "string", "enum": list(ACCEPTED_QUALITIES),
                            "description": "`standard` and `hd` are accepted as `medium` and `high`."},
                "style": {"type": "string", "enum": list(STYLES)},
                "format": {"type": "string", "enum": list(FORMATS_ALLOWED), "default": "jpeg"},
                "fit": {"type": "string", "enum": list(FITS), "default": "cover",
                        "description": "`cover`: fill the frame, cut around the subject. `contain`: the whole "
                                       "picture, the rest of the frame a soft extension of its edges. `extend`: "
                                       "the model paints the rest where it can edit with a mask, else as "
                                       "`contain`."},
                "priority": {"type": "string", "enum": list(Priority.ALL), "default": Priority.NORMAL,
                             "description": "Workers start `high` jobs before `normal` before `low`. `high` "
                                            "needs an API key with the `priority` scope or an admin (else 403)."},
                "model": {"type": "string", "enum": list(models),
                          "description": "The image model to draw with (this deployment's SNAPASSET_IMAGE_MODELS). "
                                         "`xhigh` and `max` quality need a model that offers them."},
                "n": {"type": "integer", "minimum": 1, "maximum": VARIANTS_MAX, "default": 1,
                      "description": "Distinct pictures for the prompt, each rendered for every platform; "
                                     "the job counts once against the limits."},
                "seed": {"type": "integer", "minimum": 0, "maximum": SEED_MAX,
                         "description": "The same prompt, seed and size draw the same picture where the model "
                                        "honours seeds; the result's `seed` is null where it does not."},
                "background": {"type": "string", "enum": list(BACKGROUNDS), "default": "auto",
                               "description": f"`transparent` needs format {', '.join(TRANSPARENT_FORMATS)}; "
                                              "it stays transparent in every output."},
                "inputImages": {"type": "array", "minItems": 1, "maxItems": MAX_REFERENCES,
                                "items": {"type": "string",
                                          "pattern": "^(https://|data:image/[a-zA-Z0-9.+-]+;base64,)"},
                                "description": "Reference pictures for image-to-image work: https URLs (fetched "
                                               "by the worker, ≤ 20 MB, ≤ 40 megapixels, public addresses only) "
                                               "or data URLs (≤ 10 MB). The job's data shows an uploaded one "
                                               "as its stored copy's URL."},
                "customPlatforms": {"type": "array", "minItems": 1, "maxItems": CUSTOM_PLATFORMS_MAX,
                                    "items": _ref("CustomPlatform"),
                                    "description": "Extra outputs of sizes of your own; `platforms` may then be "
                                                   "empty."},
            },
        },
        "CustomPlatform": {
            "type": "object", "required": ["id", "width", "height"], "additionalProperties": False,
            "properties": {"id": {"type": "string", "pattern": "^[a-z0-9-]{1,40}$",
                                  "description": "Not a built-in platform id."},
                           "width": {"type": "integer", "minimum": low, "maximum": high},
                           "height": {"type": "integer", "minimum": low, "maximum": high},
                           "maxBytes": {"type": "integer", "minimum": 10_000, "maximum": 50_000_000,
                                        "description": "The file-size cap (default 8 MiB)."},
                           "name": {"type": "string", "description": "In the job's data: the id."}},
        },
        "WebhookState": {
            "type": "object", "required": ["status", "attempts", "lastError", "deliveredAt"],
            "properties": {"status": {"type": "string", "enum": [WebhookStatus.PENDING, WebhookStatus.DELIVERED,
                                                                WebhookStatus.FAILED, WebhookStatus.REFUSED]},
                           "attempts": {"type": "integer", "minimum": 0},
                           "lastError": {"type": ["string", "null"]},
                           "deliveredAt": {"type": ["string", "null"], "format": "date-time"}},
        },
        "JobRequest": {
            "type": "object", "required": ["prompt", "platforms"], "additionalProperties": False,
            "properties": {
                "userId": {"type": "string", "description": "With a JWT: optional, must equal `sub`. "
                                                            "With an API key: required."},
                "prompt": {"type": "string", "minLength": PROMPT_MIN, "maxLength": PROMPT_MAX,
                           "description": "Length counted after trimming."},
                "platforms": {"type": "array", "uniqueItems": True, "items": _ref("PlatformId"),
                              "description": "At least one, unless `options.customPlatforms` is given."},
                "options": _ref("Options"),
                "webhookUrl": {"type": "string", "format": "uri"},
            },
            "examples": [{"prompt": "A beautiful sunset over mountains",
                          "platforms": ["instagram-post", "twitter-post"],
                          "options": {"quality": "high", "format": "jpeg"}}],
        },
        "JobCreated": {
            "type": "object",
            "required": ["jobId", "status", "message", "estimatedTime", "statusUrl", "streamUrl"],
            "properties": {
                "jobId": {"type": "string"}, "status": {"type": "string"},
                "message": {"type": "string"},
                "estimatedTime": {"type": "string", "description":
                                  "How long the job should take: the median run time of the queue's "
                                  "last 20 finished jobs, once per round of jobs waiting ahead "
                                  "(\"under a second\", \"12 seconds\"; \"unknown ...\" before any job finished)."},
                "estimatedSeconds": {"type": ["number", "null"],
                                     "description": "The same estimate in seconds; `null` when there is none."},
                "statusUrl": {"type": "string", "format": "uri"},
                "streamUrl": {"type": "string", "format": "uri",
                              "description": "SSE URL with a short-lived token bound to this job, "
                                             "for EventSource (which cannot send headers)."},
            },
        },
        "Image": image,
        "Result": {
            "type": "object", "required": ["success", "images"],
            "properties": {
                "success": {"type": "boolean"}, "generationId": {"type": "string"},
                "images": {"type": "array", "items": _ref("Image")},
                "revisedPrompt": {"type": ["string", "null"]},
                "provider": {"type": "string"}, "model": {"type": "string"},
                "seed": {"type": ["integer", "null"],
                         "description": "The seed the picture was drawn with; null when the model takes none."},
                "background": {"type": "string", "enum": list(BACKGROUNDS),
                               "description": "The background asked for (`transparent`: every image keeps its "
                                              "alpha)."},
            },
        },
        "Job": {
            "type": "object", "required": ["jobId", "status", "progress", "data", "logs", "attemptsMade",
                                           "createdAt"],
            "properties": {
                "jobId": {"type": "string"}, "status": _ref("Status"),
                "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                "stage": {"type": ["string", "null"]},
                "data": {"type": "object"},
                "logs": {"type": "array", "items": {"type": "string"}},
                "attemptsMade": {"type": "integer"},
                "queuePosition": {"type": "integer", "minimum": 0,
                                  "description": "While waiting: jobs a worker takes before this one (0 = next), "
                                                 "the higher priority lanes included."},
                "createdAt": {"type": ["string", "null"], "format": "date-time"},
                "processedAt": {"type": ["string", "null"], "format": "date-time"},
                "finishedAt": {"type": ["string", "null"], "format": "date-time"},
                "result": _ref("Result"),
                "failedReason": {"type": "string"},
                "error": _ref("JobError"),
                "webhook": _ref("WebhookState"),
            },
        },
        "JobCreatedAndWaited": {
            "description": "With `Prefer: wait`: the create fields and the job's full GET body.",
            "allOf": [_ref("JobCreated"), _ref("Job")],
        },
        "JobList": {
            "type": "object", "required": ["jobs", "count", "status", "nextCursor"],
            "properties": {
                "jobs": {"type": "array", "items": {
                    "type": "object", "required": ["jobId", "status", "progress", "createdAt"],
                    "properties": {"jobId": {"type": "string"}, "status": _ref("Status"),
                                   "progress": {"type": "integer"},
                                   "createdAt": {"type": ["string", "null"], "format": "date-time"}}}},
                "count": {"type": "integer"},
                "status": {"anyOf": [_ref("Status"), {"type": "null"}]},
                "nextCursor": {"type": ["string", "null"]},
            },
        },
        "AdminJobList": {
            "type": "object", "required": ["jobs", "count", "status", "userId", "errorCode", "nextCursor"],
            "properties": {
                "jobs": {"type": "array", "items": {
                    "type": "object", "required": ["jobId", "status", "progress", "createdAt", "userId"],
                    "properties": {"jobId": {"type": "string"}, "status": _ref("Status"),
                                   "progress": {"type": "integer"},
                                   "createdAt": {"type": ["string", "null"], "format": "date-time"},
                                   "userId": {"type": ["string", "null"]},
                                   "error": {"anyOf": [_ref("JobError"), {"type": "null"}]}}}},
                "count": {"type": "integer"},
                "status": {"anyOf": [_ref("Status"), {"type": "null"}]},
                "userId": {"type": ["string", "null"]},
                "errorCode": {"type": ["string", "null"]},
                "nextCursor": {"type": ["string", "null"]},
            },
        },
        "BulkRetryRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"status": {"const": "failed"},
                           "errorCode": {"type": "string", "enum": list(JOB_FAILURE_CODES)},
                           "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
        },
        "BulkRetryResult": {
            "type": "object", "required": ["retried", "jobIds", "skipped", "status", "errorCode", "limit", "timestamp"],
            "properties": {"retried": {"type": "integer"}, "jobIds": {"type": "array", "items": {"type": "string"}},
                           "skipped": {"type": "integer", "description": "Jobs that changed state meanwhile."},
                           "status": {"const": "failed"}, "errorCode": {"type": ["string", "null"]},
                           "limit": {"type": "integer"}, "timestamp": {"type": "string", "format": "date-time"}},
        },
        "Worker": {
            "type": "object",
            "required": ["name", "hostname", "pid", "state", "concurrency", "currentJobs", "lastHeartbeat",
                         "startedAt", "successfulJobs", "failedJobs"],
            "properties": {
                "name": {"type": "string"}, "hostname": {"type": ["string", "null"]},
                "pid": {"type": ["integer", "null"]}, "state": {"type": "string"},
                "concurrency": {"type": "integer", "description": "Jobs it runs at once, at most."},
                "currentJobs": {"type": "array", "items": {"type": "string"}},
                "lastHeartbeat": {"type": "string", "format": "date-time"},
                "startedAt": {"type": ["string", "null"], "format": "date-time"},
                "successfulJobs": {"type": "integer"}, "failedJobs": {"type": "integer"},
            },
        },
        "WorkerList": {
            "type": "object", "required": ["workers", "count", "queue", "timestamp"],
            "properties": {"workers": {"type": "array", "items": _ref("Worker")}, "count": {"type": "integer"},
                           "queue": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}},
        },
        "JobAction": {
            "type": "object", "required": ["jobId", "status", "message"],
            "properties": {"jobId": {"type": "string"}, "status": {"type": "string"},
                           "message": {"type": "string"}},
        },
        "QueueStats": {
            "type": "object",
            "required": ["waiting", "active", "completed", "failed", "delayed", "total", "timestamp"],
            "properties": {**{name: {"type": "integer"} for name in
                              ("waiting", "active", "completed", "failed", "delayed", "cancelled", "total")},
                           "paused": {"type": "boolean"},
                           "timestamp": {"type": "string", "format": "date-time"}},
        },
        "CleanRequest": {
            "type": "object", "additionalProperties": False,
            "properties": {"grace": {"type": "integer", "minimum": 0, "default": 86400000,
                                     "description": "Milliseconds since the job finished."},
                           "status": {"type": "string", "enum": list(Status.CLEANABLE), "default": Status.COMPLETED},
                           "limit": {"type": "integer", "minimum": 1, "default": 1000}},
        },
        "CleanResult": {
            "type": "object", "required": ["removed", "status", "grace", "timestamp"],
            "properties": {"removed": {"type": "integer"}, "status": {"type": "string"},
                           "grace": {"type": "integer"},
                           "timestamp": {"type": "string", "format": "date-time"}},
        },
        "Paused": {
            "type": "object", "required": ["paused", "timestamp"],
            "properties": {"paused": {"type": "boolean"},
                           "timestamp": {"type": "string", "format": "date-time"}},
        },
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"const": "ok"},
                                  "timestamp": {"type": "string", "format": "date-time"}}},
        "Ready": {
            "type": "object", "required": ["status", "checks"],
            "properties": {"status": {"const": "ready"},
                           "checks": {"type": "object", "additionalProperties": {"type": "object"}}},
        },
        "StreamEvent": {
            "description": "The JSON `data:` of one unnamed SSE message; `type` says what it is.",
            "type": "object", "required": ["type", "jobId"],
            "properties": {
                "type": {"type": "string", "enum": list(EventType.ALL)},
                "jobId": {"type": "string"},
                "status": _ref("Status"),
                "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                "stage": {"type": "string", "enum": list(Stage.ALL)},
                "message": {"type": "string"},
                "preview": {"type": "string", "description": "A small data: URL of a partial image."},
                "image": _ref("Image"),
                "result": _ref("Result"),
                "error": _ref("JobError"),
                "willRetry": {"type": "boolean"},
            },
        },
    }


def _sse_operation(summary: str, description: str, parameters: list) -> dict:
    return {
        "tags": ["live updates"], "summary": summary, "description": description,
        "security": STREAM_AUTH,
        "parameters": [*parameters,
                       {"name": "Last-Event-ID", "in": "header", "required": False,
                        "schema": {"type": "string"},
                        "description": "Resume after this event id; events are never sent twice."},
                       {"name": "lastEventId", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "The same as Last-Event-ID, for clients that cannot set headers."},
                       USER_ID,
                       {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "The job-bound token of the create response's `streamUrl`."},
                       {"name": "access_token", "in": "query", "required": False,
                        "schema": {"type": "string"}, "description": "An access token (JWT)."}],
        "responses": {
            "200": {"description": "An event stream: unnamed messages, each with an `id:` and a JSON "
                                   "`data:` (see the StreamEvent schema); `: ping` comments at least every "
                                   "15 s. Closes after `done`, a final `failed` or `cancelled`.",
                    "content": {"text/event-stream": {"schema": {"type": "string"},
                                                      "x-event-schema": _ref("StreamEvent")}}},
            "204": {"description": "The job ended before this (re)connection; nothing more will come."},
            **_errors("InvalidRequest", "Unauthorized", "NotFound", "TooManyRequests", "ServiceUnavailable"),
        },
    }


def _paths() -> dict:
    admin_errors = _errors("Unauthorized", "Forbidden", "TooManyRequests", "ServiceUnavailable")
    return {
        "/api/jobs": {
            "post": {
                "tags": ["jobs"], "operationId": "createJob", "summary": "Create a generation job",
                "security": USER_AUTH,
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                                "description": "Same user and key within 24 h returns the first job (200)."},
                               {"name": "Prefer", "in": "header", "required": False,
                                "schema": {"type": "string", "examples": ["wait", "wait=30"]},
                                "description": f"`wait` or `wait=N` (1–{WAIT_MAX} s, default {WAIT_MAX}): hold the "
                                               "answer until the job ends or the time is up; it then carries the "
                                               "job's GET body too (`Preference-Applied` says so)."}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("JobRequest")}}},
                "responses": {
                    "201": {**_json({"anyOf": [_ref("JobCreated"), _ref("JobCreatedAndWaited")]},
                                    "Queued (with `Prefer: wait`: ended, or as it stands when the time was up)."),
                            "headers": RATE_HEADERS},
                    "200": _json(_ref("JobCreated"), "An Idempotency-Key replay: the first job."),
                    **_errors("InvalidRequest", "Unauthorized", "Forbidden", "Conflict", "PayloadTooLarge",
                              "TooManyRequests", "ServiceUnavailable"),
                },
            },
            "get": {
                "tags": ["jobs"], "operationId": "listJobs", "summary": "The caller's jobs, newest first",
                "security": USER_AUTH,
                "parameters": [*PAGE_PARAMETERS, USER_ID],
                "responses": {"200": _json(_ref("JobList"), "One page of jobs."),
                              **_errors("InvalidRequest", "Unauthorized", "TooManyRequests")},
            },
        },
        "/api/jobs/{jobId}": {
            "get": {
                "tags": ["jobs"], "operationId": "getJob", "summary": "A job's status, progress and result",
                "security": USER_AUTH, "parameters": [JOB_ID, USER_ID],
                "responses": {"200": _json(_ref("Job"), "The job."),
                              **_errors("Unauthorized", "NotFound", "TooManyRequests")},
            },
            "delete": {
                "tags": ["jobs"], "operationId": "deleteJob",
                "summary": "Delete a finished job with its history, records and stored images",
                "description": "Completed, failed or cancelled jobs only (cancel an unfinished one first: "
                               "`409 JOB_NOT_DELETABLE`).",
                "security": USER_AUTH, "parameters": [JOB_ID, USER_ID],
                "responses": {"204": {"description": "Deleted."},
                              **_errors("Unauthorized", "NotFound", "Conflict", "TooManyRequests",
                                        "ServiceUnavailable")},
            },
        },
        "/api/jobs/{jobId}/retry": {
            "post": {
                "tags": ["jobs"], "operationId": "retryJob", "summary": "Queue a failed or cancelled job again",
                "security": USER_AUTH, "parameters": [JOB_ID, USER_ID],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"userId": {"type": "string"}},
                    "description": "Optional; an API key may name the user here instead of the query."}}}},
                "responses": {"200": _json(_ref("JobAction"), "Queued for retry (`status`: `retrying`)."),
                              **_errors("Unauthorized", "NotFound", "Conflict", "TooManyRequests")},
            },
        },
        "/api/jobs/{jobId}/cancel": {
            "delete": {
                "tags": ["jobs"], "operationId": "cancelJob",
                "summary": "Cancel a waiting, delayed or active job",
                "security": USER_AUTH, "parameters": [JOB_ID, USER_ID],
                "responses": {"200": _json(_ref("JobAction"), "Cancelled."),
                              **_errors("Unauthorized", "NotFound", "Conflict", "TooManyRequests")},
            },
        },
        "/api/sse/jobs/{jobId}": {
            "get": {**_sse_operation("Follow one job live", "Server-Sent Events of one job (SPEC §8).",
                                     [JOB_ID]), "operationId": "streamJob"},
        },
        "/api/sse/jobs": {
            "get": {**_sse_operation("Follow all of the caller's jobs live",
                                     "Server-Sent Events of every job of the caller; each names its `jobId`.",
                                     []), "operationId": "streamJobs"},
        },
        "/api/queue/stats": {
            "get": {"tags": ["queue admin"], "operationId": "queueStats", "summary": "Job counts by state",
                    "security": ADMIN_AUTH,
                    "responses": {"200": _json(_ref("QueueStats"), "Counts."), **admin_errors}},
        },
        "/api/queue/clean": {
            "post": {"tags": ["queue admin"], "operationId": "cleanQueue",
                     "summary": "Remove finished jobs older than a grace period",
                     "security": ADMIN_AUTH,
                     "requestBody": {"required": False,
                                     "content": {"application/json": {"schema": _ref("CleanRequest")}}},
                     "responses": {"200": _json(_ref("CleanResult"), "Removed."),
                                   **_errors("InvalidRequest"), **admin_errors}},
        },
        "/api/queue/pause": {
            "post": {"tags": ["queue admin"], "operationId": "pauseQueue",
                     "summary": "Stop workers taking new jobs", "security": ADMIN_AUTH,
                     "responses": {"200": _json(_ref("Paused"), "Paused."), **admin_errors}},
        },
        "/api/queue/resume": {
            "post": {"tags": ["queue admin"], "operationId": "resumeQueue",
                     "summary": "Let workers take jobs again", "security": ADMIN_AUTH,
                     "responses": {"200": _json(_ref("Paused"), "Resumed."), **admin_errors}},
        },
        "/api/admin/jobs": {
            "get": {"tags": ["operators"], "operationId": "listAllJobs",
                    "summary": "Every user's jobs, newest first, filtered by status, owner or error code",
                    "security": ADMIN_AUTH,
                    "parameters": [
                        *PAGE_PARAMETERS,
                        {"name": "userId", "in": "query", "required": False,
                         "schema": {"type": "string", "maxLength": 128}, "description": "Only this user's jobs."},
                        {"name": "errorCode", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": list(JOB_FAILURE_CODES)},
                         "description": "Only failed jobs whose error has this code."},
                    ],
                    "responses": {"200": _json(_ref("AdminJobList"), "One page of jobs."),
                                  **_errors("InvalidRequest"), **admin_errors}},
        },
        "/api/admin/jobs/retry": {
            "post": {"tags": ["operators"], "operationId": "retryFailedJobs",
                     "summary": "Queue failed jobs again, newest first, up to the limit",
                     "security": ADMIN_AUTH,
                     "requestBody": {"required": False,
                                     "content": {"application/json": {"schema": _ref("BulkRetryRequest")}}},
                     "responses": {"200": _json(_ref("BulkRetryResult"), "What was queued again."),
                                   **_errors("InvalidRequest"), **admin_errors}},
        },
        "/api/admin/workers": {
            "get": {"tags": ["operators"], "operationId": "listWorkers",
                    "summary": "Live workers, what each runs, when each last beat",
                    "description": "A worker is listed while its heartbeat is recent (three missed beats, "
                                   "at most 45 s): a killed worker drops out within a minute.",
                    "security": ADMIN_AUTH,
                    "responses": {"200": _json(_ref("WorkerList"), "The live workers."), **admin_errors}},
        },
        "/api/platforms": {
            "get": {"tags": ["meta"], "operationId": "listPlatforms", "summary": "The platforms and their sizes",
                    "security": [],
                    "responses": {"200": _json({"type": "object", "required": ["platforms", "count"],
                                                "properties": {"platforms": {"type": "array",
                                                                             "items": _ref("Platform")},
                                                               "count": {"type": "integer"}}},
                                               "Every platform.")}},
        },
        "/health": {
            "get": {"tags": ["operations"], "operationId": "health", "summary": "Liveness", "security": [],
                    "responses": {"200": _json(_ref("Health"), "The process answers.")}},
        },
        "/ready": {
            "get": {"tags": ["operations"], "operationId": "ready",
                    "summary": "Readiness: Redis, storage and at least one live worker", "security": [],
                    "responses": {"200": _json(_ref("Ready"), "Ready to take and run jobs."),
                                  "503": _json(_ref("Error"), "A check failed; `details` names it.")}},
        },
        "/metrics": {
            "get": {"tags": ["operations"], "operationId": "metrics", "summary": "Prometheus metrics",
                    "description": "Unauthenticated unless SNAPASSET_METRICS_TOKEN is set; then "
                                   "`Authorization: Bearer <that token>` is required.",
                    "security": [{}, {"metricsToken": []}],
                    "responses": {"200": {"description": "Prometheus text exposition format.",
                                          "content": {"text/plain": {"schema": {"type": "string"}}}},
                                  **_errors("Unauthorized")}},
        },
        "/media/{key}": {
            "get": {"tags": ["meta"], "operationId": "media",
                    "summary": "A rendered image kept in local storage (development default)",
                    "security": [],
                    "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
                                    "description": "The object key, `<userId>/<generationId>/<file>`; "
                                                   "may contain slashes."}],
                    "responses": {"200": {"description": "The image, cached for a year.",
                                          "content": {"image/*": {"schema": {"type": "string",
                                                                             "format": "binary"}}}},
                                  **_errors("NotFound")}},
        },
        "/openapi.json": {
            "get": {"tags": ["meta"], "operationId": "openapi", "summary": "This document", "security": [],
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")}},
        },
        "/api-docs": {
            "get": {"tags": ["meta"], "operationId": "apiDocs", "summary": "Interactive API docs (HTML)",
                    "security": [],
                    "responses": {"200": {"description": "HTML.", "content": {"text/html": {}}}}},
        },
        "/": {
            "get": {"tags": ["meta"], "operationId": "page",
                    "summary": "A page to type a prompt, watch progress and see the images", "security": [],
                    "responses": {"200": {"description": "HTML.", "content": {"text/html": {}}}}},
        },
    }


def _responses() -> dict:
    described = {"InvalidRequest": "Bad JSON, or missing or invalid fields (`details` names each).",
                 "Unauthorized": "Missing, malformed, expired or otherwise invalid credentials.",
                 "Forbidden": "Authenticated, but not allowed.",
                 "NotFound": "No such job (or not the caller's), or no such route.",
                 "Conflict": "JOB_NOT_RETRYABLE, JOB_NOT_CANCELLABLE, JOB_NOT_DELETABLE or IDEMPOTENCY_CONFLICT.",
                 "PayloadTooLarge": "The body is too large.",
                 "TooManyRequests": "RATE_LIMIT_EXCEEDED or JOB_LIMIT_EXCEEDED; see `Retry-After`.",
                 "InternalError": "INTERNAL_ERROR; no stack trace or secret in the body.",
                 "ServiceUnavailable": "Redis or storage unreachable."}
    out = {name: _json(_ref("Error"), text) for name, text in described.items()}
    out["TooManyRequests"]["headers"] = {**RATE_HEADERS,
                                         "Retry-After": {"schema": {"type": "integer"},
                                                         "description": "Seconds to wait."}}
    return out


def build_document(*, server_url: str | None = None, models: tuple[str, ...] = (DEFAULT_MODEL,)) -> dict:
    """The whole OpenAPI 3.1 document; `server_url` is where this deployment answers, `models` the
    image models its requests may name."""
    document = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "SnapAsset API", "version": "1.0.0",
            "summary": "One prompt in, ready-to-post images out.",
            "description": "Create an image-generation job for several social platforms, follow it live "
                           "over Server-Sent Events, fetch the rendered images. Every error is JSON in the "
                           "`Error` shape. Rate limits are reported in `X-RateLimit-*` headers. Pages on the "
                           "origins a deployment lists (SNAPASSET_CORS_ORIGINS) may call every `/api/` route; "
                           f"preflights allow the headers {', '.join(ALLOWED_HEADERS)}.",
        },
        "tags": [{"name": "jobs"}, {"name": "live updates"}, {"name": "queue admin"}, {"name": "operators"},
                 {"name": "meta"},
                 {"name": "operations"}],
        "security": USER_AUTH,
        "paths": _paths(),
        "components": {
            "schemas": _schemas(models),
            "responses": _responses(),
            "headers": {
                "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests allowed in the window."},
                "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Requests left."},
                "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Unix seconds of the reset."},
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": "A Supabase access token (`snapasset token` mints one in "
                                              "development)."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                           "description": "A service key with scopes `jobs` (act for the `userId` given), "
                                          "`admin` and/or `priority` (may ask for `high` priority)."},
                "streamToken": {"type": "apiKey", "in": "query", "name": "token",
                                "description": "Short-lived, bound to one job; handed out in `streamUrl`."},
                "accessTokenQuery": {"type": "apiKey", "in": "query", "name": "access_token",
                                     "description": "An access token in the query, for EventSource."},
                "metricsToken": {"type": "http", "scheme": "bearer",
                                 "description": "SNAPASSET_METRICS_TOKEN, when the deployment sets one."},
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
