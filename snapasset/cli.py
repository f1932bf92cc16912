"""The `snapasset` command (SPEC §11)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import click

from snapasset.config import ConfigError, Env, Settings
from snapasset.jobrecord import Status
from snapasset.processes import wait_or_kill
from snapasset.redaction import install_log_redaction
from snapasset.schema import FITS, FORMATS_ALLOWED, QUALITIES

__all__ = ["main", "cli", "web_command"]


def load_settings() -> Settings:
    """Read .env (development only) and the environment, or stop with the one-line reason."""
    if (os.environ.get(Env.ENV) or "development").lower() != "production":
        from dotenv import load_dotenv
        load_dotenv(os.path.join(os.getcwd(), ".env"), override=False)
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def web_command(settings: Settings, *, workers: int | None = None, bind: str | None = None,
                quiet: bool = False) -> list[str]:
    """The web process exactly as the Procfile starts it: gunicorn with gevent workers, so that
    each SSE stream is a cheap greenlet rather than a pinned thread or process. `quiet` (what
    `snapasset dev` uses) drops the access log and gunicorn's start-up lines."""
    workers = workers or int(os.environ.get("WEB_CONCURRENCY", "2"))
    logging_args = ["--log-level", "warning"] if quiet else ["--access-logfile", "-"]
    return [sys.executable, "-m", "gunicorn", "--config", "python:snapasset.gunicorn_config",
            "--worker-class", "gevent", "--workers", str(workers),
            "--worker-connections", "4000", "--bind", bind or f"0.0.0.0:{settings.port}",
            "--timeout", "60", "--graceful-timeout", "20", *logging_args,
            "--logger-class", "snapasset.gunicorn_logging.RedactingLogger", "snapasset:create_app()"]


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def cli(verbose: bool) -> None:
    """SnapAsset: one prompt in, ready-to-post images out.

    Every command reads its configuration from the environment (and, outside production, from
    a .env file in the current folder): REDIS_URL, SUPABASE_JWT_SECRET, SNAPASSET_* ... With
    nothing set, Redis is embedded (in ./.snapasset), images go to ./media and records to
    ./snapasset.db. `snapasset COMMAND --help` explains each command.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()


@cli.command()
@click.option("--user", "user_id", default=None, help="The user id (sub) of the token; default: a new dev user.")
@click.option("--admin", is_flag=True, help="Mark the token's user as an admin (app_metadata.role).")
@click.option("--ttl", default=24 * 3600, show_default=True, help="Lifetime in seconds.")
def token(user_id: str | None, admin: bool, ttl: int) -> None:
    """Print an access token signed with the configured secret (SUPABASE_JWT_SECRET, or the
    development secret kept in the data folder), for the API's Authorization: Bearer header."""
    import uuid

    from snapasset.auth import mint_access_token
    settings = load_settings()
    try:
        click.echo(mint_access_token(settings, user_id or str(uuid.uuid4()), ttl=ttl, admin=admin))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--workers", type=int, default=None, help="gunicorn worker processes (default $WEB_CONCURRENCY or 2).")
def web(workers: int | None) -> None:
    """Serve the API and the page on $PORT with gunicorn and gevent workers (the Procfile's
    web line); replaces this process with gunicorn."""
    settings = load_settings()
    os.execv(sys.executable, web_command(settings, workers=workers))


@cli.command()
@click.option("--burst", is_flag=True, help="Run the jobs that are queued now, then exit.")
@click.option("--shutdown-grace", type=click.FloatRange(0), default=20.0, show_default=True,
              help="Seconds that running jobs get to finish on SIGTERM/SIGINT before they are "
                   "interrupted and queued again.")
