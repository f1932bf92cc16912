"""What every SnapAsset worker adds to RQ's job handling: the terminal events of each job and its
completion webhook (workers/concurrent.py is the worker `snapasset worker` runs).

Terminal events (`done`, `failed`, `cancelled`) are published after RQ has stored the job's
final state, so a client that reacts to them by fetching the job sees that state. As a job
starts and ends it is filed in the status indexes (snapasset.jobindex), and each outcome is
counted in the shared job metrics (snapasset.metrics), with its end-to-end time.
"""

from __future__ import annotations

import logging
from datetime import timezone

from rq.job import Job
from rq.serializers import JSONSerializer

from snapasset import jobindex, jobrecord, metrics, webhooks
from snapasset.jobrecord import status_of
from snapasset.jobs import JOB_FUNCTION, open_lanes, open_webhook_queue
from snapasset.metrics import Duration, Outcome
from snapasset.providers.base import model_drawing
from snapasset.rqcompat import delete_result, is_stopped, job_result, mark_stopped, move_to_cancelled
from workers.bootstrap import WorkerContext, current_context
from workers.pipeline import discard_outputs
from workers.webhooks import enqueue_webhook

__all__ = ["TerminalEventsMixin", "build_worker"]

log = logging.getLogger(__name__)


class TerminalEventsMixin:
    """Publishes each job's terminal event once RQ has persisted the outcome, and files the job
    in the status indexes as it starts and ends."""

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        super().prepare_job_execution(job, remove_from_intermediate_queue=remove_from_intermediate_queue)
        if job.func_name == JOB_FUNCTION:
            self._record(job, None)

    def handle_job_success(self, job: Job, queue, started_job_registry, execution):
        super().handle_job_success(job, queue, started_job_registry, execution)
        if job.func_name != JOB_FUNCTION:   # e.g. a webhook delivery
            return
        result = job_result(job)
        self._record(job, Outcome.COMPLETED, result=result)
        event_id = self._publish(job, jobrecord.Done(result=result))
        self._notify(job, webhooks.EVENT_COMPLETED, event_id, result=result)

    def handle_job_failure(self, job: Job, queue, started_job_registry=None, exc_string="", execution=None):
        if job.func_name != JOB_FUNCTION:
            return super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                              exc_string=exc_string, execution=execution)
        if jobrecord.is_marked_cancelled(job):
            mark_stopped(self, job.id)       # RQ's own path for a stopped job: STOPPED, never retried
        cancelled = is_stopped(self, job.id)
        will_retry = job.should_retry and not cancelled
        delay = job.get_retry_interval() if will_retry else None
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                   exc_string=exc_string, execution=execution)
        if cancelled:
            ctx = current_context()
            if not jobrecord.is_marked_cancelled(job):    # the work horse was killed mid-way: clean up after it
                discard_outputs(ctx, job.id, job.args[0])
            self._record(job, Outcome.CANCELLED)
            self._publish(job, jobrecord.Cancelled())
            return
        error = jobrecord.stored_error(job) or jobrecord.LOST_ERROR
        self._record(job, Outcome.RETRIED if will_retry else Outcome.FAILED, code=error["code"])
        event_id = self._publish(job, jobrecord.Failed(error=error, willRetry=will_retry,
                                                       attemptsMade=jobrecord.state_of(job).get("attempt", 1),
                                                       retryIn=delay))
        if not will_retry:
            self._notify(job, webhooks.EVENT_FAILED, event_id, error=error)

    def _publish(self, job: Job, event: jobrecord.Event) -> str | None:
        ctx: WorkerContext = current_context()
        try:
            return jobrecord.publish(ctx.redis.client, job.id, jobrecord.owner_of(job), event,
                                     ttl=ctx.settings.job_ttl, replay_window=ctx.settings.events_ttl)
        except Exception:   # the job's state is already stored; a lost event must not undo it
            log.exception("could not publish %s for job %s", event.type, job.id)
            return None

    def _record(self, job: Job, outcome: str | None, *, code: str | None = None, result=None) -> None:
        """In one round trip: file the job under the status RQ just gave it, and count the
        outcome of the attempt (None: it starts) in the shared job metrics — a job that ended for
        good (completed or failed) with its end-to-end time. A completed job's result moves into
        its record and RQ's result stream is deleted (for failures too: the error is in the
        record). A job stopped mid-run moves from RQ's failed registry to its cancelled one, so
        that each registry's size is its count."""
        ctx: WorkerContext = current_context()
        settings = ctx.settings
        produced = result if isinstance(result, dict) else {}   # a failed attempt has no result: the job's choice
        chosen = (jobrecord.data_of(job).get("options") or {}).get("model")
        labels = {"provider": produced.get("provider") or ctx.provider.name,
                  "model": produced.get("model") or model_drawing(ctx.provider, chosen)}
        try:
            with ctx.redis.client.pipeline(transaction=False) as pipe:
                jobindex.file_job(pipe, settings.queue_name, job.id, jobrecord.owner_of(job), jobindex.score_of(job),
                                  status_of(job), code=code, ttl=settings.job_ttl)
                if outcome == Outcome.COMPLETED:
                    jobrecord.record_result(job, result)
                    jobrecord.save_state(job, pipe)
                if outcome is not None:
                    delete_result(job, pipe)
                    metrics.count_outcome(pipe, settings.queue_name, outcome, code=code, **labels)
                if outcome == Outcome.CANCELLED:
                    move_to_cancelled(job, pipe, ttl=job.failure_ttl or settings.job_ttl)
                if outcome in (Outcome.COMPLETED, Outcome.FAILED) and job.created_at and job.ended_at:
                    created, ended = (moment.replace(tzinfo=moment.tzinfo or timezone.utc)
                                      for moment in (job.created_at, job.ended_at))
                    metrics.observe(pipe, settings.queue_name, Duration.END_TO_END,
                                    (ended - created).total_seconds(), **labels)
                pipe.execute()
        except Exception:   # the job's state is stored; its index is repaired by the next read
            log.exception("could not record the %s of job %s", outcome or "start", job.id)

    def _notify(self, job: Job, event_type: str, event_id: str | None, **body) -> None:
        """Queue the completion webhook; its delivery is retried on its own and never touches the job."""
        url = jobrecord.data_of(job).get("webhookUrl")
        if not url:
            return
        ctx: WorkerContext = current_context()
        try:
            payload = webhooks.build_event(event_type, job.id, **body)
            # one id per outcome: stable across delivery retries, new if the job is retried and ends again
            msg_id = webhooks.message_id(f"{job.id}:{event_id or jobrecord.state_of(job).get('attempt')}", event_type)
            enqueue_webhook(open_webhook_queue(ctx.redis.client, ctx.settings), url, payload, msg_id)
        except Exception:
            log.exception("could not queue the %s webhook of job %s", event_type, job.id)


def build_worker(ctx: WorkerContext, worker_class, **kwargs):
    """A worker of `worker_class` (one with TerminalEventsMixin) on the generation lanes, in the
    order it takes from them (high, normal, low), then the webhook queue."""
    conn = ctx.redis.client
    queues = [*open_lanes(conn, ctx.settings), open_webhook_queue(conn, ctx.settings)]
    return worker_class(queues, connection=conn, serializer=JSONSerializer, **kwargs)

