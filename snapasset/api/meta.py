"""Platforms, health, and the locally stored media."""

from __future__ import annotations

from flask import Blueprint, jsonify, send_from_directory

from snapasset.api.common import services
from snapasset.errors import utcnow_iso
from snapasset.platforms import PLATFORMS

__all__ = ["bp"]

bp = Blueprint("meta", __name__)


@bp.get("/api/platforms")
def platforms():
    items = [p.to_json() for p in PLATFORMS.values()]
    return jsonify({"platforms": items, "count": len(items)})


@bp.get("/health")
def health():
    return jsonify({"status": "ok", "timestamp": utcnow_iso()})


@bp.get("/media/<path:key>")
def media(key: str):
    # Object keys are unique per generation, so a long cache lifetime is safe.
    response = send_from_directory(services().settings.media_dir.resolve(), key, max_age=31536000)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
