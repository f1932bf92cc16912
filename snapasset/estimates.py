"""How long a new job will take, from how long the queue's most recent jobs actually ran.

The create response's `estimatedTime` used to be a fixed "30 seconds" whatever the provider; a
job of the local provider runs in well under a second, one of OpenAI's in tens of seconds. The
median run time (started → ended) of the last RECENT_JOBS jobs that finished on this queue is
an honest figure for both, times the rounds of waiting jobs ahead of this one. With no finished
job to go by yet, there is no estimate, and the answer says so.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import redis
from rq import Queue

from snapasset import rqcompat

__all__ = ["Estimate", "estimate", "RECENT_JOBS"]

RECENT_JOBS = 20


@dataclass(frozen=True)
class Estimate:
    seconds: float | None    # None: no job has finished on this queue yet
    sample: int              # how many finished jobs the figure comes from

    @property
    def text(self) -> str:
        """The wire's `estimatedTime`: "under a second", "12 seconds", or why there is none."""
        if self.seconds is None:
            return "unknown (no job has finished yet)"
        if self.seconds < 1:
            return "under a second"
        whole = math.ceil(self.seconds)
        return f"{whole} second{'s' if whole != 1 else ''}"


def recent_run_seconds(conn: redis.Redis, queue: Queue, *, sample: int = RECENT_JOBS) -> list[float]:
    """Run times of the queue's last `sample` finished jobs (fewer when fewer finished). The
    finished registry scores each job by its expiry, which for one result TTL orders them by
    the time they finished."""
    job_ids = queue.finished_job_registry.get_job_ids(0, sample - 1, desc=True, cleanup=False)
    return rqcompat.run_seconds(conn, job_ids)


def estimate(conn: redis.Redis, queue: Queue, *, waiting: int, concurrency: int) -> Estimate:
    """The median recent run time, once per round of `concurrency` jobs waiting ahead."""
    runs = recent_run_seconds(conn, queue)
    if not runs:
        return Estimate(seconds=None, sample=0)
    rounds = 1 + waiting // max(1, concurrency)
    return Estimate(seconds=round(statistics.median(runs) * rounds, 2), sample=len(runs))
