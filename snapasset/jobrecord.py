"""A generation job's record: its stored state and its events (SPEC §6, §8). The one module
that names a job's state keys and an event's fields.

* **State** (`JobState`) is kept in the RQ job's `meta`: who owns the job, how far it got, its
  log lines, which attempt runs, why the last one failed. Producers change it only through the
  functions below (`new_state`, `start_attempt`, `record_progress`, …); readers use `state_of`.
* **Events** are small frozen dataclasses, one per SPEC §8 type (`Connected`, `Progress`,
  `Image`, `Failed`, `Cancelled`, `Done`). `publish` appends one to the job's and its owner's
  Redis Streams (the entry ids are the SSE ids, so a client that reconnects with Last-Event-ID
  resumes exactly); `entry_payload` reads one back from a stream entry.

Adding a field is one edit here:

* to the state: add the key to `JobState` and set it in the function that owns that moment
  (e.g. `new_state` for something fixed at creation, like a webhook);
* to an event: add it to the event's dataclass, as `name: T | None = optional()` when the event
  may go without it (a field left None is then not sent), as a plain field when it is always
  sent. The dataclass field name is the wire name (camelCase, as SPEC §8 spells it). Every
  producer that builds that event passes it; `to_wire` and `publish` need no change.

How RQ stores the state (the `meta` hash field) is snapasset.rqcompat's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar, TypedDict

import redis
from rq.job import Job, JobStatus

from snapasset import keys, rqcompat
from snapasset.errors import ErrorCode, utcnow_iso

__all__ = ["Status", "api_status", "status_of", "iso", "Stage", "JobState", "new_state", "state_of", "owner_of",
           "stage_of", "start_attempt", "record_progress", "record_failure", "record_lost", "mark_cancelled",
           "is_marked_cancelled", "reset_for_retry", "undo_attempt", "stored_error", "save_state",
           "EventType", "Event", "Connected", "UserConnected", "Progress", "Image", "Failed",
           "Cancelled", "Done", "publish", "entry_payload", "is_terminal", "with_absolute_urls",
           "LOST_ERROR", "MAX_LOG_LINES", "JOB_STREAM_MAXLEN", "USER_STREAM_MAXLEN"]

JOB_STREAM_MAXLEN = 1000
USER_STREAM_MAXLEN = 10000
MAX_LOG_LINES = 200
_STREAM_FIELD = "data"      # each stream entry holds the event's JSON in this one field
LOST_MESSAGE = "The worker running this job stopped unexpectedly"
LOST_ERROR = {"code": ErrorCode.WORKER_LOST, "message": LOST_MESSAGE}


# -- status ----------------------------------------------------------------------------------
class Status:
    """The API's job statuses (SPEC §6), each list defined once."""
    WAITING = "waiting"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DELAYED = "delayed"
    CANCELLED = "cancelled"
    ALL = (WAITING, ACTIVE, COMPLETED, FAILED, DELAYED, CANCELLED)
    UNFINISHED = (WAITING, ACTIVE, DELAYED)
    ENDED = (COMPLETED, FAILED, CANCELLED)
    CLEANABLE = ENDED          # what POST /api/queue/clean removes


_FROM_RQ = {
    JobStatus.QUEUED: Status.WAITING,
    JobStatus.DEFERRED: Status.WAITING,
    JobStatus.STARTED: Status.ACTIVE,
    JobStatus.FINISHED: Status.COMPLETED,
    JobStatus.FAILED: Status.FAILED,
    JobStatus.SCHEDULED: Status.DELAYED,
    JobStatus.STOPPED: Status.CANCELLED,   # we stop jobs only to cancel them
    JobStatus.CANCELED: Status.CANCELLED,
}


def api_status(rq_status) -> str:
    return _FROM_RQ.get(JobStatus(rq_status) if rq_status else JobStatus.QUEUED, Status.WAITING)


def status_of(job: Job) -> str:
    """The job's API status as it was when the job was fetched."""
    return api_status(job.get_status(refresh=False))


