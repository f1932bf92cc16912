"""The Python SDK against the real thing: the web process as the Procfile starts it (gunicorn +
gevent) and a real worker process (`snapasset worker`), over real sockets.

create → stream → wait → images downloadable at their platforms' pixel sizes; list_jobs across
cursors; typed errors; a stream cut from the server side in the middle of a job that the SDK
resumes with no lost or repeated event; and the README's quickstart example run as written.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
from PIL import Image as PILImage

import snapasset_sdk.client
from snapasset.auth import mint_access_token
from snapasset.platforms import PLATFORMS
from snapasset_sdk import AuthError, NotFoundError, SnapAssetClient, ValidationError
from tests.conftest import job_history, ROOT

PROMPT = "A lighthouse on a cliff at dawn, waves below"
PICKED = ["instagram-post", "twitter-post"]


def client_for(base: str, settings, user_id: str | None = None, **kwargs) -> SnapAssetClient:
    return SnapAssetClient(base, token=mint_access_token(settings, user_id or str(uuid.uuid4())), **kwargs)


def check_image(url: str, platform_id: str, fmt: str = "JPEG") -> None:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, url
    with PILImage.open(io.BytesIO(response.content)) as picture:
        assert picture.size == (PLATFORMS[platform_id].width, PLATFORMS[platform_id].height)
        assert picture.format == fmt


def assert_history(events, redis, job_id: str) -> None:
    """The events after `connected` are exactly the job's stored history: same ids, same order,
    same kinds, nothing missing, nothing twice; and it ends with `done`. Live previews are not
    history: they leave the stream with the terminal event."""
    assert events[0].type == "connected"
    rest = events[1:]
    ids = [event.id for event in rest]
    assert len(set(ids)) == len(ids), "an event was repeated"
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))), "ids not increasing"
    stored = job_history(redis, job_id)
    assert [(event.id, event.type, event.progress) for event in rest if event.preview is None] == \
        [(entry_id, event["type"], event.get("progress")) for entry_id, event in stored]
    assert rest[-1].type == "done"


# -- the happy path -------------------------------------------------------------------------------
def test_create_stream_wait_download(live_stack, redis_handle):
    base, settings = live_stack
    with client_for(base, settings) as client:
        job = client.create_job(PROMPT, PICKED, options={"format": "png"})
        assert job.job_id.startswith("gen-") and job.status == "queued"

        events = list(client.stream_job(job.job_id))
        assert_history(events, redis_handle.client, job.job_id)
        progress = [event.progress for event in events[1:] if event.progress is not None]
        assert progress == sorted(progress) and progress[-1] == 100
        assert [event.image.platform_id for event in events if event.type == "image"] == PICKED

        result = client.wait(job.job_id, timeout=30)
        assert [image.platform_id for image in result.images] == PICKED
        for image in result.images:
            assert (image.width, image.height, image.format) == (
                PLATFORMS[image.platform_id].width, PLATFORMS[image.platform_id].height, "png")
            check_image(image.url, image.platform_id, "PNG")
        assert client.get_job(job.job_id).status == "completed"
        # a stream opened after the end replays the history (live previews excepted) and stops at `done`
        assert [e.id for e in client.stream_job(job.job_id)] == [e.id for e in events if e.preview is None]


def test_list_jobs_follows_cursors(web_server, monkeypatch):
    base, settings = web_server
    pages = []
    with client_for(base, settings) as client:
        created = [client.create_job(f"{PROMPT} #{n}", ["instagram-post"]).job_id for n in range(5)]
        client.session.hooks["response"].append(
            lambda response, **_: pages.append(response.url) if "/api/jobs?" in response.url else None)
        # pages of two make the SDK follow nextCursor against the real API
        monkeypatch.setattr(snapasset_sdk.client, "MAX_PAGE_SIZE", 2)
        listed = [summary.job_id for summary in client.list_jobs()]
        assert listed == created[::-1]
        assert len(pages) == 3 and sum("cursor=" in url for url in pages) == 2

        pages.clear()
        assert [s.job_id for s in client.list_jobs(limit=3)] == created[:-4:-1]
        assert len(pages) == 2
        assert [s.job_id for s in client.list_jobs(status="waiting", limit=1)] == created[-1:]


def test_errors_are_typed(live_stack):
    base, settings = live_stack
    owner, other = str(uuid.uuid4()), str(uuid.uuid4())
    with client_for(base, settings, owner) as client:
        with pytest.raises(ValidationError) as short:
            client.create_job("too short", PICKED)
        assert short.value.status == 400 and short.value.details == {
            "prompt": "must be at least 10 characters"}
        with pytest.raises(ValidationError) as unknown:
            client.create_job(PROMPT, ["instagram-post", "myspace-banner"])
        assert "platforms" in unknown.value.details
        job_id = client.create_job(PROMPT, PICKED).job_id

    with client_for(base, settings, other) as stranger:
        with pytest.raises(NotFoundError) as missing:
            stranger.get_job(job_id)
        assert missing.value.status == 404 and missing.value.code
        with pytest.raises(NotFoundError):
            next(stranger.stream_job(job_id))

    with SnapAssetClient(base, token="not-a-token") as anonymous:
        with pytest.raises(AuthError) as bad:
            anonymous.get_job(job_id)
        assert bad.value.status == 401


# -- a stream cut by the server side --------------------------------------------------------------
class CuttingProxy:
    """A TCP proxy in front of the server. The first event-stream response through it is cut
    after `events` complete SSE messages and a few bytes of the next one: the proxy closes the
    client's socket (and the server's), as a dying load balancer would. Every later connection
    passes untouched."""

    INTO_NEXT = 12   # bytes of the next message sent before the cut, so the SDK sees half an event

    def __init__(self, upstream_port: int, *, events: int):
        self.upstream_port = upstream_port
        self.events = events
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = True
        self.stream_requests = 0
        self.cut_response = b""          # what the client got of the response that was cut
        self.cut = threading.Event()
        self.cut_at_ms = 0.0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in [self.listener, *self._sockets]:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            state = {"sent": 0, "cut_from": None}
            threading.Thread(target=self._to_server, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._to_client, args=(client, upstream, state), daemon=True).start()

    def _to_server(self, client, upstream, state) -> None:
        try:
            while data := client.recv(65536):
                if b"GET /api/sse/" in data:
                    with self._lock:
                        self.stream_requests += 1
                        if self.armed:
                            # requests does not pipeline: the previous answer is already through
                            self.armed, state["cut_from"] = False, state["sent"]
                upstream.sendall(data)
        except OSError:
            pass
        _close(upstream)

    def _to_client(self, client, upstream, state) -> None:
        response = b""
        try:
            while data := upstream.recv(65536):
                if state["cut_from"] is None:
                    client.sendall(data)
                    state["sent"] += len(data)
                    continue
                already = len(response)
                response += data
                cut_at = self._cut_point(response)
                if cut_at is None:
                    client.sendall(data)
                    continue
                client.sendall(response[already:cut_at])
                if len(response) >= cut_at:
                    self.cut_response = response[:cut_at]
                    self.cut_at_ms = time.time() * 1000
                    self.cut.set()
                    break
        except OSError:
            pass
        _close(client)
        _close(upstream)

    def _cut_point(self, response: bytes) -> int | None:
        """Where to cut: a few bytes past the end of message number `events` (each SSE message,
        `connected` included, ends with a blank line; chunked framing adds only CRLFs)."""
        end = -1
        for _ in range(self.events):
            end = response.find(b"\n\n", end + 1)
            if end == -1:
                return None
        return end + 2 + self.INTO_NEXT


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def test_stream_cut_mid_job_resumes_without_gap_or_repeat(live_stack, redis_handle):
    base, settings = live_stack   # its worker draws partial images every 0.25 s: a job of ~1.5 s
    proxy = CuttingProxy(int(base.rsplit(":", 1)[1]), events=4)
    sleeps = []

    def short_sleep(seconds: float) -> None:   # the server's retry: hint is 3 s; keep the test quick
        sleeps.append(seconds)
        time.sleep(min(seconds, 0.2))

    user = str(uuid.uuid4())
    try:
        with client_for(proxy.url, settings, user, sleep=short_sleep) as client:
            job = client.create_job(PROMPT, PICKED)
            events = list(client.stream_job(job.job_id))
            assert proxy.cut.is_set() and proxy.stream_requests == 2
            assert sleeps == [3.0]                   # one reconnect, after the server's retry hint
            # cut mid-job: the job's last event was published after the cut
            assert b'"type":"done"' not in proxy.cut_response
            assert int(events[-1].id.split("-")[0]) > proxy.cut_at_ms
            assert_history(events, redis_handle.client, job.job_id)
            assert len(events) > 4 and [e.type for e in events].count("connected") == 1
            assert [e.image.platform_id for e in events if e.type == "image"] == PICKED
    finally:
        proxy.close()


# -- the README's example ----------------------------------------------------------------------
def test_quickstart_example_runs_as_written(live_stack):
    base, settings = live_stack
    env = {**os.environ, "SNAPASSET_URL": base,
           "SNAPASSET_TOKEN": mint_access_token(settings, str(uuid.uuid4()))}
    env.pop("SNAPASSET_API_KEY", None)
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "sdk_quickstart.py")], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("connected") and any(line.startswith("done 100") for line in lines)
    urls = [line for line in lines if line.startswith("http")]
    assert len(urls) == 2
    for url, platform_id in zip(urls, PICKED):
        check_image(url, platform_id)


def test_the_readme_shows_the_example_that_runs():
    """The README's Python SDK section is examples/sdk_quickstart.py (minus its docstring), so
    the test above proves the README's code."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python SDK"):]
    shown = section[section.index("```python\n") + len("```python\n"):section.index("```\n", 10)]
    example = (ROOT / "examples" / "sdk_quickstart.py").read_text()
    assert shown == example[example.index('"""\n', 3) + 4:]


