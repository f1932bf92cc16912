"""A generation job's record: its stored state and its events (SPEC §6, §8). The one module
that names a job's state keys and an event's fields.

* **State** (`JobState`) is kept in the RQ job's `meta`: who owns the job, how far it got, its
  log lines, which attempt runs, why the last one failed. Producers change it only through the
  functions below (`new_state`, `start_attempt`, `record_progress`, …); readers use `state_of`.
* **Events** are small frozen dataclasses, one per SPEC §8 type (`Connected`, `Progress`,
  `Image`, `Failed`, `Cancelled`, `Done`). `publish` appends one to the job's and its owner's
  Redis Streams (the entry ids are the SSE ids, so a client that reconnects with Last-Event-ID
  resumes exactly); `entry_payload` reads one back from a stream entry.

What a finished job leaves in Redis is kept small (a stream costs about 3 KB before its first
entry): its result moves into its state (`record_result`; RQ's per-job result stream goes);
live previews (data URLs of partial images) go to the job's stream only, and the stream is
rewritten without them (same entry ids) in the same transaction as the terminal event — XDEL
alone would hide them but keep their memory until the whole stream goes; the ended job's
stream is kept for replay `replay_window` seconds (SNAPASSET_EVENTS_TTL), not as long as the
record — after that the SSE endpoint answers from the record. A user's stream keeps the last
`replay_window` seconds of events (XADD MINID), however many jobs the user runs.

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
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar, TypedDict

import redis
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry

from snapasset import jobindex, keys, rqcompat
from snapasset.errors import ErrorCode, utcnow_iso

__all__ = ["Status", "api_status", "status_of", "iso", "Stage", "JobState", "new_state", "state_of", "owner_of", "data_of",
           "stage_of", "start_attempt", "record_progress", "record_failure", "record_lost", "mark_cancelled",
           "is_marked_cancelled", "reset_for_retry", "undo_attempt", "stored_error", "failure_of", "record_result",
           "result_of", "save_state", "reference_keys", "forget", "WebhookStatus", "record_webhook_attempt",
           "webhook_state",
           "EventType", "Event", "Connected", "UserConnected", "Progress", "Image", "image_entry", "Failed",
           "Cancelled", "Done", "publish", "entry_payload", "is_terminal", "with_absolute_urls",
           "LOST_ERROR", "MAX_LOG_LINES", "JOB_STREAM_MAXLEN"]

JOB_STREAM_MAXLEN = 1000
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
    result: dict              # what a completed job made (RQ's result stream is deleted)
    referenceKeys: dict       # {index in options.inputImages: storage key} of references uploaded as data URLs


def new_state(user_id: str, *, reference_keys: dict[str, str] | None = None) -> JobState:
    state: JobState = {"userId": user_id, "progress": 0, "logs": [], "attempt": 0}
    if reference_keys:
        state["referenceKeys"] = reference_keys
    return state


def reference_keys(job: Job) -> dict[str, str]:
    """Where the job's uploaded reference pictures are stored, by their index in inputImages."""
    return state_of(job).get("referenceKeys") or {}


def state_of(job: Job) -> JobState:
    return job.meta   # type: ignore[return-value]  (RQ's meta dict is the stored state)


def owner_of(job: Job) -> str | None:
    return state_of(job).get("userId")


def data_of(job: Job) -> dict:
    """The job's data as created (SPEC: userId, prompt, platforms, options, webhookUrl)."""
    return job.args[0] if job.args else {}


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
    for name in ("error", "cancelled", "processedAt", "result"):
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


def failure_of(job: Job) -> dict | None:
    """Why a failed job failed: its recorded error, or LOST_ERROR when its worker died before
    recording one; None for a job that is not failed."""
    if status_of(job) != Status.FAILED:
        return None
    return stored_error(job) or LOST_ERROR


def record_result(job: Job, result) -> None:
    state_of(job)["result"] = result


def result_of(job: Job):
    """A completed job's result: in its state once its worker filed it, in RQ's result stream
    for the moment before. The worker moves it from one to the other in one step, which may
    fall between our read of the state and of the stream: then the state holds it."""
    result = state_of(job).get("result") or job.return_value()
    if result is None:
        job.get_meta(refresh=True)
        result = state_of(job).get("result")
    return result


