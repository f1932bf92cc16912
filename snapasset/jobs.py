"""The job service over RQ: create, fetch, list, retry and cancel generation jobs (no Flask, no
HTTP: refusals are the domain errors of snapasset.errors). What a job stores and publishes is
snapasset.jobrecord's; how the API shows a job is snapasset.api.presentation's; queue
administration (stats, clean, pause, the operators' list and bulk retry) is
snapasset.queueadmin's. Jobs wait in three priority lanes (`open_lanes`); lists read a page of
one per-status index (snapasset.jobindex).

Two invariants are kept atomically, by Redis itself rather than by locks:

* **Unfinished jobs per user.** `keys.user_active_jobs(user)` holds the ids of the user's jobs
  that may still be unfinished. It is *derived from RQ's state*: whenever a job is admitted
  (create, retry) the members are checked against their RQ status and finished, failed,
  cancelled or vanished ones are pruned by the same script (snapasset.admission) that adds the
  new id and runs the job's writes, so two admissions at once cannot both take the last slot.
  Nothing outside this module (no worker hook) has to maintain it. The job-creation quota is
  tested and counted by that script too.
* **Idempotency.** A key is first claimed as *pending* (SET NX, short TTL); the job's enqueue and
  the switch to *committed* (24 h TTL) run in the one admission script. A second identical
  request that finds the claim pending waits for the outcome: committed → it answers with that
  job; released (the first request failed) → it claims the key itself. Exactly one job is ever
  enqueued per key.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.serializers import JSONSerializer

from snapasset import admission, jobindex, jobrecord, keys, rqcompat
from snapasset.config import Env, Settings
from snapasset.errors import (
    IdempotencyConflict, JobLimitExceeded, JobNotCancellable, JobNotDeletable, JobNotFound, JobNotRetryable,
)
from snapasset.estimates import Estimate, estimate, estimate_command, estimate_of
from snapasset.jobrecord import Status, api_status, status_of
from snapasset.schema import JobRequest, Priority

__all__ = ["JobService", "Quota", "Created", "new_job_id", "JOB_ID_PATTERN", "JOB_FUNCTION", "open_queue",
           "open_lanes", "lane_name", "wake_workers", "open_webhook_queue", "JOB_SLOT_RETRY_AFTER", "sources_of",
           "with_status"]

JOB_FUNCTION = "workers.pipeline.run_generation"
IDEMPOTENCY_TTL = 24 * 3600
IDEMPOTENCY_PENDING_TTL = 60        # a claim whose request died frees itself this soon
IDEMPOTENCY_WAIT = 10.0             # how long a duplicate waits for the first request's outcome
JOB_SLOT_RETRY_AFTER = 15           # Retry-After hint when all of a user's job slots are taken
_PENDING, _COMMITTED = "pending", "committed"
_LIVE_RQ = frozenset({JobStatus.QUEUED.value, JobStatus.DEFERRED.value, JobStatus.STARTED.value,
                      JobStatus.SCHEDULED.value})
_RETRYABLE_RQ = frozenset(s.value for s in JobStatus if api_status(s.value) in (Status.FAILED, Status.CANCELLED))
_ALPHABET = string.ascii_lowercase + string.digits
WAKEUP_TOKENS_KEPT = 64    # more than the idle workers a deployment runs: each token wakes one
WAKEUP_TTL = 3600
# SPEC §6's job id. Anything else names no job: it is answered 404 before any lookup (RQ refuses
# ids outside [A-Za-z0-9_-] with a ValueError, and a key built from `*` or NUL is nobody's business).
JOB_ID_PATTERN = re.compile(r"gen-[0-9]{1,12}-[a-z0-9]{10,40}", re.ASCII)


def new_job_id(now: float | None = None) -> str:
    """gen-<unix seconds>-<12 random [a-z0-9]> (SPEC §6)."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"gen-{int(now if now is not None else time.time())}-{suffix}"


def open_queue(conn: redis.Redis, settings: Settings) -> Queue:
    """The generation jobs' queue (its normal-priority lane)."""
    return Queue(settings.queue_name, connection=conn, serializer=JSONSerializer)


def lane_name(settings: Settings, priority: str) -> str:
    """The RQ queue of a priority lane: the normal lane is the configured queue itself."""
    return settings.queue_name if priority == Priority.NORMAL else f"{settings.queue_name}-{priority}"


