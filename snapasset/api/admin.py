"""/api/admin: the operators' view across users (SPEC §6 "Operators"): live workers, and every
user's jobs. Admins only (an `admin`-scoped API key or an admin user)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from snapasset.api import presentation
from snapasset.api.common import USER_ID_MAX, USER_ID_PATTERN, json_body, require_admin, services
from snapasset.api.jobs import parse_list_query
from snapasset.errors import ErrorCode, utcnow_iso
from snapasset.jobrecord import Status, iso
from snapasset.live_workers import WorkerInfo, live_workers
from snapasset.queueadmin import RETRY_LIMIT_MAX
from snapasset.schema import invalid

__all__ = ["bp", "worker_json"]

RETRY_FIELDS = {"status", "errorCode", "limit"}
DEFAULT_RETRY_LIMIT = 100

bp = Blueprint("admin", __name__, url_prefix="/api/admin")


@bp.before_request
def admins_only():
    require_admin()


def worker_json(info: WorkerInfo) -> dict:
    return {"name": info.name, "hostname": info.hostname, "pid": info.pid, "state": info.state,
            "concurrency": info.concurrency, "currentJobs": info.current_jobs,
            "lastHeartbeat": iso(info.last_heartbeat), "startedAt": iso(info.started_at),
            "successfulJobs": info.successful_jobs, "failedJobs": info.failed_jobs}


@bp.get("/workers")
def workers():
    svc = services()
    found = live_workers(svc.redis.client, svc.settings.queue_name,
                         default_interval=svc.settings.worker_heartbeat)
    return jsonify({"workers": [worker_json(info) for info in found], "count": len(found),
                    "queue": svc.settings.queue_name, "timestamp": utcnow_iso()})


def _error_code(value, details: dict) -> str | None:
    if value is not None and value not in ErrorCode.JOB_FAILURES:
        details["errorCode"] = f"must be one of {', '.join(ErrorCode.JOB_FAILURES)}"
    return value


@bp.get("/jobs")
def jobs():
    details: dict = {}
    user_id = request.args.get("userId") or None
    if user_id is not None and not USER_ID_PATTERN.fullmatch(user_id):
        details["userId"] = f"must be 1 to {USER_ID_MAX} letters, digits or . _ @ -"
    error_code = _error_code(request.args.get("errorCode") or None, details)
    status, limit, cursor = parse_list_query(details)
    if error_code is not None and status not in (None, Status.FAILED):
        raise invalid({"errorCode": "only failed jobs have one: leave status out or make it failed"})
    jobs, next_cursor = services().queue_admin.list_all(status=status, user_id=user_id, error_code=error_code,
                                                        limit=limit, cursor=cursor)
    return jsonify(presentation.admin_list_body(jobs, status=status, user_id=user_id, error_code=error_code,
                                                next_cursor=next_cursor))


@bp.post("/jobs/retry")
def retry_jobs():
    body = json_body() if request.get_data(cache=True).strip() else {}
    if not isinstance(body, dict):
        raise invalid({"body": "must be a JSON object"}, "The request body must be a JSON object")
    details = {name: "is not a known field" for name in sorted(set(body) - RETRY_FIELDS)}
    if body.get("status", Status.FAILED) != Status.FAILED:
        details["status"] = "only failed jobs are retried in bulk"
    error_code = _error_code(body.get("errorCode"), details)
    limit = body.get("limit", DEFAULT_RETRY_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= RETRY_LIMIT_MAX:
        details["limit"] = f"must be a whole number from 1 to {RETRY_LIMIT_MAX}"
    if details:
        raise invalid(details)
    retried, skipped = services().queue_admin.retry_failed(error_code=error_code, limit=limit)
    return jsonify(presentation.bulk_retry_body(retried, skipped, error_code=error_code, limit=limit))
