"""The concurrent worker (workers/concurrent.py) as real processes on a real Redis: many slow jobs
in flight at once on one worker, a timeout or a cancel that hits only its own job, shutdown that
loses nothing, several workers sharing one queue, recovery from a killed worker, queue pause."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime

import pytest
from rq import Queue, Worker
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.suspension import resume, suspend

from snapasset import keys
from snapasset.config import Env
from snapasset.jobs import JobService
from snapasset.schema import JobRequest
from tests.conftest import job_history, ROOT, settings_env, wait_for
from workers.pipeline import generation_id_for

pytestmark = pytest.mark.timeout(60)

PLATFORMS = ("instagram-post",)


def enqueue(settings, conn, count: int, *, platforms=PLATFORMS) -> list[str]:
    service = JobService(conn, settings)   # a user per job: the per-user limit of unfinished jobs is not tested here
    return [service.create(str(uuid.uuid4()), JobRequest(prompt=f"A lighthouse on a cliff at dusk, take {i}",
                                            platforms=tuple(platforms))).job_id
            for i in range(count)]


def fetch(conn, job_id: str) -> Job:
    return Job.fetch(job_id, connection=conn, serializer=JSONSerializer)


def statuses(conn, job_ids) -> list[JobStatus]:
    return [fetch(conn, job_id).get_status() for job_id in job_ids]


def all_in(conn, job_ids, *wanted: JobStatus) -> bool:
    return all(status in wanted for status in statuses(conn, job_ids))


def event_types(conn, job_id: str) -> list[str]:
    return [event["type"] for _, event in job_history(conn, job_id)]


def worker_env(**env) -> dict:
    return {name: str(value) for name, value in env.items()}


def started_at(job: Job) -> datetime:
    return datetime.fromisoformat(job.meta["processedAt"].replace("Z", "+00:00"))


@pytest.fixture
def conn(redis_handle):
    return redis_handle.client


@pytest.fixture
def tuned_worker(settings, tmp_path):
    """A worker process like `snapasset worker`, with ConcurrentWorker options a test needs to be
    short (a grace period of a second, heartbeats that expire in seconds)."""
    started = []

    def start(options: dict, extra_env: dict | None = None) -> subprocess.Popen:
        code = ("from snapasset.config import Settings; from workers.concurrent import run_concurrent_worker as run; "
                f"run(Settings.from_env(), **{options!r})")
        log = open(tmp_path / f"tuned-worker-{len(started)}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-c", code], env={**settings_env(settings), **(extra_env or {})},
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append((proc, log))
        return proc

    yield start
    for proc, log in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_many_slow_jobs_overlap_on_one_worker(settings, conn, worker_process):
    latency, count = 1.5, 8
    job_ids = enqueue(settings, conn, count)
    worker_process(worker_env(**{Env.LOCAL_LATENCY: latency, Env.WORKER_CONCURRENCY: 16}))
    wait_for(lambda: all_in(conn, job_ids, JobStatus.STARTED), timeout=20)
    # RQ sees every one of them: started registry, the worker's executions (what `rq info` shows)
    queue = Queue(settings.queue_name, connection=conn, serializer=JSONSerializer)
    assert set(queue.started_job_registry.get_job_ids()) == set(job_ids)
    [worker] = Worker.all(queue=queue)
    assert {execution.job_id for execution in worker.get_current_executions()} == set(job_ids)
    assert worker.get_state() == "busy"
    wait_for(lambda: all_in(conn, job_ids, JobStatus.FINISHED), timeout=40)

    jobs = [fetch(conn, job_id) for job_id in job_ids]
    first_start = min(started_at(job) for job in jobs)
    last_end = max(job.ended_at for job in jobs)
    makespan = (last_end - first_start).total_seconds()
    # serial would take 12 s; the 8 renders share 2 cores with whatever else runs (CI, other suites)
    assert makespan < count * latency * 2 / 3, makespan
    assert max(started_at(job) for job in jobs) < min(job.ended_at for job in jobs)   # all in flight at once
    assert {job.worker_name for job in jobs} and len({job.worker_name for job in jobs}) == 1
    for job in jobs:
        assert job.meta["result"]["images"][0]["width"] == 1080
        assert event_types(conn, job.id)[-1] == "done"


def test_a_timeout_hits_only_its_own_job(settings, conn, worker_process):
    job_ids = enqueue(settings, conn, 4)
    slowpoke = fetch(conn, job_ids[0])
    slowpoke.timeout, slowpoke.retries_left = 1, 0       # the model takes 2.5 s: this one cannot make it
    slowpoke.save()
    worker_process(worker_env(**{Env.LOCAL_LATENCY: 2.5}))
    wait_for(lambda: all_in(conn, job_ids, JobStatus.FINISHED, JobStatus.FAILED), timeout=40)

    assert statuses(conn, job_ids) == [JobStatus.FAILED] + [JobStatus.FINISHED] * 3
    failed = fetch(conn, job_ids[0])
    assert failed.meta["error"]["code"] == "TIMEOUT"
    # stopped at its deadline, while the model was still drawing: not when the model call returned
    assert (failed.ended_at - started_at(failed)).total_seconds() < 2.0
    assert event_types(conn, failed.id)[-1] == "failed"


def test_a_cancel_hits_only_its_own_job(settings, conn, worker_process):
    job_ids = enqueue(settings, conn, 4)
    worker_process(worker_env(**{Env.LOCAL_LATENCY: 3}))
    wait_for(lambda: all_in(conn, job_ids, JobStatus.STARTED), timeout=20)

    target = job_ids[1]
    asked = time.monotonic()
    conn.set(keys.job_cancel(target), 1, ex=600)        # what the cancel API does for an active job
    send_stop_job_command(conn, target, serializer=JSONSerializer)
    wait_for(lambda: fetch(conn, target).get_status() == JobStatus.STOPPED, timeout=10)
    assert time.monotonic() - asked < 1.5               # not after the 3 s model call
    wait_for(lambda: all_in(conn, job_ids, JobStatus.FINISHED, JobStatus.STOPPED), timeout=20)

    assert statuses(conn, job_ids) == [JobStatus.FINISHED, JobStatus.STOPPED, JobStatus.FINISHED,
                                       JobStatus.FINISHED]
    cancelled = fetch(conn, target)
    assert "error" not in cancelled.meta
    assert event_types(conn, target)[-1] == "cancelled"
    assert not list(settings.media_dir.rglob(f"*{generation_id_for(target)}*"))
    assert list(settings.media_dir.rglob(f"*{generation_id_for(job_ids[0])}*"))


def test_sigterm_lets_running_jobs_finish_and_leaves_the_rest_queued(settings, conn, worker_process):
    job_ids = enqueue(settings, conn, 5)
    proc = worker_process(worker_env(**{Env.LOCAL_LATENCY: 2, Env.WORKER_CONCURRENCY: 2}))
    wait_for(lambda: statuses(conn, job_ids).count(JobStatus.STARTED) == 2, timeout=20)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0

    assert sorted(statuses(conn, job_ids)) == sorted([JobStatus.FINISHED] * 2 + [JobStatus.QUEUED] * 3)
    worker_process(worker_env(**{Env.LOCAL_LATENCY: 0.2}))
    wait_for(lambda: all_in(conn, job_ids, JobStatus.FINISHED), timeout=30)
    assert all(fetch(conn, job_id).meta["attempt"] == 1 for job_id in job_ids)


def test_sigterm_after_the_grace_period_requeues_the_running_jobs(settings, conn, tuned_worker, worker_process):
    job_ids = enqueue(settings, conn, 4)
    proc = tuned_worker({"shutdown_grace": 1},
                        worker_env(**{Env.LOCAL_LATENCY: 6, Env.WORKER_CONCURRENCY: 2}))
    wait_for(lambda: statuses(conn, job_ids).count(JobStatus.STARTED) == 2, timeout=20)
    running = [job_id for job_id, status in zip(job_ids, statuses(conn, job_ids)) if status == JobStatus.STARTED]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0

    assert all_in(conn, job_ids, JobStatus.QUEUED)           # nothing lost, nothing failed
    assert not conn.zcard(f"rq:wip:{settings.queue_name}")
    for job_id in running:
        job = fetch(conn, job_id)
        assert job.meta["attempt"] == 0 and "error" not in job.meta
        assert "queued again" in job.meta["logs"][-1]
    worker_process(worker_env(**{Env.LOCAL_LATENCY: 0.2}))
    wait_for(lambda: all_in(conn, job_ids, JobStatus.FINISHED), timeout=30)
    assert all(fetch(conn, job_id).meta["attempt"] == 1 for job_id in job_ids)


def test_two_workers_share_the_queue_and_never_run_a_job_twice(settings, conn, worker_process):
    env = worker_env(**{Env.LOCAL_LATENCY: 0.3, Env.WORKER_CONCURRENCY: 4})
    worker_process(env)
    worker_process(env)
    queue = Queue(settings.queue_name, connection=conn, serializer=JSONSerializer)
    # both listening first: one that started seconds after the other could find the work all done
    wait_for(lambda: len(Worker.all(queue=queue)) == 2, timeout=60, interval=0.1)
    job_ids = enqueue(settings, conn, 24)
    wait_for(lambda: all_in(conn, job_ids, JobStatus.FINISHED), timeout=40)

    jobs = [fetch(conn, job_id) for job_id in job_ids]
    # one execution each: the two workers succeeded 24 times in all
    assert sum(worker.successful_job_count for worker in Worker.all(queue=queue)) == len(job_ids)
    assert all(job.meta["attempt"] == 1 for job in jobs)
    assert len({job.worker_name for job in jobs}) == 2       # both took a share


def test_jobs_of_a_killed_worker_are_recovered(settings, conn, tuned_worker, worker_process):
    settings = settings.replace(retry_backoff=0)               # retry at once: no wait for a scheduler lock
    job_ids = enqueue(settings, conn, 3)
    victim = tuned_worker({"heartbeat_grace": 1, "job_monitoring_interval": 1},
                          worker_env(**{Env.LOCAL_LATENCY: 30}))
    wait_for(lambda: all_in(conn, job_ids, JobStatus.STARTED), timeout=20)
    # each attempt under way (recorded), not merely handed to the worker
    wait_for(lambda: all(fetch(conn, job_id).meta.get("attempt") == 1 for job_id in job_ids), timeout=20)
    os.killpg(victim.pid, signal.SIGKILL)                      # the dyno is gone: worker, pool, all
    victim.wait()
    time.sleep(3)                                              # its executions' heartbeats expire

    worker_process(worker_env(**{Env.LOCAL_LATENCY: 0.2}))     # its startup maintenance finds them
    wait_for(lambda: all_in(conn, job_ids, JobStatus.FINISHED), timeout=30)
    for job_id in job_ids:
        job = fetch(conn, job_id)
        assert job.meta["attempt"] == 2
        lost = [event for _, event in job_history(conn, job_id) if event["type"] == "failed"]
        assert lost and lost[0]["error"]["code"] == "WORKER_LOST" and lost[0]["willRetry"]


def test_a_suspended_queue_takes_no_new_jobs_but_finishes_running_ones(settings, conn, worker_process):
    first = enqueue(settings, conn, 2)
    worker_process(worker_env(**{Env.LOCAL_LATENCY: 2}))
    wait_for(lambda: all_in(conn, first, JobStatus.STARTED), timeout=20)
    suspend(conn)
    try:
        later = enqueue(settings, conn, 2)
        wait_for(lambda: all_in(conn, first, JobStatus.FINISHED), timeout=20)
        time.sleep(1.5)
        assert all_in(conn, later, JobStatus.QUEUED)
    finally:
        resume(conn)
    wait_for(lambda: all_in(conn, later, JobStatus.FINISHED), timeout=20)


def test_every_job_is_taken_through_its_intermediate_queue(settings, conn, worker_ctx):
    """With two queues (generations, webhooks) RQ would pop with BLPOP, and a job popped by a
    worker that dies before starting it would be lost; ours moves it into the queue's
    intermediate queue first, where RQ's cleanup finds it, and takes it out once it starts."""
    from workers.concurrent import ConcurrentWorker
    from workers.terminal_events import build_worker
    from workers.webhooks import enqueue_webhook
    from snapasset.jobs import open_queue, open_webhook_queue

    worker = build_worker(worker_ctx, ConcurrentWorker, concurrency=2)
    generations, webhooks = open_queue(conn, settings), open_webhook_queue(conn, settings)
    [job_id] = enqueue(settings, conn, 1)
    hook = enqueue_webhook(webhooks, "http://127.0.0.1:9/hook", {"type": "job.completed"}, "msg_1")

    job, queue = worker._pop(worker.queues, timeout=None)
    assert (job.id, queue.name) == (job_id, generations.name)          # generations first
    assert conn.lrange(generations.intermediate_queue_key, 0, -1) == [job_id.encode()]
    job, queue = worker._pop(worker.queues, timeout=None)
    assert (job.id, queue.name) == (hook.id, webhooks.name)
    assert conn.lrange(webhooks.intermediate_queue_key, 0, -1) == [hook.id.encode()]
    assert worker._pop(worker.queues, timeout=None) is None

    worker.prepare_job_execution(fetch(conn, job_id))                  # starting it takes it out
    assert conn.llen(generations.intermediate_queue_key) == 0