def worker(burst: bool, shutdown_grace: float) -> None:
    """Run a worker that takes generation jobs off the queue (the Procfile's worker line).

    It runs up to SNAPASSET_WORKER_CONCURRENCY jobs at once, reschedules failed attempts, and
    on SIGTERM finishes or requeues the jobs in hand before it exits.
    """
    from workers.concurrent import run_concurrent_worker
    run_concurrent_worker(load_settings(), burst=burst, shutdown_grace=shutdown_grace)


# Ctrl-C on `snapasset dev` should give the terminal back at once: jobs still running get this
# long before they are interrupted and queued again (the next `snapasset dev` runs them).
DEV_SHUTDOWN_GRACE = 1.0
DEV_STOP_TIMEOUT = 10.0     # then whatever is left is killed
# SPEC §12 lets `snapasset dev` loosen the job-creation limit (20 per hour) so a demo or an
# afternoon of trying things does not run into it; it says so when it starts.
DEV_JOB_RATE_LIMIT = "1000 per hour"


@cli.command()
@click.option("--port", type=int, default=None, help="Web port (default $PORT or 3001).")
@click.option("--access-log", is_flag=True, help="Print a line for every HTTP request (off by default).")
def dev(port: int | None, access_log: bool) -> None:
    """Run everything on this machine: Redis (embedded unless REDIS_URL is set), the web
    process and a worker; prints the URL and a dev token, and stops all of it on Ctrl-C."""
    from snapasset.auth import mint_access_token
    from snapasset.connections import open_redis

    settings = load_settings()
    if port:
        settings = settings.replace(port=port)
    redis = open_redis(settings.redis_url, settings.data_dir)
    env = {**os.environ, Env.REDIS_URL: redis.url, Env.PORT: str(settings.port)}
    if not settings.jwt_secret:
        env[Env.JWT_SECRET] = settings.signing_secret()
    job_limit_note = ""
    if not os.environ.get(Env.JOB_RATE_LIMIT):
        env[Env.JOB_RATE_LIMIT] = DEV_JOB_RATE_LIMIT
        job_limit_note = (f"Job creation limit: {DEV_JOB_RATE_LIMIT} per user (snapasset dev's default; "
                          f"production's is {settings.job_rate_limit}; set {Env.JOB_RATE_LIMIT} to choose)\n")
    # Each child leads a process group of its own, so that the terminal's Ctrl-C reaches only
    # this process, which then stops them in order (gunicorn signalled by the terminal and by its
    # own master at once prints a traceback).
    web = subprocess.Popen(web_command(settings, workers=1, bind=f"127.0.0.1:{settings.port}",
                                       quiet=not access_log), env=env, start_new_session=True)
    worker = subprocess.Popen([sys.executable, "-m", "snapasset", "worker",
                               "--shutdown-grace", str(DEV_SHUTDOWN_GRACE)], env=env, start_new_session=True)
    children = {"the web server": web, "the worker": worker}
    url = f"http://localhost:{settings.port}"
    token_value = mint_access_token(settings.replace(jwt_secret=env[Env.JWT_SECRET]), "dev-user")
    click.echo(f"\nSnapAsset is running at {url}  (Redis: {'embedded' if redis.embedded else redis.url})")
    click.echo(f"Dev token (user dev-user, 24 h):\n  {token_value}\n")
    click.echo(f"Try:  export TOKEN={token_value}")
    click.echo(f"      curl -H \"Authorization: Bearer $TOKEN\" {url}/api/jobs   (or open {url}/ in a browser)")
    click.echo(f"{job_limit_note}Press Ctrl-C to stop.\n")

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(child.poll() is None for child in children.values()):
        time.sleep(0.1)
    for name, child in children.items():
        if child.poll() is not None:
            click.echo(f"{name.capitalize()} exited with code {child.returncode}.", err=True)
    names = [*children, *(["the embedded Redis"] if redis.embedded else [])]
    click.echo(f"\nStopping {', '.join(names[:-1])} and {names[-1]} (running jobs are queued again)...")
    # SIGINT, as a terminal's Ctrl-C: to gunicorn's master, its quick shutdown (open event streams
    # are cut rather than waited for); to the worker's whole group, so that its scheduler process
    # stops while the worker does (DEV_SHUTDOWN_GRACE); its render processes ignore it.
    web.send_signal(signal.SIGINT)
    os.killpg(worker.pid, signal.SIGINT)
    wait_or_kill(web, worker, timeout=DEV_STOP_TIMEOUT)
    redis.close()
    click.echo("SnapAsset stopped.")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def stats(as_json: bool) -> None:
    """Show how many jobs are waiting, active, completed, failed, delayed and cancelled."""
    admin, _redis = _queue_admin(load_settings())
    counts = admin.stats()
    if as_json:
        import json
        click.echo(json.dumps(counts))
        return
    for name in (*Status.ALL, "total"):
        click.echo(f"{name:>10}  {counts[name]}")
    click.echo(f"{'paused':>10}  {'yes' if counts['paused'] else 'no'}")


