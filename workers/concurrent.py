"""The worker a SnapAsset worker dyno runs: many generations in flight in one process.

A generation spends most of its time waiting on the image model, so one RQ worker here keeps
up to `concurrency` jobs in flight, each in a thread of its own, and sends their Pillow work
to a pool of processes, one per core (workers/rendering.py). Everything else is RQ's own
machinery, used per job rather than per worker:

- dequeue: LMOVE into each queue's intermediate queue (never the BLPOP RQ uses for several
  queues), so several worker processes share a queue, a job is handed to exactly one of them,
  and one popped by a worker that dies at once is found again by RQ's cleanup;
- each job gets an RQ Execution (StartedJobRegistry, the worker's execution index, `rq info`),
  heartbeats from one thread for all of them, and RQ's perform_job / handle_job_success /
  handle_job_failure (results, retries with backoff, failed registry, dependents);
- per-job timeouts, stop-job / stop-execution commands and shutdown stop one job's thread
  cooperatively (workers/control.py explains why not by killing or injecting exceptions);
- abandoned jobs of a worker that died (SIGKILL, lost dyno) are found by RQ's
  StartedJobRegistry cleanup when their executions' heartbeats expire, and retried or failed
  (WORKER_LOST) — the maintenance here also tells the job's followers so;
- RQ's scheduler (retries waiting in `delayed`) and suspension (queue pause: no new job is
  taken, running ones finish).

Shutdown (SIGTERM, as Heroku sends before SIGKILL 30 s later): no more jobs are taken, the
running ones get `shutdown_grace` seconds to finish; the rest are interrupted, clean up after
themselves and go back to the front of the queue, so nothing is lost or counted as a failure.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import redis.exceptions
from rq import worker_registration
from rq.command import handle_command, parse_payload
from rq.exceptions import DequeueTimeout, StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import clean_registries
from rq.suspension import is_suspended
from rq.utils import as_text, now
from rq.worker import DequeueStrategy, WorkerStatus
from rq.worker.base import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT

from snapasset import imaging, jobrecord, keys, webhooks
from snapasset.config import Settings
from snapasset.connections import warn_if_not_persistent
from snapasset.jobs import JOB_FUNCTION
from snapasset.rqcompat import (CompatWorker, fetch_dequeued_job, heartbeat_all, is_registered, mark_stopped,
                                register_again, requeue_at_front, stored_status)
from snapasset.live_workers import CONCURRENCY_FIELD, HEARTBEAT_INTERVAL_FIELD
from snapasset.metrics import Outcome
from workers.bootstrap import WorkerContext, bootstrap
from workers.control import (Checkpointed, ControlDeathPenalty, InterruptibleProvider, JobControl, Reason,
                             bind_control)
from workers.lifeline import forked_children_die_with_this_process
from workers.memory import MemoryBudget, memory_limit_mb, picture_budget, return_freed_memory
from workers.rendering import RenderPool, decoded_bytes_of, render_processes
from workers.terminal_events import TerminalEventsMixin, build_worker

__all__ = ["ConcurrentWorker", "RoutineAtDebug", "make_concurrent", "run_concurrent_worker"]

log = logging.getLogger(__name__)

REQUEUED_LOG = "The worker shut down during this attempt; the job was queued again"
OUTAGE_REQUEUED_LOG = "Redis was unreachable when this attempt ended; the job was queued again"
DELAYED_POLL = 0.25   # seconds an idle worker waits between looks at the lanes while retries are due
DELIVERY_SLOTS = 4          # webhook deliveries in flight per worker, besides the generations
OUTAGE_PROBE_MAX = 5.0      # seconds between two pings of a Redis that is away, at most
ENDED_RQ_STATUSES = {status.value for status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED,
                                                 JobStatus.CANCELED)}


class RedisOutage:
    """A Redis outage as the worker's threads see it: logged once when the first of them hits
    it and once when the main loop finds Redis back, however long it lasts."""

    def __init__(self, log: logging.Logger, worker_name: str):
        self._log = log
        self._name = worker_name
        self._lock = threading.Lock()
        self._since: float | None = None

    def down(self, exc: Exception) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        self._log.warning("Worker %s: Redis is unreachable (%s); waiting for it, running jobs go on",
                          self._name, type(exc).__name__)

    def up(self, *, requeued: int) -> None:
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            self._log.warning("Worker %s: Redis is back after %.0f s; resuming (%d job(s) whose outcome "
                              "it missed queued again)", self._name, time.monotonic() - since, requeued)


@dataclass
class Running:
    job: Job
    queue: Queue
    execution: Execution
    control: JobControl
    thread: threading.Thread | None = None
    abandoned: bool = False     # put back in the queue while its thread was stuck; its outcome is ignored
    started: float = field(default_factory=time.monotonic)


class ConcurrentWorker(TerminalEventsMixin, CompatWorker):
    """An RQ worker that runs up to `concurrency` jobs at once, each in its own thread."""

    death_penalty_class = ControlDeathPenalty

    def __init__(self, queues, *, concurrency: int = 16, delivery_slots: int = DELIVERY_SLOTS,
                 shutdown_grace: float = 20.0, interrupt_grace: float = 5.0, heartbeat_grace: int = 60,
                 poll_interval: float = 0.5, maintenance_interval: int = 60, wakeup_key: str | None = None,
                 budget: MemoryBudget | None = None, **kwargs):
        if concurrency < 1 or delivery_slots < 1:
            raise ValueError(f"concurrency and delivery_slots must be at least 1, got {concurrency}, "
                             f"{delivery_slots}")
        super().__init__(queues, maintenance_interval=maintenance_interval, **kwargs)
        self.concurrency = concurrency
        self.shutdown_grace = shutdown_grace
        self.interrupt_grace = interrupt_grace
        self.heartbeat_grace = heartbeat_grace   # RQ's margin (60 s) over the heartbeat interval
        # longest blocking dequeue (Redis 6 takes fractional BLMOVE timeouts); a stop ends the wait on
        # the wake-up list at once (begin_shutdown), so Ctrl-C on `snapasset dev` and the end of
        # `snapasset generate` do not wait for it
        self.poll_interval = poll_interval
        self.wakeup_key = wakeup_key             # the list enqueues push to (None: block on the first queue)
        self._stop_wakeup_key = keys.worker_wakeup(self.name)   # begin_shutdown pushes to it
        # Slots: the generation lanes share `concurrency`; deliveries (the last queue, when there
        # are several: build_worker puts the webhook queue last) have slots of their own, so a
        # backlog of generations never holds up a webhook.
        self._generation_slots = threading.BoundedSemaphore(concurrency)
        delivery = threading.BoundedSemaphore(delivery_slots)
        self._slots = {queue.name: delivery if len(self.queues) > 1 and queue is self.queues[-1]
                       else self._generation_slots for queue in self.queues}
        self.budget = budget                     # no new generation while the pictures held fill it
        self._running: dict[str, Running] = {}
        self._changed = threading.Condition()    # guards _running; notified when a job ends
        self._shutdown_started: float | None = None
        self._cold = False
        self._beats_stop = threading.Event()
        self._outage = RedisOutage(self.log, self.name)
        self._unfinalised: list[Running] = []    # jobs whose outcome Redis could not take (outage)
        self._next_recovery = 0.0                # time.monotonic() of the next lost-job recovery
        self._recovery_paused_until = 0.0        # after an outage: until the other workers beat again

    def serialize(self) -> dict:
        """RQ's worker hash, plus what GET /api/admin/workers shows and judges liveness by."""
        return {**super().serialize(), CONCURRENCY_FIELD: self.concurrency,
                HEARTBEAT_INTERVAL_FIELD: self._heartbeat_interval}

    @property
    def _heartbeat_interval(self) -> int:
        return max(1, self.job_monitoring_interval)

    @property
    def running_job_ids(self) -> list[str]:
        with self._changed:
            return list(self._running)

    # -- the loop ----------------------------------------------------------------------
    def work(self, burst: bool = False, logging_level: str | None = None,
             date_format: str = DEFAULT_LOGGING_DATE_FORMAT, log_format: str = DEFAULT_LOGGING_FORMAT,
             max_jobs: int | None = None, with_scheduler: bool = False,
             dequeue_strategy: DequeueStrategy = DequeueStrategy.DEFAULT) -> bool:
        self.bootstrap(logging_level, date_format, log_format)
        self.start_loop(burst, logging_level, date_format, log_format, with_scheduler=with_scheduler,
                        dequeue_strategy=dequeue_strategy)
        beats = threading.Thread(target=self._heartbeats, name="rq-heartbeats", daemon=True)
        beats.start()
        self.log.info("Worker %s: up to %d jobs at once", self.name, self.concurrency)
        started = 0
        try:
            while True:
                try:
                    taken = self._work_once(burst)
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    self._ride_out_outage(exc)
                    continue
                if taken is None:
                    break
                started += taken
                if max_jobs is not None and started >= max_jobs:
                    self.log.info("Worker %s: took %d jobs, finishing them and quitting", self.name, started)
                    break
        except StopRequested:
            pass
        except Exception:
            self.log.error("Worker %s: unhandled exception, finishing running jobs and quitting",
                           self.name, exc_info=True)
        finally:
            try:
                self._drain()
            finally:
                self._beats_stop.set()
                beats.join(timeout=5)
                try:
                    self.teardown()
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    self.log.warning("Worker %s: Redis unreachable at exit; its registration expires "
                                     "by itself", self.name)
        return bool(started)

    def _work_once(self, burst: bool) -> int | None:
        """One turn of the loop: how many jobs it started (0 or 1), or None to stop working."""
        self.check_for_suspension(burst)
        # before maintenance: it would restart a scheduler that the same Ctrl-C stopped
        if self.stop_requested:
            self.log.info("Worker %s: stopping on request", self.name)
            return None
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()
        self._recover_lost_jobs_when_due()
        # no new generation while the pictures held fill the memory budget (deliveries hold none)
        room = self.budget is None or self.budget.wait_for_room(timeout=0)
        taken: dict = {}   # each pool of slots, acquired once: whether it had one free
        for queue in self.ordered_queues:
            slots = self._slots[queue.name]
            if slots not in taken:
                taken[slots] = (room or slots is not self._generation_slots) and slots.acquire(blocking=False)
        free = [queue for queue in self.ordered_queues if taken[self._slots[queue.name]]]
        if not free:
            self._wait_for_change(self.poll_interval)
            return 0
        filled = None   # the pool whose slot a started job holds (its thread gives it back)
        try:
            result = self._dequeue(free, burst)
            if result is not None and is_suspended(self.connection):
                self._put_back(*result)   # paused while this dequeue was waiting: not ours to run
                result = None
            if result is not None:
                self._start_job(*result)
                filled = self._slots[result[1].name]
        finally:
            for slots, had_one in taken.items():
                if had_one and slots is not filled:
                    slots.release()
        if filled is not None:
            return 1
        if burst:
            if not self.running_job_ids:
                self.log.info("Worker %s: done, quitting", self.name)
                return None
            self._wait_for_change(1.0)
        return 0

    def _dequeue(self, queues: list[Queue], burst: bool) -> tuple[Job, Queue] | None:
        timeout = None if burst else min(self.dequeue_timeout, self.poll_interval)
        try:
            result = self._pop(queues, timeout)
        except DequeueTimeout:
            return None
        if result is not None:
            job, queue = result
            self.reorder_queues(reference_queue=queue)
            job.redis_server_version = self.get_redis_server_version()
            self.log.info("Worker %s: %s: %s (%s)", self.name, queue.name, job.description, job.id)
        return result

    def _pop(self, queues: list[Queue], timeout: int | None) -> tuple[Job, Queue] | None:
        """The next job, always through LMOVE into its queue's intermediate queue.

        RQ's dequeue_any pops with BLPOP when it listens on several queues (ours: the priority
        lanes and webhooks), and a job popped by a worker that dies before registering it is then
        lost for good. Moved into the intermediate queue instead, it is found by RQ's
        intermediate-queue cleanup and failed or retried. So: a non-blocking LMOVE on each of `queues`
        (those with a free slot) in order — high, normal, low, webhooks: the strict priority order — and, when all are
        empty, a wait of at most `timeout` seconds on the lanes' wake-up list, which every
        enqueue pushes to (snapasset.jobs.wake_workers), then the lanes again in order. RQ's
        scheduler puts delayed jobs back without a wake-up: while any wait, the wait is short.
        """
        if self.get_redis_server_version() < (6, 2, 0):   # no LMOVE before Redis 6.2
            return self.queue_class.dequeue_any(   # Redis < 6 takes whole seconds only
                queues, timeout and max(1, round(timeout)), connection=self.connection,
                job_class=self.job_class,
                serializer=self.serializer, death_penalty_class=self.death_penalty_class)
        while True:
            popped = next(filter(None, (self.queue_class.lmove(self.connection, queue.key, None)
                                        for queue in queues)), None)
            if popped is None:
                if timeout is None:
                    return None
                if self.wakeup_key is None or self._generation_slots not in {self._slots[q.name] for q in queues}:
                    popped = self.queue_class.lmove(self.connection, queues[0].key, timeout)
                else:
                    woken = self.connection.blpop([self.wakeup_key, self._stop_wakeup_key], self._idle_wait(timeout))
                    if woken is None or self.stop_requested:
                        raise DequeueTimeout(timeout)
                    continue   # something was queued: look at every lane in order
            queue_key, job_id = (as_text(part) for part in popped)
            found = fetch_dequeued_job(self, queue_key, job_id)
            if found is not None:   # None: the job was deleted while queued; take the next one
                return found

    def _idle_wait(self, timeout: float) -> float:
        with self.connection.pipeline(transaction=False) as pipe:
            for queue in self.ordered_queues:
                pipe.zcard(queue.scheduled_job_registry.key)
            delayed = any(pipe.execute())
        return min(timeout, DELAYED_POLL) if delayed else timeout

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # every job came through its intermediate queue (_pop), whatever the number of queues
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def _put_back(self, job: Job, queue: Queue) -> None:
        with self.connection.pipeline() as pipe:
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            queue.push_job_id(job.id, pipeline=pipe, at_front=True)
            pipe.execute()

    def _start_job(self, job: Job, queue: Queue) -> None:
        with self._changed:
            # registers the Execution (StartedJobRegistry, worker index) and marks the worker busy
            execution = self.prepare_execution(job)
            running = Running(job=job, queue=queue, execution=execution, control=JobControl(job.id))
            self._running[job.id] = running
        running.thread = threading.Thread(target=self._run_job, args=(running,), name=f"job:{job.id}",
                                          daemon=True)
        running.thread.start()

    def _run_job(self, running: Running) -> None:
        bind_control(running.control)
        try:
            self.perform_job(running.job, running.queue, running.execution)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            # Redis went away under the job: once it is back, the job goes back to the queue
            self._outage.down(exc)
            with self._changed:
                self._unfinalised.append(running)
        except Exception:   # perform_job handles the job's own errors; this is RQ bookkeeping failing
            self.log.exception("Worker %s: job %s could not be finalised", self.name, running.job.id)
        finally:
            with self._changed:
                if self._running.get(running.job.id) is running:
                    del self._running[running.job.id]
                if not self._running and not running.abandoned:
                    self._set_state_quietly(WorkerStatus.IDLE)
                self._changed.notify_all()
            self._slots[running.queue.name].release()

    def _set_state_quietly(self, state: str) -> None:
        try:
            self.set_state(state)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self._outage.down(exc)
        except redis.exceptions.RedisError:
            self.log.warning("Worker %s: could not record state %s", self.name, state)

    def _wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    # -- Redis outages -------------------------------------------------------------------
    def _ride_out_outage(self, exc: Exception) -> None:
        """Wait for Redis with a growing pause (1, 2, 4 s, then every OUTAGE_PROBE_MAX s), for as
        long as it takes, then pick up where the worker left off. Running jobs keep running;
        those whose outcome could not be stored are queued again."""
        self._outage.down(exc)
        pause = 1.0
        while not self.stop_requested:
            time.sleep(pause)
            try:
                self.connection.ping()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pause = min(pause * 2, OUTAGE_PROBE_MAX)
                continue
            self._after_outage()
            return

    def _after_outage(self) -> None:
        self._beat()   # first of all: our running jobs are alive, before anyone looks for lost ones
        # every worker was cut off as long as this one: give them two heartbeats to say so too
        self._recovery_paused_until = time.monotonic() + 2 * max(1, self.job_monitoring_interval)
        if not is_registered(self):
            register_again(self)   # Redis came back empty (no persistence) or forgot us
        with self._changed:
            unfinalised, self._unfinalised = self._unfinalised, []
        for running in unfinalised:
            # None: Redis came back without it (no persistence); it is put back whole
            if stored_status(self.connection, running.job.id) not in ENDED_RQ_STATUSES:
                self._requeue(running.job, running.queue, running.execution, note=OUTAGE_REQUEUED_LOG)
        self._outage.up(requeued=len(unfinalised))
        self.run_maintenance_tasks()   # among others, restarts RQ's scheduler, which died of the outage

    def command_channel_failed(self, exc: Exception) -> bool:
        """RQ's handler logs every 2 s while Redis is away; here the outage is logged once."""
        if not isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            return False
        self._outage.down(exc)
        time.sleep(2.0)
        return True

    # -- heartbeats ----------------------------------------------------------------------
    def _heartbeats(self) -> None:
        while not self._beats_stop.wait(self._heartbeat_interval):
            try:
                self._beat()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                self._outage.down(exc)   # the main loop waits for Redis and says so, once
            except Exception:
                self.log.exception("Worker %s: heartbeat failed", self.name)

    def _beat(self) -> None:
        """The worker's, every execution's and every job's heartbeat, in one round trip: this is
        what keeps RQ from treating the jobs as abandoned."""
        running = [(r.job, r.execution, self.get_heartbeat_ttl(r.job, time.monotonic() - r.started))
                   for r in self._snapshot()]
        heartbeat_all(self, running)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = min(max(job.timeout - working_time, 0), interval)
        return int(interval) + self.heartbeat_grace

    # -- outcomes ------------------------------------------------------------------------
    def handle_job_success(self, job: Job, queue, started_job_registry, execution):
        if self._is_abandoned(job):
            return
        super().handle_job_success(job, queue, started_job_registry, execution)

    def handle_job_failure(self, job: Job, queue, started_job_registry=None, exc_string="", execution=None):
        running = self._running.get(job.id)
        if running is not None and running.execution == execution:
            if running.abandoned:
                return
            if running.control.reason == Reason.SHUTDOWN:
                self._requeue(job, queue, execution)
                return
            if running.control.reason == Reason.STOPPED:
                mark_stopped(self, job.id)
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                   exc_string=exc_string, execution=execution)

    def _is_abandoned(self, job: Job) -> bool:
        running = self._running.get(job.id)
        return running is not None and running.abandoned

    def _requeue(self, job: Job, queue: Queue, execution: Execution | None, *, note: str = REQUEUED_LOG) -> None:
        """Put an interrupted job back at the front of its queue: not a failure, not an attempt;
        `note` is the line its log gets."""
        jobrecord.undo_attempt(job, note)
        job.started_at = job.ended_at = None
        with self.connection.pipeline() as pipe:
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            requeue_at_front(queue, job, pipe)
            pipe.execute()
        self._record(job, None)
        self.log.info("Worker %s: job %s queued again: %s", self.name, job.id, note)

    # -- commands (stop one job, not the worker) ---------------------------------------------
    def handle_payload(self, message):
        payload = parse_payload(message)
        command = payload.get("command")
        if command == "stop-job":
            self.stop_job(payload.get("job_id") or "")
        elif command == "stop-execution":
            self.request_stop_execution(payload.get("execution_id") or "")
        elif command == "kill-horse":
            self.log.info("Worker %s: no work horse to kill here; stop jobs with stop-job", self.name)
        else:
            handle_command(self, payload)

    def stop_job(self, job_id: str) -> bool:
        running = self._running.get(job_id)
        if running is None:
            self.log.info("Worker %s: not running job %s, stop ignored", self.name, job_id)
            return False
        if running.control.interrupt(Reason.STOPPED):
            self.log.info("Worker %s: stopping job %s", self.name, job_id)
        return True

    def request_stop_execution(self, execution_id: str):
        for running in list(self._running.values()):
            if running.execution.id == execution_id:
                return self.stop_job(running.job.id)
        self.log.info("Worker %s: not running execution %s, stop ignored", self.name, execution_id)
        return False

    # -- shutdown -----------------------------------------------------------------------------
    def begin_shutdown(self):
        """First SIGTERM/SIGINT (from RQ's request_stop): take no more jobs, let the running ones
        finish within the grace period. Never raises in the signal handler: a dequeue cut off
        mid-reply could strand a job in RQ's intermediate queue."""
        self.stop_requested = True
        self._shutdown_started = time.monotonic()
        self.log.info("Worker %s: shutting down; %d job(s) in flight get %.0f s to finish",
                      self.name, len(self._running), self.shutdown_grace)
        try:
            self.set_shutdown_requested_date()
            with self.connection.pipeline() as pipe:   # ends the loop's wait for work now
                pipe.rpush(self._stop_wakeup_key, "stop").expire(self._stop_wakeup_key, 60).execute()
        except redis.exceptions.RedisError:
            pass
        if self.scheduler:
            self.stop_scheduler()

    def request_force_stop(self, signum, frame):
        """A second signal: interrupt the running jobs now (they still go back to the queue)."""
        if self.shutdown_requested_at and (now() - self.shutdown_requested_at) < timedelta(seconds=1):
            return   # the same signal delivered twice (a pool and the OS both sending it)
        self.log.warning("Worker %s: cold shutdown, interrupting %d job(s)", self.name, len(self._running))
        self._cold = True

    def _drain(self) -> None:
        """Wait for the running jobs; after the grace period interrupt them, and requeue from here
        any whose thread does not come back (stuck in a call that cannot be interrupted)."""
        if not self.running_job_ids:
            return
        graceful = self.stop_requested
        grace_end = (self._shutdown_started or time.monotonic()) + self.shutdown_grace
        while self.running_job_ids and not self._cold and (not graceful or time.monotonic() < grace_end):
            self._wait_for_change(0.2)
            graceful = graceful or self.stop_requested
        leftover = self._snapshot()
        if not leftover:
            return
        self.log.info("Worker %s: interrupting %d job(s) to requeue them", self.name, len(leftover))
        for running in leftover:
            running.control.interrupt(Reason.SHUTDOWN)
        until = time.monotonic() + self.interrupt_grace
        while self.running_job_ids and time.monotonic() < until:
            self._wait_for_change(0.2)
        for running in self._snapshot():
            running.abandoned = True
            self.log.warning("Worker %s: job %s did not stop in time; queued again", self.name, running.job.id)
            try:
                self._requeue(running.job, running.queue, running.execution)
            except Exception:   # left STARTED: RQ's abandoned-job cleanup retries it once its heartbeat expires
                self.log.exception("Worker %s: could not requeue job %s", self.name, running.job.id)

    def _snapshot(self) -> list[Running]:
        with self._changed:
            return [r for r in self._running.values() if not r.abandoned]

    # -- maintenance ----------------------------------------------------------------------------
    def clean_registries(self):
        """RQ's registry maintenance (one worker per queue every 15 minutes, RQ's lock), after
        this worker's own lost-job recovery, so that RQ's cleanup finds no lost job to handle
        without telling anyone."""
        for queue in self.queues:
            self._recover_lost_jobs(queue)
            if queue.acquire_maintenance_lock():
                self.log.debug("Worker %s: cleaning registries for queue: %s", self.name, queue.name)
                clean_registries(queue, self.exception_handlers)
                worker_registration.clean_worker_registry(queue)
                queue.intermediate_queue.cleanup(self, queue)
                queue.release_maintenance_lock()
        self.last_cleaned_at = now()

    def _recover_lost_jobs_when_due(self) -> None:
        if time.monotonic() < self._next_recovery:
            return
        self._next_recovery = time.monotonic() + max(1, self.job_monitoring_interval)
        for queue in self.queues:
            self._recover_lost_jobs(queue)

    def _recover_lost_jobs(self, queue: Queue) -> None:
        """Jobs whose worker stopped heartbeating (SIGKILL, a lost dyno) are handed to RQ's
        started-registry cleanup, which retries them (attempts left) or fails them; each gets
        its `failed` event (willRetry), and a last attempt WORKER_LOST and its job.failed
        webhook. Runs every heartbeat interval, one worker per queue at a time (a lock as long
        as the interval), and only in workers: readers (stats, /metrics) never do this."""
        if time.monotonic() < self._recovery_paused_until:
            return   # just back from an outage: the other workers still have to say they live
        abandoned = self._abandoned_jobs(queue)
        if not abandoned:
            return
        lock = keys.lost_job_recovery(queue.name)
        if not self.connection.set(lock, self.name, nx=True, ex=max(1, self.job_monitoring_interval)):
            return
        self.log.info("Worker %s: recovering %d lost job(s) of queue %s", self.name, len(abandoned), queue.name)
        for job in abandoned:
            _retry_at_once(job)
        queue.started_job_registry.cleanup(exception_handlers=self.exception_handlers)
        for job in abandoned:
            self._report_lost(job)

    def _abandoned_jobs(self, queue: Queue) -> list[Job]:
        registry = queue.started_job_registry
        ids = list(dict.fromkeys(registry.get_expired_job_ids()))
        if not ids:
            return []
        jobs = Job.fetch_many(ids, connection=self.connection, serializer=self.serializer)
        return [job for job in jobs if job is not None and job.get_status(refresh=False) == JobStatus.STARTED
                and job.func_name == JOB_FUNCTION]

    def _report_lost(self, job: Job) -> None:
        try:
            status = job.get_status(refresh=True)
            if status == JobStatus.STARTED:
                return
            will_retry = status in (JobStatus.SCHEDULED, JobStatus.QUEUED)
            error = jobrecord.record_lost(job)
            jobrecord.save_state(job)
            self._record(job, Outcome.RETRIED if will_retry else Outcome.FAILED, code=error["code"])
            event_id = self._publish(job, jobrecord.Failed(error=error, willRetry=will_retry,
                                                           attemptsMade=jobrecord.state_of(job).get("attempt", 1)))
            if not will_retry:
                self._notify(job, webhooks.EVENT_FAILED, event_id, error=error)
        except Exception:
            self.log.exception("Worker %s: could not report lost job %s", self.name, job.id)


