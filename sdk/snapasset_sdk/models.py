"""Typed views of the API's JSON (SPEC §6, §8).

Each class has a ``from_json`` classmethod; attributes are snake_case, the
original JSON is kept in ``raw``, and fields the SDK does not know yet are
ignored, so a newer server does not break an older client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Image", "JobError", "JobResult", "Job", "JobSummary", "Event", "QueueStats", "WebhookState",
    "QueueState", "CleanResult", "Platform", "BulkRetryResult", "Worker", "TERMINAL_STATUSES",
    "TERMINAL_EVENT_TYPES",
]

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
TERMINAL_EVENT_TYPES = frozenset({"done", "failed", "cancelled"})

Raw = dict[str, Any]


def _timestamp(value: Any) -> datetime | None:
    """ISO 8601 (a trailing ``Z`` included) to an aware datetime; None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None


def _object(value: Any) -> Raw:
    return value if isinstance(value, dict) else {}


@dataclass
class Image:
    platform: str | None
    platform_id: str | None
    url: str | None
    width: int | None
    height: int | None
    size: int | None
    format: str | None
    blurhash: str | None
    source_index: int | None = None   # which of the job's pictures it was cut from (0-based)
    variant: int = 0               # which of the job's n pictures
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> Image:
        return cls(platform=data.get("platform"), platform_id=data.get("platformId"),
                   url=data.get("url"), width=data.get("width"), height=data.get("height"),
                   size=data.get("size"), format=data.get("format"),
                   blurhash=data.get("blurhash"), source_index=data.get("sourceIndex"),
                   variant=data.get("variant") or 0, raw=data)


@dataclass
class JobError:
    code: str | None
    message: str | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> JobError:
        return cls(code=data.get("code"), message=data.get("message"), raw=data)


@dataclass
class JobResult:
    success: bool
    generation_id: str | None
    images: list[Image]
    revised_prompt: str | None
    provider: str | None
    model: str | None
    seed: int | None = None        # None when the model takes no seed
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> JobResult:
        return cls(success=bool(data.get("success", True)),
                   generation_id=data.get("generationId"),
                   images=[Image.from_json(i) for i in data.get("images") or []
                           if isinstance(i, dict)],
                   revised_prompt=data.get("revisedPrompt"), provider=data.get("provider"),
                   model=data.get("model"), seed=data.get("seed"), raw=data)


@dataclass
class WebhookState:
    """How the completion webhook of a job with a ``webhookUrl`` fared."""

    status: str | None             # pending | delivered | failed | refused
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> WebhookState:
        return cls(status=data.get("status"), attempts=data.get("attempts") or 0,
                   last_error=data.get("lastError"), delivered_at=_timestamp(data.get("deliveredAt")),
                   raw=data)


@dataclass
class Job:
    """A job as ``GET /api/jobs/:id`` describes it; also what create/retry/cancel return
    (those answers carry fewer fields; the rest are None)."""

    job_id: str
    status: str | None
    progress: int | None = None
    data: Raw = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    attempts_made: int | None = None
    created_at: datetime | None = None
    processed_at: datetime | None = None
    finished_at: datetime | None = None
    result: JobResult | None = None
    error: JobError | None = None
    failed_reason: str | None = None
    message: str | None = None
    estimated_time: str | None = None
    estimated_seconds: float | None = None   # from recent jobs' run times; None before any finished
    stream_url: str | None = None
    status_url: str | None = None
    queue_position: int | None = None      # waiting jobs: how many start first (0 = next)
    webhook: WebhookState | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> Job:
        result, error, webhook = data.get("result"), data.get("error"), data.get("webhook")
        return cls(job_id=data.get("jobId", ""), status=data.get("status"),
                   progress=data.get("progress"), data=_object(data.get("data")),
                   logs=list(data.get("logs") or []), attempts_made=data.get("attemptsMade"),
                   created_at=_timestamp(data.get("createdAt")),
                   processed_at=_timestamp(data.get("processedAt")),
                   finished_at=_timestamp(data.get("finishedAt")),
                   result=JobResult.from_json(result) if isinstance(result, dict) else None,
                   error=JobError.from_json(error) if isinstance(error, dict) else None,
                   failed_reason=data.get("failedReason"), message=data.get("message"),
                   estimated_time=data.get("estimatedTime"), estimated_seconds=data.get("estimatedSeconds"),
                   stream_url=data.get("streamUrl"),
                   status_url=data.get("statusUrl"), queue_position=data.get("queuePosition"),
                   webhook=WebhookState.from_json(webhook) if isinstance(webhook, dict) else None,
                   raw=data)

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass
class JobSummary:
    """One job of a list; an operator's list (``list_all_jobs``) also names its owner and, for a
    failed job, its error."""

    job_id: str
    status: str | None
    progress: int | None
    created_at: datetime | None
    user_id: str | None = None
    error: JobError | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> JobSummary:
        error = data.get("error")
        return cls(job_id=data.get("jobId", ""), status=data.get("status"),
                   progress=data.get("progress"), created_at=_timestamp(data.get("createdAt")),
                   user_id=data.get("userId"),
                   error=JobError.from_json(error) if isinstance(error, dict) else None, raw=data)


