"""`snapasset dev` on a machine with nothing installed: embedded Redis, web and worker, one command;
run in a git clone of the project as a newcomer would, then stopped with Ctrl-C (SIGINT)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import psutil
import requests

from tests.conftest import ROOT, free_port, wait_for

STOP_LIMIT = 2.0     # seconds from Ctrl-C to the prompt


def git(*args: str, cwd) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_dev_runs_a_job_stops_fast_and_leaves_nothing_behind(tmp_path):
    # a clone of the project (its .gitignore as it is in this working tree)
    clone = tmp_path / "clone"
    git("clone", "-q", "--no-hardlinks", str(ROOT), str(clone), cwd=tmp_path)
    shutil.copy(ROOT / ".gitignore", clone / ".gitignore")
    git("commit", "-q", "--allow-empty", "-am", "the working tree's .gitignore", cwd=clone)
    scratch = tmp_path / "tmp"          # the system temp folder, as far as this run knows
    scratch.mkdir()

    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNAPASSET_", "SUPABASE_", "OPENAI_", "REDIS_"))}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "TMPDIR": str(scratch)})
    proc = subprocess.Popen([sys.executable, "-m", "snapasset", "dev", "--port", str(port)], cwd=clone,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        token = wait_for(lambda: next((m.group(1) for line in output
                                       if (m := re.match(r"^\s+(ey[\w-]+\.[\w-]+\.[\w-]+)\s*$", line))), None),
                         timeout=60)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}

        def ready():
            try:
                return requests.get(f"{base}/ready", timeout=2).ok
            except requests.RequestException:   # not listening yet, or still booting
                return False
        wait_for(ready, timeout=60)
        created = requests.post(f"{base}/api/jobs", headers=headers, timeout=10, json={
            "prompt": "A red balloon over a quiet harbour", "platforms": ["instagram-post"]})
        assert created.status_code == 201, created.text
        job = wait_for(lambda: (j := requests.get(f"{base}/api/jobs/{created.json()['jobId']}", headers=headers,
                                                  timeout=5).json())["status"] in ("completed", "failed") and j,
                       timeout=90)
        assert job["status"] == "completed", job
        image = requests.get(job["result"]["images"][0]["url"], timeout=10)
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
        assert any((clone / ".snapasset").glob("redis.db*")), "the embedded Redis keeps its data in .snapasset/"
        # and the CLI's default output folder, next to it
        generated = subprocess.run([sys.executable, "-m", "snapasset", "generate", "A red balloon over a harbour",
                                    "-p", "og-image", "--url", base, "--token", token], cwd=clone, env=env,
                                   capture_output=True, text=True, timeout=60)
        assert generated.returncode == 0, generated.stderr
        assert generated.stdout.startswith("snapasset-output/gen-")

        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "dev started no child processes"
        before = len(output)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert proc.wait(timeout=40) == 0
        took = time.monotonic() - started
        reader.join(5)
        gone, alive = psutil.wait_procs(children, timeout=15)   # web, worker, render pool, redis-server
        assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:   # a failed assertion above: take the whole tree down
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()

    text = "".join(output)
    stopping = "".join(output[before:])
    assert took < STOP_LIMIT, f"Ctrl-C took {took:.2f} s:\n{stopping}"
    assert "Stopping the web server, the worker and the embedded Redis" in stopping
    assert stopping.rstrip().endswith("SnapAsset stopped.")
    assert "Traceback" not in text
    # a development default for demos, said out loud (SPEC §12)
    assert "Job creation limit: 1000 per hour per user (snapasset dev's default" in text
    # a quiet console: no access log, no RQ upkeep, nothing RQ restarts after Ctrl-C
    assert "GET /ready" not in text and "POST /api/jobs" not in text
    assert "cleaning registries" not in text and "Scheduler" not in stopping
    # nothing left behind: no temporary folder, nothing git would offer to commit
    assert list(scratch.iterdir()) == [], "temporary files survived the run"
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
