"""The README's commands, run as written: a newcomer runs "Run it" in one terminal, then types
every later `sh` block into a fresh shell in the same folder. Here the project folder has the
installed virtualenv (this one) and the example, `snapasset dev` runs as "Run it" ends, and the
blocks run in order in one bash with a fresh shell's PATH (so a bare `snapasset` or `python`
fails, as it would for a newcomer). The only change made to them: port 3001 becomes a free one.
Deployment commands (Heroku, psql) are in plain ``` blocks and not run."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import requests
from PIL import Image

from tests.conftest import ROOT, free_port, wait_for

FRESH_PATH = "/usr/local/bin:/usr/bin:/bin"


def sh_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", (ROOT / "README.md").read_text(), flags=re.S | re.M)


def test_the_readme_opens_with_run_it_and_test_it():
    run_it, test_it, *_ = sh_blocks()
    assert run_it.strip().endswith("&& .venv/bin/snapasset dev")
    assert test_it.strip() == "./scripts/test"


def test_every_command_after_run_it_runs_as_written(tmp_path):
    run_it, _test_it, *commands = sh_blocks()
    assert commands, "the README has no commands to try after Run it"
    project = tmp_path / "project"
    project.mkdir()
    (project / ".venv").symlink_to(Path(sys.prefix))          # what Run it's install made
    shutil.copytree(ROOT / "examples", project / "examples")
    port = free_port()
    env = {"PATH": FRESH_PATH, "HOME": str(tmp_path), "LANG": "C.UTF-8", "TMPDIR": str(tmp_path)}

    serve = run_it.strip().rsplit("&&", 1)[1].strip()         # .venv/bin/snapasset dev
    dev = subprocess.Popen(["bash", "-c", f"exec {serve}"], cwd=project, env={**env, "PORT": str(port)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).ok
            except requests.RequestException:
                return False
        wait_for(ready, timeout=60, interval=0.2)

        script = "\n".join(commands).replace("localhost:3001", f"localhost:{port}")
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=project, env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f"{run.stderr}\n--- stdout ---\n{run.stdout[-3000:]}"
    finally:
        children = psutil.Process(dev.pid).children(recursive=True)
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=30)
        psutil.wait_procs(children, timeout=15)

    # what the walk-through and the SDK example say they do
    assert "command not found" not in run.stderr and "No module named" not in run.stderr
    assert '"type":"done"' in run.stdout.replace(" ", "")                 # the event stream, to its end
    downloaded = sorted(path.name for path in (project / "snapasset-output").iterdir())
    assert downloaded == ["instagram-post-1080x1080.jpg", "twitter-post-1200x675.jpg"]
    with Image.open(project / "snapasset-output" / downloaded[0]) as picture:
        assert picture.size == (1080, 1080)
    lines = run.stdout.splitlines()
    assert any(line.startswith("done 100") for line in lines)            # the SDK example's events ...
    assert sum(line.startswith(f"http://localhost:{port}/media/") for line in lines) == 2   # ... and URLs