def iso(moment: datetime | None) -> str | None:
    """The API's timestamp form (createdAt, processedAt, finishedAt): UTC, milliseconds, Z."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- state -----------------------------------------------------------------------------------
class Stage:
    """What a running attempt is doing (the state's and progress events' `stage`)."""
    STARTING = "starting"
    GENERATING = "generating"
    DOWNLOADING = "downloading"
    SAVING = "saving"
    PROCESSING = "processing"
    ALL = (STARTING, GENERATING, DOWNLOADING, SAVING, PROCESSING)
    # a finished job's stage is its outcome, whatever its last attempt was doing
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobState(TypedDict, total=False):
    """What a job keeps beside RQ's own fields (stored as the RQ job's meta)."""
    userId: str
    progress: int
    stage: str | None
    logs: list[str]
    attempt: int              # attempts started, this one included
    error: dict               # {"code", "message"} of the last failed attempt
    cancelled: bool           # the running attempt saw the cancel flag and stopped
    processedAt: str          # when the current attempt started (iso)
    retriedAt: str            # when the owner last retried it (iso)


def new_state(user_id: str) -> JobState:
    return {"userId": user_id, "progress": 0, "logs": [], "attempt": 0}


def state_of(job: Job) -> JobState:
    return job.meta   # type: ignore[return-value]  (RQ's meta dict is the stored state)


def owner_of(job: Job) -> str | None:
    return state_of(job).get("userId")


_ENDED_STAGE = {Status.COMPLETED: Stage.DONE, Status.FAILED: Stage.FAILED, Status.CANCELLED: Stage.CANCELLED}


def stage_of(job: Job, status: str) -> str | None:
    """The stage the API shows for a job in `status`: done, failed or cancelled once it ended
    (not the "processing" its last attempt was in), else what the running attempt is doing."""
    return _ENDED_STAGE.get(status) or state_of(job).get("stage")


def _log(state: JobState, line: str) -> None:
    state["logs"] = (state.get("logs", []) + [line])[-MAX_LOG_LINES:]


def start_attempt(job: Job, max_attempts: int) -> int:
    """A worker starts running the job: count the attempt, forget the last one's error."""
    state = state_of(job)
    state["attempt"] = state.get("attempt", 0) + 1
    state["processedAt"] = iso(datetime.now(timezone.utc))   # same form as createdAt/finishedAt
    state.pop("error", None)
    if state["attempt"] > 1:
        _log(state, f"Attempt {state['attempt']} of {max_attempts}")
    return state["attempt"]


def record_progress(job: Job, progress: int, stage: str | None = None, message: str | None = None) -> None:
    state = state_of(job)
    state["progress"] = progress
    if stage is not None:
        state["stage"] = stage
    if message:
        _log(state, message)


def record_failure(job: Job, code: str, message: str) -> dict:
    """Why this attempt failed (kept until the next attempt starts); returns the error."""
    state = state_of(job)
    state["error"] = {"code": code, "message": message}
    _log(state, f"Failed: {message}")
    return state["error"]


def record_lost(job: Job) -> dict:
    """The job's worker died mid-attempt (found by RQ's cleanup); returns the error."""
    return record_failure(job, LOST_ERROR["code"], LOST_ERROR["message"])


def mark_cancelled(job: Job) -> None:
    state_of(job)["cancelled"] = True


def is_marked_cancelled(job: Job) -> bool:
    return bool(state_of(job).get("cancelled"))


def reset_for_retry(job: Job) -> None:
    """The owner retried it: as if new (attempts, progress and log reset)."""
    state = state_of(job)
    state.update({"progress": 0, "stage": None, "attempt": 0, "logs": [], "retriedAt": utcnow_iso()})
    for name in ("error", "cancelled", "processedAt"):
        state.pop(name, None)


def undo_attempt(job: Job, log_line: str) -> None:
    """An attempt interrupted by a worker shutdown and queued again: it does not count."""
    state = state_of(job)
    state.pop("error", None)
    if "attempt" in state:
        state["attempt"] = max(0, state["attempt"] - 1)
    if "logs" in state:
        _log(state, log_line)


def stored_error(job: Job) -> dict | None:
    return state_of(job).get("error")


def save_state(job: Job, pipeline=None) -> None:
    """Store the state now, or on `pipeline` (with the events of the same moment)."""
    if pipeline is None:
        job.save_meta()
    else:
        rqcompat.save_meta(job, pipeline)


