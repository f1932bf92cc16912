"""Job metrics shared through Redis: outcome counters and duration histograms.

Workers produce them and web processes serve them. On Heroku (and most container platforms)
those are separate machines, so prometheus_client's multiprocess mode — files in a folder the
scraped process can read — cannot join them; and a scrape reaches one web process of one dyno
at a time. So a worker adds each observation to two small Redis hashes (a few HINCRBY in one
pipeline it already sends), and every web process reads the same two hashes at a scrape: every
scrape shows the same totals, whichever process answers, and costs two HGETALLs whatever the
number of jobs. The hashes are bounded — one field per label set and bucket, and the labels
are the outcome, the error code, the provider and the model — so they need no TTL.

The HTTP metrics of the web processes stay in prometheus_client (its multiprocess mode sums
gunicorn's worker processes, see snapasset.gunicorn_config).
"""

from __future__ import annotations

import logging
import math

import redis
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from snapasset import keys

__all__ = ["Outcome", "Duration", "count_outcome", "observe", "JobMetricsCollector", "DURATION_BUCKETS"]

log = logging.getLogger(__name__)

# seconds: from a quick local render to a slow model call with retries behind it
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, math.inf)
_SEP = "|"
_SUM = "sum"


class Outcome:
    """How an attempt of a generation ended, as counted in snapasset_jobs_total."""
    COMPLETED = "completed"
    FAILED = "failed"          # for good: no attempt left, or not retryable
    RETRIED = "retried"        # this attempt failed; the job waits for another
    CANCELLED = "cancelled"


class Duration:
    """The job duration histograms: name → help text."""
    QUEUE_WAIT = "queue_wait"
    MODEL = "model"
    RENDER = "render"
    END_TO_END = "end_to_end"
    HELP = {
        QUEUE_WAIT: "Seconds an attempt waited in the queue before a worker started it",
        MODEL: "Seconds the image model took to return the picture",
        RENDER: "Seconds a job waited for its platform renders",
        END_TO_END: "Seconds from a job's creation to its end (completed or failed for good)",
    }


def _label(value: str | None) -> str:
    return (value or "").replace(_SEP, "/")


def count_outcome(pipe, queue_name: str, outcome: str, *, code: str | None, provider: str, model: str) -> None:
    """Count one attempt's outcome on `pipe` (a pipeline the caller executes)."""
    field = _SEP.join(map(_label, (outcome, code, provider, model)))
    pipe.hincrby(keys.job_outcomes(queue_name), field, 1)


def observe(pipe, queue_name: str, metric: str, seconds: float, *, provider: str, model: str) -> None:
    """Add one observation of a duration histogram on `pipe`."""
    seconds = max(0.0, seconds)
    bucket = next(le for le in DURATION_BUCKETS if seconds <= le)
    labels = _SEP.join(map(_label, (metric, provider, model)))
    key = keys.job_durations(queue_name)
    pipe.hincrby(key, f"{labels}{_SEP}{bucket}", 1)
    pipe.hincrbyfloat(key, f"{labels}{_SEP}{_SUM}", seconds)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


class JobMetricsCollector:
    """A prometheus_client collector over one queue's two hashes; `connection()` gives the Redis
    client (called at each scrape, so building the collector reaches nothing)."""

    def __init__(self, connection, queue_name: str):
        self.connection = connection
        self.queue_name = queue_name

    @staticmethod
    def _families():
        outcomes = CounterMetricFamily("snapasset_jobs", "Generation attempts by how they ended",
                                       labels=["queue", "outcome", "code", "provider", "model"])
        durations = {name: HistogramMetricFamily(f"snapasset_job_{name}_seconds", text,
                                                 labels=["queue", "provider", "model"])
                     for name, text in Duration.HELP.items()}
        return outcomes, durations

    def describe(self):
        """Names only, so registering the collector does not reach Redis."""
        outcomes, durations = self._families()
        return [outcomes, *durations.values()]

    def collect(self):
        outcomes, durations = self._families()
        try:
            with self.connection().pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.job_outcomes(self.queue_name))
                pipe.hgetall(keys.job_durations(self.queue_name))
                counted, observed = pipe.execute()
        except redis.RedisError as exc:   # the queue collector reports snapasset_redis_up 0
            log.warning("metrics: could not read the job metrics: %s", exc)
            return []
        for field, value in sorted((_text(f), int(v)) for f, v in counted.items()):
            outcomes.add_metric([self.queue_name, *field.split(_SEP)], value)
        series: dict[tuple[str, str, str], dict] = {}
        for field, value in observed.items():
            name, provider, model, part = _text(field).split(_SEP)
            if name not in durations:
                continue
            entry = series.setdefault((name, provider, model), {"buckets": {}, _SUM: 0.0})
            if part == _SUM:
                entry[_SUM] = float(value)
            else:
                entry["buckets"][float(part)] = int(value)
        for (name, provider, model), entry in sorted(series.items()):
            cumulative, buckets = 0, []
            for le in DURATION_BUCKETS:
                cumulative += entry["buckets"].get(le, 0)
                buckets.append(("+Inf" if le == math.inf else repr(le), cumulative))
            durations[name].add_metric([self.queue_name, provider, model], buckets, entry[_SUM])
        return [outcomes, *durations.values()]
