"""Where a job's Pillow work runs: in the job's own thread, or in a pool of processes.

Rendering is CPU-bound Python (Pillow releases the GIL for part of it only), so a worker
that keeps dozens of jobs in flight in threads sends it to one process per core, and decodes
each job's picture once (and analyses it once: framing.analyse). When every render process is busy (or there is only one), the whole
job is one task: decode, then each platform from the decoded picture. When some process is
idle, the decoding task puts the pixels in shared memory and each platform is a task of its
own reading them, so one job's platforms spread over all cores. The encoded picture reaches
the decoding task through shared memory too (a task carries names, not megabytes). The job thread reports and
uploads each image in order (progress moves per platform), and a stopped job stops waiting
at once, between any two steps.

Memory: the model's answer is read once the budget has room for what the read holds
(Arrivals), the picture's header is checked before anything is decoded (pipeline), its bytes
and decoded pixels are counted against the worker's MemoryBudget (workers/memory.py) for as
long as the job holds them, and a picture that finds no room waits in a temporary file, not
in memory. Render processes keep nothing between tasks, but one render process keeps the
picture whose platforms it renders one task each (_kept) until the last of them or any other task.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.shared_memory import SharedMemory
from typing import ContextManager

from PIL import Image

from snapasset import framing, imaging
from snapasset.imaging import RenderedImage
from snapasset.platforms import Platform
from snapasset.providers.base import receive_gate
from workers.control import current_control
from workers.memory import MemoryBudget
from workers.lifeline import die_with

__all__ = ["Renderer", "InlineRenderer", "RenderPool", "Arrivals", "render_processes", "decoded_bytes_of"]

log = logging.getLogger(__name__)

_BYTES_PER_PIXEL = 4      # at most: decoded pixels are RGB, or RGBA when the picture has transparency
_STRIP_ROWS = 256         # decoded pixels are copied into shared memory this many rows at a time


def decoded_bytes_of(pixels: int) -> int:
    """Memory the decoded pixels of a picture of this many pixels take (at most)."""
    return pixels * _BYTES_PER_PIXEL


class Renderer:
    """The port the pipeline renders through."""

    def render_each(self, data: bytes, size: tuple[int, int], platforms: Sequence[Platform],
                    fmt: str, fit: str = "cover") -> ContextManager[Iterator[RenderedImage]]:
        """A context holding the picture (`data`, whose header said `size`) while its images are
        rendered; it yields one rendered image per platform, in their order, each as soon as it is
        ready. The caller passes its only reference to `data`: the renderer may let go of it."""
        raise NotImplementedError

    def arrivals(self) -> ContextManager["Arrivals | None"]:
        """A context for one job's model calls in which the pictures' reads wait for room in
        memory (snapasset.providers.base.receiving); it yields what the job settles them with."""
        return contextlib.nullcontext()

    def close(self) -> None:
        pass


class Arrivals:
    """One job's pictures on their way in, counted in the worker's budget from before they are
    read until the renderer counts them itself.

    A picture's read (providers.base.receiving) first reserves what it may hold at its peak and
    waits for the grant where a stopped job stops waiting; the reservation stays until
    `settle()`, which the job calls once it has handed the pictures to render_each (which counts
    their bytes, or puts them on disk), or until the reader gives it back itself: all of it (a
    partial image, shown and dropped) or all but what it still holds (the decoded picture, once
    the body and its base64 text are gone). Without this, 64 model answers arriving within one
    second were all in memory before the first was counted. A read granted after its job ended
    (an abandoned model call) gives its grant back and ends the call."""

    def __init__(self, budget: MemoryBudget):
        self.budget = budget
        self._held: dict[object, int] = {}   # each reservation still counted, and its cost
        self._closed = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def receiving(self, at_most: int) -> Iterator[Callable[..., None]]:
        cost = min(max(at_most, 0), self.budget.limit)
        grant = self.budget.reserve(cost)
        try:
            wait(grant)
        except BaseException:
            self.budget.abandon(grant, cost)
            raise
        reservation = object()
        with self._lock:
            closed = self._closed
            if not closed:
                self._held[reservation] = cost
        if closed:
            self.budget.release(cost)
            raise RuntimeError("the job this picture was for has ended")
        yield lambda keep=0: self._give_back(reservation, keep)

    def _give_back(self, reservation: object, keep: int) -> None:
        with self._lock:
            cost = self._held.pop(reservation, 0)   # 0: settled already
            kept = min(max(keep, 0), cost)
            if kept:
                self._held[reservation] = kept
        if cost - kept:
            self.budget.release(cost - kept)

    def settle(self) -> None:
        """The pictures read so far are the renderer's to count now."""
        with self._lock:
            held, self._held = sum(self._held.values()), {}
        if held:
            self.budget.release(held)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.settle()


