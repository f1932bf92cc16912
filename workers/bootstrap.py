"""The worker's composition root: every dependency the pipeline uses, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field

from snapasset.config import Settings
from snapasset.connections import RedisHandle, open_redis
from snapasset.providers import ImageProvider, build_provider
from snapasset.records import Records, build_records, supabase_client
from snapasset.storage import Storage, build_storage
from workers.rendering import InlineRenderer, Renderer

__all__ = ["WorkerContext", "bootstrap", "current_context"]


@dataclass
class WorkerContext:
    settings: Settings
    redis: RedisHandle
    provider: ImageProvider
    storage: Storage
    records: Records
    # the concurrent worker swaps in its process pool; everything else renders in the job's thread
    renderer: Renderer = field(default_factory=InlineRenderer)


_context: WorkerContext | None = None


def bootstrap(settings: Settings | None = None, *, redis: RedisHandle | None = None,
              provider: ImageProvider | None = None, storage: Storage | None = None,
              records: Records | None = None) -> WorkerContext:
    """Build the worker's dependencies (any can be passed in) and make them this process's context."""
    global _context
    settings = settings or Settings.from_env()
    supabase = supabase_client(settings) if (storage is None or records is None) else None
    _context = WorkerContext(
        settings=settings,
        redis=redis or open_redis(settings.redis_url, settings.data_dir),
        provider=provider or build_provider(settings),
        storage=storage or build_storage(settings, supabase),
        records=records or build_records(settings, supabase),
    )
    return _context


def current_context() -> WorkerContext:
    """The context bootstrap() built; a job run outside our worker entry bootstraps from the environment."""
    return _context or bootstrap()
