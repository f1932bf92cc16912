"""The person-facing routes: the page, the OpenAPI document and its docs page."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request

from snapasset.api.common import services
from snapasset.openapi import build_document

__all__ = ["bp", "PAGE_CSP"]

bp = Blueprint("site", __name__)   # the templates link its routes as site.*

# The page loads only its own scripts and styles; images may come from the storage's own host.
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob: https:; connect-src 'self'; "
            "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


@bp.get("/")
def page():
    response = Response(render_template("index.html", development=not services().settings.production))
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


@bp.get("/api-docs")
def api_docs():
    response = Response(render_template("api-docs.html"))
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


@bp.get("/openapi.json")
def openapi():
    settings = services().settings
    response = jsonify(build_document(server_url=settings.public_url or request.host_url.rstrip("/")))
    response.headers["Cache-Control"] = "no-cache"
    return response
