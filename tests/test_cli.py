"""The `snapasset` command: token, generate (against a running server, and once end to end in
embedded mode as a real process), one-line errors, and --help on every command."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import click
import jwt
import psutil
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage

from snapasset.auth import mint_access_token
from snapasset.cli import cli
from snapasset.config import Env
from snapasset.generate import ProgressBar, describe_error
from snapasset.platforms import PLATFORMS
from snapasset_sdk import (
    APIConnectionError, Event, JobError, JobFailedError, SnapAssetClient, ValidationError,
)
from tests.conftest import running_web, settings_env

PROMPT = "A lighthouse on a cliff at dawn, waves below"


@pytest.fixture
def runner(tmp_path, monkeypatch):
    # no stray .env from the working directory, nothing of the caller's SNAPASSET_* settings
    monkeypatch.chdir(tmp_path)
    for name in ("SNAPASSET_URL", "SNAPASSET_TOKEN", "SNAPASSET_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def assert_saved(paths: list[str], platforms: list[str], fmt: str = "JPEG") -> None:
    assert len(paths) == len(platforms)
    for path, platform_id in zip(paths, platforms):
        with PILImage.open(path) as picture:
            assert picture.size == (PLATFORMS[platform_id].width, PLATFORMS[platform_id].height)
            assert picture.format == fmt


# -- token --------------------------------------------------------------------------------------
def test_token_is_signed_with_the_configured_secret(runner, settings):
    env = settings_env(settings)
    result = runner.invoke(cli, ["token", "--user", "user-42", "--ttl", "600"], env=env)
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), settings.jwt_secret, algorithms=["HS256"],
                        audience=settings.jwt_audience)
    assert claims["sub"] == "user-42" and claims["app_metadata"] == {}
    assert claims["exp"] - claims["iat"] == 600
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(result.stdout.strip(), "another-secret-that-is-long-enough-for-hs256",
                   algorithms=["HS256"], audience=settings.jwt_audience)

    admin = runner.invoke(cli, ["token", "--admin"], env=env)
    claims = jwt.decode(admin.stdout.strip(), settings.jwt_secret, algorithms=["HS256"],
                        audience=settings.jwt_audience)
    assert claims["app_metadata"] == {"role": "admin"}
    assert uuid.UUID(claims["sub"])     # a fresh user when none is named


# -- generate against a running server --------------------------------------------------------
def test_generate_on_a_server_saves_the_images(runner, live_stack, tmp_path):
    base, settings = live_stack
    token = mint_access_token(settings, str(uuid.uuid4()))
    out = tmp_path / "images"
    result = runner.invoke(cli, ["generate", PROMPT, "-p", "instagram-post", "-p", "twitter-post",
                                 "--format", "webp", "--quality", "low", "--out", str(out),
                                 "--url", base, "--token", token])
    assert result.exit_code == 0, result.output
    paths = result.stdout.splitlines()
    assert [Path(p).parent for p in paths] == [out, out]
    assert [Path(p).name for p in paths] == ["instagram-post-1080x1080.webp", "twitter-post-1200x675.webp"]
    assert_saved(paths, ["instagram-post", "twitter-post"], "WEBP")
    # the progress went to stderr, stage by stage, up to the end
    assert "Generating image" in result.stderr and "100% Processed 2 images" in result.stderr


def test_generate_passes_fit_and_avif(runner, live_stack, tmp_path):
    base, settings = live_stack
    token = mint_access_token(settings, str(uuid.uuid4()))
    result = runner.invoke(cli, ["generate", PROMPT, "-p", "instagram-story", "--fit", "contain", "--format", "avif",
                                 "--out", str(tmp_path), "--url", base, "--token", token])
    assert result.exit_code == 0, result.output
    [path] = result.stdout.splitlines()
    assert Path(path).name == "instagram-story-1080x1920.avif"
    assert_saved([path], ["instagram-story"], "AVIF")


def test_generate_defaults_to_a_folder_per_job_and_reads_the_environment(runner, live_stack, tmp_path):
    base, settings = live_stack
    env = {"SNAPASSET_URL": base, "SNAPASSET_TOKEN": mint_access_token(settings, str(uuid.uuid4()))}
    result = runner.invoke(cli, ["generate", PROMPT, "-p", "linkedin-post"], env=env)
    assert result.exit_code == 0, result.output
    [path] = result.stdout.splitlines()
    assert Path(path).parent.parent == Path("snapasset-output")
    assert Path(path).parent.name.startswith("gen-")
    assert_saved([path], ["linkedin-post"])


def test_generate_with_an_api_key_acts_for_the_named_user(runner, settings, worker_process, tmp_path):
    key = "cli-test-key-0123456789abcdef"
    with running_web(settings, tmp_path / "web.log", {Env.API_KEYS: f"cli:{key}:jobs"}) as (base, _):
        worker_process()
        user_id = str(uuid.uuid4())
        result = runner.invoke(cli, ["generate", PROMPT, "-p", "og-image", "--out", str(tmp_path / "out"),
                                     "--url", base, "--api-key", key, "--user", user_id])
        assert result.exit_code == 0, result.output
        assert_saved(result.stdout.splitlines(), ["og-image"])
        with SnapAssetClient(base, token=mint_access_token(settings, user_id)) as client:
            assert [job.status for job in client.list_jobs()] == ["completed"]

        anonymous = runner.invoke(cli, ["generate", PROMPT, "-p", "og-image", "--url", base, "--api-key", key])
        assert anonymous.exit_code == 1 and anonymous.stderr.startswith("error: userId: ")


def _timed_lines(stream, into: list) -> threading.Thread:
    """Read a process's output line by line in a thread, each with the time it arrived."""
    def read():
        for line in stream:
            into.append((time.monotonic(), line.rstrip("\n")))
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_generate_prints_each_path_as_its_image_arrives_and_exits_soon_after_done(live_stack, tmp_path):
    """Timed against the job's own events, seen by a second client on the user's stream: each
    path line follows its `image` event within a second, the first comes before `done` (eleven
    platforms render one after another for a while), and the process ends within 1 s of `done`."""
    base, settings = live_stack
    token = mint_access_token(settings, str(uuid.uuid4()))
    events: list[tuple[float, str, str | None]] = []
    listening = threading.Event()

    def follow() -> None:
        with SnapAssetClient(base, token=token) as client:
            for event in client.stream_jobs():
                listening.set()
                events.append((time.monotonic(), event.type, event.image.platform_id if event.image else None))
                if event.type in ("done", "failed"):
                    return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert listening.wait(30), "the user's event stream did not open"
    out: list[tuple[float, str]] = []
    run = subprocess.Popen([sys.executable, "-m", "snapasset", "generate", PROMPT, *(
        arg for platform_id in PLATFORMS for arg in ("-p", platform_id)), "--out", str(tmp_path / "out"),
        "--url", base, "--token", token], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    reader = _timed_lines(run.stdout, out)
    assert run.wait(timeout=90) == 0
    ended = time.monotonic()
    reader.join(5)
    follower.join(10)

    done = next(at for at, kind, _ in events if kind == "done")
    arrived = {platform_id: at for at, kind, platform_id in events if kind == "image"}
    assert len(out) == len(PLATFORMS) == len(arrived)
    for at, path in out:
        platform_id = Path(path).name.rsplit("-", 1)[0]
        # (two clients of one stream: either may read an event a little before the other)
        assert -0.25 < at - arrived[platform_id] < 1.0, (platform_id, at - arrived[platform_id])
    assert out[0][0] < done, "the first path was printed only once the whole job was done"
    assert ended - done < 1.0, f"exited {ended - done:.2f} s after the job's done event"


def test_generate_errors_are_one_line(runner, live_stack):
    base, settings = live_stack
    token = mint_access_token(settings, str(uuid.uuid4()))
    short = runner.invoke(cli, ["generate", "too short", "-p", "instagram-post", "--url", base, "--token", token])
    assert short.exit_code == 1
    assert short.stderr == "error: prompt: must be at least 10 characters\n"
    assert short.stdout == ""

    unknown = runner.invoke(cli, ["generate", PROMPT, "-p", "myspace-banner", "--url", base, "--token", token])
    assert unknown.exit_code == 1 and unknown.stderr.startswith("error: platforms: ")
    assert unknown.stderr.count("\n") == 1

    # a typo is caught before anything starts (no server, no Redis: an unreachable --url is
    # never tried), with the id meant and every valid one
    typo = runner.invoke(cli, ["generate", PROMPT, "-p", "instagram-psot", "--url", "http://127.0.0.1:9"])
    assert typo.exit_code == 1
    assert typo.stderr.startswith("error: platforms: unknown platform 'instagram-psot' "
                                  "(did you mean 'instagram-post'?); valid ids: instagram-post, ")
    assert all(platform_id in typo.stderr for platform_id in PLATFORMS)

    bad_token = runner.invoke(cli, ["generate", PROMPT, "-p", "instagram-post", "--url", base,
                                    "--token", "not-a-token"])
    assert bad_token.exit_code == 1 and bad_token.stderr.startswith("error: not authorised: ")
    assert bad_token.stderr.count("\n") == 1

    both = runner.invoke(cli, ["generate", PROMPT, "-p", "instagram-post", "--url", base,
                               "--token", token, "--api-key", "k"])
    assert both.exit_code == 1 and both.stderr == "error: pass either --token or --api-key, not both\n"
    assert runner.invoke(cli, ["generate", PROMPT]).exit_code == 2    # no platform: a usage error


def test_describe_error_turns_sdk_errors_into_one_line():
    failed = JobFailedError("the prompt was refused by the image model's\nsafety system",
                            code="CONTENT_POLICY_VIOLATION")
    assert describe_error(failed) == ("job failed (CONTENT_POLICY_VIOLATION): the prompt was refused "
                                      "by the image model's safety system")
    invalid = ValidationError("Invalid request", status=400, details={"prompt": "must be at least 10 characters",
                                                                      "platforms": "must not be empty"})
    assert describe_error(invalid) == "prompt: must be at least 10 characters; platforms: must not be empty"
    refused = APIConnectionError("POST http://127.0.0.1:9/api/jobs failed: HTTPConnectionPool(...): Max "
                                 "retries exceeded (Caused by NewConnectionError(\"...: [Errno 111] "
                                 "Connection refused\"))")
    assert describe_error(refused, url="http://127.0.0.1:9") == "cannot reach http://127.0.0.1:9: Connection refused"


def test_progress_bar_redraws_on_a_terminal_and_logs_stages_elsewhere():
    events = [Event(id="0-0", type="connected", status="waiting", progress=0),
              Event(id="1-0", type="progress", progress=10, message="Generating image..."),
              Event(id="2-0", type="progress", progress=16),
              Event(id="3-0", type="failed", will_retry=True, progress=16,
                    error=JobError(code="PROVIDER_ERROR", message="upstream 500")),
              Event(id="4-0", type="progress", progress=100, message="Processed 1 image")]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream in (io.StringIO(), Terminal()):
        bar = ProgressBar(stream)
        for event in events:
            bar.update(event)
        bar.finish()
        if isinstance(stream, Terminal):
            frames = stream.getvalue().rstrip("\n").split("\r")[1:]
            assert len(frames) == len(events) and "\n" not in stream.getvalue()[:-1]
            assert frames[2].startswith("[####-----") and "16%  Generating image..." in frames[2]
            assert frames[-1].startswith("[" + "#" * 30 + "] 100%  Processed 1 image")
        else:
            assert stream.getvalue().splitlines() == [
                "  0% Waiting for a worker...", " 10% Generating image...",
                " 16% Attempt failed (PROVIDER_ERROR), retrying...", "100% Processed 1 image"]


# -- help ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_explains_itself(runner, name):
    command = cli.commands[name]
    result = runner.invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: cli {name}")
    summary = (command.help or "").strip()
    assert len(summary.split()) >= 6, f"`{name}` says too little about itself: {summary!r}"
    assert " ".join(summary.split())[:60] in " ".join(result.stdout.split())
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"`{name} {param.opts[0]}` has no help text"


def test_the_group_lists_every_command(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in cli.commands:
        assert f"  {name} " in result.stdout


# -- one real run, embedded ---------------------------------------------------------------------
def test_generate_embedded_end_to_end(settings, redis_handle, tmp_path):
    """`snapasset generate` with no URL, as a real process: its own embedded Redis, the app on a
    free port, a worker process, the files saved; and nothing left running afterwards."""
    env = settings_env(settings)
    del env[Env.REDIS_URL]
    env[Env.LOCAL_LATENCY] = "0"
    scratch = tmp_path / "tmp"                  # where the embedded Redis keeps its files
    scratch.mkdir()
    env["TMPDIR"] = str(scratch)
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "snapasset", "generate", PROMPT,
                            "-p", "instagram-post", "-p", "pinterest-pin", "--out", str(out)],
                           env={**env, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout: list[tuple[float, str]] = []
    stderr: list[tuple[float, str]] = []
    readers = [_timed_lines(run.stdout, stdout), _timed_lines(run.stderr, stderr)]
    returncode = run.wait(timeout=90)
    ended = time.monotonic()
    for reader in readers:
        reader.join(5)
    errors = "\n".join(line for _, line in stderr)
    assert returncode == 0, errors
    paths = [line for _, line in stdout]
    assert [Path(p).parent for p in paths] == [out, out]
    assert_saved(paths, ["instagram-post", "pinterest-pin"])
    assert "Traceback" not in errors
    # the job's last progress line, then the command stops its embedded worker, web and Redis
    # and exits: 0.3-0.5 s on an idle machine (it was 6-10 s while redis-py retried the embedded
    # Redis's SHUTDOWN, then 0.8-1.3 s while RQ's scheduler slept out its second before stopping)
    finished = next(at for at, line in stderr if line == "100% Processed 2 images")
    assert ended - finished < 1.0, f"exited {ended - finished:.2f} s after the job finished"
    # the run used a Redis of its own: the tests' server never saw its queue
    assert not redis_handle.client.keys(f"*{settings.queue_name}*")
    assert not _processes_with_data_dir(settings.data_dir), "the embedded worker outlived the command"
    assert not list(scratch.iterdir()), "the embedded Redis left files behind"
    assert not [proc for proc in psutil.process_iter(["cwd"])
                if str(scratch) in (proc.info["cwd"] or "")], "the embedded Redis outlived the command"


def _processes_with_data_dir(data_dir: Path) -> list[int]:
    """Live processes started with this data folder in their environment (the embedded worker)."""
    found = []
    for proc in psutil.process_iter(["pid", "environ"]):
        try:
            if (proc.info["environ"] or {}).get(Env.DATA_DIR) == str(data_dir) and proc.is_running() \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.info["pid"])
        except psutil.Error:
            continue
    return found
