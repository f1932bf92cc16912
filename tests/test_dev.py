"""`snapasset dev` on a machine with nothing installed: embedded Redis, web and worker, one command."""

import os
import re
import signal
import subprocess
import sys
import time

import psutil
import requests

from tests.conftest import ROOT, free_port, wait_for


def test_dev_runs_a_job_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNAPASSET_", "SUPABASE_", "OPENAI_", "REDIS_"))}
    env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    proc = subprocess.Popen([sys.executable, "-m", "snapasset", "dev", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        token = None
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            match = re.match(r"^\s+(ey[\w-]+\.[\w-]+\.[\w-]+)\s*$", line)
            token = match and match.group(1)
        assert token, "snapasset dev printed no token"
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}

        def up():
            try:
                return requests.get(f"{base}/health", timeout=2).ok
            except requests.RequestException:   # not listening yet, or still booting
                return False
        wait_for(up, timeout=60)
        created = requests.post(f"{base}/api/jobs", headers=headers, timeout=10, json={
            "prompt": "A red balloon over a quiet harbour", "platforms": ["instagram-post"]})
        assert created.status_code == 201, created.text
        job = wait_for(lambda: (j := requests.get(f"{base}/api/jobs/{created.json()['jobId']}", headers=headers,
                                                  timeout=5).json())["status"] in ("completed", "failed") and j,
                       timeout=90)
        assert job["status"] == "completed", job
        image = requests.get(job["result"]["images"][0]["url"], timeout=10)
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
        assert any((tmp_path / ".snapasset").glob("redis.db*")), "the embedded Redis keeps its data in .snapasset/"

        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "dev started no child processes"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
        gone, alive = psutil.wait_procs(children, timeout=15)   # web, worker, render pool, redis-server
        assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:   # a failed assertion above: take the whole tree down
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
