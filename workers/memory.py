"""How many of the model's pictures a worker holds at once: a budget in bytes.

A generation waits on the model for seconds and holds nothing meanwhile; once its picture
arrives it holds the encoded bytes and, while rendering, the decoded pixels (4 bytes a pixel:
33 MB for 3840×2160). So jobs in flight are cheap and pictures are not: the worker keeps many
model calls waiting (SNAPASSET_WORKER_CONCURRENCY) but holds only as many pictures as fit in
what is left of its memory (SNAPASSET_WORKER_MEMORY_MB) once its processes are up. An answer
is read from the model only when the budget has room for it (workers/rendering.py, Arrivals),
a picture that then finds no room to be decoded waits in a temporary file, and the worker
takes no new job from the queue while the budget is spent.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path

import psutil

__all__ = ["MemoryBudget", "memory_limit_mb", "picture_budget", "tree_rss", "return_freed_memory"]

log = logging.getLogger(__name__)

DEFAULT_MEMORY_MB = 512            # a Heroku standard-1X / basic dyno
# What a render process needs beyond the pictures counted in the budget: its own copy of the
# largest picture's pixels while it renders, the shared ones it copies them from (mapped, so
# counted in its RSS too), and the resized output, the framing analysis and encoder buffers.
RENDER_COPIES = 2
RENDER_HEADROOM_MB = 32
MIN_BUDGET_MB = 64                 # below this, one large picture at a time: it still runs
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8      # glibc's mallopt parameters
_MMAP_THRESHOLD = 1 << 20                     # blocks of 1 MB and more are mapped, and unmapped when freed
_ARENA_MAX = 4
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def memory_limit_mb(configured: int) -> int:
    """SNAPASSET_WORKER_MEMORY_MB; 0 means the container's memory limit (cgroup) when there is
    one below the machine's memory, else DEFAULT_MEMORY_MB."""
    if configured > 0:
        return configured
    for path in _CGROUP_LIMITS:
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < psutil.virtual_memory().total:
            return int(raw) // 2**20
    return DEFAULT_MEMORY_MB


def tree_rss(pid: int | None = None) -> int:
    """Resident bytes of a process and all its descendants."""
    root = psutil.Process(pid)
    total = 0
    for proc in (root, *root.children(recursive=True)):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def picture_budget(memory_mb: int, render_processes: int, largest_pixels: int) -> int:
    """Bytes of pictures this worker may hold: its memory, less what its processes use idle
    (measured now, once they are all started), less each render process's working memory for
    the largest picture the model can send (`largest_pixels` decoded bytes)."""
    working = RENDER_COPIES * largest_pixels + RENDER_HEADROOM_MB * 2**20
    spare = memory_mb * 2**20 - tree_rss() - render_processes * working
    return max(spare, MIN_BUDGET_MB * 2**20)


def return_freed_memory() -> None:
    """Make glibc hand large freed blocks back to the system at once. By default it raises its
    mmap threshold after the first large free, so later pictures (MBs each, in dozens of job
    threads, each thread with its own arena) land in arenas that keep the pages after they are
    freed: the RSS then tracks the most pictures ever held, not those held now. No-op elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    libc.mallopt(_M_ARENA_MAX, _ARENA_MAX)


class MemoryBudget:
    """Bytes granted first come, first served. `reserve` answers a Future that is resolved once
    the bytes are granted (the caller waits on it where a job may be stopped, and cancels it
    if it stops waiting). A picture larger than the whole budget is granted when nothing else is
    held, so it still runs, alone."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self._queue: deque[tuple[Future, int]] = deque()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)

    def reserve(self, cost: int) -> Future:
        granted: Future = Future()
        with self._lock:
            self._queue.append((granted, cost))
            self._grant()
        return granted

    def release(self, cost: int) -> None:
        with self._lock:
            self.held -= cost
            self._grant()

    def abandon(self, granted: Future, cost: int) -> None:
        """The waiter gave up: withdraw its request, or give back what it was granted meanwhile."""
        if not granted.cancel():
            self.release(cost)
        else:
            with self._lock:
                self._grant()

    def _grant(self) -> None:
        while self._queue:
            granted, cost = self._queue[0]
            if granted.cancelled():
                self._queue.popleft()
                continue
            if self.held and self.held + cost > self.limit:
                break
            self._queue.popleft()
            if granted.set_running_or_notify_cancel():
                self.held += cost
                granted.set_result(cost)
        self._room.notify_all()

    def wait_for_room(self, timeout: float) -> bool:
        """True when a new job's picture would find room (nothing waits and some budget is left)."""
        with self._lock:
            return self._room.wait_for(lambda: not self._queue and self.held < self.limit, timeout)