class InlineRenderer(Renderer):
    """Renders in the calling thread (the forking worker, in-process test runs, the CLI)."""

    @contextlib.contextmanager
    def render_each(self, data, size, platforms, fmt, fit="cover"):
        source = imaging.decode(data)           # now: a bad image fails the job here, not later
        miniature = imaging.miniature_of(source)
        analysis = framing.analyse(source, reduced=miniature.image)
        yield (imaging.render(source, platform, fmt, analysis=analysis, fit=fit, miniature=miniature)
               for platform in platforms)


def _decode_and_render(encoded: str, length: int, name: str | None, platforms: Sequence[Platform], fmt: str,
                       fit: str, keep: bool = False) -> tuple[str, tuple[int, int], framing.Analysis | None,
                                                              imaging.Miniature | None, list[RenderedImage]]:
    """In a render process: decode the picture (its `length` encoded bytes in the shared memory
    block `encoded`), put its pixels in the shared memory block `name` (when other processes
    render the rest of the job's platforms), and render `platforms` from the decoded picture
    itself; with `keep`, keep the decoded picture for the job's next tasks (_render_kept).
    Answers the pixels' mode (RGB or RGBA), size, and, for the other processes, analysis and
    miniature (imaging.miniature_of: 96 pixels on its long side); and the rendered images."""
    _kept.clear()
    source = imaging.decode(_read(encoded, length))
    miniature = imaging.miniature_of(source)
    analysis = framing.analyse(source, reduced=miniature.image)
    if keep:
        images = [imaging.render(source, p, fmt, analysis=analysis, fit=fit, miniature=miniature) for p in platforms]
        _kept[encoded] = (source, analysis, miniature)
        return source.mode, source.size, None, None, images
    if name is None:
        return (source.mode, source.size, None, None,
                [imaging.render(source, p, fmt, analysis=analysis, fit=fit, miniature=miniature) for p in platforms])
    _share(source, name)
    return (source.mode, source.size, analysis, miniature,
            [imaging.render(source, p, fmt, analysis=analysis, fit=fit, miniature=miniature) for p in platforms])


# The picture a render process decoded for the job whose next tasks it runs (RenderPool with one
# process: a job's platforms are tasks of their own, so that each image goes back to the job as
# soon as it is rendered; the process that decoded the picture renders them all). At most one
# picture, by the name of its encoded bytes' block; any other task drops it.
_kept: dict[str, tuple[Image.Image, framing.Analysis, imaging.Miniature]] = {}


def _render_kept(encoded: str, length: int, platform: Platform, fmt: str, fit: str, last: bool) -> RenderedImage:
    """In a render process: one platform's image from the picture this process kept for its job
    (decoded again from `encoded` if it is not here: another task came in between); the job's
    last task lets it go."""
    kept = _kept.pop(encoded, None)
    _kept.clear()
    if kept is None:
        source = imaging.decode(_read(encoded, length))
        miniature = imaging.miniature_of(source)
        kept = source, framing.analyse(source, reduced=miniature.image), miniature
    source, analysis, miniature = kept
    image = imaging.render(source, platform, fmt, analysis=analysis, fit=fit, miniature=miniature)
    if not last:
        _kept[encoded] = kept
    return image


def _write(block: SharedMemory, data: bytes) -> None:
    """data at the start of a new block: a write to its file where there is one (POSIX), which
    lets go of the GIL and costs half the page faults of a copy into the mapping (1.4 against
    2.7-3.2 ms for 3 MB)."""
    fd = getattr(block, "_fd", -1)
    written = os.pwrite(fd, data, 0) if fd >= 0 else 0
    if written < len(data):
        block.buf[written:len(data)] = memoryview(data)[written:]


def _read(name: str, length: int) -> bytes:
    """The encoded picture the job thread put in shared memory (see _SharedRendering._decode)."""
    block = SharedMemory(name)
    try:
        return bytes(block.buf[:length])
    finally:
        block.close()


def _share(source: Image.Image, name: str) -> None:
    width, height = source.size
    row = width * Image.getmodebands(source.mode)
    block = SharedMemory(name)
    try:
        if row * height > block.size:
            raise imaging.InvalidImage("The image has more pixels than its header said")
        for top in range(0, height, _STRIP_ROWS):
            strip = source.crop((0, top, width, min(top + _STRIP_ROWS, height))).tobytes()
            block.buf[top * row:top * row + len(strip)] = strip
    finally:
        block.close()