# -- events ----------------------------------------------------------------------------------
class EventType:
    CONNECTED = "connected"
    PROGRESS = "progress"
    IMAGE = "image"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DONE = "done"
    ALL = (CONNECTED, PROGRESS, IMAGE, FAILED, CANCELLED, DONE)


def optional(default: Any = None):
    """A field the event may go without: not sent while None."""
    return field(default=default, metadata={"optional": True})


@dataclass(frozen=True)
class Event:
    type: ClassVar[str]

    def to_wire(self, job_id: str | None = None) -> dict:
        """The event as clients see it (SPEC §8): `type` first, optional fields only when set."""
        body: dict = {"type": self.type}
        if job_id is not None:
            body["jobId"] = job_id
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None and item.metadata.get("optional"):
                continue
            body[item.name] = value
        return body


@dataclass(frozen=True)
class Connected(Event):
    """First message of a job's stream: where the job stands."""
    type: ClassVar[str] = EventType.CONNECTED
    status: str
    progress: int
    stage: str | None


@dataclass(frozen=True)
class UserConnected(Event):
    """First message of a user's stream: their recent jobs."""
    type: ClassVar[str] = EventType.CONNECTED
    userId: str
    jobs: list


@dataclass(frozen=True)
class Progress(Event):
    type: ClassVar[str] = EventType.PROGRESS
    progress: int
    stage: str | None = optional()
    message: str | None = optional()
    preview: str | None = optional()      # a data: URL of a partial image while generating


@dataclass(frozen=True)
class Image(Event):
    type: ClassVar[str] = EventType.IMAGE
    progress: int
    image: dict


@dataclass(frozen=True)
class Failed(Event):
    type: ClassVar[str] = EventType.FAILED
    error: dict | None
    willRetry: bool
    attemptsMade: int | None = optional()
    retryIn: float | None = optional()


@dataclass(frozen=True)
class Cancelled(Event):
    type: ClassVar[str] = EventType.CANCELLED
    message: str = "Job cancelled"


@dataclass(frozen=True)
class Done(Event):
    type: ClassVar[str] = EventType.DONE
    result: dict | None
    progress: int = 100


def publish(conn: redis.Redis, job_id: str, user_id: str, event: Event, *, ttl: int,
            pipeline=None) -> str | None:
    """Append one event to the job's and the user's streams (capped, expiring with the job).

    Returns the event's id on the job stream (None when queued on the caller's pipeline)."""
    payload = json.dumps(event.to_wire(job_id), separators=(",", ":"))
    pipe = pipeline if pipeline is not None else conn.pipeline(transaction=True)
    for stream, maxlen in ((keys.job_events(job_id), JOB_STREAM_MAXLEN),
                           (keys.user_events(user_id), USER_STREAM_MAXLEN)):
        pipe.xadd(stream, {_STREAM_FIELD: payload}, maxlen=maxlen, approximate=True)
        pipe.expire(stream, ttl)
    if pipeline is None:
        entry_id = pipe.execute()[0]
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return None


def entry_payload(fields_of_entry: dict) -> str | None:
    """The event JSON of one stream entry (as XRANGE/XREAD return its fields), None if absent."""
    raw = fields_of_entry.get(_STREAM_FIELD.encode(), fields_of_entry.get(_STREAM_FIELD))
    return raw.decode() if isinstance(raw, bytes) else raw


def is_terminal(event: dict) -> bool:
    """Whether the job's stream ends with this (decoded) event."""
    kind = event.get("type")
    return kind in (EventType.DONE, EventType.CANCELLED) or (
        kind == EventType.FAILED and not event.get("willRetry"))


def with_absolute_urls(event: dict, result_urls, image_urls) -> dict | None:
    """The decoded event with its stored image paths passed through `result_urls` (a done
    event's result) or `image_urls` (an image event's image); None when it holds none."""
    if event.get("type") == EventType.DONE and isinstance(event.get("result"), dict):
        return {**event, "result": result_urls(event["result"])}
    if event.get("type") == EventType.IMAGE and isinstance(event.get("image"), dict):
        return {**event, "image": image_urls(event["image"])}
    return None
