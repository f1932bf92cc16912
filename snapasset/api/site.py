"""The operator- and person-facing routes: the page, OpenAPI docs, readiness and metrics."""

from __future__ import annotations

from flask import Blueprint

__all__ = ["bp"]

bp = Blueprint("site", __name__)
