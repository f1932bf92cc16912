"""The job service over RQ: create, get and list generation jobs (no Flask here)."""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from snapasset import keys
from snapasset.config import Settings
from snapasset.errors import APIError, ErrorCode
from snapasset.schema import JobRequest

__all__ = ["Status", "JobService", "new_job_id", "JOB_FUNCTION", "api_status", "iso", "open_queue"]

JOB_FUNCTION = "workers.pipeline.run_generation"
IDEMPOTENCY_TTL = 24 * 3600
_ALPHABET = string.ascii_lowercase + string.digits


class Status:
    WAITING = "waiting"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DELAYED = "delayed"
    CANCELLED = "cancelled"
    ALL = (WAITING, ACTIVE, COMPLETED, FAILED, DELAYED, CANCELLED)
    UNFINISHED = (WAITING, ACTIVE, DELAYED)


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


def new_job_id(now: float | None = None) -> str:
    """gen-<unix seconds>-<12 random [a-z0-9]> (SPEC §6)."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"gen-{int(now if now is not None else time.time())}-{suffix}"


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def open_queue(conn: redis.Redis, settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=conn, serializer=JSONSerializer)


def job_not_found() -> APIError:
    return APIError(404, ErrorCode.JOB_NOT_FOUND, "Job not found")


@dataclass
class Created:
    job: dict          # the create response body
    created: bool      # False when an Idempotency-Key replayed an earlier job


class JobService:
    def __init__(self, conn: redis.Redis, settings: Settings):
        self.conn = conn
        self.settings = settings
        self.queue = open_queue(conn, settings)

    # -- reading -----------------------------------------------------------------
    def fetch(self, job_id: str, user_id: str | None) -> Job:
        """The job, if it exists and (when user_id is given) belongs to that user; else 404."""
        try:
            job = Job.fetch(job_id, connection=self.conn, serializer=JSONSerializer)
        except NoSuchJobError:
            raise job_not_found() from None
        if user_id is not None and job.meta.get("userId") != user_id:
            raise job_not_found()
        return job

    def status_of(self, job: Job) -> str:
        return api_status(job.get_status(refresh=False))

    def describe(self, job: Job) -> dict:
        """GET /api/jobs/:id body."""
        meta = job.meta
        status = self.status_of(job)
        body = {
            "jobId": job.id,
            "status": status,
            "progress": meta.get("progress", 0),
            "stage": meta.get("stage"),
            "data": job.args[0] if job.args else {},
            "logs": meta.get("logs", []),
            "attemptsMade": meta.get("attempt", 0),
            "createdAt": iso(job.created_at),
            "processedAt": meta.get("processedAt"),
        }
        if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
            body["finishedAt"] = meta.get("finishedAt") or iso(job.ended_at)
        if status == Status.COMPLETED:
            body["result"] = job.return_value()
        if status in (Status.FAILED, Status.DELAYED) and meta.get("error") or status == Status.FAILED:
            error = meta.get("error") or {"code": ErrorCode.WORKER_LOST,
                                          "message": "The worker running this job stopped unexpectedly"}
            body["error"] = error
            body["failedReason"] = error["message"]
        return body

    def get(self, job_id: str, user_id: str | None) -> dict:
        return self.describe(self.fetch(job_id, user_id))

    def list(self, user_id: str, *, status: str | None, limit: int, cursor: str | None) -> dict:
        """The user's jobs, newest first, `limit` at a time; cursor is opaque to clients."""
        key = keys.user_jobs(user_id)
        upper = f"({int(cursor)}" if cursor else "+inf"
        found: list[dict] = []
        next_cursor = None
        while len(found) < limit:
            batch = self.conn.zrevrangebyscore(key, upper, "-inf", start=0, num=max(limit * 2, 20),
                                               withscores=True)
            if not batch:
                break
            ids = [member.decode() for member, _ in batch]
            jobs = Job.fetch_many(ids, connection=self.conn, serializer=JSONSerializer)
            gone = [job_id for job_id, job in zip(ids, jobs) if job is None]
            if gone:
                self.conn.zrem(key, *gone)   # cleaned away; forget them
            for (member, score), job in zip(batch, jobs):
                upper = f"({int(score)}"
                if job is None:
                    continue
                job_status = self.status_of(job)
                if status and job_status != status:
                    continue
                found.append({"jobId": job.id, "status": job_status,
                              "progress": job.meta.get("progress", 0), "createdAt": iso(job.created_at)})
                if len(found) == limit:
                    next_cursor = str(int(score))
                    break
        if next_cursor and not self.conn.zrevrangebyscore(key, f"({next_cursor}", "-inf", start=0, num=1):
            next_cursor = None
        return {"jobs": found, "count": len(found), "status": status, "nextCursor": next_cursor}

    # -- writing -----------------------------------------------------------------
    def create(self, user_id: str, request: JobRequest, *, idempotency_key: str | None = None) -> Created:
        job_id = new_job_id()
        if idempotency_key:
            replay = self._claim_idempotency(user_id, idempotency_key, request.fingerprint(), job_id)
            if replay is not None:
                return Created(job=self._created_body(replay, self._status_or_waiting(replay)),
                               created=False)
        try:
            self._enqueue(job_id, user_id, request)
        except Exception:
            if idempotency_key:
                self.conn.delete(keys.idempotency(user_id, idempotency_key))
            raise
        return Created(job=self._created_body(job_id, "queued"), created=True)

    def _enqueue(self, job_id: str, user_id: str, request: JobRequest) -> Job:
        settings = self.settings
        created_us = int(time.time() * 1_000_000)
        intervals = settings.retry_intervals
        with self.conn.pipeline() as pipe:
            job = self.queue.enqueue(
                JOB_FUNCTION, request.payload(user_id),
                job_id=job_id,
                job_timeout=settings.job_timeout,
                result_ttl=settings.job_ttl,
                failure_ttl=settings.job_ttl,
                retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
                meta={"userId": user_id, "progress": 0, "logs": [], "attempt": 0},
                description=f"generation for {user_id}",
                pipeline=pipe,
            )
            pipe.zadd(keys.user_jobs(user_id), {job_id: created_us})
            pipe.expire(keys.user_jobs(user_id), settings.job_ttl)
            pipe.execute()
        return job

    def _claim_idempotency(self, user_id: str, key: str, fingerprint: str, job_id: str) -> str | None:
        """Claim the key for job_id; return an earlier job id when the key was used with this body."""
        redis_key = keys.idempotency(user_id, key)
        if self.conn.set(redis_key, f"{job_id}|{fingerprint}", nx=True, ex=IDEMPOTENCY_TTL):
            return None
        stored = self.conn.get(redis_key)
        if stored is None:   # expired between the two calls: claim again
            return self._claim_idempotency(user_id, key, fingerprint, job_id)
        earlier_id, earlier_fingerprint = stored.decode().split("|", 1)
        if earlier_fingerprint != fingerprint:
            raise APIError(409, ErrorCode.IDEMPOTENCY_CONFLICT,
                           "This Idempotency-Key was already used with a different request body")
        return earlier_id

    def _status_or_waiting(self, job_id: str) -> str:
        try:
            job = Job.fetch(job_id, connection=self.conn, serializer=JSONSerializer)
        except NoSuchJobError:   # the first request is still enqueueing it
            return Status.WAITING
        return self.status_of(job)

    def _created_body(self, job_id: str, status: str) -> dict:
        return {"jobId": job_id, "status": status,
                "message": "Job created successfully",
                "estimatedTime": self._estimate(),
                "statusUrl": f"/api/jobs/{job_id}"}

    def _estimate(self) -> str:
        waiting = self.queue.count
        seconds = 30 + 10 * (waiting // max(1, self.settings.worker_concurrency))
        return f"{seconds} seconds"
