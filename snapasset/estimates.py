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
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from rq import Queue

from snapasset import rqcompat

__all__ = ["Estimate", "estimate", "estimate_command", "estimate_of", "RECENT_JOBS"]

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


def estimate(conn: redis.Redis, lanes: Iterable[Queue], normal: Queue, *, concurrency: int) -> Estimate:
    """The median run time of the last jobs finished on the `normal` lane, once per round of
    `concurrency` jobs waiting ahead in all `lanes`: read in one round trip."""
    return estimate_of(conn.execute_command(*estimate_command(lanes, normal)), concurrency=concurrency)


def estimate_command(lanes: Iterable[Queue], normal: Queue) -> tuple:
    """What estimate() reads, as one read-only command to send with others; estimate_of() its reply."""
    return rqcompat.waiting_and_recent_runs_command(lanes, normal, RECENT_JOBS)


def estimate_of(reply: list, *, concurrency: int) -> Estimate:
    waiting, runs = rqcompat.waiting_and_recent_runs_of(reply)
    if not runs:
        return Estimate(seconds=None, sample=0)
    rounds = 1 + waiting // max(1, concurrency)
    return Estimate(seconds=round(statistics.median(runs) * rounds, 2), sample=len(runs))
