"""gunicorn hooks for the web process (`gunicorn --config python:snapasset.gunicorn_config`, as
the Procfile and `snapasset web` run it): prometheus_client's multiprocess mode, so that /metrics
shows the HTTP metrics of all of the dyno's worker processes, whichever one answers the scrape.

prometheus_client chooses its mode when it is first imported, from PROMETHEUS_MULTIPROC_DIR, so
the folder is set in the master before any worker is forked (and nothing here imports
prometheus_client at module level). An operator's own folder is used as given, emptied of an
earlier run's files; otherwise a fresh temporary one is made and removed at exit.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

from snapasset.config import Env

_made: list[str] = []   # the folder this master created, removed on exit

# gunicorn ≥ 25.1 runs a control socket for `gunicornc` at one path per machine user
# ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl): a second web process on the machine (two
# instances side by side, `snapasset dev` beside `snapasset web`) takes the path over, and the
# master stops and restarts the socket's thread around every worker it forks. Nothing here
# uses it (operators have /api/queue/* and the `snapasset` commands), so it is off; older
# gunicorns ignore the name.
control_socket_disable = True


def on_starting(server) -> None:
    folder = os.environ.get(Env.PROMETHEUS_MULTIPROC_DIR)
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):   # a previous master's samples
            os.remove(stale)
    else:
        folder = tempfile.mkdtemp(prefix="snapasset-metrics-")
        _made.append(folder)
        os.environ[Env.PROMETHEUS_MULTIPROC_DIR] = folder


def child_exit(server, worker) -> None:
    """A worker process that exits takes its live gauges (open SSE streams) with it; its
    counters stay, so the dyno's totals never go backwards."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    for folder in _made:
        shutil.rmtree(folder, ignore_errors=True)


def pre_request(worker, req) -> None:
    """Every request starts by letting the other connections of this process have a turn.

    gevent switches greenlets only when one waits. A keep-alive connection whose next request
    is already in its buffer (a busy client, an HTTP/1.1 pipeline, a proxy reusing connections)
    is served request after request without waiting, so the greenlet serving it never lets the
    others run: under 64 busy connections `/health` had a p99 of 1.5–2.7 s against a p50 of
    3 ms, and creates timed out on their own Redis replies (503). One `gevent.sleep(0)` per
    request serves ready connections in turn (bench/load.py: p99 0.1–0.4 s, no 503s)."""
    if worker.__class__.__module__.startswith("gunicorn.workers.ggevent"):
        import gevent
        gevent.sleep(0)


ACCEPT_BATCH = 8   # new connections one gevent worker takes per turn of its loop


def _accept_in_batches(worker) -> None:
    """Let a busy gevent worker take up to ACCEPT_BATCH waiting connections per turn of its loop.

    With more than one worker, gunicorn has each take one connection per turn (`max_accept =
    1`), so that one process does not take them all. But under load a turn serves every ready
    connection first (some 15 ms with 32 busy ones), so a burst of new connections (browsers
    opening pages and event streams, wrk's 64 at once) queued for a turn each: their first
    answer took 83–132 ms against 13–15 ms for the next one, and wrk's 64 connections reached
    `/health`'s p99 (200–320 ms, where the first answers were up to 600 ms). gevent's own
    default, 100, lets the process that wakes first take a whole burst (half the throughput
    for that run); a batch of 8 keeps both: p99 35 ms, the same requests per second."""
    if not worker.__class__.__module__.startswith("gunicorn.workers.ggevent"):
        return
    from gunicorn.workers import ggevent

    class BatchAcceptingServer(ggevent.StreamServer):
        max_accept = property(lambda self: ACCEPT_BATCH, lambda self, gunicorns_choice: None)

    ggevent.StreamServer = BatchAcceptingServer   # this worker process's, made in run() next


def post_worker_init(worker) -> None:
    _accept_in_batches(worker)
    _freeze_what_the_app_holds()


def _freeze_what_the_app_holds() -> None:
    """Objects alive once the app is loaded (modules, the app, its clients) live as long as the
    process: `gc.freeze()` moves them out of the collector's way, so a full collection walks only
    what requests made. Without it a full collection walked them all and paused every connection
    of the process 47–65 ms, a handful of times per benchmark run (bench/load.py; measured with a
    gc.callbacks timer): the pauses were in the p99 of /health."""
    import gc
    gc.collect()
    gc.freeze()
