"""Progress events of jobs, kept on Redis Streams (SPEC §8).

Every event of a job is appended to that job's stream and to its owner's stream; the stream
entry ids are the SSE ids, so a client that reconnects with Last-Event-ID resumes exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis

from snapasset import keys

__all__ = ["EventType", "publish", "read_job_events", "read_user_events", "is_terminal",
           "JOB_STREAM_MAXLEN", "USER_STREAM_MAXLEN"]

JOB_STREAM_MAXLEN = 1000
USER_STREAM_MAXLEN = 10000
FIELD = "data"


class EventType:
    CONNECTED = "connected"
    PROGRESS = "progress"
    IMAGE = "image"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DONE = "done"


def is_terminal(event: dict) -> bool:
    """Whether the job's stream ends with this event."""
    kind = event.get("type")
    return kind in (EventType.DONE, EventType.CANCELLED) or (
        kind == EventType.FAILED and not event.get("willRetry"))


def publish(conn: redis.Redis, job_id: str, user_id: str, event: dict, *, ttl: int,
            pipeline=None) -> str | None:
    """Append one event to the job's and the user's streams (capped, expiring with the job).

    Returns the event's id on the job stream (None when queued on the caller's pipeline)."""
    payload = json.dumps({**event, "jobId": job_id}, separators=(",", ":"))
    pipe = pipeline if pipeline is not None else conn.pipeline(transaction=True)
    for stream, maxlen in ((keys.job_events(job_id), JOB_STREAM_MAXLEN),
                           (keys.user_events(user_id), USER_STREAM_MAXLEN)):
        pipe.xadd(stream, {FIELD: payload}, maxlen=maxlen, approximate=True)
        pipe.expire(stream, ttl)
    if pipeline is None:
        entry_id = pipe.execute()[0]
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return None


def _decode(entries: Iterable) -> list[tuple[str, dict]]:
    out = []
    for entry_id, fields in entries:
        raw = fields.get(FIELD.encode()) or fields.get(FIELD)
        out.append((entry_id.decode() if isinstance(entry_id, bytes) else entry_id, json.loads(raw)))
    return out


def read_job_events(conn: redis.Redis, job_id: str, after: str = "0-0", count: int | None = None):
    """The job's events after the given stream id, oldest first."""
    return _decode(conn.xrange(keys.job_events(job_id), min=f"({after}" if after != "0-0" else "-",
                               count=count))


def read_user_events(conn: redis.Redis, user_id: str, after: str = "0-0", count: int | None = None):
    return _decode(conn.xrange(keys.user_events(user_id), min=f"({after}" if after != "0-0" else "-",
                               count=count))
