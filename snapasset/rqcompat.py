r"""Every place SnapAsset relies on RQ internals, in one seam (pyproject pins rq to the range
this is tested on; tests/test_rqcompat.py fails loudly if an upgrade moves any of them).

Each hook says what it relies on. Nothing outside this module and snapasset.jobrecord names an
RQ private attribute or a field of RQ's job hash, and nothing outside snapasset.jobrecord reads
or writes job meta or event streams; tests/test_rqcompat.py (the last test) checks it, as does

    grep -rnE '\._(fetch_dequeued_job|enqueue_job|ordered_queues|exc_handlers|start_scheduler|install_signal_handlers|stopped_job_id|result|exc_info|stop_requested|shutdown_requested_date|dequeue_strategy)\b|hget\(|hset\(|meta\[|\.meta\.get\(|xadd|XADD' --include='*.py' snapasset workers

which lists only these two modules and the stream hub's wake-up stream (snapasset/streaming.py).
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Iterable
from datetime import datetime

import redis
from rq import worker_registration
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.job import Job
from rq.queue import Queue
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.results import Result
from rq.scheduler import RQScheduler
from rq.utils import now, parse_composite_key, utcparse
from rq.worker import BaseWorker
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

__all__ = ["PromptScheduler", "stored_status", "waiting_and_recent_runs_command", "waiting_and_recent_runs_of",
           "save_meta", "job_result", "delete_result",
           "move_to_cancelled", "requeue_at_front", "fetch_dequeued_job", "heartbeat_all", "mark_stopped", "is_stopped",
           "register_again", "is_registered", "CompatWorker", "registered_worker_keys", "worker_executions_key",
           "execution_job_id", "WORKER_KEY_PREFIX", "status_location"]

WORKER_KEY_PREFIX = "rq:worker:"   # a worker's hash is WORKER_KEY_PREFIX + its name

# RQ keeps a job in one hash (Job.key_for(id)); these are two of its fields.
_STATUS_FIELD = "status"     # JobStatus value, written by every status change
_META_FIELD = "meta"         # the serialized job.meta, as Job.save_meta writes it
_STARTED_FIELD, _ENDED_FIELD = "started_at", "ended_at"   # when the last attempt ran


def stored_status(conn: redis.Redis, job_id: str) -> str | None:
    """The job's RQ status as stored right now, in one HGET (None: the job is gone).

    Relies on: RQ storing the status as the `status` field of the job hash."""
    raw = conn.hget(Job.key_for(job_id), _STATUS_FIELD)
    return raw.decode() if raw is not None else None


def status_location() -> tuple[str, str]:
    """Where a job's RQ status is stored: (job hash key prefix, field), for scripts that read
    the status of jobs by id (snapasset.admission).

    Relies on: the job hash key being Job.key_for(id) (a fixed prefix plus the id) and RQ storing
    the status as the `status` field of the job hash."""
    return Job.key_for(""), _STATUS_FIELD


_WAITING_AND_RECENT_RUNS = """
local waiting = 0
for i = 2, #KEYS do waiting = waiting + redis.call('LLEN', KEYS[i]) end
local found = {waiting}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  local stamps = redis.call('HMGET', ARGV[1] .. id, ARGV[3], ARGV[4])
  table.insert(found, stamps[1])
  table.insert(found, stamps[2])
