"""Where a job's Pillow work runs: in the job's own thread, or in a pool of processes.

Rendering is CPU-bound Python (Pillow releases the GIL for part of it only), so a worker
that keeps dozens of jobs in flight in threads sends it to one process per core. A job is
one task (imaging.render_all: decode once, find the focus once, every platform): per
platform tasks would decode the source once per platform, and under load, when every core
is busy anyway, that extra decoding is lost throughput (bench/worker_concurrency.py measures
both).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from snapasset import imaging
from snapasset.imaging import RenderedImage
from snapasset.platforms import Platform
from workers.control import current_control

__all__ = ["Renderer", "InlineRenderer", "RenderPool", "render_processes"]

log = logging.getLogger(__name__)


class Renderer:
    """The port the pipeline renders through."""

    def render_all(self, data: bytes, platforms: Sequence[Platform], fmt: str) -> list[RenderedImage]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class InlineRenderer(Renderer):
    """Renders in the calling thread (the forking worker, in-process test runs, the CLI)."""

    def render_all(self, data: bytes, platforms: Sequence[Platform], fmt: str) -> list[RenderedImage]:
        return imaging.render_all(data, platforms, fmt)


def render_processes(configured: int) -> int:
    """SNAPASSET_RENDER_PROCESSES, 0 meaning one per core this process may run on."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _stop_signals_ignored():
    """While the pool's processes (and the forkserver they come from) start, SIGTERM and SIGINT
    are ignored, and an ignored disposition is inherited. Heroku sends SIGTERM to every process
    of a dyno (a terminal's Ctrl+C reaches the whole process group): the render processes must
    live on through the worker's grace period, and the worker closes the pool itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ready() -> int:
    return os.getpid()


class RenderPool(Renderer):
    """imaging.render_all in a pool of processes, one task per job; the job's thread waits on
    its JobControl, so a stopped or timed-out job does not wait for its render to finish."""

    def __init__(self, processes: int):
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        # the forkserver imports Pillow once; every render process is forked from it (no fork of
        # this multi-threaded process, and the imported pages are shared)
        context.set_forkserver_preload(["snapasset.imaging"])
        with _stop_signals_ignored():
            pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_ignore_stop_signals)
            # start every process now: memory is taken at boot, and a SIGTERM later finds them ignoring it
            started = [pool.submit(_ready) for _ in range(self.processes)]
            for future in started:
                future.result()
        return pool

    def pids(self) -> list[int]:
        return list(getattr(self._pool, "_processes", {}) or {})

    def render_all(self, data: bytes, platforms: Sequence[Platform], fmt: str) -> list[RenderedImage]:
        for attempt in range(2):
            pool = self._pool
            try:
                future = pool.submit(imaging.render_all, data, list(platforms), fmt)
                return self._wait(future)
            except BrokenProcessPool:
                # a render process died (e.g. killed for memory): start a new pool and try once more
                if attempt:
                    raise
                self._replace(pool)
        raise AssertionError("unreachable")

    @staticmethod
    def _wait(future: Future) -> list[RenderedImage]:
        control = current_control()
        try:
            return control.wait(future) if control is not None else future.result()
        finally:
            future.cancel()   # an abandoned render that has not started yet never runs

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                log.warning("a render process died; starting a new render pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