def forget(conn: redis.Redis, queue_name: str, job: Job) -> None:
    """Remove the job from Redis: its record, events, cancel flag, webhook state and index entries."""
    user_id = owner_of(job)
    with conn.pipeline() as pipe:
        job.delete(pipeline=pipe, remove_from_queue=True)
        # RQ removes a job from the registry of its RQ status only: a stopped job (cancelled
        # while active) is in the cancelled registry (rqcompat.move_to_cancelled), not its own
        pipe.zrem(CanceledJobRegistry(job.origin, connection=conn).key, job.id)
        pipe.delete(keys.job_events(job.id), keys.job_cancel(job.id), keys.job_webhook(job.id))
        jobindex.forget_job(pipe, queue_name, job.id, user_id)
        if user_id:
            pipe.srem(keys.user_active_jobs(user_id), job.id)
        pipe.execute()


# -- the completion webhook's delivery ------------------------------------------------------
# Kept in its own small hash (keys.job_webhook), not in the state: the delivery job writes it
# while the owner may be retrying the job, and neither must overwrite the other.
class WebhookStatus:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    REFUSED = "refused"
    ALL = (PENDING, DELIVERED, FAILED, REFUSED)


def record_webhook_attempt(conn: redis.Redis, job_id: str, status: str, *, ttl: int,
                           error: str | None = None) -> None:
    """One delivery attempt of a job's webhook ended with `status` (and `error`)."""
    key = keys.job_webhook(job_id)
    fields_to_set = {"status": status, "lastError": error} if error else {"status": status}
    if status == WebhookStatus.DELIVERED:
        fields_to_set["deliveredAt"] = utcnow_iso()
    with conn.pipeline(transaction=True) as pipe:
        pipe.hincrby(key, "attempts", 1)
        pipe.hset(key, mapping=fields_to_set)
        pipe.expire(key, ttl)
        pipe.execute()


def webhook_state(conn: redis.Redis, job_id: str) -> dict:
    """The delivery state of a job's completion webhook (GET /api/jobs/:id `webhook`)."""
    stored = {k.decode(): v.decode() for k, v in conn.hgetall(keys.job_webhook(job_id)).items()}
    return {"status": stored.get("status", WebhookStatus.PENDING), "attempts": int(stored.get("attempts", 0)),
            "lastError": stored.get("lastError"), "deliveredAt": stored.get("deliveredAt")}


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
    image: dict          # an image_entry()


def image_entry(*, platform: str, platform_id: str, url: str, width: int, height: int, size: int, fmt: str,
                blurhash: str, variant: int, source_index: int) -> dict:
    """One rendered image as an `image` event and the result's `images` list carry it (SPEC §5,
    §6): `variant` is which of the job's n pictures, `sourceIndex` which of its shape families."""
    return {"platform": platform, "platformId": platform_id, "url": url, "width": width, "height": height,
            "size": size, "format": fmt, "blurhash": blurhash, "variant": variant, "sourceIndex": source_index}


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


def publish(conn: redis.Redis, job_id: str, user_id: str, event: Event, *, ttl: int, replay_window: int,
            pipeline=None) -> str | None:
    """Append one event to the job's and the user's streams (capped, expiring with the job; a
    terminal event gives the job's stream `replay_window` seconds more and, unless queued on the
    caller's pipeline, takes the live previews out of it at the same moment). An event with a
    preview goes to the job's stream only.

    Returns the event's id on the job stream (None when queued on the caller's pipeline)."""
    wire = event.to_wire(job_id)
    payload = json.dumps(wire, separators=(",", ":"))
    job_stream, user_stream = keys.job_events(job_id), keys.user_events(user_id)
    terminal = is_terminal(wire)
    history = conn.xrange(job_stream) if pipeline is None and terminal else []
    kept = [(entry_id, entry) for entry_id, entry in history if not _has_preview(entry)]
    rewrite = len(kept) < len(history)
    pipe = pipeline if pipeline is not None else conn.pipeline(transaction=True)
    if rewrite:   # nothing adds to it meanwhile: the attempt that drew the previews is over
        pipe.delete(job_stream)
        for entry_id, entry in kept:
            pipe.xadd(job_stream, entry, id=entry_id)
    pipe.xadd(job_stream, {_STREAM_FIELD: payload}, maxlen=JOB_STREAM_MAXLEN, approximate=True)
    pipe.expire(job_stream, replay_window if terminal else ttl)
    if "preview" not in wire:   # a dashboard following every job gets no pictures
        oldest_kept = int(time.time() * 1000) - replay_window * 1000
        pipe.xadd(user_stream, {_STREAM_FIELD: payload}, minid=f"{oldest_kept}-0", approximate=True)
        pipe.expire(user_stream, replay_window)
    if pipeline is None:
        entry_id = pipe.execute()[1 + len(kept) if rewrite else 0]
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return None


def _has_preview(fields_of_entry: dict) -> bool:
    return '"preview":' in (entry_payload(fields_of_entry) or "")


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
