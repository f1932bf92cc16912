"""Per-status job indexes, so that lists cost a page whatever the number of stored jobs.

Sorted sets of job ids, scored by the job's creation time in microseconds (newest first is a
reverse range, and the score of a page's last job is its cursor):

* every job of a queue, and of a user (`keys.queue_jobs`, `keys.user_jobs`);
* the jobs in each API status, of the queue and of each user (`keys.queue_status_jobs`,
  `keys.user_status_jobs`);
* the failed jobs of the queue by error code (`keys.queue_error_jobs`).

`file_job` moves a job into its status's sets (and out of the others) on the caller's pipeline,
in the same round trip as the change of status it follows: create, a worker starting it, its
outcome, a cancel, a retry, a requeue. Two changes happen inside RQ where no hook of ours runs:
its scheduler moving a `delayed` job back to `waiting`, and a job's record expiring. So a read
checks each job of its page against the job itself (it fetches them anyway, to describe them):
a job that is gone is dropped from the sets, one whose status moved is filed again where it
belongs, and a `waiting` list also reads the `delayed` set. Each stale entry is paid for once.

Every set expires with the jobs (its TTL is renewed at each write) and is bounded by them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timezone

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

# jobrecord as a module (jobrecord.Status read at call time): jobrecord.forget calls this module
from snapasset import jobrecord, keys
from snapasset.errors import ErrorCode

__all__ = ["score_of", "file_job", "forget_job", "Page", "read_page"]

MICROSECONDS = 1_000_000


def score_of(job: Job) -> int:
    created = job.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return int(created.timestamp() * MICROSECONDS)


def file_job(pipe, queue_name: str, job_id: str, user_id: str, score: int, status: str, *,
             code: str | None = None, ttl: int, new: bool = False) -> None:
    """File the job under `status` (and, when failed, its error `code`) and out of every other
    (`new`: a job filed for the first time is in no other)."""
    for other in () if new else jobrecord.Status.ALL:
        if other != status:
            pipe.zrem(keys.queue_status_jobs(queue_name, other), job_id)
            pipe.zrem(keys.user_status_jobs(user_id, other), job_id)
    failed_code = code if status == jobrecord.Status.FAILED else None
    for other_code in () if new else ErrorCode.JOB_FAILURES:
        if other_code != failed_code:
            pipe.zrem(keys.queue_error_jobs(queue_name, other_code), job_id)
    into = [keys.queue_jobs(queue_name), keys.user_jobs(user_id), keys.queue_status_jobs(queue_name, status),
            keys.user_status_jobs(user_id, status)]
    if failed_code:
        into.append(keys.queue_error_jobs(queue_name, failed_code))
    for key in into:
        pipe.zadd(key, {job_id: score})
        pipe.expire(key, ttl)


def forget_job(pipe, queue_name: str, job_id: str, user_id: str | None) -> None:
    """Take the job out of every set (it was removed)."""
    targets = [keys.queue_jobs(queue_name), *(keys.queue_status_jobs(queue_name, s) for s in jobrecord.Status.ALL),
               *(keys.queue_error_jobs(queue_name, c) for c in ErrorCode.JOB_FAILURES)]
    if user_id:
        targets += [keys.user_jobs(user_id), *(keys.user_status_jobs(user_id, s) for s in jobrecord.Status.ALL)]
    for key in targets:
        pipe.zrem(key, job_id)


@dataclass
class Page:
    jobs: list[Job]
    next_cursor: str | None


def read_page(conn: redis.Redis, sources: Iterable[str], *, limit: int, cursor: str | None,
              accept: Callable[[Job], bool], refile: Callable[[Job], None] | None,
              forget: Callable[[str], None]) -> Page:
    """Up to `limit` jobs from the sets `sources`, newest first, after `cursor` (a score).

    `accept(job)` says whether a job belongs in the list as it stands now; one that does not is
    passed to `refile` (its status moved without us); an id whose job is gone to `forget`.
    """
    sources = list(sources)
    upper = f"({int(cursor)}" if cursor else "+inf"
    found: list[Job] = []
    last_score = None
    while True:
        want = limit - len(found) + 1   # one more than the page: whether a next page exists
        with conn.pipeline(transaction=False) as pipe:
            for key in sources:
                pipe.zrevrangebyscore(key, upper, "-inf", start=0, num=want, withscores=True)
            merged = sorted({(m.decode() if isinstance(m, bytes) else m, int(s))
                             for batch in pipe.execute() for m, s in batch}, key=lambda e: -e[1])[:want]
        jobs = Job.fetch_many([job_id for job_id, _ in merged], connection=conn,
                              serializer=JSONSerializer) if merged else []
        for (job_id, score), job in zip(merged, jobs):
            if job is None:
                forget(job_id)
            elif accept(job):
                if len(found) == limit:
                    return Page(found, str(last_score))
                found.append(job)
                last_score = score
            elif refile is not None:
                refile(job)
            upper = f"({score}"
        if len(merged) < want:   # every source is exhausted
            return Page(found, None)
