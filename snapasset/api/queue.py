"""/api/queue: queue administration for admins (an `admin`-scoped API key or an admin user)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from snapasset.api.common import json_body, require_admin, services
from snapasset.errors import utcnow_iso
from snapasset.jobrecord import Status
from snapasset.schema import invalid

__all__ = ["bp", "parse_clean_request", "CLEAN_LIMIT_MAX"]

bp = Blueprint("queue", __name__, url_prefix="/api/queue")

CLEAN_FIELDS = {"grace", "status", "limit"}
CLEAN_LIMIT_MAX = 10000
DEFAULT_CLEAN = {"grace": 24 * 3600 * 1000, "status": "completed", "limit": 1000}


@bp.before_request
def admins_only():
    require_admin()


@bp.get("/stats")
def stats():
    return jsonify(services().queue_admin.stats())


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_clean_request(body) -> tuple[int, str, int]:
    """(grace ms, status, limit) from a clean request body; every problem named per field (400)."""
    if not isinstance(body, dict):
        raise invalid({"body": "must be a JSON object"}, "The request body must be a JSON object")
    details = {name: "is not a known field" for name in sorted(set(body) - CLEAN_FIELDS)}
    grace = body.get("grace", DEFAULT_CLEAN["grace"])
    status = body.get("status", DEFAULT_CLEAN["status"])
    limit = body.get("limit", DEFAULT_CLEAN["limit"])
    if not _whole(grace) or grace < 0:
        details["grace"] = "must be a whole number of milliseconds, 0 or more"
    if status not in Status.CLEANABLE:
        details["status"] = f"must be one of {', '.join(Status.CLEANABLE)}"
    if not _whole(limit) or not 1 <= limit <= CLEAN_LIMIT_MAX:
        details["limit"] = f"must be a whole number from 1 to {CLEAN_LIMIT_MAX}"
    if details:
        raise invalid(details)
    return grace, status, limit


@bp.post("/clean")
def clean():
    body = json_body() if request.get_data(cache=True).strip() else {}
    grace, status, limit = parse_clean_request(body)
    removed = services().queue_admin.clean(status=status, grace_ms=grace, limit=limit)
    return jsonify({"removed": removed, "status": status, "grace": grace, "limit": limit,
                    "timestamp": utcnow_iso()})


@bp.post("/pause")
def pause():
    services().queue_admin.pause()
    return jsonify({"paused": True, "timestamp": utcnow_iso()})


@bp.post("/resume")
def resume():
    services().queue_admin.resume()
    return jsonify({"paused": False, "timestamp": utcnow_iso()})
