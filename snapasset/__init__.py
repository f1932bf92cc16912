"""SnapAsset: one prompt in, ready-to-post images out."""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(settings=None, *, redis=None):
    """The web composition root: build every service the HTTP layer uses from settings.

    `settings` defaults to Settings.from_env(); `redis` (a RedisHandle) defaults to the
    configured server, or an embedded one.
    """
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from snapasset import cors, errors
    from snapasset.api import limits, register_blueprints
    from snapasset.api.jobs import allow_large_create_bodies
    from snapasset.api.common import EXTENSION, Services, StrictJSONProvider
    from snapasset.auth import Authenticator
    from snapasset.config import Settings
    from snapasset.connections import open_redis, warn_if_not_persistent
    from snapasset.jobs import JobService
    from snapasset.queueadmin import QueueAdmin
    from snapasset.stores import Stores

    settings = settings or Settings.from_env()
    redis = redis or open_redis(settings.redis_url, settings.data_dir)
    if settings.production:
        warn_if_not_persistent(redis.client)

    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.json = StrictJSONProvider(app)
    app.json.sort_keys = False
    jobs = JobService(redis.client, settings)
    app.extensions[EXTENSION] = Services(
        settings=settings, redis=redis, jobs=jobs,
        queue_admin=QueueAdmin(redis.client, settings, jobs),
        auth=Authenticator(settings),
        stores=Stores(settings),
    )
    if settings.trusted_proxies:
        # only the hops we trust may tell us the client's address (and scheme)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies,
                                x_proto=settings.trusted_proxies)
    errors.init_app(app)
    app.before_request(allow_large_create_bodies)   # before the limiter, which may read the body
    limits.init_app(app, settings, redis)
    cors.init_app(app, settings)
    register_blueprints(app)
    return app
