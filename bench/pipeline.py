"""One job, four platforms, end to end — against the floor of doing the same image work directly.

    python bench/pipeline.py [--runs 15] [--format jpeg]

Starts an embedded Redis, the web process exactly as the Procfile does (gunicorn + gevent)
and one worker (`snapasset worker`) whose provider answers instantly with a different
photo-like 1536×1024 PNG (~3 MB) for every job, as a model does (bench/providers.py; drawn
before anything is timed). Each run POSTs a job and times it until the job's `done` event
arrives on its SSE stream. The floor, measured in the same run: another such picture decoded,
cropped, resized, encoded and written to disk for the same four platforms by one plain Pillow
function.
Prints both medians and their ratio (goals: ≤ 1.0 with the default render processes, ≤ 1.2 with one). The worker renders a job's platforms
in its render processes (SNAPASSET_RENDER_PROCESSES, default one per core); run with
SNAPASSET_RENDER_PROCESSES=1 to compare one core with the one-core floor.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.providers import PICTURES_ENV, photo_pictures  # noqa: E402
from snapasset.auth import mint_access_token  # noqa: E402
from snapasset.cli import web_command  # noqa: E402
from snapasset.config import Settings  # noqa: E402
from snapasset.connections import start_embedded_redis  # noqa: E402
from snapasset.platforms import PLATFORMS  # noqa: E402
from snapasset.processes import stop_processes  # noqa: E402

PLATFORM_IDS = ["instagram-post", "instagram-story", "twitter-post", "facebook-post"]
PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def floor(data: bytes, out_dir: Path, fmt: str) -> None:
    """decode + crop + resize + encode + write, nothing else."""
    import io
    source = Image.open(io.BytesIO(data))
    source.load()
    source = source.convert("RGB")
    sw, sh = source.size
    for platform_id in PLATFORM_IDS:
        p = PLATFORMS[platform_id]
        scale = min(sw / p.width, sh / p.height)
        cw, ch = round(p.width * scale), round(p.height * scale)
        left, top = (sw - cw) // 2, (sh - ch) // 2
        # the same resampling the pipeline uses (LANCZOS after a box reduce), so the ratio
        # measures the pipeline's overhead and not a different resize
        image = source.resize((p.width, p.height), Image.LANCZOS, box=(left, top, left + cw, top + ch),
                              reducing_gap=3.0)
        # and the same encoder settings (optimised JPEG)
        extra = {"optimize": True} if fmt == "jpeg" else {}
        image.save(out_dir / f"{platform_id}.{fmt}", PIL_FORMAT[fmt], quality=88, **extra)


def stop_on_sigterm() -> None:
    """A SIGTERM (`timeout`, a CI's cancel) ends the benchmark like Ctrl-C: its `finally` blocks
    stop the worker and the embedded Redis it started, instead of leaving them running."""
    import signal
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):   # not up yet, or a loaded machine
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def run_job(base: str, headers: dict, fmt: str) -> float:
    started = time.perf_counter()
    created = requests.post(f"{base}/api/jobs", headers=headers, json={
        "prompt": "A lighthouse on a rocky coast at sunset", "platforms": PLATFORM_IDS,
        "options": {"format": fmt}}, timeout=10)
    created.raise_for_status()
    job_id = created.json()["jobId"]
    with requests.get(f"{base}/api/sse/jobs/{job_id}", headers=headers, stream=True, timeout=60) as stream:
        for line in stream.iter_lines(chunk_size=1):
            if line.startswith(b"data:"):
                event = json.loads(line[5:])
                if event["type"] == "done":
                    return time.perf_counter() - started
                if event["type"] in ("failed", "cancelled"):
                    raise SystemExit(f"job {job_id} ended {event}")
    raise SystemExit(f"stream of {job_id} ended without done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--format", default="jpeg", choices=sorted(PIL_FORMAT))
    args = parser.parse_args()

    pictures = photo_pictures(2 * (args.runs + 1))
    tmp = Path(tempfile.mkdtemp(prefix="snapasset-bench-"))
    redis = start_embedded_redis(tmp / "redis")
    port = free_port()
    settings = Settings(redis_url=redis.url, jwt_secret="bench-secret-" + "x" * 40, port=port,
                        media_dir=tmp / "media", database=tmp / "snapasset.db", data_dir=tmp / "data",
                        provider="bench.providers:instant", max_active_jobs=1000,
                        rate_limit="100000 per minute", job_rate_limit="100000 per minute")
    env = {**os.environ, "REDIS_URL": redis.url, "SUPABASE_JWT_SECRET": settings.jwt_secret,
           "SNAPASSET_MEDIA_DIR": str(settings.media_dir), "SNAPASSET_DATABASE": str(settings.database),
           "SNAPASSET_DATA_DIR": str(settings.data_dir), "SNAPASSET_PROVIDER": settings.provider,
           "SNAPASSET_RATE_LIMIT": settings.rate_limit, "SNAPASSET_JOB_RATE_LIMIT": settings.job_rate_limit,
           "SNAPASSET_MAX_ACTIVE_JOBS": str(settings.max_active_jobs), "PORT": str(port),
           "PYTHONPATH": str(ROOT), PICTURES_ENV: str(pictures[0].parent)}
    logs = open(tmp / "processes.log", "wb")
    processes = [
        subprocess.Popen(web_command(settings, workers=1, bind=f"127.0.0.1:{port}"), env=env, cwd=ROOT,
                         stdout=logs, stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, "-m", "snapasset", "worker"], env=env, cwd=ROOT,
                         stdout=logs, stderr=subprocess.STDOUT),
    ]
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health")
        headers = {"Authorization": f"Bearer {mint_access_token(settings, 'bench-user')}"}
        run_job(base, headers, args.format)          # warm-up: imports, first connections

        floor_pictures = iter(pictures[args.runs + 1:])   # the worker hands out the first ones
        floor_dir = tmp / "floor"
        floor_dir.mkdir()
        floor(next(floor_pictures).read_bytes(), floor_dir, args.format)          # warm-up

        pipeline_times, floor_times = [], []
        for _ in range(args.runs):                    # interleaved, so both see the same machine
            pipeline_times.append(run_job(base, headers, args.format))
            data = next(floor_pictures).read_bytes()
            started = time.perf_counter()
            floor(data, floor_dir, args.format)
            floor_times.append(time.perf_counter() - started)

        p, f = statistics.median(pipeline_times), statistics.median(floor_times)
        print(f"platforms: {', '.join(PLATFORM_IDS)}; format {args.format}; {args.runs} runs; "
              f"sources: {len(pictures)} distinct {Image.open(pictures[0]).size} PNGs of ~"
              f"{statistics.mean(p.stat().st_size for p in pictures) / 1e6:.1f} MB; render processes "
              f"{os.environ.get('SNAPASSET_RENDER_PROCESSES') or f'one per core ({os.cpu_count()})'}")
        print(f"pipeline (POST -> done event, HTTP + queue + worker): median {p * 1000:7.1f} ms")
        print(f"floor (decode + crop + resize + encode + write):       median {f * 1000:7.1f} ms")
        print(f"ratio pipeline / floor: {p / f:.2f}  (goals: ≤ 1.0 with one render process per core, "
              f"≤ 1.2 with one)")
    finally:
        stop_processes(*processes)
        logs.close()
        redis.close(save=False)


if __name__ == "__main__":
    stop_on_sigterm()
    main()
