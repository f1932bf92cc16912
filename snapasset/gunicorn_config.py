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
