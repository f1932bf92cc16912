"""What every SnapAsset worker adds to RQ's job handling: the terminal events of each job and its
completion webhook (workers/concurrent.py is the worker `snapasset worker` runs).

Terminal events (`done`, `failed`, `cancelled`) are published after RQ has stored the job's
final state, so a client that reacts to them by fetching the job sees that state.
"""

from __future__ import annotations

import logging

from rq.job import Job
from rq.serializers import JSONSerializer

from snapasset import jobrecord, webhooks
from snapasset.jobs import JOB_FUNCTION, open_queue, open_webhook_queue
from snapasset.rqcompat import is_stopped, job_result, mark_stopped
from workers.bootstrap import WorkerContext, current_context
from workers.pipeline import discard_outputs
from workers.webhooks import enqueue_webhook

__all__ = ["TerminalEventsMixin", "build_worker"]

log = logging.getLogger(__name__)


class TerminalEventsMixin:
    """Publishes each job's terminal event once RQ has persisted the outcome."""

    def handle_job_success(self, job: Job, queue, started_job_registry, execution):
        super().handle_job_success(job, queue, started_job_registry, execution)
        if job.func_name != JOB_FUNCTION:   # e.g. a webhook delivery
            return
        result = job_result(job)
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
            self._publish(job, jobrecord.Cancelled())
            return
        error = jobrecord.stored_error(job) or jobrecord.LOST_ERROR
        event_id = self._publish(job, jobrecord.Failed(error=error, willRetry=will_retry,
                                                       attemptsMade=jobrecord.state_of(job).get("attempt", 1),
                                                       retryIn=delay))
        if not will_retry:
            self._notify(job, webhooks.EVENT_FAILED, event_id, error=error)

    def _publish(self, job: Job, event: jobrecord.Event) -> str | None:
        ctx: WorkerContext = current_context()
        try:
            return jobrecord.publish(ctx.redis.client, job.id, jobrecord.owner_of(job), event,
                                     ttl=ctx.settings.job_ttl)
        except Exception:   # the job's state is already stored; a lost event must not undo it
            log.exception("could not publish %s for job %s", event.type, job.id)
            return None

    def _notify(self, job: Job, event_type: str, event_id: str | None, **body) -> None:
        """Queue the completion webhook; its delivery is retried on its own and never touches the job."""
        url = (job.args[0] if job.args else {}).get("webhookUrl")
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
    """A worker of `worker_class` (one with TerminalEventsMixin) on the generation and webhook queues."""
    conn = ctx.redis.client
    queues = [open_queue(conn, ctx.settings), open_webhook_queue(conn, ctx.settings)]
    return worker_class(queues, connection=conn, serializer=JSONSerializer, **kwargs)