end
return found
"""


def waiting_and_recent_runs_command(lanes: Iterable[Queue], finished: Queue, sample: int) -> tuple:
    """One read-only command (a script) for the jobs waiting in `lanes`, and how long each of the
    last `sample` jobs that finished on `finished` ran (started → ended; jobs gone meanwhile are
    left out), without loading any result; sent alone or with others (snapasset.admission's
    reads). waiting_and_recent_runs_of() reads its reply.

    Relies on: the finished registry's sorted set scoring each job by its expiry (for one result
    TTL, the order they finished in); RQ storing `started_at` and `ended_at` as fields of the
    job hash, as utcformat; the job hash key being Job.key_for(id)."""
    lane_keys = [lane.key for lane in lanes]
    return ("EVAL", _WAITING_AND_RECENT_RUNS, 1 + len(lane_keys), finished.finished_job_registry.key,
            *lane_keys, Job.key_for(""), sample, _STARTED_FIELD, _ENDED_FIELD)


def waiting_and_recent_runs_of(reply: list) -> tuple[int, list[float]]:
    runs = [(utcparse(ended.decode()) - utcparse(started.decode())).total_seconds()
            for started, ended in zip(reply[1::2], reply[2::2]) if started and ended]
    return int(reply[0]), runs


def save_meta(job: Job, pipeline) -> None:
    """Job.save_meta on a pipeline (RQ's own takes none), so meta and events land together.

    Relies on: meta stored as the `meta` field of the job hash, serialized by job.serializer."""
    pipeline.hset(job.key, _META_FIELD, job.serializer.dumps(job.meta))


def job_result(job: Job):
    """The return value of the job that just succeeded, inside handle_job_success.

    Relies on: `job._result`, set by Job.perform before handle_job_success runs (the public
    return_value() reads the stored Result, one more Redis round trip)."""
    return job._result


def delete_result(job: Job, pipeline) -> None:
    """Delete the job's RQ result stream (its outcome is kept in the job's own record).

    Relies on: Result.get_key(job_id), the key RQ writes each attempt's Result to."""
    pipeline.delete(Result.get_key(job.id))


def move_to_cancelled(job: Job, pipeline, *, ttl: int) -> None:
    """Move a stopped job from its queue's failed registry, where RQ files it, to the cancelled
    one, so that each registry's size is the count of its API status.

    Relies on: FailedJobRegistry / CanceledJobRegistry named after the job's origin queue."""
    FailedJobRegistry(job.origin, connection=job.connection, serializer=job.serializer).remove(job, pipeline=pipeline)
    CanceledJobRegistry(job.origin, connection=job.connection, serializer=job.serializer).add(
        job, ttl=ttl, pipeline=pipeline)


def registered_worker_keys(conn: redis.Redis, queue_name: str) -> list[str]:
    """The hash keys of the workers registered on a queue (dead ones included, until RQ's
    maintenance or their hash's TTL removes them).

    Relies on: WORKERS_BY_QUEUE_KEY, the set a worker adds its key to at birth."""
    return sorted(k.decode() if isinstance(k, bytes) else k for k in conn.smembers(WORKERS_BY_QUEUE_KEY % queue_name))


def worker_executions_key(worker_name: str) -> str:
    """The set of a worker's running executions ("<job id>:<execution id>").

    Relies on: WORKER_EXECUTIONS_KEY_TEMPLATE."""
    return WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker_name)


def execution_job_id(member) -> str:
    """The job id of a member of a worker's executions set.

    Relies on: parse_composite_key ("<job id>:<execution id>")."""
    return parse_composite_key(member.decode() if isinstance(member, bytes) else member)[0]


def requeue_at_front(queue: Queue, job: Job, pipeline) -> None:
    """Put a job back at the front of its queue as is (no new id, no dependency checks).

    Relies on: `Queue._enqueue_job(job, pipeline=, at_front=)` (enqueue_job would re-check
    dependencies and ignores at_front for jobs already created)."""
    queue._enqueue_job(job, pipeline=pipeline, at_front=True)


def fetch_dequeued_job(worker: BaseWorker, queue_key: str, job_id: str):
    """(job, queue) for a job id this worker popped from a queue itself, or None if the job was
    deleted while queued.

    Relies on: `Queue._fetch_dequeued_job(connection, queue_key, job_id, job_class=,
    serializer=, death_penalty_class=)`, the post-pop step of RQ's own dequeue_any."""
    return worker.queue_class._fetch_dequeued_job(
        worker.connection, queue_key, job_id, job_class=worker.job_class, serializer=worker.serializer,
        death_penalty_class=worker.death_penalty_class)


