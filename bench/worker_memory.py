"""Peak memory of a worker with many large pictures in flight (issue 11: bounded memory).

    python bench/worker_memory.py [--jobs 64] [--size 3840x2160] [--latency 2] [--render-processes 2]

One worker started as the Procfile starts it (SNAPASSET_WORKER_CONCURRENCY 64, the default,
SNAPASSET_RENDER_PROCESSES=2 as the README advises for a 512 MB dyno, SNAPASSET_WORKER_MEMORY_MB
unset: its default), and 64 jobs submitted at once whose model answers, after a fixed latency,
each with a different photo-like PNG of 3840×2160 (the largest gpt-image-2 size) — drawn before
anything is timed (bench/providers.py). Printed: the worker's peak RSS summed over all its
processes (and PSS, which counts pages shared between them once), sampled every 50 ms, the
makespan, and whether every job completed; and, where the bench may make a memory cgroup of its
own (root; cgroup v2, or v1's memory hierarchy), that cgroup's anonymous + shared memory, each
page once: what a container's memory limit charges. Goal: ≤ 512 MB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.providers import StreamingImagesServer, photo_pictures  # noqa: E402
from bench.worker_concurrency import Stack, mb, procfile_worker_command, report, run_jobs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--size", default="3840x2160")
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--render-processes", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=0, help="SNAPASSET_WORKER_MEMORY_MB (0: its default)")
    parser.add_argument("--platforms", default="instagram-post,twitter-post")
    parser.add_argument("--stream", action="store_true",
                        help="the real OpenAI provider against a local server that streams each answer as a "
                             "GPT image model does (two full-size partial images, then the picture), at the "
                             "size the provider asks for (--size is ignored)")
    args = parser.parse_args()
    size = tuple(int(side) for side in args.size.split("x"))
    platforms = args.platforms.split(",")
    if args.stream:
        from snapasset.platforms import PLATFORMS
        from snapasset.providers.openai import OpenAIProvider
        size = OpenAIProvider(api_key="sk-bench").choose_size([PLATFORMS[p] for p in platforms])
    pictures = photo_pictures(args.jobs, size)
    server = StreamingImagesServer(pictures, args.latency) if args.stream else None

    with tempfile.TemporaryDirectory(prefix="snapasset-bench-") as tmp:
        stack = Stack(Path(tmp), pictures, size)
        try:
            tuning = {stack.Env.RENDER_PROCESSES: str(args.render_processes)}
            if args.memory_mb:
                tuning[stack.Env.WORKER_MEMORY_MB] = str(args.memory_mb)
            if server is not None:
                tuning.update({stack.Env.PROVIDER: "openai", stack.Env.OPENAI_API_KEY: "sk-bench",
                               stack.Env.OPENAI_BASE_URL: server.base_url})
            env = stack.env_for(f"bench-{uuid.uuid4().hex[:8]}", args.latency, **tuning)
            settings = stack.settings(env)
            print(("streamed by the OpenAI provider, two partial images and the picture each; " if server else "")
                  + f"{args.jobs} jobs × {len(platforms)} platforms, each picture a different {size[0]}×{size[1]} "
                  f"PNG (mean {statistics.mean(p.stat().st_size for p in pictures) / 1e6:.1f} MB), model latency "
                  f"{args.latency:g} s; SNAPASSET_WORKER_CONCURRENCY={settings.worker_concurrency}, "
                  f"SNAPASSET_RENDER_PROCESSES={args.render_processes}, SNAPASSET_WORKER_MEMORY_MB="
                  f"{args.memory_mb or 'default'}")
            result = run_jobs(stack, procfile_worker_command(), env, args.jobs, platforms, timeout=900)
            report("`snapasset worker` (Procfile)", result, args.jobs, args.latency)
            log = (stack.workdir / f"{settings.queue_name}.log").read_text(errors="replace")
            print("".join(f"  worker: {line.strip()}\n" for line in log.splitlines() if "Pictures held" in line), end="")
            print(f"peak RSS, all processes: {mb(result['peak_rss'])} (goal ≤ 512 MB)")
            if result["peak_cgroup"]:
                print(f"peak of its memory cgroup, anonymous + shared memory, each page once: "
                      f"{mb(result['peak_cgroup'])} (what a container's memory limit charges; goal ≤ 512 MB)")
            else:
                print("(no memory cgroup of its own here, as root with cgroup v2 or v1's memory hierarchy: "
                      "RSS + blocks above is the upper bound)")
        finally:
            stack.redis.close(save=False)
            if server is not None:
                server.close()


if __name__ == "__main__":
    from bench.pipeline import stop_on_sigterm
    stop_on_sigterm()
    main()