@dataclass
class Event:
    """One message of a job's live stream (SPEC §8); ``type`` says which kind."""

    id: str | None
    type: str | None
    job_id: str | None = None
    progress: int | None = None
    stage: str | None = None
    message: str | None = None
    status: str | None = None
    image: Image | None = None
    result: JobResult | None = None
    error: JobError | None = None
    will_retry: bool | None = None
    preview: str | None = None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw, *, id: str | None = None) -> Event:
        image, result, error = data.get("image"), data.get("result"), data.get("error")
        return cls(id=id, type=data.get("type"), job_id=data.get("jobId"),
                   progress=data.get("progress"), stage=data.get("stage"),
                   message=data.get("message"), status=data.get("status"),
                   image=Image.from_json(image) if isinstance(image, dict) else None,
                   result=JobResult.from_json(result) if isinstance(result, dict) else None,
                   error=JobError.from_json(error) if isinstance(error, dict) else None,
                   will_retry=data.get("willRetry"), preview=data.get("preview"), raw=data)

    @classmethod
    def from_sse(cls, data: str, *, id: str | None = None, event: str = "message") -> Event:
        """From an SSE message's data; a payload that is not a JSON object keeps its text
        in ``raw["data"]`` and takes the SSE event name as its type."""
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return cls(id=id or None, type=event, raw={"data": data})
        return cls.from_json(payload, id=id or None)

    @property
    def is_terminal(self) -> bool:
        """True for the last event of a job: ``done``, ``cancelled``, or a final ``failed``."""
        if self.type == "failed":
            return not self.will_retry
        return self.type in TERMINAL_EVENT_TYPES


@dataclass
class QueueStats:
    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int
    total: int
    timestamp: datetime | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> QueueStats:
        return cls(waiting=data.get("waiting", 0), active=data.get("active", 0),
                   completed=data.get("completed", 0), failed=data.get("failed", 0),
                   delayed=data.get("delayed", 0), total=data.get("total", 0),
                   timestamp=_timestamp(data.get("timestamp")), raw=data)


@dataclass
class QueueState:
    """The answer of pause/resume."""

    paused: bool
    timestamp: datetime | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> QueueState:
        return cls(paused=bool(data.get("paused")), timestamp=_timestamp(data.get("timestamp")),
                   raw=data)


@dataclass
class CleanResult:
    removed: int
    status: str | None
    grace_ms: int | None
    timestamp: datetime | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> CleanResult:
        return cls(removed=data.get("removed", 0), status=data.get("status"),
                   grace_ms=data.get("grace"), timestamp=_timestamp(data.get("timestamp")),
                   raw=data)


@dataclass
class Platform:
    id: str
    name: str | None
    width: int | None
    height: int | None
    max_bytes: int | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> Platform:
        return cls(id=data.get("id", ""), name=data.get("name"), width=data.get("width"),
                   height=data.get("height"),
                   max_bytes=data.get("maxBytes", data.get("maxFileSize")), raw=data)


@dataclass
class BulkRetryResult:
    """The answer of ``retry_failed_jobs``: how many failed jobs were queued again, and which."""

    retried: int
    job_ids: list[str]
    skipped: int
    error_code: str | None
    timestamp: datetime | None
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> BulkRetryResult:
        return cls(retried=data.get("retried", 0), job_ids=list(data.get("jobIds") or []),
                   skipped=data.get("skipped", 0), error_code=data.get("errorCode"),
                   timestamp=_timestamp(data.get("timestamp")), raw=data)


@dataclass
class Worker:
    """A live worker (``workers()``): what it runs now and when it last beat."""

    name: str
    hostname: str | None
    pid: int | None
    state: str | None
    concurrency: int | None
    current_jobs: list[str]
    last_heartbeat: datetime | None
    started_at: datetime | None
    successful_jobs: int
    failed_jobs: int
    raw: Raw = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Raw) -> Worker:
        return cls(name=data.get("name", ""), hostname=data.get("hostname"), pid=data.get("pid"),
                   state=data.get("state"), concurrency=data.get("concurrency"),
                   current_jobs=list(data.get("currentJobs") or []),
                   last_heartbeat=_timestamp(data.get("lastHeartbeat")),
                   started_at=_timestamp(data.get("startedAt")),
                   successful_jobs=data.get("successfulJobs", 0), failed_jobs=data.get("failedJobs", 0),
                   raw=data)
