"""`snapasset worker`: the worker process entry (the Procfile's worker line)."""

from __future__ import annotations

from snapasset.config import Settings
from workers.worker import run_worker

__all__ = ["run"]


def run(settings: Settings, *, burst: bool = False) -> None:
    run_worker(settings, burst=burst)