def test_operator_calls(live_stack):
    """An admin's SDK sees another user's jobs with their owner, the live worker running them, and
    a bulk retry answer."""
    base, settings = live_stack
    owner = f"sdk-owner-{uuid.uuid4().hex[:8]}"
    with client_for(base, settings, owner) as user, \
            SnapAssetClient(base, token=mint_access_token(settings, "sdk-ops", admin=True)) as admin:
        job = user.create_job(PROMPT, platforms=["facebook-cover"])
        running = None
        deadline = time.monotonic() + 30
        while running is None and time.monotonic() < deadline:
            running = next((w for w in admin.workers() if job.job_id in w.current_jobs), None)
            time.sleep(0.1)
        assert running is not None and running.pid and running.last_heartbeat is not None
        user.wait(job.job_id, timeout=60)
        [listed] = admin.list_all_jobs(user_id=owner)
        assert (listed.job_id, listed.user_id, listed.status, listed.error) == (job.job_id, owner, "completed", None)
        assert list(admin.list_all_jobs(user_id=owner, status="failed")) == []
        retried = admin.retry_failed_jobs(error_code="INVALID_IMAGE", limit=5)
        assert retried.error_code == "INVALID_IMAGE" and retried.retried == len(retried.job_ids)
        with pytest.raises(snapasset_sdk.ForbiddenError):
            user.workers()


def test_every_option_is_a_keyword_and_a_finished_job_can_be_deleted(live_stack, tmp_path):
    """Variants, a seed, transparency, a custom size and a reference picture from a local file,
    waited for in one call; then deleted, with its images."""
    base, settings = live_stack
    reference = tmp_path / "product.png"
    PILImage.new("RGB", (120, 90), (255, 0, 255)).save(reference)
    client = client_for(base, settings)
    job = client.create_job(PROMPT, [], n=2, seed=7, background="transparent", format="png",
                            input_images=[reference], wait=True,
                            custom_platforms=[{"id": "shop-banner", "width": 1600, "height": 400}])
    assert job.status == "completed", job
    assert job.result.seed == 7 and [image.variant for image in job.result.images] == [0, 1]
    assert job.data["options"]["inputImages"][0].startswith(f"{base}/media/")
    for image in job.result.images:
        with PILImage.open(io.BytesIO(requests.get(image.url, timeout=10).content)) as picture:
            assert picture.size == (1600, 400) and picture.mode == "RGBA"

    assert client.delete_job(job.job_id) is None
    with pytest.raises(NotFoundError):
        client.get_job(job.job_id)
    assert requests.get(job.result.images[0].url, timeout=10).status_code == 404
