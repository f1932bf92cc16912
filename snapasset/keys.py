"""Every Redis key and stream name SnapAsset writes (RQ's own keys stay RQ's)."""

from __future__ import annotations

__all__ = ["PREFIX", "job_events", "user_events", "user_jobs", "job_cancel", "idempotency",
           "user_active_jobs", "stream_hub_wakeup", "job_outcomes", "job_durations", "user_status_jobs",
           "queue_jobs", "queue_status_jobs", "queue_error_jobs", "lane_wakeup",
           "lost_job_recovery", "job_webhook"]

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


def user_status_jobs(user_id: str, status: str) -> str:
    """Sorted set of a user's jobs in one API status, scored like user_jobs (snapasset.jobindex)."""
    return f"{PREFIX}:user:{user_id}:jobs:{status}"


def queue_jobs(queue_name: str) -> str:
    """Sorted set of every user's jobs on a queue, scored by creation time in microseconds."""
    return f"{PREFIX}:queue:{queue_name}:jobs"


def queue_status_jobs(queue_name: str, status: str) -> str:
    """Sorted set of a queue's jobs in one API status (snapasset.jobindex)."""
    return f"{PREFIX}:queue:{queue_name}:jobs:{status}"


def queue_error_jobs(queue_name: str, code: str) -> str:
    """Sorted set of a queue's failed jobs whose error has this code (snapasset.jobindex)."""
    return f"{PREFIX}:queue:{queue_name}:failed:{code}"


def lane_wakeup(queue_name: str) -> str:
    """List an enqueue pushes a token to, so that an idle worker blocked on it looks at every
    priority lane at once (workers/concurrent.py)."""
    return f"{PREFIX}:queue:{queue_name}:wakeup"


def worker_wakeup(worker_name: str) -> str:
    """List a worker pushes to when it is told to stop, ending its own wait for work at once."""
    return f"{PREFIX}:worker:{worker_name}:wakeup"


def user_active_jobs(user_id: str) -> str:
    """Set of a user's unfinished job ids (for the concurrent-jobs limit)."""
    return f"{PREFIX}:user:{user_id}:active"


def lost_job_recovery(queue_name: str) -> str:
    """Lock: the one worker recovering the lost jobs of a queue right now (workers/concurrent.py)."""
    return f"{PREFIX}:{queue_name}:lost-job-recovery"


def stream_hub_wakeup(hub_id: str) -> str:
    """A web process's private stream, written to wake its SSE hub's blocked reader."""
    return f"{PREFIX}:sse:hub:{hub_id}:wakeup"


def job_cancel(job_id: str) -> str:
    """Flag set when the owner cancelled a job; the running pipeline checks it between steps."""
    return f"{PREFIX}:job:{job_id}:cancel"


def job_webhook(job_id: str) -> str:
    """Hash of the delivery state of a job's completion webhook (status, attempts, lastError, deliveredAt)."""
    return f"{PREFIX}:job:{job_id}:webhook"


def idempotency(user_id: str, key: str) -> str:
    return f"{PREFIX}:idem:{user_id}:{key}"


def job_outcomes(queue_name: str) -> str:
    """Hash of a queue's job outcome counters by outcome, error code, provider and model
    (bounded: one field per label set). Written by workers, read by every web process's /metrics."""
    return f"{PREFIX}:metrics:{queue_name}:job-outcomes"


def job_durations(queue_name: str) -> str:
    """Hash of a queue's job duration histograms (bucket counts and sums per metric, provider
    and model; bounded like job_outcomes)."""
    return f"{PREFIX}:metrics:{queue_name}:job-durations"
