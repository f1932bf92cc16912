"""The worker's child processes die with it, however it dies.

SIGKILL of the worker's main process (a dyno manager's last word, the OOM killer) gives it no
chance to stop anything; its render processes ignore SIGTERM on purpose (workers/rendering.py).
Without help they live on, holding memory and each other alive: every render process holds the
forkserver's "alive" pipe and the render pool's queues, so neither ever sees an end of file.

* Processes the worker forks itself (RQ's scheduler) ask the kernel for SIGKILL when their
  parent dies (Linux's parent-death signal, set right after the fork).
* Render processes are forked by the forkserver, not by the worker: a watchdog thread in each
  waits on the worker's pid (a pidfd: no polling; once a second where there is none) and kills
  its own process when the worker is gone.
* The forkserver then sees its "alive" pipe close and exits, and multiprocessing's resource
  tracker exits once no process holds its pipe any more.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import threading
import time

__all__ = ["forked_children_die_with_this_process", "die_with"]

PR_SET_PDEATHSIG = 1           # linux/prctl.h
_watched_parent: int | None = None
_forking_pid: int | None = None


def forked_children_die_with_this_process() -> None:
    """From now on, every child this process forks gets SIGKILL when this process dies (Linux;
    elsewhere a watchdog thread in the child does the same)."""
    global _watched_parent
    if _watched_parent is not None:
        return
    _watched_parent = os.getpid()
    os.register_at_fork(before=_note_forking_pid, after_in_child=_die_with_forking_parent)


def _note_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_forking_parent() -> None:
    if _forking_pid != _watched_parent:   # a grandchild (a child forking in turn): its own parent rules
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl failed")
    except (OSError, AttributeError):   # no prctl (not Linux)
        die_with(_watched_parent)
        return
    if os.getppid() != _watched_parent:   # the parent died before prctl: no signal will come
        os.kill(os.getpid(), signal.SIGKILL)


def die_with(pid: int) -> None:
    """Kill this process as soon as process `pid` has exited (a daemon watchdog thread)."""
    threading.Thread(target=_watch, args=(pid,), name="lifeline", daemon=True).start()


def _watch(pid: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):   # no pidfd (old kernel, not Linux), or already gone
        while _alive(pid):
            time.sleep(1.0)
    else:
        select.select([pidfd], [], [])   # readable once the process has exited
    os.kill(os.getpid(), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, someone else's
        return True
    return True
