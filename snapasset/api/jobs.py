"""/api/jobs: create, read, list, retry and cancel generation jobs."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from snapasset.api import limits, presentation
from snapasset.api.common import (absolute_url, absolutize_result, job_owner, json_body, principal,
                                  require_user, services)
from snapasset.auth import forbidden
from snapasset.jobrecord import Status
from snapasset.schema import Priority, invalid, parse_job_request

__all__ = ["bp", "parse_list_query"]

bp = Blueprint("jobs", __name__, url_prefix="/api/jobs")

IDEMPOTENCY_KEY_MAX = 255


@bp.post("")
def create_job():
    caller = principal()   # who is asking comes before what they ask: a bad token is 401 whatever the body
    request_body = parse_job_request(json_body())
    user_id = require_user(request_body.user_id, caller=caller)
    if request_body.priority == Priority.HIGH and not caller.may_prioritise:
        raise forbidden("High priority needs an API key with the 'priority' scope or an admin")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= IDEMPOTENCY_KEY_MAX):
        raise invalid({"Idempotency-Key": f"must be 1 to {IDEMPOTENCY_KEY_MAX} characters"})
    svc = services()
    created = svc.jobs.create(user_id, request_body, idempotency_key=key,
                              quota=limits.current_limits().job_quota(user_id))
    body = presentation.created_body(created, estimate=svc.jobs.estimate())
    token = svc.auth.mint_stream_token(user_id, body["jobId"])
    body["statusUrl"] = absolute_url(body["statusUrl"])
    body["streamUrl"] = absolute_url(f"/api/sse/jobs/{body['jobId']}?token={token}")
    response = jsonify(body)
    response.status_code = 201 if created.created else 200
    response.headers["Location"] = body["statusUrl"]
    return response


@bp.get("/<job_id>")
def get_job(job_id: str):
    user_id = job_owner()
    jobs = services().jobs
    job = jobs.fetch(job_id, user_id)
    body = presentation.describe(job, queue_position=jobs.queue_position(job))
    if "result" in body:
        body["result"] = absolutize_result(body["result"])
    return jsonify(body)


@bp.get("")
def list_jobs():
    user_id = require_user()
    status, limit, cursor = parse_list_query({})
    jobs, next_cursor = services().jobs.list(user_id, status=status, limit=limit, cursor=cursor)
    return jsonify(presentation.list_body(jobs, status=status, next_cursor=next_cursor))


def parse_list_query(details: dict) -> tuple[str | None, int, str | None]:
    """`status`, `limit` and `cursor` of a job list's query; every problem (with those already in
    `details`) named per field in one 400."""
    status = request.args.get("status") or None
    if status is not None and status not in Status.ALL:
        details["status"] = f"must be one of {', '.join(Status.ALL)}"
    raw_limit = request.args.get("limit", "20")
    limit = 20
    try:
        limit = int(raw_limit)
        if not 1 <= limit <= 100:
            raise ValueError
    except ValueError:
        details["limit"] = "must be a whole number from 1 to 100"
    cursor = request.args.get("cursor") or None
    if cursor is not None and not cursor.isdigit():
        details["cursor"] = "is not a cursor this API handed out"
    if details:
        raise invalid(details)
    return status, limit, cursor


@bp.post("/<job_id>/retry")
def retry_job(job_id: str):
    body = request.get_json(silent=True) if request.get_data(cache=True).strip() else None
    user_id = job_owner(body.get("userId") if isinstance(body, dict) else None)
    services().jobs.retry(job_id, user_id)
    return jsonify(presentation.retried_body(job_id))


@bp.delete("/<job_id>/cancel")
def cancel_job(job_id: str):
    user_id = job_owner()
    services().jobs.cancel(job_id, user_id)
    return jsonify(presentation.cancelled_body(job_id))
