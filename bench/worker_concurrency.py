"""How many generations one worker dyno keeps in flight, and what it costs in memory.

    python bench/worker_concurrency.py [--jobs 64] [--latency 2] [--platforms instagram-post,twitter-post]

Starts its own embedded Redis (nothing to install). The image model is a provider with a fixed
latency that answers every job with a different photo-like 1536×1024 PNG of ~3 MB, as a model
does (`bench.providers.fixed_latency`, loaded by the worker through
SNAPASSET_PROVIDER=bench.providers:fixed_latency; the pictures are drawn before any timing).

1. One worker started exactly as the Procfile's worker line starts it; once it is up, the jobs
   are submitted at once. Printed: makespan (submission → last job ended), effective
   concurrency (jobs × latency / makespan), jobs per minute, peak RSS of the worker and all
   its processes (and their PSS, which counts shared pages once, as the kernel does).
2. The same jobs on a plain `rq worker` (RQ's CLI, the forking Worker), same run, same Redis.
3. Render throughput, with an instant model: platform images per second through the worker,
   against the number of cores; and the render pool alone: what the worker ships (RenderPool:
   one decode per job, its platforms spread over idle render processes through shared memory,
   the whole job in one task while they are all busy) against the whole job in one task
   (InlineRenderer in a pool process).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.providers import MAX_SIZE_ENV, PICTURES_ENV, SOURCE_SIZE, photo_pictures  # noqa: E402
from snapasset.processes import stop_processes  # noqa: E402


# --------------------------------------------------------------------------- measuring

SHARED_MEMORY = Path("/dev/shm")


class MemoryCgroup:
    """A memory cgroup of our own for the worker and every process it starts, when this machine
    lets us make one (root, cgroup v2 with the memory controller, or v1's memory hierarchy):
    what a container's or a dyno's memory limit charges, each page once. Sampled: anonymous
    memory plus shared memory (the /dev/shm blocks), the part the kernel cannot reclaim; the
    page cache (the bench's pictures read from disk, images written to the local media folder)
    is left out, as reclaimable and absent where pictures come over the network."""

    _ANON = {"v2": "anon", "v1": "total_rss"}
    _SHMEM = {"v2": "shmem", "v1": "total_shmem"}

    def __init__(self, path: Path, version: str):
        self.path, self.version = path, version

    @classmethod
    def create(cls) -> "MemoryCgroup | None":
        name = f"snapasset-bench-{os.getpid()}"
        for root, version in ((Path("/sys/fs/cgroup"), "v2"), (Path("/sys/fs/cgroup/memory"), "v1")):
            controllers = root / "cgroup.controllers"
            if version == "v2" and not (controllers.is_file() and "memory" in controllers.read_text().split()):
                continue
            if version == "v1" and not (root / "memory.stat").is_file():
                continue
            try:
                (root / name).mkdir()
            except OSError:
                return None
            if not (root / name / "memory.stat").is_file():   # v2 without memory in the parent's subtree_control
                (root / name).rmdir()
                return None
            return cls(root / name, version)
        return None

    def join(self) -> None:
        """Move the calling process in (a Popen preexec_fn: before the worker runs anything)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def unreclaimable(self) -> int:
        stat = dict(line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        return int(stat[self._ANON[self.version]]) + int(stat[self._SHMEM[self.version]])

    def remove(self) -> None:
        for _ in range(50):   # the last processes' exit is accounted a moment after they are reaped
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def shared_blocks() -> dict[str, int]:
    """Python's shared memory blocks (psm_*) on this machine, and the memory each holds."""
    blocks = {}
    for path in SHARED_MEMORY.glob("psm_*"):
        try:
            blocks[path.name] = path.stat().st_blocks * 512
        except FileNotFoundError:
            pass
    return blocks


class MemoryProbe(threading.Thread):
    """Peak RSS (and PSS) of a process and all its descendants, sampled every 50 ms; and the
    shared memory blocks that appeared meanwhile (the worker hands pictures and decoded pixels
    to its render processes in them: a block no process maps is in no process's RSS, so
    `peak_total` is the peak of RSS + blocks, an upper bound: a mapped block counts twice)."""

    def __init__(self, pid: int, cgroup: MemoryCgroup | None = None):
        super().__init__(daemon=True)
        import psutil
        self.root = psutil.Process(pid)
        self.cgroup = cgroup
        self.peak_cgroup = 0   # the worker's cgroup: anonymous + shared memory, each page once
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0
        self.peak_main = 0          # the worker's own process (the job threads), apart from its children
        self.peak_shared = self.peak_total = 0
        self._before = set(shared_blocks()) if SHARED_MEMORY.is_dir() else set()
        self._done = threading.Event()

    def run(self):
        import psutil
        tick = 0
        while not self._done.wait(0.05):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = pss = 0
            for proc in procs:
                try:
                    rss += proc.memory_info().rss
                    if tick % 10 == 0:
                        pss += proc.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak_rss = max(self.peak_rss, rss)
            shared = sum(size for name, size in shared_blocks().items() if name not in self._before)
            self.peak_shared = max(self.peak_shared, shared)
            self.peak_total = max(self.peak_total, rss + shared)
            try:
                self.peak_main = max(self.peak_main, self.root.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
            self.peak_pss = max(self.peak_pss, pss)
            if self.cgroup is not None:
                self.peak_cgroup = max(self.peak_cgroup, self.cgroup.unreclaimable())
            self.peak_processes = max(self.peak_processes, len(procs))
            tick += 1

    def stop(self):
        self._done.set()
        self.join()


def procfile_worker_command() -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("worker:"):
            return shlex.split(line.partition(":")[2])
    raise SystemExit("the Procfile has no worker line")


class Stack:
    """An embedded Redis and the environment worker processes read their settings from."""

    def __init__(self, workdir: Path, pictures: list[Path], size: tuple[int, int] = SOURCE_SIZE):
        from snapasset.config import Env
        from snapasset.connections import start_embedded_redis
        self.redis = start_embedded_redis(workdir / "redis")
        self.conn = self.redis.client
        self.workdir = workdir
        self.Env = Env
        bin_dir = str(Path(sys.executable).parent)
        self.base_env = {k: v for k, v in os.environ.items()
                         if not k.startswith(("SNAPASSET_", "SUPABASE_", "OPENAI_", "REDIS_"))}
        self.base_env.update({"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                              "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
                              Env.REDIS_URL: self.redis.url,
                              Env.PROVIDER: "bench.providers:fixed_latency",
                              PICTURES_ENV: str(pictures[0].parent), MAX_SIZE_ENV: "x".join(map(str, size))})

    def env_for(self, queue: str, latency: float, **extra) -> dict:
        env = dict(self.base_env)
        env.update({self.Env.QUEUE: queue, "BENCH_LATENCY": str(latency),
                    self.Env.MEDIA_DIR: str(self.workdir / queue / "media"),
                    self.Env.DATABASE: str(self.workdir / queue / "snapasset.db"),
                    self.Env.DATA_DIR: str(self.workdir / queue / "data")})
        env.update(extra)
        return env

    def settings(self, env: dict):
        from snapasset.config import Settings
        return Settings.from_env(env)

    def submit(self, settings, count: int, platforms: list[str]) -> tuple[list[str], float]:
        from snapasset.jobs import JobService
        from snapasset.schema import JobRequest
        service = JobService(self.conn, settings)
        request = JobRequest(prompt="A lighthouse on a rocky coast at sunset", platforms=tuple(platforms))
        submitted = time.time()
        # one user per job: the per-user limit of unfinished jobs is not what is measured here
        ids = [service.create(str(uuid.uuid4()), request).job_id for _ in range(count)]
        return ids, submitted


def run_jobs(stack: Stack, command: list[str], env: dict, count: int, platforms: list[str],
             timeout: float) -> dict:
    from rq import Queue, Worker
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer
    settings = stack.settings(env)
    queue = Queue(settings.queue_name, connection=stack.conn, serializer=JSONSerializer)
    log = open(stack.workdir / f"{settings.queue_name}.log", "wb")
    cgroup = MemoryCgroup.create()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=cgroup.join if cgroup else None)
    probe = MemoryProbe(proc.pid, cgroup)
    probe.start()
    try:
        deadline = time.monotonic() + 60
        while not Worker.all(queue=queue):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start: see {log.name}")
            time.sleep(0.05)
        time.sleep(0.5)   # let it settle into its dequeue loop
        ids, submitted = stack.submit(settings, count, platforms)
        deadline = time.monotonic() + timeout
        while queue.finished_job_registry.count + queue.failed_job_registry.count < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"jobs did not finish within {timeout:.0f}s: see {log.name}")
            time.sleep(0.05)
        jobs = Job.fetch_many(ids, connection=stack.conn, serializer=JSONSerializer)
        failed = sum(job.get_status() != JobStatus.FINISHED for job in jobs)
        ended = max(job.ended_at.timestamp() for job in jobs)
    finally:
        probe.stop()
        stop_processes(proc, timeout=30)
        log.close()
        if cgroup is not None:
            cgroup.remove()
    return {"makespan": ended - submitted, "failed": failed, "peak_rss": probe.peak_rss, "peak_main": probe.peak_main,
            "peak_pss": probe.peak_pss, "processes": probe.peak_processes, "peak_shared": probe.peak_shared,
            "peak_total": probe.peak_total, "peak_cgroup": probe.peak_cgroup if cgroup else None}


def mb(value: int) -> str:
    return f"{value / 2**20:.0f} MB"


def report(name: str, result: dict, count: int, latency: float) -> None:
    makespan = result["makespan"]
    print(f"  {name:<34} makespan {makespan:6.1f} s   effective concurrency "
          f"{count * latency / makespan:5.1f}   {count / makespan * 60:6.1f} jobs/min   "
          f"peak RSS {mb(result['peak_rss'])} (PSS {mb(result['peak_pss'])}, "
          f"{result['processes']} processes; main process {mb(result['peak_main'])}; shared memory blocks "
          f"{mb(result['peak_shared'])}, RSS + blocks {mb(result['peak_total'])}"
          + (f"; its memory cgroup, anonymous + shared {mb(result['peak_cgroup'])}" if result["peak_cgroup"] else "")
          + ")"
          + (f"   FAILED {result['failed']}" if result["failed"] else ""))


# --------------------------------------------------------------------------- render pool alone

def _render(renderer, data: bytes, platform_ids: list[str]) -> int:
    from snapasset import imaging
    from snapasset.platforms import get_platform
    with renderer.render_each(data, imaging.probe(data), [get_platform(p) for p in platform_ids], "jpeg") as images:
        return sum(1 for _ in images)


def _render_job(data: bytes, platform_ids: list[str]) -> int:
    """In a pool process: a whole job in one task (decode once, render every platform)."""
    from workers.rendering import InlineRenderer
    return _render(InlineRenderer(), data, platform_ids)


def pool_throughput(processes: int, pictures: list[Path], platform_ids: list[str], shipped: bool) -> float:
    """Images per second of the render processes alone, each job a different picture."""
    from concurrent.futures import ThreadPoolExecutor
    from workers.rendering import RenderPool
    sources = [path.read_bytes() for path in pictures]
    if shipped:
        renderer = RenderPool(processes)
        try:
            _render(renderer, sources[0], platform_ids[:1])
            with ThreadPoolExecutor(len(sources)) as threads:   # every job in flight, as in the worker
                started = time.perf_counter()
                images = sum(threads.map(lambda data: _render(renderer, data, platform_ids), sources))
                return images / (time.perf_counter() - started)
        finally:
            renderer.close()
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_render_job, sources[:processes], [platform_ids[:1]] * processes))
        started = time.perf_counter()
        images = sum(pool.map(_render_job, sources, [platform_ids] * len(sources)))
        return images / (time.perf_counter() - started)


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--platforms", default="instagram-post,twitter-post")
    parser.add_argument("--render-jobs", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="SNAPASSET_WORKER_CONCURRENCY for the worker (default: the setting's default)")
    parser.add_argument("--skip-rq", action="store_true", help="leave out the plain `rq worker` run")
    args = parser.parse_args()
    platforms = args.platforms.split(",")
    from snapasset.platforms import PLATFORMS
    from workers.rendering import render_processes
    cores = render_processes(0)
    pictures = photo_pictures(max(args.jobs, args.render_jobs))

    with tempfile.TemporaryDirectory(prefix="snapasset-bench-") as tmp:
        stack = Stack(Path(tmp), pictures)
        try:
            procfile = procfile_worker_command()
            tuning = {stack.Env.WORKER_CONCURRENCY: str(args.concurrency)} if args.concurrency else {}
            env = stack.env_for(f"bench-{uuid.uuid4().hex[:8]}", args.latency, **tuning)
            settings = stack.settings(env)
            print(f"{args.jobs} jobs × {len(platforms)} platforms ({', '.join(platforms)}), model latency "
                  f"{args.latency:g} s, {cores} cores, SNAPASSET_WORKER_CONCURRENCY={settings.worker_concurrency}")
            print(f"  (serial: {args.jobs * args.latency:.0f} s of model wait)")
            ours = run_jobs(stack, procfile, env, args.jobs, platforms, timeout=600)
            report(f"`{' '.join(procfile)}` (Procfile)", ours, args.jobs, args.latency)

            if not args.skip_rq:
                env = stack.env_for(f"bench-{uuid.uuid4().hex[:8]}", args.latency)
                settings = stack.settings(env)
                rq_cli = [shutil.which("rq", path=env["PATH"]) or "rq", "worker", "--url", stack.redis.url,
                          "--serializer", "rq.serializers.JSONSerializer", settings.queue_name]
                plain = run_jobs(stack, rq_cli, env, args.jobs, platforms,
                                 timeout=args.jobs * (args.latency + 5) + 60)
                report("plain `rq worker` (forking)", plain, args.jobs, args.latency)

            print(f"\nRender throughput, instant model, {cores} cores:")
            all_platforms = list(PLATFORMS)
            env = stack.env_for(f"bench-{uuid.uuid4().hex[:8]}", 0, **tuning)
            instant = run_jobs(stack, procfile, env, args.render_jobs, all_platforms, timeout=600)
            images = args.render_jobs * len(all_platforms)
            print(f"  worker, {args.render_jobs} jobs × {len(all_platforms)} platforms: "
                  f"{images / instant['makespan']:.1f} images/s ({images / instant['makespan'] / cores:.1f} per core), "
                  f"peak RSS {mb(instant['peak_rss'])} (PSS {mb(instant['peak_pss'])})")
            jobs = pictures[:args.render_jobs]
            per_job = pool_throughput(cores, jobs, all_platforms, shipped=False)
            shipped = pool_throughput(cores, jobs, all_platforms, shipped=True)
            one = pool_throughput(1, jobs[:max(4, args.render_jobs // 4)], all_platforms, shipped=False)
            print(f"  render pool alone: shipped (RenderPool, every job in flight) "
                  f"{shipped:.1f} images/s, the whole job in one task {per_job:.1f} images/s; "
                  f"1 process {one:.1f} images/s → {per_job / one:.2f}× on {cores} cores")

        finally:
            stack.redis.close(save=False)

if __name__ == "__main__":
    from bench.pipeline import stop_on_sigterm
    stop_on_sigterm()
    main()
