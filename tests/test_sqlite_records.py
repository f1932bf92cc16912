"""Local records (SQLite) opened by several processes at once, as `snapasset dev`, a second
worker or the web process do on one machine."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

OPEN = ("import sys, time; from snapasset.records.sqlite import SqliteRecords; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); SqliteRecords(sys.argv[1]); print('opened')")


def test_processes_opening_a_new_records_file_together_all_start(tmp_path):
    """The switch to write-ahead logging takes the file's lock and fails at once, without
    waiting, when another process holds it: of two workers starting together on a fresh file,
    one died with "database is locked". Eight processes open one new file at the same moment;
    every one of them starts, and each round uses a new file."""
    import time

    for round_ in range(3):
        path = tmp_path / f"round-{round_}" / "snapasset.db"
        start_at = time.time() + 1.5   # all of them imported and waiting: they open together
        procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(path), str(start_at)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(8)]
        outputs = [proc.communicate(timeout=60)[0] for proc in procs]
        failed = [output for proc, output in zip(procs, outputs) if proc.returncode != 0]
        assert not failed, failed[0][-1500:]
