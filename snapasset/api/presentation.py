"""How the API shows jobs (SPEC §6 bodies): the wire form of what the job service returns.
Image URLs stay as stored here; blueprints make them absolute for the request's host."""

from __future__ import annotations

from rq.job import Job

from snapasset import jobrecord
from snapasset.estimates import Estimate
from snapasset.jobrecord import Status, iso, status_of
from snapasset.errors import utcnow_iso
from snapasset.jobs import Created

__all__ = ["describe", "created_body", "list_item", "list_body", "admin_list_body", "bulk_retry_body",
           "retried_body", "cancelled_body"]


def describe(job: Job, *, queue_position: int | None = None, webhook: dict | None = None) -> dict:
    """GET /api/jobs/:id body; `queue_position` for a waiting job, `webhook` (its delivery
    state) for a job with a webhookUrl."""
    state = jobrecord.state_of(job)
    status = status_of(job)
    body = {
        "jobId": job.id,
        "status": status,
        "progress": state.get("progress", 0),
        "stage": jobrecord.stage_of(job, status),
        "data": jobrecord.data_of(job),
        "logs": state.get("logs", []),
        "attemptsMade": state.get("attempt", 0),
        "createdAt": iso(job.created_at),
        "processedAt": state.get("processedAt"),
    }
    if queue_position is not None:
        body["queuePosition"] = queue_position
    if status in Status.ENDED:
        body["finishedAt"] = iso(job.ended_at)
    if status == Status.COMPLETED:
        body["result"] = jobrecord.result_of(job)
    error = jobrecord.failure_of(job) or state.get("error")
    if error and status in (Status.FAILED, Status.DELAYED):   # delayed: why the last attempt failed
        body["error"] = error
        body["failedReason"] = error["message"]
    if webhook is not None:
        body["webhook"] = webhook
    return body


def created_body(created: Created, *, estimate: Estimate) -> dict:
    """POST /api/jobs body (before the blueprint adds absolute and stream URLs)."""
    return {"jobId": created.job_id, "status": created.status,
            "message": "Job created successfully",
            "estimatedTime": estimate.text, "estimatedSeconds": estimate.seconds,
            "statusUrl": f"/api/jobs/{created.job_id}"}


def list_item(job: Job) -> dict:
    return {"jobId": job.id, "status": status_of(job), "progress": jobrecord.state_of(job).get("progress", 0),
            "createdAt": iso(job.created_at)}


def list_body(jobs: list[Job], *, status: str | None, next_cursor: str | None) -> dict:
    """GET /api/jobs body."""
    found = [list_item(job) for job in jobs]
    return {"jobs": found, "count": len(found), "status": status, "nextCursor": next_cursor}


def admin_list_body(jobs: list[Job], *, status: str | None, user_id: str | None, error_code: str | None,
                    next_cursor: str | None) -> dict:
    """GET /api/admin/jobs body: list items with their owner and, when failed, their error."""
    found = []
    for job in jobs:
        item = {**list_item(job), "userId": jobrecord.owner_of(job)}
        failure = jobrecord.failure_of(job)
        if failure is not None:
            item["error"] = failure
        found.append(item)
    return {"jobs": found, "count": len(found), "status": Status.FAILED if error_code else status,
            "userId": user_id, "errorCode": error_code, "nextCursor": next_cursor}


def bulk_retry_body(retried: list[str], skipped: int, *, error_code: str | None, limit: int) -> dict:
    """POST /api/admin/jobs/retry body."""
    return {"retried": len(retried), "jobIds": retried, "skipped": skipped, "status": Status.FAILED,
            "errorCode": error_code, "limit": limit, "timestamp": utcnow_iso()}


def retried_body(job_id: str) -> dict:
    return {"jobId": job_id, "status": "retrying", "message": "Job has been queued for retry"}


def cancelled_body(job_id: str) -> dict:
    return {"jobId": job_id, "status": "cancelled", "message": "Job cancelled successfully"}
