"""Stopping the child processes SnapAsset starts (web and worker under `snapasset dev`, the
embedded worker of `snapasset generate`, benchmarks and tests)."""

from __future__ import annotations

import signal
import subprocess
import time

__all__ = ["stop_processes", "wait_or_kill"]


def stop_processes(*processes: subprocess.Popen, timeout: float = 25.0) -> None:
    """SIGTERM each one still running, as a process manager would, give them all `timeout`
    seconds to finish what they are doing, then SIGKILL whichever is left."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    wait_or_kill(*running, timeout=timeout)


def wait_or_kill(*processes: subprocess.Popen, timeout: float) -> None:
    """Wait for processes already told to stop; SIGKILL those still running after `timeout` s."""
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