def heartbeat_all(worker: BaseWorker, running: Iterable[tuple[Job, object, int]]) -> None:
    """The worker's, every execution's and every job's heartbeat in one round trip;
    `running` holds (job, execution, ttl).

    Relies on: Execution.heartbeat and Job.heartbeat each queueing an HSET of `last_heartbeat`
    first on the pipeline; RQ sets that field when the job starts, so the reply (fields added)
    is 1 exactly when the hash was gone and is re-created. A job that ended between the
    caller's snapshot and the pipeline has had its keys deleted, and the heartbeat re-created
    them with one field: they are deleted again (rq#1450)."""
    with worker.connection.pipeline() as pipe:
        worker.heartbeat(pipeline=pipe)
        checks = []
        for job, execution, ttl in running:
            checks.append((len(pipe), execution.key))
            execution.heartbeat(job.started_job_registry, ttl, pipeline=pipe)
            checks.append((len(pipe), job.key))
            job.heartbeat(now(), ttl, pipeline=pipe)
        results = pipe.execute()
    stale = [key for index, key in checks if results[index] == 1]
    if stale:
        worker.connection.delete(*stale)


def mark_stopped(worker: BaseWorker, job_id: str) -> None:
    """The failure of job_id the worker is about to handle is a stop (a cancel), not an error:
    RQ marks it STOPPED and never retries it.

    Relies on: BaseWorker.handle_job_failure comparing `_stopped_job_id` with the job's id."""
    worker._stopped_job_id = job_id


def is_stopped(worker: BaseWorker, job_id: str) -> bool:
    """Whether the failure being handled is a stop (mark_stopped, or RQ's stop-job command)."""
    return worker._stopped_job_id == job_id


def register_again(worker: BaseWorker) -> None:
    """Register a running worker anew (its hash, its queues' sets, its TTL) after Redis came back
    without it; register_birth would refuse, the name being taken.

    Relies on: what register_birth writes — `serialize()` into the worker's hash,
    worker_registration.register, and a TTL of worker_ttl + 60."""
    with worker.connection.pipeline() as pipe:
        pipe.hset(worker.key, mapping=worker.serialize())
        worker_registration.register(worker, pipe)
        pipe.expire(worker.key, worker.worker_ttl + 60)
        pipe.execute()


def is_registered(worker: BaseWorker) -> bool:
    """Whether the worker is in its first queue's set of workers (Redis may have come back
    without it).

    Relies on: worker_registration's per-queue sets (WORKERS_BY_QUEUE_KEY)."""
    return bool(worker.connection.sismember(worker_registration.WORKERS_BY_QUEUE_KEY % worker.queues[0].name,
                                            worker.key))


class PromptScheduler(RQScheduler):
    """RQ's scheduler, which stops as soon as it is asked to.

    RQ's loop sleeps `interval` (1 s) between rounds and looks at its stop flag only after
    the sleep, while the worker's teardown waits for the scheduler process: every worker stop
    took up to a second more (`snapasset generate` exited up to 1.3 s after its job's end).
    Here the stop signal ends the sleep at once (a byte on a pipe the sleep waits on); a round
    in progress still runs to its end, and stop() still releases the locks.

    Relies on: RQScheduler.work's round (should_reacquire_locks / acquire_locks, heartbeat,
    enqueue_scheduled_jobs, then stop() once `_stop_requested`), register_birth, and
    request_stop as the SIGTERM/SIGINT handler `_install_signal_handlers` installs."""

    _wake_fd: int | None = None

    def work(self):
        wake_read, self._wake_fd = os.pipe()   # in the scheduler's own (forked) process
        self._install_signal_handlers()
        self.register_birth()
        while not self._stop_requested:
            if self.should_reacquire_locks:
                self.acquire_locks()
            self.heartbeat()
            self.enqueue_scheduled_jobs()
            select.select([wake_read], [], [], self.interval)
        self.stop()

    def request_stop(self, signum=None, frame=None):
        super().request_stop(signum, frame)
        if self._wake_fd is not None:
            os.write(self._wake_fd, b"x")