def _render_shared(name: str, mode: str, size: tuple[int, int], analysis: framing.Analysis,
                   miniature: imaging.Miniature, platform: Platform, fmt: str, fit: str) -> RenderedImage:
    """In a render process: one platform's image from the decoded pixels in shared memory. The
    pixels are copied out first (Pillow resizes its own RGB layout faster than a mapped RGBX one,
    and the copy lives only as long as this task)."""
    _kept.clear()
    block = SharedMemory(name)
    try:
        with block.buf[:size[0] * size[1] * Image.getmodebands(mode)] as pixels:
            source = Image.frombytes(mode, size, pixels)
    finally:
        block.close()
    return imaging.render(source, platform, fmt, analysis=analysis, fit=fit, miniature=miniature)


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
    timed-out job does not wait for its renders to finish. Pictures held are bounded by `budget`."""

    def __init__(self, processes: int, budget: MemoryBudget | None = None):
        self.processes = processes
        self.budget = budget or MemoryBudget(2**63)
        self._lock = threading.Lock()
        self._submitting = threading.Lock()
        self._pending = 0        # tasks submitted and not yet finished, across all jobs
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        # the forkserver imports Pillow once; every render process is forked from it (no fork of
        # this multi-threaded process, and the imported pages are shared)
        context.set_forkserver_preload(["snapasset.imaging"])
        with _stop_signals_ignored():
            pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_render_process,
                                       initargs=(os.getpid(),))
            # start every process now: memory is taken at boot, and a SIGTERM later finds them ignoring it
            started = [pool.submit(_ready) for _ in range(self.processes)]
            for future in started:
                future.result()
        return pool

    def render_each(self, data, size, platforms, fmt, fit="cover"):
        return _SharedRendering(self, data, size, list(platforms), fmt, fit)

    @contextlib.contextmanager
    def arrivals(self) -> Iterator[Arrivals]:
        arrivals = Arrivals(self.budget)
        try:
            with receive_gate(arrivals.receiving):
                yield arrivals
        finally:
            arrivals.close()

    def submit_each(self, fn: Callable, calls: Sequence[tuple]) -> tuple[ProcessPoolExecutor, list[Future]]:
        """fn(*args) in the render processes for each args in calls; answers the pool they went to."""
        return self.submit_all([(fn, args) for args in calls])

    def submit_all(self, tasks: Sequence[tuple[Callable, tuple]]) -> tuple[ProcessPoolExecutor, list[Future]]:
        """fn(*args) for each (fn, args), queued one after another with no other job's task in
        between (one render process runs them in that order); answers the pool they went to."""
        with self._submitting:
            pool = self._pool
            futures = [pool.submit(fn, *args) for fn, args in tasks]
        with self._lock:
            self._pending += len(futures)
        for future in futures:
            future.add_done_callback(self._task_ended)
        return pool, futures

    def _task_ended(self, _future: Future) -> None:
        with self._lock:
            self._pending -= 1

    @property
    def busy(self) -> bool:
        """Every render process has work waiting: spreading a job's platforms would buy no time."""
        return self._pending >= self.processes

    def replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                log.warning("a render process died; starting a new render pool")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def wait(future: Future):
    """future.result(), abandoned when the running job is stopped or passes its deadline."""
    control = current_control()
    return control.wait(future) if control is not None else future.result()