def test_model_calls_wait_together_but_their_answers_are_read_as_memory_allows(settings, conn, worker_process):
    """64 model answers arriving within one second were all in memory before the worker counted
    any (1 GB for 3840×2160 pictures on a 512 MB dyno). Now a model call waits holding nothing,
    and its answer is read once the worker's picture budget has room for it: here 6 calls wait
    together, and their answers, announced as 40 MB each, are read one at a time (the budget's
    floor, 64 MB, has room for one)."""
    job_ids = enqueue(settings, conn, 6)
    worker_process(worker_env(**{Env.PROVIDER: "tests.fake_providers:heavy_answers", Env.WORKER_MEMORY_MB: 100,
                                 Env.RENDER_PROCESSES: 1}))
    wait_for(lambda: all_in(conn, job_ids, JobStatus.FINISHED, JobStatus.FAILED), timeout=50)
    assert statuses(conn, job_ids) == [JobStatus.FINISHED] * len(job_ids)
    most = json.loads((settings.data_dir / "most-at-once.json").read_text())
    assert most == {"waiting": len(job_ids), "reading": 1}


def test_a_burst_of_jobs_with_two_shapes_finishes_within_a_small_picture_budget(settings, conn, worker_process):
    """A job with a square and a landscape platform asks the model for two pictures. It used to
    hold its first picture (rendered lazily, at upload) while waiting for room to read its
    second, so a burst of such jobs filled the budget with first pictures and every job waited
    for good (until its 300 s timeout). Now a job renders a picture's platforms before asking for
    its next one, and the renderer gives the picture's memory back once its last platform is
    rendered. Streamed answers (the OpenAI provider with partial images) against the stub, 24
    jobs, the smallest budget (64 MB: two streamed events of a 1536×864 picture at a time)."""
    from tests.stubs.openai_images import OpenAIImagesStub
    stub = OpenAIImagesStub.start()
    try:
        job_ids = enqueue(settings, conn, 24, platforms=("instagram-post", "twitter-post"))
        worker_process(worker_env(**{Env.OPENAI_API_KEY: "test-key", Env.PROVIDER: "openai",
                                     Env.OPENAI_BASE_URL: stub.base_url, Env.IMAGE_MODEL: "gpt-image-2",
                                     Env.WORKER_MEMORY_MB: 100, Env.RENDER_PROCESSES: 1}))
        wait_for(lambda: all_in(conn, job_ids, JobStatus.FINISHED, JobStatus.FAILED), timeout=45)
        assert statuses(conn, job_ids) == [JobStatus.FINISHED] * len(job_ids)
        assert len(stub.generations) == 2 * len(job_ids)          # two shapes: two pictures a job
    finally:
        stub.stop()