@cli.command()
@click.option("--status", type=click.Choice(["waiting", "active", "completed", "failed", "delayed", "cancelled"]),
              default=None, help="Only jobs in this state.")
@click.option("--user", "user_id", default=None, help="Only this user's jobs.")
@click.option("--code", "error_code", default=None, metavar="CODE",
              help="Only failed jobs whose error has this code (PROVIDER_ERROR, TIMEOUT ...).")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="Jobs per page.")
@click.option("--cursor", default=None, help="Where the previous page ended (its `next:` line).")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON (as GET /api/admin/jobs).")
def jobs(status: str | None, user_id: str | None, error_code: str | None, limit: int, cursor: str | None,
         as_json: bool) -> None:
    """List any user's jobs, newest first (operators)."""
    from snapasset.errors import ErrorCode
    if error_code is not None and error_code not in ErrorCode.JOB_FAILURES:
        raise click.BadParameter(f"must be one of {', '.join(ErrorCode.JOB_FAILURES)}", param_hint="--code")
    from snapasset.api.presentation import admin_list_body
    admin, _redis = _queue_admin(load_settings())
    jobs, next_cursor = admin.list_all(status=status, user_id=user_id, error_code=error_code, limit=limit,
                                       cursor=cursor)
    page = admin_list_body(jobs, status=status, user_id=user_id, error_code=error_code, next_cursor=next_cursor)
    if as_json:
        import json
        click.echo(json.dumps(page))
        return
    for job in page["jobs"]:
        error = f"  {job['error']['code']}: {job['error']['message']}" if job.get("error") else ""
        click.echo(f"{job['jobId']}  {job['status']:<9}  {job['progress']:>3}%  {job['createdAt']}  "
                   f"{job['userId']}{error}")
    if not page["jobs"]:
        click.echo("no jobs")
    if page["nextCursor"]:
        click.echo(f"next: --cursor {page['nextCursor']}")


@cli.command()
@click.option("--failed", is_flag=True, required=True, help="Retry failed jobs (the only kind retried in bulk).")
@click.option("--code", "error_code", default=None, metavar="CODE", help="Only those failed with this error code.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Queue at most this many, newest first.")
def retry(failed: bool, error_code: str | None, limit: int) -> None:
    """Queue failed jobs again, e.g. after a provider outage: snapasset retry --failed --code PROVIDER_ERROR"""
    from snapasset.errors import ErrorCode
    if error_code is not None and error_code not in ErrorCode.JOB_FAILURES:
        raise click.BadParameter(f"must be one of {', '.join(ErrorCode.JOB_FAILURES)}", param_hint="--code")
    from snapasset.api.presentation import bulk_retry_body
    admin, _redis = _queue_admin(load_settings())
    outcome = bulk_retry_body(*admin.retry_failed(error_code=error_code, limit=limit), error_code=error_code,
                              limit=limit)
    for job_id in outcome["jobIds"]:
        click.echo(f"queued {job_id}")
    click.echo(f"retried {outcome['retried']} failed job{'s' if outcome['retried'] != 1 else ''}"
               + (f" with {error_code}" if error_code else "")
               + (f" ({outcome['skipped']} changed meanwhile)" if outcome["skipped"] else ""))


