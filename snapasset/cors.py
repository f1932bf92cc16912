"""Cross-origin access for browser pages on other origins (SPEC §2), with Flask-Cors.

* **Who**: the origins in ``SNAPASSET_CORS_ORIGINS``. Unset, development allows
  ``http://localhost`` and ``http://127.0.0.1`` on any port (a frontend's dev server) and
  production allows none. An origin not allowed gets no CORS header at all, so its browser
  blocks the answer. ``*`` allows every origin, without credentials (a browser never pairs
  ``Access-Control-Allow-Origin: *`` with credentials, and reflecting any origin with
  credentials would hand every site the user's cookies).
* **What**: every route under ``/api/`` — the JSON API and both event streams. Flask-Cors adds
  its headers in an ``after_request`` hook, so they are on every answer of those routes: JSON
  errors, Flask-Limiter's 429s and the 500 handler's answer included (their ``Retry-After`` and
  ``X-RateLimit-*`` are exposed to the page).
* **Preflights** (``OPTIONS``) are answered by Flask-Cors with the methods the API uses and the
  request headers it reads, cached by the browser for ``PREFLIGHT_MAX_AGE`` seconds; they are
  exempt from the rate limit (snapasset.api.limits), which would otherwise turn a page's burst of
  preflights into CORS failures.
"""

from __future__ import annotations

import re

from flask_cors import CORS

from snapasset.config import Settings

__all__ = ["init_app", "allowed_origins", "ALLOWED_HEADERS", "EXPOSED_HEADERS", "METHODS"]

ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-API-Key", "Last-Event-ID", "Prefer")
EXPOSED_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After", "Location")
METHODS = ("GET", "POST", "DELETE")
PREFLIGHT_MAX_AGE = 600
RESOURCES = r"/api/.*"
LOCAL_ORIGINS = re.compile(r"^http://(localhost|127\.0\.0\.1)(:\d{1,5})?$")


def allowed_origins(settings: Settings) -> list[str | re.Pattern] | None:
    """What Flask-Cors matches a request's Origin against; None: no cross-origin access."""
    if settings.cors_origins is not None:
        return list(settings.cors_origins)
    return None if settings.production else [LOCAL_ORIGINS]


def init_app(app, settings: Settings) -> None:
    origins = allowed_origins(settings)
    if origins is None:
        return
    any_origin = origins == ["*"]
    CORS(app, resources={RESOURCES: {}}, origins=origins, methods=list(METHODS),
         allow_headers=list(ALLOWED_HEADERS), expose_headers=list(EXPOSED_HEADERS),
         supports_credentials=not any_origin, send_wildcard=any_origin, max_age=PREFLIGHT_MAX_AGE,
         vary_header=True)
