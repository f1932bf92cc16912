"""Every Redis key and stream name SnapAsset writes (RQ's own keys stay RQ's)."""

from __future__ import annotations

__all__ = ["PREFIX", "job_events", "user_events", "user_jobs", "job_cancel", "idempotency",
           "user_active_jobs", "stream_hub_wakeup"]

PREFIX = "snapasset"


def job_events(job_id: str) -> str:
    """The Redis Stream of one job's progress events."""
    return f"{PREFIX}:events:job:{job_id}"


def user_events(user_id: str) -> str:
    """The Redis Stream of every event of one user's jobs (for GET /api/sse/jobs)."""
    return f"{PREFIX}:events:user:{user_id}"


def user_jobs(user_id: str) -> str:
    """Sorted set of a user's job ids, scored by creation time in microseconds."""
    return f"{PREFIX}:user:{user_id}:jobs"


def user_active_jobs(user_id: str) -> str:
    """Set of a user's unfinished job ids (for the concurrent-jobs limit)."""
    return f"{PREFIX}:user:{user_id}:active"


def stream_hub_wakeup(hub_id: str) -> str:
    """A web process's private stream, written to wake its SSE hub's blocked reader."""
    return f"{PREFIX}:sse:hub:{hub_id}:wakeup"


def job_cancel(job_id: str) -> str:
    """Flag set when the owner cancelled a job; the running pipeline checks it between steps."""
    return f"{PREFIX}:job:{job_id}:cancel"


def idempotency(user_id: str, key: str) -> str:
    return f"{PREFIX}:idem:{user_id}:{key}"