@cli.command()
def reindex() -> None:
    """File every job of the queue in the status indexes the lists read (once, after upgrading).

    Jobs created before the per-status indexes existed are in their user's list only, so
    `GET /api/jobs?status=`, the admin list and `snapasset jobs` miss them until this has run.
    It reads every job record once; it is safe while the service runs, and to run again."""
    admin, _redis = _queue_admin(load_settings())
    filed = admin.reindex()
    click.echo(f"filed {filed} job{'' if filed == 1 else 's'} of queue {admin.settings.queue_name}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the workers as JSON (as GET /api/admin/workers).")
def workers(as_json: bool) -> None:
    """List the live workers: what each runs now and when it last beat.

    A worker counts as live while its heartbeat is recent (3 missed beats, at most 45 s): a
    killed one drops out within a minute."""
    from snapasset.api.admin import worker_json
    from snapasset.connections import open_redis
    from snapasset.live_workers import live_workers

    settings = load_settings()
    redis = open_redis(settings.redis_url, settings.data_dir)
    found = [worker_json(info) for info in
             live_workers(redis.client, settings.queue_name, default_interval=settings.worker_heartbeat)]
    if as_json:
        import json
        click.echo(json.dumps({"workers": found, "count": len(found)}))
        return
    if not found:
        click.echo(f"no live worker on queue {settings.queue_name}")
        return
    click.echo(f"{'NAME':<34} {'HOST':<20} {'PID':>7} {'STATE':<10} {'JOBS':>9} {'OK':>6} {'FAILED':>6}  LAST BEAT")
    for worker in found:
        jobs = f"{len(worker['currentJobs'])}/{worker['concurrency']}"
        click.echo(f"{worker['name']:<34} {str(worker['hostname']):<20} {worker['pid'] or '':>7} "
                   f"{worker['state']:<10} {jobs:>9} {worker['successfulJobs']:>6} {worker['failedJobs']:>6}  "
                   f"{worker['lastHeartbeat']}")
        for job_id in worker["currentJobs"]:
            click.echo(f"    running {job_id}")


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    """'24h', '30m', '90s', '1500ms', '2d' or a bare number of milliseconds → milliseconds."""
    import re
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)?\s*", text or "")
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 24h, 30m, 90s or 500ms")
    return int(match.group(1)) * _UNITS_MS[match.group(2) or "ms"]


@cli.command()
@click.option("--status", type=click.Choice(Status.CLEANABLE), default="completed",
              show_default=True, help="Which finished jobs to remove.")
@click.option("--grace", default="24h", show_default=True,
              help="Only jobs that finished longer ago than this (24h, 30m, 90s, 500ms).")
@click.option("--limit", type=click.IntRange(1, 10000), default=1000, show_default=True,
              help="Remove at most this many.")
def clean(status: str, grace: str, limit: int) -> None:
    """Remove old finished jobs and their progress history (images and records stay)."""
    grace_ms = parse_duration_ms(grace)
    admin, _redis = _queue_admin(load_settings())
    removed = admin.clean(status=status, grace_ms=grace_ms, limit=limit)
    click.echo(f"removed {removed} {status} job{'s' if removed != 1 else ''} older than {grace}")


def _queue_admin(settings: Settings):
    """The queue administration the API uses, on the configured Redis (no HTTP), and the handle
    that keeps an embedded Redis alive while the caller holds it."""
    from snapasset.connections import open_redis
    from snapasset.jobs import JobService
    from snapasset.queueadmin import QueueAdmin
    redis = open_redis(settings.redis_url, settings.data_dir)
    return QueueAdmin(redis.client, settings, JobService(redis.client, settings)), redis


