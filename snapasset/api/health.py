"""GET /ready: whether this instance can serve (Redis answers, storage answers, a worker is
listening on the queue, by its heartbeats: snapasset.live_workers); 503 in SPEC §4's shape, naming
the failed checks, when not."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from snapasset.api.common import services
from snapasset.errors import APIError, ErrorCode, utcnow_iso
from snapasset.live_workers import live_workers

__all__ = ["bp", "live_worker_count"]

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

def live_worker_count(conn, settings) -> int:
    """Workers on our queue whose heartbeat is recent (a crashed worker's registration outlives
    it by minutes; its heartbeat does not)."""
    return len(live_workers(conn, settings.queue_name, default_interval=settings.worker_heartbeat))


@bp.get("/ready")
def ready():
    svc = services()
    checks: dict[str, dict] = {}
    try:
        svc.redis.client.ping()
        checks["redis"] = {"ok": True}
    except Exception as exc:   # any failure to answer means not ready; say which
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
    try:
        svc.stores.storage.check()
        checks["storage"] = {"ok": True}
    except Exception as exc:
        log.warning("readiness: storage check failed: %s", exc)
        checks["storage"] = {"ok": False, "error": type(exc).__name__}
    if checks["redis"]["ok"]:
        count = live_worker_count(svc.redis.client, svc.settings)
        checks["workers"] = {"ok": count > 0, "count": count, "queue": svc.settings.queue_name}
    else:
        checks["workers"] = {"ok": False, "error": "redis unreachable"}
    failed = [name for name, check in checks.items() if not check["ok"]]
    if failed:
        raise APIError(503, ErrorCode.SERVICE_UNAVAILABLE, f"Not ready: {', '.join(failed)} check failed",
                       details={name: checks[name].get("error") or "no live worker" for name in failed},
                       headers={"Retry-After": "5", "Cache-Control": "no-store"}, extra={"checks": checks})
    response = jsonify({"status": "ready", "checks": checks, "timestamp": utcnow_iso()})
    response.headers["Cache-Control"] = "no-store"
    return response
