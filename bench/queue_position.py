"""What `queuePosition` costs (GET /api/jobs/:id of a waiting job), by how deep the job waits.

    python bench/queue_position.py [--waiting 100000] [--ahead 1000] [--repeat 200]

Puts `--waiting` real jobs in the low-priority lane of an embedded Redis (RQ's own enqueue, in
pipelines) behind `--ahead` jobs split between the high and normal lanes, then times
JobService.queue_position (one round trip: LLEN of each lane ahead, LPOS from the head of the
job's own lane) for jobs at several depths, against the baseline of a naive implementation that
reads every lane's whole list (LRANGE 0 -1) in order and finds the id. Prints the medians and
the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rq.job import Job  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402

from snapasset.config import Settings  # noqa: E402
from snapasset.connections import start_embedded_redis  # noqa: E402
from snapasset.jobs import JOB_FUNCTION, JobService  # noqa: E402
from snapasset.schema import Priority  # noqa: E402


def _median_ms(call, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--ahead", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        redis = start_embedded_redis(Path(tmp))
        try:
            conn = redis.client
            service = JobService(conn, Settings(queue_name=f"bench-{uuid.uuid4().hex[:8]}"))
            lanes = dict(zip(Priority.ORDER, service.lanes))
            high, normal = args.ahead // 2, args.ahead - args.ahead // 2
            filled = {Priority.HIGH: [f"gen-1-high{index:012d}" for index in range(high)],
                      Priority.NORMAL: [f"gen-1-norm{index:012d}" for index in range(normal)],
                      Priority.LOW: [f"gen-1-bench{index:012d}" for index in range(args.waiting)]}
            for priority, ids in filled.items():
                for start in range(0, len(ids), 5000):
                    with conn.pipeline() as pipe:
                        for job_id in ids[start:start + 5000]:
                            lanes[priority].enqueue(JOB_FUNCTION, {}, job_id=job_id, pipeline=pipe)
                        pipe.execute()
            assert lanes[Priority.LOW].count == args.waiting

            def naive(job_id: str) -> int:
                everything = [i.decode() for lane in service.lanes for i in conn.lrange(lane.key, 0, -1)]
                return everything.index(job_id)

            print(f"{args.waiting:,} jobs waiting in the low lane behind {args.ahead:,} in the lanes ahead; "
                  f"median of {args.repeat} calls")
            print(f"{'position':>10} | {'lanes + LPOS (ms)':>17} | {'whole lists (ms)':>16} | ratio")
            for depth in (0, 10, 1_000, args.waiting // 2, args.waiting - 1):
                job = Job.fetch(filled[Priority.LOW][depth], connection=conn, serializer=JSONSerializer)
                position = args.ahead + depth
                assert service.queue_position(job) == naive(job.id) == position
                fast = _median_ms(lambda: service.queue_position(job), args.repeat)
                slow = _median_ms(lambda: naive(job.id), max(5, args.repeat // 20))
                print(f"{position:>10,} | {fast:>17.3f} | {slow:>16.1f} | {fast / slow:.4f}")
        finally:
            redis.close(save=False)


if __name__ == "__main__":
    from bench.pipeline import stop_on_sigterm
    stop_on_sigterm()
    main()