class OneLineError(click.ClickException):
    """Printed as `error: <message>` on stderr; exit status 1."""

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


@cli.command()
@click.argument("prompt")
@click.option("-p", "--platform", "platforms", multiple=True, required=True, metavar="PLATFORM",
              help="A platform id such as instagram-post or twitter-post; repeat for several "
                   "(GET /api/platforms lists them).")
@click.option("--format", "image_format", type=click.Choice(FORMATS_ALLOWED), default=None,
              help="Image format (default jpeg).")
@click.option("--quality", type=click.Choice(QUALITIES), default=None,
              help="Model quality (default: the server's).")
@click.option("--fit", type=click.Choice(FITS), default=None,
              help="How each picture fills a platform's frame: cover (default: cut around the subject), "
                   "contain (the whole picture on a soft extension of its edges), extend (the model paints the rest).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the images (default ./snapasset-output/<jobId>/).")
@click.option("--url", envvar="SNAPASSET_URL", default=None, show_envvar=True,
              help="A running SnapAsset server; without one everything runs embedded in this command.")
@click.option("--token", envvar="SNAPASSET_TOKEN", default=None, show_envvar=True,
              help="Access token for --url (see `snapasset token`).")
@click.option("--api-key", envvar="SNAPASSET_API_KEY", default=None, show_envvar=True,
              help="API key for --url, instead of a token (then --user is needed).")
@click.option("--user", "user_id", default=None,
              help="The user the job is for: required with --api-key; a token names its own.")
def generate(prompt: str, platforms: tuple[str, ...], image_format: str | None, quality: str | None,
             fit: str | None, out_dir: Path | None, url: str | None, token: str | None, api_key: str | None,
             user_id: str | None) -> None:
    """Generate images for PROMPT, one per platform, and save them.

    Shows a live progress bar with each stage on stderr and prints the path of each image as
    soon as it is saved; the arguments are checked before anything starts. With --url (or SNAPASSET_URL) the job runs on that server; otherwise this command
    starts what it needs and stops it afterwards: an embedded Redis of its own, the API on a
    free localhost port and a worker process (images and records go where the configuration
    says, as with `snapasset dev`).

    \b
    Example:
      snapasset generate "A beautiful sunset over mountains" -p instagram-post -p twitter-post
    """
    from snapasset.errors import APIError
    from snapasset.generate import (
        GenerateError, Server, describe_details, describe_error, embedded_server, run_job,
    )
    from snapasset.schema import parse_job_request
    try:
        from snapasset_sdk import SnapAssetClient, SnapAssetError
    except ImportError:
        raise OneLineError("generate needs the Python SDK: pip install ./sdk") from None

    if token and api_key:
        raise OneLineError("pass either --token or --api-key, not both")
    options = {key: value for key, value in (("format", image_format), ("quality", quality), ("fit", fit)) if value}
    try:   # the server's own checks, here, before anything is started or sent
        parse_job_request({"prompt": prompt, "platforms": list(platforms), "options": options}, load_settings())
    except APIError as exc:
        raise OneLineError(describe_details(exc.details or {}) or exc.message) from None
    if not logging.getLogger().isEnabledFor(logging.DEBUG):   # keep the progress bar alone on stderr
        for name in ("", "werkzeug"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with ExitStack() as stack:
            server = (Server(url, token=token, api_key=api_key) if url
                      else stack.enter_context(embedded_server(load_settings())))
            client = stack.enter_context(SnapAssetClient(server.url, token=server.token,
                                                         api_key=server.api_key))
            run_job(client, prompt, platforms, options=options, user_id=user_id, out_dir=out_dir,
                    on_saved=lambda path: click.echo(str(path)))
    except (SnapAssetError, GenerateError) as exc:
        raise OneLineError(describe_error(exc, url=url)) from None


def main() -> None:
    cli(prog_name="snapasset")
