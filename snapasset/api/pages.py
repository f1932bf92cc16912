"""The person-facing routes: the page, the OpenAPI document and its docs page."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, render_template, request

from snapasset.api.common import services
from snapasset.config import Settings
from snapasset.openapi import build_document

__all__ = ["bp", "page_csp"]

bp = Blueprint("site", __name__)   # the templates link its routes as site.*


def page_csp(settings: Settings) -> str:
    """The pages load only their own scripts and styles; images may come from the storage's own
    host. The page also fetches the images it shows (its "Download all" zip), so connect-src
    names where they are served from: the public URL's host and Supabase's, when configured."""
    image_hosts = sorted({f"{parts.scheme}://{parts.netloc}" for parts in
                          (urlsplit(url) for url in (settings.public_url, settings.supabase_url) if url)})
    connect = " ".join(["'self'", *image_hosts])
    return (f"default-src 'self'; img-src 'self' data: blob: https:; connect-src {connect}; "
            "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


@bp.get("/")
def page():
    settings = services().settings
    response = Response(render_template("index.html", development=not settings.production,
                                        models=settings.image_models))
    response.headers["Content-Security-Policy"] = page_csp(settings)
    return response


@bp.get("/api-docs")
def api_docs():
    response = Response(render_template("api-docs.html"))
    response.headers["Content-Security-Policy"] = page_csp(services().settings)
    return response


@bp.get("/openapi.json")
def openapi():
    settings = services().settings
    response = jsonify(build_document(server_url=settings.public_url or request.host_url.rstrip("/"),
                                      models=settings.image_models))
    response.headers["Cache-Control"] = "no-cache"
    return response