def open_lanes(conn: redis.Redis, settings: Settings) -> list[Queue]:
    """The generation lanes, in the order workers take jobs from them (high, normal, low)."""
    return [Queue(lane_name(settings, priority), connection=conn, serializer=JSONSerializer)
            for priority in Priority.ORDER]


def wake_workers(pipe, settings: Settings) -> None:
    """Tell one idle worker that a lane has a job (it blocks on this list, then looks at every
    lane in order); the list stays short and expires if no worker takes from it."""
    key = keys.lane_wakeup(settings.queue_name)
    pipe.lpush(key, "1")
    pipe.ltrim(key, 0, WAKEUP_TOKENS_KEPT - 1)
    pipe.expire(key, WAKEUP_TTL)


def sources_of(status: str) -> tuple[str, ...]:
    """The status sets a list of `status` reads: RQ's scheduler moves a delayed job back to
    waiting with no hook of ours, so a waiting list also looks among the delayed."""
    return (Status.WAITING, Status.DELAYED) if status == Status.WAITING else (status,)


def with_status(status: str | None):
    """Whether a job belongs in a list of `status` (None: every job) as it stands now."""
    return (lambda job: True) if status is None else (lambda job: status_of(job) == status)


def open_webhook_queue(conn: redis.Redis, settings: Settings) -> Queue:
    """Completion webhooks wait here, apart from generations, so they never count as jobs."""
    return Queue(f"{settings.queue_name}-webhooks", connection=conn, serializer=JSONSerializer)


class Quota(Protocol):
    """A per-user allowance taken when a job is accepted (the job-creation rate limit): a
    fixed-window counter in Redis (`key`, at most `amount` per `expiry` seconds), which
    snapasset.admission tests and counts in the script that admits the job."""
    key: str
    amount: int
    expiry: int

    def reads(self) -> list[tuple]:
        """Read-only commands to answer in the admission's round trip (the limits' windows its
        answer shows); their replies come back to refused() or taken()."""

    def refused(self, used: int, replies: list) -> Exception:
        """The error (the API's 429) that says the allowance is spent."""

    def taken(self, used: int, replies: list) -> None:
        """One unit was taken: `used` units are now spent in this window."""


@dataclass
class Created:
    job_id: str
    status: str        # the job's API status ("queued" for a new job)
    created: bool      # False when an Idempotency-Key replayed an earlier job
    estimate: Estimate | None = None   # how long a new job should take, read as it was admitted


