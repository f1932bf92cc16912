"""Webhook delivery as its own RQ job, so a slow or failing receiver never holds up or fails a
generation: the generation job enqueues it and moves on; RQ retries it with backoff."""

from __future__ import annotations

import logging

from rq import Queue, Retry, get_current_job
from rq.job import Job

from snapasset.config import ConfigError, Env, Settings
from snapasset.jobrecord import WebhookStatus, record_webhook_attempt
from snapasset.webhooks import WebhookDeliveryError, WebhookTargetRefused, deliver, with_absolute_urls

__all__ = ["deliver_webhook", "enqueue_webhook", "RETRY_INTERVALS"]

log = logging.getLogger(__name__)

# 5 s, 30 s, 2 min, 10 min, 30 min: about 43 minutes from the first attempt to the last.
RETRY_INTERVALS = [5, 30, 120, 600, 1800]
DELIVERY_TIMEOUT = 10.0     # seconds for one POST (connect, then read)
JOB_TIMEOUT = 60            # RQ's limit for the whole delivery job
RESULT_TTL = 24 * 3600


def deliver_webhook(url: str, payload: dict, msg_id: str) -> dict:
    """The RQ job: POST one signed event. Raises (so RQ retries) when the receiver did not take it.

    A target refused as a private/metadata address is not retried: the answer would not change.
    Each attempt is recorded on the generation job (`webhook` in GET /api/jobs/:id): pending while
    retries are left, then delivered, failed or refused.
    """
    settings = Settings.from_env()
    job_id = payload.get("jobId")
    current = get_current_job()     # None when called outside RQ (a script): nothing is recorded

    def record(status: str, error: str | None = None) -> None:
        if current is not None:
            record_webhook_attempt(current.connection, job_id, status, error=error, ttl=settings.job_ttl)

    def will_retry() -> bool:
        return current is None or bool(current.retries_left)

    if not settings.webhook_secret:
        # Raised rather than skipped: fixing the environment before the last retry still delivers.
        record(WebhookStatus.PENDING if will_retry() else WebhookStatus.FAILED,
               f"{Env.WEBHOOK_SECRET} is not set on the worker")
        raise ConfigError(f"{Env.WEBHOOK_SECRET} is not set; webhooks cannot be signed")
    try:
        status = deliver(url, with_absolute_urls(payload, settings.public_base_url), secret=settings.webhook_secret,
                         msg_id=msg_id, allow_private=settings.webhook_allow_private, timeout=DELIVERY_TIMEOUT)
    except WebhookTargetRefused as exc:
        log.warning("webhook %s for job %s not sent: %s", msg_id, job_id, exc)
        record(WebhookStatus.REFUSED, str(exc))
        return {"delivered": False, "reason": str(exc)}
    except WebhookDeliveryError as exc:
        record(WebhookStatus.PENDING if will_retry() else WebhookStatus.FAILED, str(exc))
        raise
    record(WebhookStatus.DELIVERED)
    log.info("webhook %s for job %s delivered (%s)", msg_id, job_id, status)
    return {"delivered": True, "status": status}


def enqueue_webhook(queue: Queue, url: str, payload: dict, msg_id: str) -> Job:
    """Put one delivery on ``queue``, retried up to 5 times with growing pauses."""
    return queue.enqueue(
        deliver_webhook, url, payload, msg_id,
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        job_timeout=JOB_TIMEOUT, result_ttl=RESULT_TTL, failure_ttl=7 * 24 * 3600,
        description=f"webhook {payload.get('type')} for {payload.get('jobId')}",
    )
