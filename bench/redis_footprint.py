"""Redis footprint per finished job, and what lists, stats and metrics cost as jobs accumulate.

Part 1 runs N real jobs (4 platforms, the local provider's live previews on) through a
`snapasset worker` process started as the Procfile starts it, and prints Redis `used_memory`
and the key count per finished job (the growth over a warm-up baseline, divided by N), with
the size of each of one job's keys.

Part 2 times, in-process through the Flask app (median of --repeat calls, after warm-up
calls): GET /api/jobs (first page, a page 500 jobs deep, and ?status=failed which matches
nothing of the user's), GET /api/admin/jobs?status=failed, GET /api/queue/stats and GET
/metrics, with 10, 1,000 and 20,000 finished jobs of one user stored, beside as many failed
jobs of another user, at most --failed (5,000). Pages hold 10 jobs, so that the 10-job store
fills one. The larger counts are seeded through the job service (create, then the bookkeeping a
worker does when a job completes or fails) to keep the run short. Each figure is printed with
its ratio to the 10-job one.

    python bench/redis_footprint.py                       # N = 100; 10, 1000, 20000 jobs
    python bench/redis_footprint.py --jobs 40 --sizes 10,1000 --failed 500 --skip-footprint
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLATFORMS = ("instagram-post", "twitter-post", "linkedin-post", "youtube-thumbnail")
PROMPT = "A lighthouse on a rocky coast at sunset"
PAGE = 10


def procfile_worker_command() -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("worker:"):
            return shlex.split(line.partition(":")[2])
    raise SystemExit("the Procfile has no worker line")


def settings_for(redis_url: str, workdir: Path, queue: str, **changes):
    from snapasset.config import Settings
    return Settings(redis_url=redis_url, jwt_secret="bench-secret-long-enough-for-hs256-0123456789",
                    media_dir=workdir / "media", database=workdir / "snapasset.db", data_dir=workdir / "data",
                    queue_name=queue, rate_limit="1000000 per minute", job_rate_limit="1000000 per minute",
                    max_active_jobs=1_000_000, **changes)


def worker_env(settings) -> dict:
    from snapasset.config import Env
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPASSET_", "SUPABASE_", "OPENAI_", "REDIS_"))}
    env.update({Env.REDIS_URL: settings.redis_url, Env.JWT_SECRET: settings.jwt_secret,
                Env.MEDIA_DIR: str(settings.media_dir), Env.DATABASE: str(settings.database),
                Env.DATA_DIR: str(settings.data_dir), Env.QUEUE: settings.queue_name,
                Env.MAX_ACTIVE_JOBS: str(settings.max_active_jobs), Env.EVENTS_TTL: str(settings.events_ttl),
                "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
                "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    return env


def memory(conn) -> tuple[int, int]:
    return conn.info("memory")["used_memory"], conn.dbsize()


def run_real_jobs(conn, settings, workdir: Path, count: int) -> None:
    """`count` jobs of 4 platforms through a real worker process; waits until all ended."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from snapasset.jobs import JobService
    from snapasset.processes import stop_processes
    from snapasset.schema import JobRequest
    service = JobService(conn, settings)
    request = JobRequest(prompt=PROMPT, platforms=PLATFORMS)
    users = [f"bench-user-{index}" for index in range(4)]
    ids = [service.create(users[index % len(users)], request).job_id for index in range(count)]
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "worker.log", "ab")
    worker = subprocess.Popen(procfile_worker_command(), env=worker_env(settings), cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60 + 3 * count
        while time.monotonic() < deadline:
            jobs = Job.fetch_many(ids, connection=conn, serializer=JSONSerializer)
            if all(job is not None and job.get_status(refresh=False) in ("finished", "failed") for job in jobs):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("the jobs did not finish in time; see worker.log")
        time.sleep(1.0)   # the last terminal events and metrics
    finally:
        stop_processes(worker)
        log.close()


def keys_module():
    from snapasset import keys
    return keys


def key_sizes(conn, job_id: str) -> list[tuple[str, int]]:
    sizes = []
    for key in sorted(k.decode() for k in conn.keys(f"*{job_id}*")):
        sizes.append((key, conn.memory_usage(key) or 0))
    return sizes


def settled(conn, seconds: float) -> tuple[int, int]:
    """Memory and key count once `seconds` have passed and Redis dropped what expired by then."""
    time.sleep(seconds)
    conn.keys("*")   # touches every key: an expired one is removed now, not at the next sampling
    return memory(conn)


def footprint(redis_url: str, workdir: Path, count: int, replay_window: int) -> None:
    import redis as redis_lib
    conn = redis_lib.Redis.from_url(redis_url)
    settings = settings_for(redis_url, workdir / "footprint", "bench-footprint", events_ttl=replay_window)
    run_real_jobs(conn, settings, workdir / "footprint", 1)          # warm-up: fixed keys, user keys
    before_memory, before_keys = settled(conn, replay_window + 1)
    run_real_jobs(conn, settings, workdir / "footprint", count)
    after_memory, after_keys = memory(conn)
    print(f"\n== Redis per finished job ({count} jobs, {len(PLATFORMS)} platforms, previews on, "
          f"SNAPASSET_EVENTS_TTL={replay_window} s)")
    print(f"within the replay window: used_memory {(after_memory - before_memory) / count / 1024:.1f} KiB "
          f"per job, {(after_keys - before_keys) / count:.2f} keys per job")
    sample = conn.zrevrange(keys_module().user_jobs("bench-user-0"), 0, 0)[0].decode()
    sizes = key_sizes(conn, sample)
    settled_memory, settled_keys = settled(conn, replay_window + 1)
    print(f"after it (what stays for SNAPASSET_JOB_TTL): used_memory "
          f"{(settled_memory - before_memory) / count / 1024:.1f} KiB per job, "
          f"{(settled_keys - before_keys) / count:.2f} keys per job")
    print(f"keys of one job ({sample}) within the window, and their TTL after it:")
    for key, size in sizes:
        print(f"  {size:>7} B  ttl {conn.ttl(key):>7}  {key}")
    no_ttl = [k.decode() for k in conn.keys("*") if conn.ttl(k) == -1]
    print(f"keys without a TTL ({len(no_ttl)}): {', '.join(sorted(no_ttl)) or 'none'}")
    conn.close()


# -- part 2: latency as jobs accumulate -----------------------------------------------------------
def seed(conn, settings, user_id: str, count: int, *, failed_code: str | None = None) -> None:
    """`count` finished jobs of `user_id`, created through the job service and then completed (or
    failed with `failed_code`) with the bookkeeping a worker does at the end of a job: RQ's
    status, end time and registry, the record's result or error, SnapAsset's indexes."""
    from snapasset.jobs import JobService
    from snapasset.schema import JobRequest
    service = JobService(conn, settings)
    request = JobRequest(prompt=PROMPT, platforms=PLATFORMS)
    for _ in range(count):
        finish(conn, settings, service.create(user_id, request).job_id, failed_code=failed_code)


def finish(conn, settings, job_id: str, *, failed_code: str | None) -> None:
    from datetime import datetime, timezone

    from rq import Queue
    from rq.job import Job, JobStatus
    from rq.registry import FailedJobRegistry, FinishedJobRegistry
    from rq.serializers import JSONSerializer

    from snapasset import jobindex, jobrecord, keys
    from snapasset.jobrecord import Status
    job = Job.fetch(job_id, connection=conn, serializer=JSONSerializer)
    user_id = jobrecord.owner_of(job)
    job.started_at = job.ended_at = datetime.now(timezone.utc)
    jobrecord.start_attempt(job, settings.job_attempts)
    jobrecord.record_progress(job, 100)
    if failed_code:
        status, registry = JobStatus.FAILED, FailedJobRegistry
        jobrecord.record_failure(job, failed_code, "The model is unavailable")
    else:
        status, registry = JobStatus.FINISHED, FinishedJobRegistry
        jobrecord.record_result(job, {"success": True, "images": [
            {"platformId": p, "url": f"/media/{user_id}/{job_id}/{p}.jpg"} for p in PLATFORMS]})
    with conn.pipeline() as pipe:
        Queue(job.origin, connection=conn, serializer=JSONSerializer).remove(job, pipeline=pipe)
        job.set_status(status, pipeline=pipe)
        job.save(pipeline=pipe)
        registry(job.origin, connection=conn, serializer=JSONSerializer).add(job, settings.job_ttl, pipeline=pipe)
        jobindex.file_job(pipe, settings.queue_name, job_id, user_id, jobindex.score_of(job),
                          Status.FAILED if failed_code else Status.COMPLETED, code=failed_code,
                          ttl=settings.job_ttl)
        pipe.srem(keys.user_active_jobs(user_id), job_id)
        pipe.execute()


def sample(client, path: str, headers: dict, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
    return samples


def latencies(redis_url: str, workdir: Path, sizes: list[int], failed: int, repeat: int) -> None:
    """Seed every size first, then time them in interleaved rounds, so that a busy moment of the
    machine falls on every size alike."""
    import redis as redis_lib

    from snapasset import create_app
    from snapasset.auth import mint_access_token
    from snapasset.connections import RedisHandle
    conn = redis_lib.Redis.from_url(redis_url)
    columns = ["GET /api/jobs", "… 500 deep", "…?status=failed", "admin ?status=failed", "queue/stats", "/metrics"]
    stores = []
    for size in sizes:
        queue = f"bench-latency-{size}"
        settings = settings_for(redis_url, workdir / queue, queue)
        owner = f"bench-owner-{uuid.uuid4().hex[:8]}"
        seeding = time.perf_counter()
        seed(conn, settings, owner, size)
        seed(conn, settings, f"bench-other-{uuid.uuid4().hex[:8]}", min(size, failed), failed_code="PROVIDER_ERROR")
        print(f"seeded {size} + {min(size, failed)} failed jobs in {time.perf_counter() - seeding:.1f} s")
        app = create_app(settings, redis=RedisHandle(client=redis_lib.Redis.from_url(redis_url), url=redis_url))
        client = app.test_client()
        headers = {"Authorization": f"Bearer {mint_access_token(settings, owner)}"}
        admin = {"Authorization": f"Bearer {mint_access_token(settings, 'bench-admin', admin=True)}"}
        cursor = None
        for _ in range(min(size // PAGE - 1, 50)):   # a page deep in the list (up to 500 jobs in)
            cursor = client.get(f"/api/jobs?limit={PAGE}" + (f"&cursor={cursor}" if cursor else ""),
                                headers=headers).get_json()["nextCursor"]
        deep = f"/api/jobs?limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
        calls = [(f"/api/jobs?limit={PAGE}", headers), (deep, headers),
                 (f"/api/jobs?limit={PAGE}&status=failed", headers),
                 (f"/api/admin/jobs?limit={PAGE}&status=failed", admin), ("/api/queue/stats", admin),
                 ("/metrics", {})]
        for path, who in calls:
            sample(client, path, who, 3)   # warm-up
        stores.append((size, min(size, failed), client, calls, [[] for _ in calls]))
    rounds = 5
    for _ in range(rounds):
        for _size, _failed, client, calls, samples in stores:
            for (path, who), into in zip(calls, samples):
                into += sample(client, path, who, max(1, repeat // rounds))
    print(f"\n== latency as finished jobs accumulate (median of {rounds} interleaved rounds × "
          f"{max(1, repeat // rounds)} calls, ms; ratio to the first size)")
    print(f"{'jobs':>8} {'failed':>7}  " + "  ".join(f"{c:>20}" for c in columns))
    baseline = None
    for size, failed_here, _client, _calls, samples in stores:
        figures = [statistics.median(values) for values in samples]
        baseline = baseline or figures
        cells = [f"{value:8.2f} ({value / base:4.2f}×)" for value, base in zip(figures, baseline)]
        print(f"{size:>8} {failed_here:>7}  " + "  ".join(f"{cell:>20}" for cell in cells))
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="real jobs for the footprint (N)")
    parser.add_argument("--sizes", default="10,1000,20000", help="finished jobs stored, comma-separated")
    parser.add_argument("--failed", type=int, default=5000, help="failed jobs added at the largest size")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per figure (over 5 rounds)")
    parser.add_argument("--replay-window", type=int, default=90,
                        help="SNAPASSET_EVENTS_TTL for the footprint run, seconds (production default 3600)")
    parser.add_argument("--skip-footprint", action="store_true")
    args = parser.parse_args()
    from snapasset.connections import start_embedded_redis
    with tempfile.TemporaryDirectory(prefix="snapasset-bench-") as tmp:
        workdir = Path(tmp)
        handle = start_embedded_redis(workdir / "redis")
        try:
            if not args.skip_footprint:
                footprint(handle.url, workdir, args.jobs, args.replay_window)
            latencies(handle.url, workdir, [int(s) for s in args.sizes.split(",")], args.failed, args.repeat)
        finally:
            handle.close(save=False)


if __name__ == "__main__":
    from bench.pipeline import stop_on_sigterm
    stop_on_sigterm()
    main()
