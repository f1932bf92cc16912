"""Requests per second and tail latency of the web process under load: health checks and job creation.

    python bench/load.py [--connections 64] [--duration 10] [--web-processes 2]

Needs `wrk` (Debian: `apt-get install -y wrk`). Starts an embedded Redis and the web process
exactly as the Procfile does (gunicorn + gevent, WEB_CONCURRENCY processes, default 2), with
limits set high enough that nothing is refused (the limits are still counted on every
request: that is part of what is measured). No worker runs: created jobs stay queued.

In one run, against the same server, one after the other with `--connections` connections:
1. `GET /health` (the baseline: the cheapest route through the same middleware);
2. `POST /api/jobs` for 4 platforms, each request as one of 1,000 users (a token each), so
   per-user limits and the per-user admission set are what a real population costs.
3. the same GET against bench/bare_app.py (a WSGI app that does nothing) under the same
   gunicorn + gevent command: what the machine and the server alone add to the tail.
Printed: requests/s and p50/p99 latency of each, create ÷ health (goal ≥ 0.25) and the
health p99 ÷ p50 (goal: p99 ≤ 20 ms). On a shared machine, run it a few times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import free_port, wait_http  # noqa: E402
from snapasset.auth import mint_access_token  # noqa: E402
from snapasset.cli import web_command  # noqa: E402
from snapasset.config import Settings  # noqa: E402
from snapasset.connections import start_embedded_redis  # noqa: E402
from snapasset.processes import stop_processes  # noqa: E402

USERS = 1000
_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %d %d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency.max / 1e3))
end
"""


def create_script(tokens: list[str]) -> str:
    body = json.dumps({"prompt": "A lighthouse on a rocky coast at sunset",
                       "platforms": ["instagram-post", "instagram-story", "twitter-post", "facebook-post"]})
    return ("tokens = {" + ",".join(json.dumps(t) for t in tokens) + "}\n"
            "counter = 0\n"
            "request = function()\n"
            "  counter = counter + 1\n"
            "  local token = tokens[(counter % #tokens) + 1]\n"
            "  return wrk.format('POST', '/api/jobs', {['Authorization'] = 'Bearer ' .. token,\n"
            "    ['Content-Type'] = 'application/json'}, " + json.dumps(body) + ")\n"
            "end\n"
            "response = function(status, headers, body)\n"
            "  if status ~= 201 then io.write('unexpected status ' .. status .. ' ' .. body .. '\\n') end\n"
            "end\n" + _REPORT)


def run_wrk(base: str, path: str, script: Path, connections: int, duration: int) -> dict:
    threads = min(2, connections)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
                          "--timeout", "10s", "-s", str(script), base + path],
                         capture_output=True, text=True, check=True).stdout
    unexpected = [line for line in out.splitlines() if line.startswith("unexpected")]
    match = re.search(r"^RESULT (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+) ([\d.]+)$", out, re.M)
    if match is None:
        raise SystemExit(f"wrk said:\n{out}")
    requests_, seconds, p50, p99, errors, worst = match.groups()
    return {"rps": int(requests_) / float(seconds), "p50": float(p50), "p99": float(p99),
            "errors": int(errors), "max": float(worst), "unexpected": unexpected[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--web-processes", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")

    tmp = Path(tempfile.mkdtemp(prefix="snapasset-bench-"))
    redis = start_embedded_redis(tmp / "redis")
    port = free_port()
    settings = Settings(redis_url=redis.url, jwt_secret="bench-secret-" + "x" * 40, port=port,
                        media_dir=tmp / "media", database=tmp / "snapasset.db", data_dir=tmp / "data",
                        max_active_jobs=1_000_000, rate_limit="100000000 per minute",
                        job_rate_limit="100000000 per minute")
    env = {**os.environ, "REDIS_URL": redis.url, "SUPABASE_JWT_SECRET": settings.jwt_secret,
           "SNAPASSET_MEDIA_DIR": str(settings.media_dir), "SNAPASSET_DATABASE": str(settings.database),
           "SNAPASSET_DATA_DIR": str(settings.data_dir), "SNAPASSET_RATE_LIMIT": settings.rate_limit,
           "SNAPASSET_JOB_RATE_LIMIT": settings.job_rate_limit,
           "SNAPASSET_MAX_ACTIVE_JOBS": str(settings.max_active_jobs), "PORT": str(port), "PYTHONPATH": str(ROOT)}
    logs = open(tmp / "web.log", "wb")
    command = web_command(settings, workers=args.web_processes, bind=f"127.0.0.1:{port}")
    web = subprocess.Popen(command, env=env, cwd=ROOT, stdout=logs, stderr=subprocess.STDOUT)
    bare_port = free_port()
    bare_command = [part.replace(f"127.0.0.1:{port}", f"127.0.0.1:{bare_port}") for part in command[:-1]]
    bare = subprocess.Popen([*bare_command, "bench.bare_app:app"], env=env, cwd=ROOT, stdout=logs,
                            stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        bare_base = f"http://127.0.0.1:{bare_port}"
        wait_http(f"{base}/health")
        wait_http(f"{bare_base}/health")
        health_script = tmp / "health.lua"
        health_script.write_text(_REPORT)
        create_lua = tmp / "create.lua"
        create_lua.write_text(create_script([mint_access_token(settings, f"load-user-{i}") for i in range(USERS)]))
        run_wrk(base, "/health", health_script, args.connections, 2)          # warm-up: every process, imports
        run_wrk(base, "/api/jobs", create_lua, args.connections, 2)
        run_wrk(bare_base, "/health", health_script, args.connections, 2)
        time.sleep(1)

        health = run_wrk(base, "/health", health_script, args.connections, args.duration)
        create = run_wrk(base, "/api/jobs", create_lua, args.connections, args.duration)
        empty = run_wrk(bare_base, "/health", health_script, args.connections, args.duration)
        print(f"{args.connections} connections, {args.duration} s each, {args.web_processes} web processes "
              f"(gunicorn + gevent, as the Procfile starts it), {os.cpu_count()} cores")
        for name, result in (("GET /health", health), ("POST /api/jobs", create), ("bare WSGI app", empty)):
            print(f"  {name:<15} {result['rps']:8.0f} req/s   p50 {result['p50']:7.2f} ms   p99 {result['p99']:8.2f} ms"
                  f"   max {result['max']:8.1f} ms   errors {result['errors']}"
                  + ("".join(f"\n    {line}" for line in result["unexpected"])))
        print(f"create ÷ health: {create['rps'] / health['rps']:.2f}  (goal ≥ 0.25)")
        print(f"health p99 ÷ p50: {health['p99'] / health['p50']:.1f}  (p99 {health['p99']:.1f} ms; goal ≤ 20 ms)")
    finally:
        stop_processes(web, bare)
        logs.close()
        redis.close(save=False)


if __name__ == "__main__":
    from bench.pipeline import stop_on_sigterm
    stop_on_sigterm()
    main()
