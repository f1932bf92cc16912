"""Prometheus metrics: GET /metrics, the per-request counters behind it and the queue gauges
read at each scrape.

/metrics joins three sources: the job metrics workers keep in Redis (snapasset.metrics: the
same totals from every web process), the queue's counts read from Redis at the scrape, and this
dyno's HTTP metrics — summed over gunicorn's worker processes through prometheus_client's
multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (snapasset.gunicorn_config sets it up),
else this process's own.

/metrics is unauthenticated by default, as Prometheus scrapers expect on a private network; it
shows only aggregate counts (no user data, no job content). A deployment whose web port is public
(Heroku, say) sets SNAPASSET_METRICS_TOKEN (Settings.metrics_token) and scrapes with that bearer
token.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest,
                               multiprocess)
from prometheus_client.core import GaugeMetricFamily

from snapasset.api.common import EXTENSION as SERVICES, services
from snapasset.api.health import live_worker_count
from snapasset.auth import unauthorized
from snapasset.config import Env
from snapasset.jobrecord import Status
from snapasset.metrics import JobMetricsCollector

__all__ = ["bp", "MetricsState"]

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

EXTENSION = "snapasset.metrics"
UNMATCHED = "<unmatched>"
EVENT_STREAM = "text/event-stream"


@dataclass
class MetricsState:
    """Per-app metrics, kept in app.extensions[EXTENSION]."""
    registry: CollectorRegistry     # this process's metrics and the Redis collectors
    shared: list                    # the Redis collectors, for a multiprocess scrape's registry
    requests: Counter
    latency: Histogram
    streams: Gauge


def _state() -> MetricsState:
    return current_app.extensions[EXTENSION]


class QueueCollector:
    """Reads the queue and its workers from Redis at each scrape."""

    def __init__(self, app):
        self.app = app

    @staticmethod
    def _families():
        return (GaugeMetricFamily("snapasset_queue_jobs", "Jobs on the queue by status", labels=["queue", "status"]),
                GaugeMetricFamily("snapasset_queue_paused", "1 while the queue is paused", labels=["queue"]),
                GaugeMetricFamily("snapasset_workers", "Live RQ workers listening on the queue", labels=["queue"]),
                GaugeMetricFamily("snapasset_redis_up", "1 when Redis answered this scrape"))

    def describe(self):
        """Names only, so registering the collector does not reach Redis."""
        return list(self._families())

    def collect(self):
        svc = self.app.extensions[SERVICES]
        conn, settings = svc.redis.client, svc.settings
        jobs, paused, workers, up = self._families()
        try:
            # the same counts as GET /api/queue/stats (a job stopped mid-run counts as cancelled)
            stats = svc.queue_admin.stats()
            for status in Status.ALL:
                jobs.add_metric([settings.queue_name, status], stats[status])
            paused.add_metric([settings.queue_name], 1 if stats.get("paused") else 0)
            workers.add_metric([settings.queue_name], live_worker_count(conn, settings))
            up.add_metric([], 1)
        except Exception as exc:   # a scrape must still answer when Redis is down
            log.warning("metrics: could not read the queue: %s", exc)
            up.add_metric([], 0)
            return [up]
        return [jobs, paused, workers, up]


def _new_state(app) -> MetricsState:
    registry = CollectorRegistry(auto_describe=True)
    settings = app.extensions[SERVICES].settings
    shared = [QueueCollector(app),
              JobMetricsCollector(lambda: app.extensions[SERVICES].redis.client, settings.queue_name)]
    state = MetricsState(
        registry=registry, shared=shared,
        requests=Counter("snapasset_http_requests", "HTTP requests answered",
                         ["method", "endpoint", "status"], registry=registry),
        latency=Histogram("snapasset_http_request_duration_seconds",
                          "Time to answer (to the first byte for streams)", ["method", "endpoint"],
                          registry=registry,
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)),
        streams=Gauge("snapasset_sse_connections", "Server-Sent Event streams open",
                      ["endpoint"], registry=registry, multiprocess_mode="livesum"),
    )
    for collector in shared:
        registry.register(collector)
    return state


def _scrape_registry(state: MetricsState) -> CollectorRegistry:
    """What one scrape shows. In multiprocess mode this process's registry holds only its own
    HTTP samples; the files of every worker process of the dyno are read instead."""
    if not os.environ.get(Env.PROMETHEUS_MULTIPROC_DIR):
        return state.registry
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in state.shared:
        registry.register(collector)
    return registry


@bp.record_once
def _install(setup_state) -> None:
    app = setup_state.app
    app.extensions[EXTENSION] = _new_state(app)


@bp.before_app_request
def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


@bp.after_app_request
def _count_request(response):
    # the route's template, never the raw path: ids must not become label values
    endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    state = _state()
    state.requests.labels(request.method, endpoint, str(response.status_code)).inc()
    started = g.get("metrics_started")
    if started is not None:   # absent when an earlier before_request hook answered first
        state.latency.labels(request.method, endpoint).observe(time.perf_counter() - started)
    if response.mimetype == EVENT_STREAM and response.status_code == 200:
        # open until the server closes the response: the stream ended or the client went away
        gauge = state.streams.labels(endpoint)
        gauge.inc()
        response.call_on_close(gauge.dec)
    return response


@bp.get("/metrics")
def metrics():
    expected = services().settings.metrics_token
    if expected:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise unauthorized("/metrics needs the metrics bearer token")
    return Response(generate_latest(_scrape_registry(_state())), content_type=CONTENT_TYPE_LATEST)
