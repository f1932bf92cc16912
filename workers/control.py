"""How one running job is told to stop, from another thread, without touching its neighbours.

A thread cannot be killed, and an exception injected into one (RQ's TimerDeathPenalty) only
lands when the thread next runs Python code: a thread blocked in a model's HTTP read or in a
sleep would not see it for the whole call, and when it lands it can land anywhere (inside a
Redis reply, inside the job's own failure handling). So a job in the concurrent worker is
stopped cooperatively instead, at points where stopping is clean:

- every long wait of a job (the image model, the render pool) waits on its JobControl and is
  abandoned the moment the job is stopped or passes its deadline;
- every call into a port that produces something (provider.generate, storage.put,
  records.save_*) is a checkpoint that raises first;
- the pipeline's own report() keeps checking the owner's cancel flag at every step.

What a checkpoint raises is what the pipeline already handles: JobTimeoutException (a
timeout, retried by RQ), JobCancelled (a stop-job command: RQ marks the job STOPPED) and
WorkerShuttingDown (the worker requeues the job).
"""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import Future

from rq.timeouts import BaseDeathPenalty, JobTimeoutException

from snapasset.errors import ErrorCode, JobCancelled, JobFailure

__all__ = ["Reason", "JobControl", "WorkerShuttingDown", "current_control", "bind_control",
           "ControlDeathPenalty", "InterruptibleProvider", "Checkpointed"]


class Reason:
    """Why a job was interrupted."""
    TIMEOUT = "timeout"
    STOPPED = "stopped"     # a stop-job / stop-execution command (the owner cancelled it)
    SHUTDOWN = "shutdown"   # the worker is going away; the job goes back to the queue


class WorkerShuttingDown(JobFailure):
    """Raised in a job the worker interrupts on shutdown; the worker puts the job back in the queue."""
    code = ErrorCode.WORKER_LOST

    def __init__(self):
        super().__init__("The worker shut down during this attempt; the job was queued again", retryable=True)


_current: contextvars.ContextVar[JobControl | None] = contextvars.ContextVar("snapasset_job_control",
                                                                             default=None)


def current_control() -> JobControl | None:
    """The control of the job this thread runs; None outside the concurrent worker."""
    return _current.get()


def bind_control(control: JobControl | None) -> contextvars.Token:
    return _current.set(control)


class JobControl:
    """One job's stop switch and deadline, shared by its thread and the worker's threads."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.deadline: float | None = None        # time.monotonic() seconds
        self.timeout: int | None = None
        self.reason: str | None = None
        self._waiting: set[threading.Event] = set()   # one event per wait in progress
        self.lock = threading.RLock()              # held while a late callback (a partial image) runs

    # -- set by the worker ---------------------------------------------------------
    def arm(self, timeout: int) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout if timeout and timeout > 0 else None

    def disarm(self) -> None:
        self.deadline = None

    def interrupt(self, reason: str) -> bool:
        """Ask the job to stop; the first reason wins. True if this call decided it."""
        with self.lock:
            if self.reason is not None:
                return False
            self.reason = reason
            waiting = list(self._waiting)
        for wake in waiting:
            wake.set()
        return True

    # -- used in the job's thread ------------------------------------------------------
    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check(self) -> None:
        """Raise what the job should raise now, if anything."""
        if self.reason is None and self.expired:
            self.interrupt(Reason.TIMEOUT)
        if self.reason is not None:
            raise self._exception()

    def _exception(self) -> BaseException:
        if self.reason == Reason.TIMEOUT:
            return JobTimeoutException(f"Task exceeded maximum timeout value ({self.timeout} seconds)")
        if self.reason == Reason.STOPPED:
            return JobCancelled(self.job_id)
        return WorkerShuttingDown()

    def wait(self, future: Future):
        """future.result(), abandoned as soon as the job is stopped or passes its deadline."""
        wake = threading.Event()
        with self.lock:
            self._waiting.add(wake)
        future.add_done_callback(lambda _: wake.set())
        try:
            while not future.done():
                self.check()
                remaining = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
                wake.wait(remaining)
            with self.lock:                        # no late callback half-way through
                self.check()
            return future.result()
        finally:
            with self.lock:
                self._waiting.discard(wake)


class ControlDeathPenalty(BaseDeathPenalty):
    """RQ's per-job timeout (`with death_penalty_class(job.timeout, ..., job_id=...)` around
    job.perform()) as a deadline on the job's control, enforced at its waits and checkpoints.

    Signals (UnixSignalDeathPenalty) only reach the main thread; anything else RQ wraps in a
    death penalty from a job thread (callbacks) runs unguarded rather than failing."""

    def __init__(self, timeout, exception=JobTimeoutException, **kwargs):
        super().__init__(timeout, exception, **kwargs)
        control = current_control()
        self._control = control if control is not None and kwargs.get("job_id") == control.job_id else None

    def setup_death_penalty(self):
        if self._control is not None:
            self._control.arm(self._timeout)

    def cancel_death_penalty(self):
        if self._control is not None:
            self._control.disarm()


def _run_in_context(ctx: contextvars.Context, fn, *args, **kwargs):
    return ctx.run(fn, *args, **kwargs)


class InterruptibleProvider:
    """Wraps the image provider so that waiting on the model can be abandoned.

    The model call runs in a helper thread; the job's thread waits on its control. A stopped
    or timed-out job goes on at once; the abandoned call ends on its own (bounded by the
    provider's HTTP timeout), its result dropped and its partial images no longer reported."""

    def __init__(self, provider):
        self._provider = provider

    def __getattr__(self, name):
        return getattr(self._provider, name)

    def generate(self, request, *, on_partial=None):
        control = current_control()
        if control is None:
            return self._provider.generate(request, on_partial=on_partial)
        control.check()

        def partial(data: bytes) -> None:
            with control.lock:
                if control.reason is None:
                    on_partial(data)

        future: Future = Future()

        def call() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._provider.generate(request, on_partial=partial if on_partial else None))
            except BaseException as exc:   # handed to the job's thread, which re-raises it
                future.set_exception(exc)

        ctx = contextvars.copy_context()
        threading.Thread(target=_run_in_context, args=(ctx, call), name=f"model-{control.job_id}",
                         daemon=True).start()
        return control.wait(future)


class Checkpointed:
    """Wraps a port so that its producing calls first check the running job's control.

    Clean-up calls (delete …) are never checkpointed: a stopped job must still remove what
    it made."""

    def __init__(self, port, checkpoints: frozenset[str]):
        self._port = port
        self._checkpoints = checkpoints

    def __getattr__(self, name):
        attr = getattr(self._port, name)
        if name not in self._checkpoints or not callable(attr):
            return attr

        def checked(*args, **kwargs):
            control = current_control()
            if control is not None:
                control.check()
            return attr(*args, **kwargs)
        return checked
