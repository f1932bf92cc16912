"""Queue administration (SPEC §6 /api/queue, `snapasset stats|clean`): counts per status,
removing old finished jobs, pausing and resuming the workers. No Flask here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis
from rq.job import Job, JobStatus
from rq.registry import (CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry,
                         ScheduledJobRegistry, StartedJobRegistry)
from rq.serializers import JSONSerializer
from rq.suspension import is_suspended, resume, suspend

from snapasset import jobrecord, keys, rqcompat
from snapasset.config import Settings
from snapasset.errors import utcnow_iso
from snapasset.jobrecord import Status, status_of
from snapasset.jobs import open_queue

__all__ = ["QueueAdmin"]


class QueueAdmin:
    def __init__(self, conn: redis.Redis, settings: Settings):
        self.conn = conn
        self.queue = open_queue(conn, settings)

    def stats(self) -> dict:
        """Counts per state (SPEC §6), plus cancelled and whether workers are paused."""
        name = self.queue.name
        failed, cancelled_stopped = self._split_failed()
        counts = {
            Status.WAITING: self.queue.count,
            Status.ACTIVE: StartedJobRegistry(name, connection=self.conn).count,
            Status.COMPLETED: FinishedJobRegistry(name, connection=self.conn).count,
            Status.FAILED: len(failed),
            Status.DELAYED: ScheduledJobRegistry(name, connection=self.conn).count,
            Status.CANCELLED: len(cancelled_stopped) + self.conn.zcard(CanceledJobRegistry(name, connection=self.conn).key),
        }
        return {**counts, "total": sum(counts.values()), "paused": self.paused(),
                "timestamp": utcnow_iso()}

    def _split_failed(self) -> tuple[list[str], list[str]]:
        """The failed registry holds failed jobs and stopped (= cancelled while active) ones."""
        ids = [i.decode() if isinstance(i, bytes) else i for i in
               self.conn.zrange(FailedJobRegistry(self.queue.name, connection=self.conn).key, 0, -1)]
        statuses = rqcompat.stored_statuses(self.conn, ids)
        stopped = [i for i, st in zip(ids, statuses) if st == JobStatus.STOPPED.value]
        return [i for i, st in zip(ids, statuses) if st != JobStatus.STOPPED.value], stopped

    def clean(self, *, status: str, grace_ms: int, limit: int) -> int:
        """Remove up to `limit` jobs in `status` that finished more than `grace_ms` ago, with their
        event streams, cancel flags and index entries. Images and generation records stay."""
        if status not in Status.CLEANABLE:
            raise ValueError(f"status must be one of {', '.join(Status.CLEANABLE)}")
        cutoff = datetime.now(timezone.utc) - timedelta(milliseconds=grace_ms)
        name = self.queue.name
        if status == Status.COMPLETED:
            candidates = self._registry_ids(FinishedJobRegistry(name, connection=self.conn))
        elif status == Status.FAILED:
            candidates = self._split_failed()[0]
        else:
            candidates = self._split_failed()[1] + self._registry_ids(CanceledJobRegistry(name, connection=self.conn))
        removed = 0
        for start in range(0, len(candidates), 200):
            if removed >= limit:
                break
            batch = candidates[start:start + 200]
            for job in Job.fetch_many(batch, connection=self.conn, serializer=JSONSerializer):
                if removed >= limit:
                    break
                if job is None or status_of(job) != status:
                    continue
                ended = job.ended_at or job.created_at
                if ended.tzinfo is None:
                    ended = ended.replace(tzinfo=timezone.utc)
                if ended > cutoff:
                    continue
                self._remove(job)
                removed += 1
        return removed

    def _registry_ids(self, registry) -> list[str]:
        # oldest first: registries are scored by expiry, which follows the end time
        return [i.decode() if isinstance(i, bytes) else i for i in self.conn.zrange(registry.key, 0, -1)]

    def _remove(self, job: Job) -> None:
        user_id = jobrecord.owner_of(job)
        with self.conn.pipeline() as pipe:
            job.delete(pipeline=pipe, remove_from_queue=True)
            pipe.delete(keys.job_events(job.id), keys.job_cancel(job.id))
            if user_id:
                pipe.zrem(keys.user_jobs(user_id), job.id)
                pipe.srem(keys.user_active_jobs(user_id), job.id)
            pipe.execute()

    def pause(self) -> None:
        """Workers finish what they run and take nothing new (RQ's suspension, all workers)."""
        suspend(self.conn)

    def resume(self) -> None:
        resume(self.conn)

    def paused(self) -> bool:
        return bool(is_suspended(self.conn))
