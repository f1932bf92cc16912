"""`snapasset worker`: the worker process entry (the Procfile's worker line)."""

from __future__ import annotations

from snapasset.config import Settings
from workers.concurrent import run_concurrent_worker

__all__ = ["run"]


def run(settings: Settings, *, burst: bool = False, **options) -> None:
    """Run the concurrent worker (SNAPASSET_WORKER_CONCURRENCY jobs in flight); `options` go to
    ConcurrentWorker (shutdown_grace, heartbeat_grace, job_monitoring_interval …)."""
    run_concurrent_worker(settings, burst=burst, **options)
