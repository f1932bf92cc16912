"""Where a job's Pillow work runs: in the job's own thread, or in a pool of processes.

Rendering is CPU-bound Python (Pillow releases the GIL for part of it only), so a worker
that keeps dozens of jobs in flight in threads sends it to one process per core. Each
platform is its own task, submitted together, handed back in order: the job reports and
uploads each image as it is ready (progress moves per platform, a cancel can land between
two), and one job's platforms spread over all cores. The source is still decoded once per
render process and job (a small cache keyed by the bytes' digest), not once per platform;
bench/worker_concurrency.py measures this against one InlineRenderer task per job.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import signal
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from PIL import Image

from snapasset import framing, imaging
from snapasset.imaging import RenderedImage
from snapasset.platforms import Platform
from workers.control import current_control
from workers.lifeline import die_with

__all__ = ["Renderer", "InlineRenderer", "RenderPool", "render_processes"]

log = logging.getLogger(__name__)


class Renderer:
    """The port the pipeline renders through."""

    def render_each(self, data: bytes, platforms: Sequence[Platform], fmt: str,
                    fit: str = "cover") -> Iterator[RenderedImage]:
        """One rendered image per platform, in their order, each as soon as it is ready."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class InlineRenderer(Renderer):
    """Renders in the calling thread (the forking worker, in-process test runs, the CLI)."""

    def render_each(self, data: bytes, platforms: Sequence[Platform], fmt: str,
                    fit: str = "cover") -> Iterator[RenderedImage]:
        source = imaging.decode(data)           # now: a bad image fails the job here, not later
        analysis = framing.analyse(source)
        return (imaging.render(source, platform, fmt, analysis=analysis, fit=fit) for platform in platforms)


_SOURCES: OrderedDict[bytes, tuple[Image.Image, framing.Analysis]] = OrderedDict()
_SOURCES_KEPT = 4


def _render_one(digest: bytes, data: bytes, platform: Platform, fmt: str, fit: str) -> RenderedImage:
    """In a render process: the job's source is decoded (and analysed) by the first of its
    platforms to reach this process, and kept for the next few."""
    if digest in _SOURCES:
        _SOURCES.move_to_end(digest)
    else:
        source = imaging.decode(data)
        _SOURCES[digest] = (source, framing.analyse(source))
        while len(_SOURCES) > _SOURCES_KEPT:
            _SOURCES.popitem(last=False)
    source, analysis = _SOURCES[digest]
    return imaging.render(source, platform, fmt, analysis=analysis, fit=fit)


def render_processes(configured: int) -> int:
    """SNAPASSET_RENDER_PROCESSES, 0 meaning one per core this process may run on."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def _start_render_process(worker_pid: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with(worker_pid)   # its parent is the forkserver; it must go when the worker goes (lifeline)


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
    """Renders in a pool of processes; the job's thread waits on its JobControl, so a stopped or
    timed-out job does not wait for its renders to finish."""

    def __init__(self, processes: int):
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        # the forkserver imports Pillow once; every render process is forked from it (no fork of
        # this multi-threaded process, and the imported pages are shared)
        context.set_forkserver_preload(["snapasset.imaging", "snapasset.framing"])
        with _stop_signals_ignored():
            pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_render_process,
                                       initargs=(os.getpid(),))
            # start every process now: memory is taken at boot, and a SIGTERM later finds them ignoring it
            started = [pool.submit(_ready) for _ in range(self.processes)]
            for future in started:
                future.result()
        return pool

    def render_each(self, data: bytes, platforms: Sequence[Platform], fmt: str,
                    fit: str = "cover") -> Iterator[RenderedImage]:
        digest = hashlib.blake2b(data, digest_size=16).digest()
        return self._collect(digest, data, list(platforms), fmt, fit, self._submit(digest, data, platforms, fmt, fit))

    def _collect(self, digest: bytes, data: bytes, platforms: list[Platform], fmt: str, fit: str,
                 futures: list[Future]) -> Iterator[RenderedImage]:
        try:
            for index in range(len(platforms)):
                try:
                    yield self._wait(futures[index])
                except BrokenProcessPool:
                    # a render process died (e.g. killed for memory): a new pool, and once more
                    self._replace(self._pool)
                    futures[index:] = self._submit(digest, data, platforms[index:], fmt, fit)
                    yield self._wait(futures[index])
        finally:
            for future in futures:   # an abandoned job's renders that have not started never run
                future.cancel()

    def _submit(self, digest: bytes, data: bytes, platforms: Sequence[Platform], fmt: str,
                fit: str) -> list[Future]:
        pool = self._pool
        return [pool.submit(_render_one, digest, data, platform, fmt, fit) for platform in platforms]

    @staticmethod
    def _wait(future: Future) -> RenderedImage:
        control = current_control()
        return control.wait(future) if control is not None else future.result()

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                log.warning("a render process died; starting a new render pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