def _retry_at_once(job: Job) -> None:
    """A lost job's next attempt (if it has one) starts now, not after the retry backoff: its
    worker died, the job did not fail. (A backoff would also need RQ's scheduler, whose lock the
    dead worker may hold for another minute.) RQ reads retry_intervals[len - retries_left]."""
    if not job.retries_left or not job.retry_intervals:
        return
    intervals = list(job.retry_intervals)
    intervals[max(len(intervals) - job.retries_left, 0)] = 0
    job.retry_intervals = intervals
    job.save(include_meta=False)


def make_concurrent(ctx: WorkerContext) -> RenderPool:
    """Make a worker context fit for many jobs in threads: a render process pool whose pictures
    stay within the worker's memory budget, and ports whose producing calls are checkpoints where
    a stopped or timed-out job stops."""
    return_freed_memory()
    processes = render_processes(ctx.settings.render_processes)
    pool = RenderPool(processes)
    memory_mb = memory_limit_mb(ctx.settings.worker_memory_mb)
    largest = decoded_bytes_of(getattr(ctx.provider, "max_pixels", imaging.MAX_PIXELS))
    pool.budget = MemoryBudget(picture_budget(memory_mb, processes, largest))
    log.info("Pictures held at once: up to %d MB (of %d MB for the worker)", pool.budget.limit // 2**20, memory_mb)
    ctx.renderer = pool
    ctx.provider = InterruptibleProvider(ctx.provider)
    ctx.storage = Checkpointed(ctx.storage, frozenset({"put"}))
    ctx.records = Checkpointed(ctx.records, frozenset({"save_generation", "save_image"}))
    return pool


class RoutineAtDebug(logging.Filter):
    """RQ logs its periodic upkeep (registry cleaning every maintenance interval, the scheduler's
    locks and pub/sub channel) at INFO, which buries the job lines in a terminal. Those records
    are lowered to DEBUG and shown only when their logger is set to DEBUG."""

    ROUTINE = ("Worker %s: cleaning", "Worker %s: subscribing", "Worker %s: unsubscribing",
               "Acquired scheduler lock", "Scheduler for", "Scheduler stopping", "Scheduler with PID")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(self.ROUTINE):
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def run_concurrent_worker(settings: Settings | None = None, *, burst: bool = False, **options) -> None:
    """`snapasset worker`: bootstrap, start the render pool, then work with RQ's scheduler."""
    forked_children_die_with_this_process()   # RQ's scheduler, before it is forked
    for name in ("rq.worker", "rq.scheduler"):
        logging.getLogger(name).addFilter(RoutineAtDebug())
    ctx = bootstrap(settings)
    if ctx.settings.production:
        warn_if_not_persistent(ctx.redis.client)
    pool = make_concurrent(ctx)
    try:
        settings = ctx.settings
        # heartbeats every worker_heartbeat seconds; each job it runs counts as alive for
        # worker_liveness after the last one (lost-job recovery)
        options.setdefault("job_monitoring_interval", settings.worker_heartbeat)
        options.setdefault("heartbeat_grace", settings.worker_liveness - settings.worker_heartbeat)
        options.setdefault("wakeup_key", keys.lane_wakeup(settings.queue_name))
        worker = build_worker(ctx, ConcurrentWorker, concurrency=settings.worker_concurrency,
                              budget=pool.budget, **options)
        worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        pool.close()
