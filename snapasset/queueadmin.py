"""Queue administration (SPEC §6 /api/queue and "Operators", `snapasset stats|clean|jobs|retry`):
counts per status, removing old finished jobs, pausing and resuming the workers, every user's
jobs and the bulk retry of failed ones. No Flask here.

Counts are the sizes of the lanes and of RQ's registries, and lists read a page of one index
(snapasset.jobindex): each costs the same whatever the number of jobs stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis
from rq.job import Job
from rq.registry import (CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry,
                         ScheduledJobRegistry, StartedJobRegistry)
from rq.serializers import JSONSerializer
from rq.suspension import is_suspended, resume, suspend

from snapasset import jobindex, jobrecord, keys
from snapasset.config import Settings
from snapasset.errors import DomainError, utcnow_iso
from snapasset.jobrecord import Status, status_of
from snapasset.jobs import JobService, open_lanes, sources_of, with_status

__all__ = ["QueueAdmin", "RETRY_LIMIT_MAX"]

RETRY_LIMIT_MAX = 1000
# the registry whose size is each status's count (a job stopped mid-run is moved by its worker
# from the failed registry to the cancelled one)
_REGISTRIES = {Status.ACTIVE: StartedJobRegistry, Status.COMPLETED: FinishedJobRegistry,
               Status.FAILED: FailedJobRegistry, Status.DELAYED: ScheduledJobRegistry,
               Status.CANCELLED: CanceledJobRegistry}


class QueueAdmin:
    def __init__(self, conn: redis.Redis, settings: Settings, jobs: JobService):
        self.conn = conn
        self.settings = settings
        self.jobs = jobs
        self.lanes = open_lanes(conn, settings)

    def stats(self) -> dict:
        """Counts per state (SPEC §6), plus cancelled and whether workers are paused: one round
        trip whatever the number of jobs."""
        conn = self.conn
        with conn.pipeline(transaction=False) as pipe:
            for lane in self.lanes:
                pipe.llen(lane.key)
                for registry in _REGISTRIES.values():
                    pipe.zcard(registry(lane.name, connection=conn).key)
            sizes = pipe.execute()
        per_lane = len(_REGISTRIES) + 1
        counts = dict.fromkeys(Status.ALL, 0)
        for index in range(len(self.lanes)):
            lane_sizes = sizes[index * per_lane:(index + 1) * per_lane]
            counts[Status.WAITING] += lane_sizes[0]
            for status, size in zip(_REGISTRIES, lane_sizes[1:]):
                counts[status] += size
        return {**counts, "total": sum(counts.values()), "paused": self.paused(),
                "timestamp": utcnow_iso()}

    def clean(self, *, status: str, grace_ms: int, limit: int) -> int:
        """Remove up to `limit` jobs in `status` that finished more than `grace_ms` ago, with their
        event streams, cancel flags and index entries. Images and generation records stay.

        Candidates come from the status index, oldest first, so the cost follows `limit` (and
        the jobs still inside the grace period), not the number of jobs stored."""
        if status not in Status.CLEANABLE:
            raise ValueError(f"status must be one of {', '.join(Status.CLEANABLE)}")
        cutoff = datetime.now(timezone.utc) - timedelta(milliseconds=grace_ms)
        index = keys.queue_status_jobs(self.settings.queue_name, status)
        removed, start, batch_size = 0, 0, 200
        while removed < limit:
            batch = [m.decode() for m in self.conn.zrange(index, start, start + batch_size - 1)]
            if not batch:
                break
            start += batch_size
            for job_id, job in zip(batch, Job.fetch_many(batch, connection=self.conn, serializer=JSONSerializer)):
                if removed >= limit:
                    break
                if job is None:
                    with self.conn.pipeline(transaction=False) as pipe:
                        jobindex.forget_job(pipe, self.settings.queue_name, job_id, None)
                        pipe.execute()
                    start -= 1
                    continue
                if status_of(job) != status:
                    continue
                ended = job.ended_at or job.created_at
                if ended.tzinfo is None:
                    ended = ended.replace(tzinfo=timezone.utc)
                if ended > cutoff:
                    continue
                jobrecord.forget(self.conn, self.settings.queue_name, job)
                start -= 1
                removed += 1
        return removed

    # -- operators -----------------------------------------------------------------------------
    def list_all(self, *, status: str | None, user_id: str | None, error_code: str | None, limit: int,
                 cursor: str | None) -> tuple[list[Job], str | None]:
        """Every user's jobs (GET /api/admin/jobs), newest first, filtered by status, owner and the
        failed jobs' error code, and the next page's cursor. An error code means failed jobs. Each
        filter reads one index, so a page costs a page — except an owner *and* an error code
        together, which reads that owner's failed jobs until a page of that code is found."""
        queue = self.settings.queue_name
        if error_code is not None:
            status = Status.FAILED
            sources = ([keys.user_status_jobs(user_id, Status.FAILED)] if user_id else
                       [keys.queue_error_jobs(queue, error_code)])
        elif user_id is not None:
            sources = ([keys.user_jobs(user_id)] if status is None else
                       [keys.user_status_jobs(user_id, s) for s in sources_of(status)])
        else:
            sources = ([keys.queue_jobs(queue)] if status is None else
                       [keys.queue_status_jobs(queue, s) for s in sources_of(status)])
        in_status = with_status(status)

        def accept(job: Job) -> bool:
            if user_id is not None and jobrecord.owner_of(job) != user_id:
                return False
            return in_status(job) and (error_code is None or (jobrecord.failure_of(job) or {}).get("code") == error_code)

        page = self.jobs.page(sources, limit=limit, cursor=cursor, accept=accept)
        return page.jobs, page.next_cursor

    def retry_failed(self, *, error_code: str | None, limit: int) -> tuple[list[str], int]:
        """Queue up to `limit` failed jobs again (POST /api/admin/jobs/retry), newest first, only
        those failed with `error_code` when given — after a provider outage, say. An operator's
        retry is not refused by the owners' unfinished-job limit (each job still takes its
        owner's slot). Returns the ids queued again, and how many changed state meanwhile."""
        retried: list[str] = []
        skipped = 0
        cursor = None
        while len(retried) < limit:
            jobs, cursor = self.list_all(status=Status.FAILED, user_id=None, error_code=error_code,
                                         limit=min(100, limit - len(retried)), cursor=cursor)
            for job in jobs:
                try:
                    self.jobs.retry(job.id, None, enforce_limit=False)
                    retried.append(job.id)
                except DomainError:   # retried or removed by someone else meanwhile
                    skipped += 1
            if cursor is None:
                break
        return retried, skipped

    def reindex(self, *, batch: int = 500) -> int:
        """File every job of this queue in the indexes under the status it has now; answers how
        many were filed. For a Redis whose jobs predate the per-status indexes (they were in their
        user's list only, so `?status=` lists and the admin list missed them) or was restored from
        a backup. Walks every job record once (SCAN, `batch` records a round trip), so it costs
        O(jobs) once; safe while the service runs, and to run again."""
        origins = {lane.name for lane in self.lanes}
        prefix = Job.redis_job_namespace_prefix
        filed, ids = 0, []
        for key in self.conn.scan_iter(match=prefix + "*", count=batch):
            job_id = key.decode()[len(prefix):]
            if ":" not in job_id:   # not a job's side key (rq:job:<id>:dependents and the like)
                ids.append(job_id)
            if len(ids) == batch:
                filed, ids = filed + self._file_as_now(ids, origins), []
        return filed + self._file_as_now(ids, origins) if ids else filed

    def _file_as_now(self, ids: list[str], origins: set[str]) -> int:
        jobs = Job.fetch_many(ids, connection=self.conn, serializer=JSONSerializer)
        with self.conn.pipeline(transaction=False) as pipe:
            filed = sum(self.jobs.file_as_now(pipe, job) for job in jobs if job is not None and job.origin in origins)
            pipe.execute()
        return filed

    def pause(self) -> None:
        """Workers finish what they run and take nothing new (RQ's suspension, all workers)."""
        suspend(self.conn)

    def resume(self) -> None:
        resume(self.conn)

    def paused(self) -> bool:
        return bool(is_suspended(self.conn))
