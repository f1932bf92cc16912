"""SSE fan-out: N concurrent EventSource-like clients on ONE web process, started exactly as the
Procfile starts it (gunicorn, gevent worker class, via snapasset.cli.web_command with workers=1),
while jobs publish events.

For each N it prints the delivery latency from publish to receipt (p50, p99, max), how many
deliveries arrived out of how many expected, the web worker's RSS, and the Redis client
connections the web process holds (CLIENT LIST: the hub's named connections, and every
connection on the server that is not the bench's own).

    python bench/sse_fanout.py                                   # N = 100, 1000, 2000, 4000
    python bench/sse_fanout.py --clients 2000 --per-job 2000 --rate 10   # all on one job

Clients are raw asyncio sockets in --client-procs separate processes (HTTP/1.1, chunked
decoding, `data:` lines), so the client is not what is measured. Each event carries the
publisher's time.time(); all processes share this machine's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# -- the client processes -------------------------------------------------------------------------
async def _one_client(host: str, port: int, path: str, latencies: list, state: dict, start_at: float):
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    except OSError:
        state["failed"] += 1
        return
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            state["failed"] += 1
            state.setdefault("statuses", []).append(head.split(b"\r\n", 1)[0].decode())
            return
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                return
            chunk = await reader.readexactly(size + 2)
            now = time.time()
            for line in chunk.split(b"\n"):
                if not line.startswith(b"data: "):
                    continue
                at = line.find(b'"message":"')   # the bench's progress events carry their publish time
                if at >= 0:
                    end = line.find(b'"', at + 11)
                    ts = float(line[at + 11:end])
                    if ts >= start_at:
                        latencies.append(now - ts)
                elif b'"type":"connected"' in line:
                    state["connected"] += 1
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        state["dropped"] += 1
    finally:
        writer.close()


async def _client_main(spec: dict):
    latencies: list[float] = []
    state = {"connected": 0, "failed": 0, "dropped": 0}
    tasks = []
    paths = spec["paths"]
    for index, path in enumerate(paths):
        tasks.append(asyncio.ensure_future(_one_client(spec["host"], spec["port"], path, latencies, state,
                                                       spec["start_at"])))
        if index % 100 == 99:
            await asyncio.sleep(0.05)            # stay inside the listen backlog
    deadline = time.monotonic() + 120
    while state["connected"] + state["failed"] < len(paths) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    print(json.dumps({"ready": state["connected"], "failed": state["failed"],
                      "statuses": state.get("statuses", [])[:3]}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)       # the parent says stop
    for task in tasks:
        task.cancel()
    print(json.dumps({"latencies": latencies, "dropped": state["dropped"]}), flush=True)


def client_process() -> None:
    spec = json.loads(sys.stdin.readline())
    asyncio.run(_client_main(spec))


# -- the web process ------------------------------------------------------------------------------
def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker_pid(master: int) -> int:
    """gunicorn's one worker process (the master forks it)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except FileNotFoundError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="100,1000,2000,4000", help="comma-separated N values")
    parser.add_argument("--per-job", type=int, default=10, help="clients following each job")
    parser.add_argument("--rate", type=float, default=200.0, help="events published per second, all jobs")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing per N")
    parser.add_argument("--client-procs", type=int, default=2, help="client processes")
    parser.add_argument("--client-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_worker:
        client_process()
        return

    from snapasset import jobrecord
    from snapasset.auth import mint_access_token
    from snapasset.cli import web_command
    from snapasset.config import Env, Settings
    from snapasset.connections import open_redis
    from snapasset.jobs import JobService
    from snapasset.processes import stop_processes
    from snapasset.schema import parse_job_request
    from snapasset.streaming import HUB_CLIENT_NAME

    fd_limit = raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="sse-bench-"))
    settings = Settings(redis_url=os.environ.get("REDIS_URL"), jwt_secret="bench-" + uuid.uuid4().hex * 2,
                        data_dir=work / "data", media_dir=work / "media", database=work / "snapasset.db",
                        queue_name=f"bench-{uuid.uuid4().hex[:8]}", public_url="http://bench")
    handle = open_redis(settings.redis_url, settings.data_dir)
    settings = settings.replace(redis_url=handle.url)
    conn = handle.client
    conn.client_setname("sse-bench")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPASSET_", "SUPABASE_", "OPENAI_"))}
    env.update({Env.REDIS_URL: handle.url, Env.JWT_SECRET: settings.jwt_secret, Env.DATA_DIR: str(settings.data_dir),
                Env.MEDIA_DIR: str(settings.media_dir), Env.DATABASE: str(settings.database),
                Env.QUEUE: settings.queue_name, Env.PUBLIC_URL: settings.public_url,
                Env.RATE_LIMIT: "10000000 per minute", Env.JOB_RATE_LIMIT: "10000000 per minute"})
    command = web_command(settings, workers=1, bind=f"127.0.0.1:{port}")
    web_log = open(work / "web.log", "wb")
    web = subprocess.Popen(command, env=env, cwd=ROOT, stdout=web_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if web.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit((work / "web.log").read_text())
                time.sleep(0.1)
        worker = worker_pid(web.pid)
        print(f"web: {' '.join(command[1:])}")
        print(f"one gunicorn worker pid {worker}; Redis {handle.url}; fd limit {fd_limit}; "
              f"{os.cpu_count()} CPUs shared by Redis, web, publisher and clients")
        print(f"{args.per_job} client(s) per job, {args.rate:g} events/s in all, {args.duration:g} s per N\n")
        print(f"{'N':>6} {'jobs':>5} {'delivered':>17} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'RSS MB':>7} {'hub conns':>9} {'web conns':>9}")
        jobs_service = JobService(conn, settings)
        for n in [int(x) for x in args.clients.split(",")]:
            run_level(n, args, settings, conn, port, worker, jobs_service, parse_job_request,
                      mint_access_token, jobrecord, HUB_CLIENT_NAME)
    finally:
        stop_processes(web)
        web_log.close()
        handle.close(save=False)   # an embedded Redis of its own stops here (REDIS_URL: only disconnects)


def run_level(n, args, settings, conn, port, worker, jobs_service, parse_job_request, mint_access_token,
              jobrecord, hub_name):
    job_count = max(1, n // args.per_job)
    jobs = []
    for _ in range(job_count):
        user = str(uuid.uuid4())
        created = jobs_service.create(user, parse_job_request(
            {"prompt": "A beautiful sunset over mountains", "platforms": ["instagram-post"]}, settings))
        jobs.append((created.job_id, user, mint_access_token(settings, user)))
    paths = [f"/api/sse/jobs/{job_id}?access_token={token}" for job_id, _, token in
             (jobs[i % job_count] for i in range(n))]
    procs = []
    share = [paths[i::args.client_procs] for i in range(args.client_procs)]
    for part in share:
        proc = subprocess.Popen([sys.executable, __file__, "--client-worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)
        procs.append((proc, part))
    publish_from = time.time()               # only events published from now on are timed
    for proc, part in procs:
        proc.stdin.write(json.dumps({"host": "127.0.0.1", "port": port, "paths": part,
                                     "start_at": publish_from}) + "\n")
        proc.stdin.flush()
    ready = failed = 0
    for proc, _ in procs:
        line = json.loads(proc.stdout.readline())
        ready += line["ready"]
        failed += line["failed"]
        if line["statuses"]:
            print("  non-200:", line["statuses"])
    time.sleep(1.0)
    clients = conn.client_list()
    hub_conns = sum(1 for c in clients if c.get("name", "").startswith(hub_name))
    others = [c for c in clients if c.get("name") != "sse-bench" and not c.get("name", "").startswith(hub_name)]
    web_conns = hub_conns + len(others)
    by_command: dict[str, int] = {}
    for client in others:
        by_command[client.get("cmd", "?")] = by_command.get(client.get("cmd", "?"), 0) + 1
    rss_idle = rss_mb(worker)

    # publish: round-robin over the jobs at the given total rate
    interval = 1.0 / args.rate
    expected = 0
    started = time.monotonic()
    index = 0
    while time.monotonic() - started < args.duration:
        job_id, user, _ = jobs[index % job_count]
        jobrecord.publish(conn, job_id, user, jobrecord.Progress(progress=index % 100, stage="bench",
                                                                 message=repr(time.time())), ttl=600, replay_window=600)
        expected += (n // job_count) + (1 if index % job_count < n % job_count else 0)
        index += 1
        sleep = started + index * interval - time.monotonic()
        if sleep > 0:
            time.sleep(sleep)
    time.sleep(2.0)
    rss_busy = rss_mb(worker)
    latencies, dropped = [], 0
    for proc, _ in procs:
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
        latencies += result["latencies"]
        dropped += result["dropped"]
        proc.wait(timeout=30)
    if latencies:
        p50, p99, top = (percentile(latencies, q) * 1000 for q in (0.5, 0.99, 1.0))
    else:
        p50 = p99 = top = float("nan")
    print(f"{n:>6} {job_count:>5} {len(latencies):>8}/{expected:<8} {p50:>8.1f} {p99:>8.1f} {top:>8.1f} "
          f"{max(rss_idle, rss_busy):>7.0f} {hub_conns:>9} {web_conns:>9}"
          + (f"   ({ready} connected, {failed} failed, {dropped} dropped)" if failed or dropped or ready != n else ""),
          flush=True)
    if others:
        print(f"{'':>6} other web connections by last command: {by_command}")
    time.sleep(1.5)                          # let the web process notice the closed sockets
    conn.delete(*[f"snapasset:events:job:{job_id}" for job_id, _, _ in jobs])


if __name__ == "__main__":
    main()
