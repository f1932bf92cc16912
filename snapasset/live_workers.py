"""The workers listening on the generation queue, judged alive by their heartbeats (SPEC §6,
`GET /api/admin/workers`, `snapasset workers`, `/ready`, `/metrics`).

RQ's registration of a worker (its key in the queue's worker set, and the worker's hash with a
TTL of about eight minutes) outlives a worker killed without a goodbye (SIGKILL, a lost dyno)
by minutes. The heartbeat does not: a SnapAsset worker writes `last_heartbeat` every
`heartbeat_interval` seconds (SNAPASSET_WORKER_HEARTBEAT, stored in its hash), and a worker
whose last beat is older than MISSED_BEATS intervals — never more than STALE_AFTER_MAX
seconds — is not listed, so a dead one drops out within a minute.

One SMEMBERS and one pipelined round trip (a hash and the set of running executions per
registered worker) whatever the number of jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from snapasset.rqcompat import WORKER_KEY_PREFIX, execution_job_id, registered_worker_keys, worker_executions_key

__all__ = ["WorkerInfo", "live_workers", "HEARTBEAT_INTERVAL_FIELD", "CONCURRENCY_FIELD", "MISSED_BEATS",
           "STALE_AFTER_MAX"]

HEARTBEAT_INTERVAL_FIELD = "snapasset_heartbeat_interval"   # written by workers/concurrent.py
CONCURRENCY_FIELD = "snapasset_concurrency"
MISSED_BEATS = 3
STALE_AFTER_MAX = 45.0


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    hostname: str | None
    pid: int | None
    state: str
    concurrency: int
    current_jobs: list[str]
    last_heartbeat: datetime
    started_at: datetime | None
    successful_jobs: int
    failed_jobs: int


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def live_workers(conn: redis.Redis, queue_name: str, *, default_interval: float,
                 now: datetime | None = None) -> list[WorkerInfo]:
    """The workers on `queue_name` whose heartbeat is recent, the most recently started first.

    `default_interval` is the heartbeat interval assumed for a worker that does not say its own
    (a plain RQ worker)."""
    worker_keys = registered_worker_keys(conn, queue_name)
    if not worker_keys:
        return []
    names = [key.removeprefix(WORKER_KEY_PREFIX) for key in worker_keys]
    with conn.pipeline(transaction=False) as pipe:
        for key, name in zip(worker_keys, names):
            pipe.hgetall(key)
            pipe.smembers(worker_executions_key(name))
        replies = pipe.execute()
    now = now or datetime.now(timezone.utc)
    found = []
    for index, name in enumerate(names):
        data = {_text(k): _text(v) for k, v in replies[2 * index].items()}
        beat = _moment(data.get("last_heartbeat"))
        if beat is None or "death" in data:
            continue
        interval = float(data.get(HEARTBEAT_INTERVAL_FIELD) or default_interval)
        if (now - beat).total_seconds() > min(MISSED_BEATS * interval, STALE_AFTER_MAX):
            continue
        running = sorted(execution_job_id(member) for member in replies[2 * index + 1])
        found.append(WorkerInfo(
            name=name, hostname=data.get("hostname") or None,
            pid=int(data["pid"]) if data.get("pid") else None,
            state=data.get("state") or "unknown",
            concurrency=int(data.get(CONCURRENCY_FIELD) or 1),
            current_jobs=running, last_heartbeat=beat, started_at=_moment(data.get("birth")),
            successful_jobs=int(data.get("successful_job_count") or 0),
            failed_jobs=int(data.get("failed_job_count") or 0)))
    found.sort(key=lambda info: info.started_at or info.last_heartbeat, reverse=True)
    return found