class JobService:
    def __init__(self, conn: redis.Redis, settings: Settings):
        self.conn = conn
        self.settings = settings
        self.lanes = open_lanes(conn, settings)

    # -- reading -----------------------------------------------------------------
    def fetch(self, job_id: str, user_id: str | None) -> Job:
        """The job, if it exists and (when user_id is given) belongs to that user; else JobNotFound."""
        if not JOB_ID_PATTERN.fullmatch(job_id):
            raise JobNotFound()
        try:
            job = Job.fetch(job_id, connection=self.conn, serializer=JSONSerializer)
        except NoSuchJobError:
            raise JobNotFound() from None
        if user_id is not None and jobrecord.owner_of(job) != user_id:
            raise JobNotFound()
        return job

    def current_status(self, job_id: str) -> str | None:
        """The API status as stored right now (one HGET), or None when there is no such job."""
        stored = rqcompat.stored_status(self.conn, job_id)
        return api_status(stored) if stored is not None else None

    def webhook_state(self, job_id: str) -> dict:
        return jobrecord.webhook_state(self.conn, job_id)

    def list(self, user_id: str, *, status: str | None, limit: int, cursor: str | None) -> tuple[list[Job], str | None]:
        """The user's jobs, newest first, `limit` at a time, and the cursor of the next page
        (None at the end); a cursor is opaque to clients."""
        sources = ([keys.user_jobs(user_id)] if status is None else
                   [keys.user_status_jobs(user_id, s) for s in sources_of(status)])
        page = self.page(sources, limit=limit, cursor=cursor, accept=with_status(status))
        return page.jobs, page.next_cursor

    def page(self, sources: list[str], *, limit: int, cursor: str | None, accept) -> jobindex.Page:
        """A page of the index sets `sources` (snapasset.jobindex.read_page), re-filing a job whose
        status moved without us and dropping the ids of jobs that are gone."""
        def forget(job_id: str) -> None:
            with self.conn.pipeline(transaction=False) as pipe:
                for key in sources:
                    pipe.zrem(key, job_id)
                pipe.execute()

        return jobindex.read_page(self.conn, sources, limit=limit, cursor=cursor, accept=accept,
                                  refile=self.refile, forget=forget)

    def refile(self, job: Job) -> None:
        """File the job in the indexes under the status it has now."""
        with self.conn.pipeline(transaction=False) as pipe:
            if self.file_as_now(pipe, job):
                pipe.execute()

    def file_as_now(self, pipe, job: Job) -> bool:
        """On `pipe`: file the job in the indexes under the status it has now (False: a job with
        no owner, which no list shows)."""
        owner = jobrecord.owner_of(job)
        if not owner:
            return False
        jobindex.file_job(pipe, self.settings.queue_name, job.id, owner, jobindex.score_of(job), status_of(job),
                          code=(jobrecord.stored_error(job) or {}).get("code"), ttl=self.settings.job_ttl)
        return True

    def queue_position(self, job: Job) -> int | None:
        """For a waiting job, how many jobs a worker takes before it (0 = next): every job in the
        lanes ahead of its own, and those ahead of it in its own. None for a job that is not
        waiting, or in no lane (being handed to a worker right now)."""
        if status_of(job) != Status.WAITING:
            return None
        with self.conn.pipeline(transaction=False) as pipe:
            for lane in self.lanes:
                if lane.name == job.origin:
                    pipe.lpos(lane.key, job.id)
                    break
                pipe.llen(lane.key)
            *ahead, own = pipe.execute()
        return None if own is None else sum(ahead) + own

    # -- writing -----------------------------------------------------------------
    def create(self, user_id: str, request: JobRequest, *, idempotency_key: str | None = None,
               quota: Quota | None = None, job_id: str | None = None,
               reference_keys: dict[str, str] | None = None) -> Created:
        """Enqueue a generation; an Idempotency-Key replays the first job (created=False).

        Only an accepted job takes from `quota`: a replay, a refused or a failed request takes
        nothing. `job_id` is the id to use (one is made when None); `reference_keys` where its
        uploaded reference pictures are stored. A job counts once against every limit, whatever
        its `n`.
        """
        job_id = job_id or new_job_id()
        fingerprint = request.fingerprint()
        claim = None
        if idempotency_key:
            claim = keys.idempotency(user_id, idempotency_key)
            replay = self._claim_idempotency(claim, fingerprint, job_id)
            if replay is not None:
                return Created(replay, self._status_or_waiting(replay), created=False)
        try:
            estimated = self._admit(user_id, job_id,
                                    lambda pipe: self._enqueue(pipe, job_id, user_id, request, reference_keys),
                                    quota=quota, commit=(claim, f"{job_id}|{fingerprint}") if claim else None,
                                    reads=[estimate_command(self.lanes, self._normal_lane)])
        except BaseException:
            if claim:
                self._release_claim(claim, f"{job_id}|{fingerprint}")
            raise
        return Created(job_id, "queued", created=True,
                       estimate=estimate_of(estimated[0], concurrency=self.settings.worker_concurrency))

    def _enqueue(self, pipe, job_id: str, user_id: str, request: JobRequest,
                 reference_keys: dict[str, str] | None) -> None:
        settings = self.settings
        intervals = settings.retry_intervals
        lane = self.lanes[Priority.ORDER.index(request.priority)]
        job = lane.enqueue(
            JOB_FUNCTION, request.payload(user_id),
            job_id=job_id,
            job_timeout=settings.job_timeout,
            result_ttl=settings.job_ttl,
            failure_ttl=settings.job_ttl,
            retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
            meta=jobrecord.new_state(user_id, reference_keys=reference_keys),
            description=f"generation for {user_id}",
            pipeline=pipe,
        )
        jobindex.file_job(pipe, settings.queue_name, job_id, user_id, jobindex.score_of(job), Status.WAITING,
                          ttl=settings.job_ttl, new=True)
        wake_workers(pipe, settings)

    def _admit(self, user_id: str, job_id: str, write, *, quota: Quota | None = None,
               retryable: frozenset[str] = frozenset(), commit: tuple[str, str] | None = None,
               enforce_limit: bool = True, reads: Sequence[tuple] = ()) -> list:
        """Run the writes of `write(pipe)` together with taking one of the user's unfinished-job
        slots, in one script (snapasset.admission): nothing is written when it refuses.

        Refuses with JobLimitExceeded when `max_active_jobs` of the user's jobs are still
        unfinished (unless `enforce_limit` is False: an operator's bulk retry), with
        `quota.refused()` when the quota is spent (a unit is taken when admitted), and with
        JobNotRetryable when `retryable` is given and the job's RQ status is no longer one of them.
        `commit` = (idempotency key, value) marks that claim committed in the same script.
        Answers the replies to `reads`, read-only commands sent in the same round trip.
        """
        with self.conn.pipeline() as pipe:   # records the writes, never executed
            pipe.multi()                     # as RQ expects of a pipeline it is given
            write(pipe)
            commands = admission.recorded_commands(pipe)
        prefix, field = rqcompat.status_location()
        quota_reads = quota.reads() if quota is not None else []
        outcome, replies = admission.admit(self.conn, admission.Admission(
            job_id=job_id, active_key=keys.user_active_jobs(user_id), job_hash_prefix=prefix,
            status_field=field, live_statuses=_LIVE_RQ, active_ttl=self.settings.job_ttl,
            max_active=self.settings.max_active_jobs if enforce_limit else None,
            quota_key=quota.key if quota is not None else None,
            quota_amount=quota.amount if quota is not None else 0,
            quota_expiry=quota.expiry if quota is not None else 0,
            required_statuses=retryable,
            commit=(commit[0], f"{commit[1]}|{_COMMITTED}", IDEMPOTENCY_TTL) if commit else None,
        ), commands, [*quota_reads, *reads])
        quota_replies, replies = replies[:len(quota_reads)], replies[len(quota_reads):]
        if isinstance(outcome, admission.Refused):
            raise self._refusal(outcome, quota, quota_replies)
        if quota is not None:
            quota.taken(outcome, quota_replies)
        return replies

    def _refusal(self, refused: admission.Refused, quota: Quota | None, quota_replies: list) -> Exception:
        if refused.what == "quota":
            return quota.refused(int(refused.value), quota_replies)
        if refused.what == "status":
            if refused.value is None:
                return JobNotFound()
            return JobNotRetryable(f"Only failed or cancelled jobs can be retried; this one is "
                                   f"{api_status(refused.value)}")
        return JobLimitExceeded(
            f"You already have {refused.value} unfinished jobs; the limit is "
            f"{self.settings.max_active_jobs}. Wait for one to finish or cancel one."
            + ("" if self.settings.production else
               f" In development, set {Env.MAX_ACTIVE_JOBS} to allow more."),
            retry_after=JOB_SLOT_RETRY_AFTER)

    def _claim_idempotency(self, redis_key: str, fingerprint: str, job_id: str) -> str | None:
        """Claim the key for job_id (None), or return the job an identical earlier request created.

        A claim still pending belongs to a request in flight: wait for its outcome.
        """
        deadline = time.monotonic() + IDEMPOTENCY_WAIT
        while True:
            if self.conn.set(redis_key, f"{job_id}|{fingerprint}|{_PENDING}", nx=True,
                             ex=IDEMPOTENCY_PENDING_TTL):
                return None
            stored = self.conn.get(redis_key)
            if stored is None:   # released or expired meanwhile: claim again
                continue
            earlier_id, earlier_fingerprint, state = stored.decode().rsplit("|", 2)
            if earlier_fingerprint != fingerprint:
                raise IdempotencyConflict("This Idempotency-Key was already used with a different request body")
            if state == _COMMITTED:
                return earlier_id
            if time.monotonic() > deadline:
                raise IdempotencyConflict("A request with this Idempotency-Key is still being processed; "
                                          "retry shortly", retry_after=1)
            time.sleep(0.02)

    _RELEASE_IF_PENDING = """
    if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
    return 0
    """

    def _release_claim(self, redis_key: str, value: str) -> None:
        """Free a claim this request made and never committed (compare-and-delete)."""
        self.conn.eval(self._RELEASE_IF_PENDING, 1, redis_key, f"{value}|{_PENDING}")

    def _status_or_waiting(self, job_id: str) -> str:
        try:
            job = Job.fetch(job_id, connection=self.conn, serializer=JSONSerializer)
        except NoSuchJobError:   # cleaned away since; the replay still names it
            return Status.WAITING
        return status_of(job)

    def estimate(self) -> Estimate:
        """How long a job created now should take: recent jobs' run times (on the normal lane),
        and the jobs waiting in every lane."""
        return estimate(self.conn, self.lanes, self._normal_lane, concurrency=self.settings.worker_concurrency)

    @property
    def _normal_lane(self) -> Queue:
        return self.lanes[Priority.ORDER.index(Priority.NORMAL)]

    # -- retry and cancel ---------------------------------------------------------
    def retry(self, job_id: str, user_id: str | None, *, enforce_limit: bool = True) -> None:
        """Requeue a failed or cancelled job under the same id, as if new (attempts, progress and
        its event history reset), in its lane; it takes one of the user's unfinished-job slots
        again (refused when none is free, unless `enforce_limit` is False)."""
        job = self.fetch(job_id, user_id)
        owner = jobrecord.owner_of(job)

        def check() -> None:
            status = self._current_status(job)
            if status not in (Status.FAILED, Status.CANCELLED):
                raise JobNotRetryable(f"Only failed or cancelled jobs can be retried; this one is {status}")

        def write(pipe) -> None:
            job.refresh()
            intervals = self.settings.retry_intervals
            jobrecord.reset_for_retry(job)
            job.retries_left = len(intervals) or None
            job.retry_intervals = intervals or None
            job.started_at = job.ended_at = None
            for registry in (FailedJobRegistry, CanceledJobRegistry):
                registry(job.origin, connection=self.conn, serializer=JSONSerializer).remove(job, pipeline=pipe)
            pipe.delete(keys.job_cancel(job_id), keys.job_events(job_id), keys.job_webhook(job_id))
            Queue(job.origin, connection=self.conn, serializer=JSONSerializer).enqueue_job(job, pipeline=pipe)
            jobindex.file_job(pipe, self.settings.queue_name, job_id, owner, jobindex.score_of(job), Status.WAITING,
                              ttl=self.settings.job_ttl)
            wake_workers(pipe, self.settings)

        check()
        self._admit(owner, job_id, write, retryable=_RETRYABLE_RQ, enforce_limit=enforce_limit)

    def _current_status(self, job: Job) -> str:
        """The API status as stored right now (JobNotFound if the job vanished meanwhile)."""
        status = self.current_status(job.id)
        if status is None:
            raise JobNotFound()
        return status

    def cancel(self, job_id: str, user_id: str | None) -> None:
        """Cancel a waiting, delayed or active job.

        The cancel flag goes up first, so a worker that picks the job up at this very moment stops
        at its first progress report. A job still in the queue is cancelled in RQ and its
        `cancelled` event published here (no worker will); an active one is stopped on its worker
        (`stop-job` command: a forking worker kills the work horse), whose worker discards the
        partial outputs and publishes the `cancelled` event.
        """
        job = self.fetch(job_id, user_id)
        owner = jobrecord.owner_of(job)
        with self.conn.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(job.key)
                    status = self._current_status(job)
                    if status not in Status.UNFINISHED:
                        raise JobNotCancellable(
                            f"Only waiting, delayed or active jobs can be cancelled; this one is {status}")
                    self.conn.set(keys.job_cancel(job_id), "1", ex=self.settings.job_ttl)
                    if status == Status.ACTIVE:
                        pipe.reset()
                        break
                    pipe.multi()
                    job.cancel(pipeline=pipe)
                    jobindex.file_job(pipe, self.settings.queue_name, job_id, owner, jobindex.score_of(job),
                                      Status.CANCELLED, ttl=self.settings.job_ttl)
                    jobrecord.publish(self.conn, job_id, owner, jobrecord.Cancelled(), ttl=self.settings.job_ttl,
                                      replay_window=self.settings.events_ttl, pipeline=pipe)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue
        try:
            send_stop_job_command(self.conn, job_id, serializer=JSONSerializer)
        except InvalidJobOperation:
            pass   # between two steps of its worker: the flag stops it at the next report

    # -- delete ---------------------------------------------------------------------
    def deletable(self, job_id: str, user_id: str | None) -> Job:
        """The caller's finished job, to delete (JobNotFound if not theirs, JobNotDeletable if
        unfinished). The caller removes its records and images, then the job with remove()."""
        job = self.fetch(job_id, user_id)
        status = self._current_status(job)
        if status not in Status.ENDED:
            raise JobNotDeletable(f"Only completed, failed or cancelled jobs can be deleted; this one is {status}. "
                                  "Cancel it first.")
        return job

    def remove(self, job: Job) -> None:
        """Forget the job: its record, progress history, flags, webhook state and index entries."""
        jobrecord.forget(self.conn, self.settings.queue_name, job)