class CompatWorker(BaseWorker):
    """The RQ worker internals a worker with its own loop needs, under public names."""

    def __init__(self, *args, **kwargs):
        self._local = threading.local()   # before BaseWorker sets _stopped_job_id
        super().__init__(*args, **kwargs)

    # `_stopped_job_id` (see mark_stopped): with many jobs in flight it must be per job, so it
    # lives in the thread handling the job.
    @property
    def _stopped_job_id(self) -> str | None:
        return getattr(self._local, "stopped_job_id", None)

    @_stopped_job_id.setter
    def _stopped_job_id(self, job_id: str | None) -> None:
        self._local.stopped_job_id = job_id

    # Relies on: `_ordered_queues` (the queues in dequeue order, rotated by reorder_queues) and
    # `_exc_handlers` (what clean_registries gets), both set in BaseWorker.__init__.
    @property
    def ordered_queues(self) -> list[Queue]:
        return self._ordered_queues

    @property
    def exception_handlers(self) -> list:
        return self._exc_handlers

    # Relies on: `_stop_requested`, the flag RQ's own loop and request_stop use.
    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    @stop_requested.setter
    def stop_requested(self, value: bool) -> None:
        self._stop_requested = value

    # Relies on: `_shutdown_requested_date`, set by request_stop on the first signal.
    @property
    def shutdown_requested_at(self) -> datetime | None:
        return self._shutdown_requested_date

    def start_loop(self, burst: bool, logging_level, date_format: str, log_format: str, *,
                   with_scheduler: bool, dequeue_strategy) -> None:
        """What RQ's Worker.work does before its loop: the dequeue strategy, the scheduler
        thread and the signal handlers.

        Relies on: `_dequeue_strategy` (read by reorder_queues) and `_install_signal_handlers()`."""
        self._dequeue_strategy = dequeue_strategy
        if with_scheduler:
            self._start_prompt_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()

    def _start_prompt_scheduler(self, burst: bool, logging_level, date_format: str, log_format: str) -> None:
        """RQ's `_start_scheduler`, with a PromptScheduler: with the scheduler lock, the
        scheduler process starts (in burst mode: due jobs are queued once, here).

        Relies on: BaseWorker's `scheduler` attribute, which its maintenance restarts (through
        acquire_locks(auto_start=True)) and its teardown stops (SIGTERM, then join)."""
        self.scheduler = PromptScheduler(self.queues, connection=self.connection,
                                         logging_level=logging_level if logging_level is not None else self.log.level,
                                         date_format=date_format, log_format=log_format, serializer=self.serializer)
        if not self.scheduler.acquire_locks():
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    def unsubscribe(self):
        """RQ's, in the other order. Its pub/sub thread blocks up to 60 s waiting for a message,
        and RQ unsubscribes before telling it to stop, so the server's reply can wake the thread
        before the flag is set; it then sleeps again and RQ's join gives up after 1 s, a second
        added to every stop by chance. Told to stop first, the thread quits on that reply.

        Relies on: `pubsub` and `pubsub_thread` (redis-py's PubSubWorkerThread), set by
        BaseWorker.subscribe."""
        if self.pubsub_thread:
            self.pubsub_thread.stop()
            self.pubsub.unsubscribe()
            self.pubsub_thread.join(timeout=1)
            self.pubsub.close()

    def _shutdown(self):
        # Relies on: request_stop (RQ's SIGTERM/SIGINT handler) calling `_shutdown()`.
        self.begin_shutdown()

    # Relies on: `_pubsub_exception_handler(exc, pubsub, pubsub_thread)`, the handler RQ gives
    # the command channel's redis-py thread (it logs and sleeps 2 s on every connection error).
    def _pubsub_exception_handler(self, exc, pubsub, pubsub_thread) -> None:
        if not self.command_channel_failed(exc):
            super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def command_channel_failed(self, exc: Exception) -> bool:
        """An error in the thread that listens for commands (stop-job …); True when handled here,
        else RQ handles it (redis-py resubscribes by itself once Redis is back)."""
        return False

    def begin_shutdown(self) -> None:
        """The first SIGTERM/SIGINT; RQ's own stops after the running job."""
        super()._shutdown()