class _SharedRendering:
    """One job's picture in the render pool (RenderPool.render_each). On entering, the picture is
    granted its bytes in the budget and its decoding starts, or, when the budget has no room, it
    waits in a temporary file rather than in memory. The images: once granted, the picture is
    decoded once, and its platforms rendered by the decoding task or from shared memory (see the
    module docstring). On exit, renders not started are cancelled, and the shared pixels and the
    budget are given back once no render process reads them any more."""

    def __init__(self, renderer: RenderPool, data: bytes, size: tuple[int, int], platforms: list[Platform],
                 fmt: str, fit: str):
        self.renderer, self.platforms, self.fmt, self.fit = renderer, platforms, fmt, fit
        self._data: bytes | None = data
        self._encoded = len(data)
        self._source: SharedMemory | None = None   # the encoded bytes, for the decoding task
        self._pixels = decoded_bytes_of(size[0] * size[1])
        # how many platforms the decoding process renders from what it decoded: all of them when
        # there is no idle render process to spread them over (one process, or every one busy:
        # the whole job in one task, the cheapest way); else none, and every platform is a task
        # of its own reading the shared pixels, so one job's platforms render on every core
        self._own = len(platforms) if renderer.processes == 1 or renderer.busy else 0
        # except with one render process and nothing else for it to do: the decoding task renders
        # the first platform and keeps the decoded picture, the others are tasks of their own
        # (queued at once) rendered from it, so each image reaches the job as soon as it is
        # rendered, and is uploaded and reported while the next renders
        self._kept = renderer.processes == 1 and not renderer.busy and len(platforms) > 1
        if self._kept:
            self._own = 1
        self._held = len(data) + self._pixels
        self._grant: Future | None = None
        self._spilled = None
        self._block: SharedMemory | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._decoding: Future | None = None
        self._decoded = None
        self._futures: list[Future] = []
        self._pending = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Iterator[RenderedImage]:
        try:
            self._grant = self.renderer.budget.reserve(self._held)
            if self._grant.done():
                self._decode()
            else:
                self._spilled = tempfile.TemporaryFile(prefix="snapasset-picture-")
                self._spilled.write(self._data)
                self._data = None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self._images()

    def _decode(self) -> None:
        if self._source is None:
            # the encoded picture goes to the render process through shared memory, not pickled
            # down the pool's pipe: a pipe carries 64 KB at a time, written by this process's
            # feeder thread as the GIL lets it, and the render process waited ~7 ms a task for
            # its 3 MB (once every render process is busy, that is render time lost)
            self._source = SharedMemory(create=True, size=max(1, self._encoded))
            _write(self._source, self._data)
            self._data = None
        if self._block is None and len(self.platforms) > self._own and not self._kept:
            self._block = SharedMemory(create=True, size=max(1, self._pixels))
        name = self._block.name if self._block is not None else None
        decoding = (_decode_and_render, (self._source.name, self._encoded, name, self.platforms[:self._own], self.fmt,
                                         self.fit, self._kept))
        kept = [(_render_kept, args) for args in self._kept_calls(self.platforms[self._own:])] if self._kept else []
        self._pool, (self._decoding, *futures) = self.renderer.submit_all([decoding, *kept])
        if self._kept:
            self._futures = futures

    def _kept_calls(self, platforms: Sequence[Platform]) -> list[tuple]:
        return [(self._source.name, self._encoded, platform, self.fmt, self.fit, platform is self.platforms[-1])
                for platform in platforms]

    def _submit(self, platforms: Sequence[Platform]) -> list[Future]:
        if self._kept:
            self._pool, futures = self.renderer.submit_each(_render_kept, self._kept_calls(platforms))
            return futures
        mode, size, analysis, miniature = self._decoded
        self._pool, futures = self.renderer.submit_each(
            _render_shared, [(self._block.name, mode, size, analysis, miniature, platform, self.fmt, self.fit)
                             for platform in platforms])
        return futures

    def _images(self) -> Iterator[RenderedImage]:
        if self._decoding is None:           # it waited on disk: its turn, then back in memory
            wait(self._grant)
            self._spilled.seek(0)
            self._data = self._spilled.read()
            self._spilled.close()
            self._spilled = None
            self._decode()
        try:
            *self._decoded, own = wait(self._decoding)
        except BrokenProcessPool:            # a render process died (e.g. killed for memory): once more
            self.renderer.replace(self._pool)
            self._decode()
            *self._decoded, own = wait(self._decoding)
        rest = self.platforms[self._own:]
        if not self._kept:                   # (kept: the next tasks may decode it again, see _render_kept)
            self._release_source()           # decoded: the encoded bytes are not needed again
            self._futures = self._submit(rest) if rest else []
        # once the last render is done, the picture's memory goes back before its images are
        # handed over: a job that holds rendered images waits for nothing while holding it
        if not rest:
            self._free()
        yield from own
        for index in range(len(rest)):
            try:
                image = wait(self._futures[index])
            except BrokenProcessPool:
                # a new pool, and once more; the decoded pixels are still in shared memory (or,
                # kept, the encoded bytes: the new process decodes them again)
                self.renderer.replace(self._pool)
                self._futures[index:] = self._submit(rest[index:])
                image = wait(self._futures[index])
            if index == len(rest) - 1:
                self._free()                 # (kept: every task has read what it needed)
            yield image

    def __exit__(self, *exc_info) -> None:
        if self._spilled is not None:
            self._spilled.close()
        if self._grant is not None and not self._grant.done():
            self.renderer.budget.abandon(self._grant, self._held)
            self._grant = None
        started = [self._decoding, *self._futures] if self._decoding else self._futures
        for future in started:            # an abandoned job's renders that have not started never run
            future.cancel()
        running = [future for future in started if not future.done()]
        with self._lock:
            self._pending = len(running)
        for future in running:            # a render still reading the pixels: free them after it
            future.add_done_callback(self._render_ended)
        if not running:
            self._free()

    def _release_source(self) -> None:
        with self._lock:
            source, self._source = self._source, None
        if source is not None:
            source.close()
            source.unlink()
            self._held -= self._encoded
            self.renderer.budget.release(self._encoded)

    def _render_ended(self, _future: Future) -> None:
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self._free()

    def _free(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source.unlink()
            self._source = None
        if self._block is not None:
            self._block.close()
            self._block.unlink()
            self._block = None
        if self._grant is not None:
            self.renderer.budget.release(self._held)
            self._grant = None
