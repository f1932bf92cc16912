"""The HTTP layer: blueprints that parse, call a service and shape the JSON."""

from __future__ import annotations

from snapasset.api import admin, health, jobs, meta, metrics, pages, queue, sse

__all__ = ["register_blueprints"]


def register_blueprints(app) -> None:
    app.register_blueprint(meta.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(queue.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(sse.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
