"""Fan-out of Redis Streams to many local listeners over a bounded number of Redis connections.

A web process may hold thousands of SSE clients. None of them holds a Redis connection:
one `StreamHub` per app runs a single reader (a thread, or a greenlet under gevent's
monkey-patching) that follows every stream that currently has listeners with one multi-key
`XREAD BLOCK`, and hands each new entry to the listeners' in-memory mailboxes. The short
reads a listener needs (its backlog, a resync after falling behind) go through a small
blocking pool. So a process holds at most `pool_size + 1` connections however many
clients listen.

Correctness rests on stream ids, never on timing: the hub keeps one cursor per followed
stream; a new listener reads its backlog itself and registers with the id it read up to;
if the hub's cursor is already further, the listener reads the gap too. Every listener
drops ids it has already passed, so nothing is lost and nothing is seen twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import redis

from snapasset import jobrecord, keys

__all__ = ["Entry", "StreamHub", "Subscription", "parse_id", "is_stream_id", "HUB_CLIENT_NAME"]

log = logging.getLogger(__name__)

HUB_CLIENT_NAME = "snapasset-sse"          # CLIENT LIST shows the hub's connections by this name
READ_BATCH = 1000                           # entries per stream per XREAD
WAKEUP_MAXLEN = 16
WAKEUP_TTL = 3600


def parse_id(entry_id: str) -> tuple[int, int]:
    """A stream id as a comparable pair ("1700000000000-3" → (1700000000000, 3))."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def is_stream_id(value: str) -> bool:
    ms, sep, seq = value.partition("-")
    # ASCII digits only: str.isdigit() also takes "١٢٣", which Redis would refuse
    return bool(sep) and value.isascii() and ms.isdigit() and seq.isdigit() and len(value) <= 41


class Entry(NamedTuple):
    """One stream entry: its id, the raw JSON payload and that payload parsed (shared: read-only)."""
    id: str
    order: tuple[int, int]
    raw: str
    event: dict


def _decode_entries(entries) -> list[Entry]:
    out = []
    for entry_id, fields in entries:
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        raw = jobrecord.entry_payload(fields)
        if raw is None:
            continue
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("skipping malformed stream entry %s", entry_id)
            continue
        out.append(Entry(entry_id, parse_id(entry_id), raw, event))
    return out


class _Mailbox:
    """Entries the hub handed to one listener, waiting to be taken; bounded.

    A listener that falls `limit` entries behind is marked lagged and its mailbox emptied;
    it then reads what it missed from Redis (the stream still holds it).
    """

    def __init__(self, limit: int):
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._items: deque[Entry] = deque()
        self._limit = limit
        self._lagged = False

    def push(self, entries: list[Entry]) -> None:
        with self._lock:
            if self._lagged:
                pass                               # it will reread from Redis anyway
            elif len(self._items) + len(entries) > self._limit:
                self._items.clear()
                self._lagged = True
            else:
                self._items.extend(entries)
        self._ready.set()

    def wake(self) -> None:
        self._ready.set()

    def take(self, timeout: float | None) -> tuple[list[Entry], bool]:
        self._ready.wait(timeout)
        with self._lock:
            self._ready.clear()
            items, lagged = list(self._items), self._lagged
            self._items.clear()
            self._lagged = False
        return items, lagged


class Subscription:
    """One listener's view of one stream: its backlog, then each new entry exactly once, in order."""

    def __init__(self, hub: StreamHub, key: str, after: str, backlog: list[Entry], queue_limit: int):
        self.hub = hub
        self.key = key
        self.last_id = after                       # the last id handed out by receive()
        self._last = parse_id(after)
        self._backlog = backlog
        self._mailbox = _Mailbox(queue_limit)
        self.closed = False

    @property
    def backlog(self) -> list[Entry]:
        return self._backlog

    def receive(self, timeout: float | None) -> list[Entry]:
        """The backlog first; then the entries that arrive within `timeout` seconds (maybe none)."""
        if self._backlog:
            batch, self._backlog = self._backlog, []
            self.last_id, self._last = batch[-1].id, batch[-1].order
            return batch
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.closed:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            items, lagged = self._mailbox.take(remaining)
            if lagged:
                items = self.hub.read_range(self.key, self.last_id)
            fresh = [entry for entry in items if entry.order > self._last]
            if fresh:
                self.last_id, self._last = fresh[-1].id, fresh[-1].order
                return fresh
            if remaining == 0.0:
                break
        return []

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub._unsubscribe(self)
            self._mailbox.wake()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class _Followed:
    cursor: str
    order: tuple[int, int]
    listeners: set = field(default_factory=set)


class StreamHub:
    """Follows the streams local listeners care about with one blocking reader connection."""

    def __init__(self, url: str, *, pool_size: int = 8, block_ms: int = 5000, queue_limit: int = 2000,
                 name: str = HUB_CLIENT_NAME):
        self.url = url
        self.name = name
        self.block_ms = block_ms
        self.queue_limit = queue_limit
        # Short commands of the listeners (backlog, resync, wake-ups) and of the SSE views
        # (job lookups) share this pool; waiting for a free connection is the bound.
        self.client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
            url, max_connections=pool_size, timeout=20, client_name=name))
        self._lock = threading.Lock()
        self._streams: dict[str, _Followed] = {}
        self._wakeup_key = keys.stream_hub_wakeup(uuid.uuid4().hex)
        self._wake_pending = False
        self._reader: threading.Thread | None = None
        self._reader_client: redis.Redis | None = None
        self._stopping = False

    # -- listeners -------------------------------------------------------------------------------
    def subscribe(self, key: str, after: str = "0-0") -> Subscription:
        """Listen to `key` from just after the id `after`; the subscription's backlog holds what
        the stream already has past it."""
        backlog = self.read_range(key, after)
        start = backlog[-1].id if backlog else after
        subscription = Subscription(self, key, after, backlog, self.queue_limit)
        wake = False
        with self._lock:
            if self._stopping:
                raise RuntimeError("the stream hub is closed")
            followed = self._streams.get(key)
            if followed is None:
                followed = self._streams[key] = _Followed(start, parse_id(start))
                wake, self._wake_pending = not self._wake_pending, True
            followed.listeners.add(subscription)
            hub_cursor = followed.cursor
            self._ensure_reader()
        if parse_id(hub_cursor) > parse_id(start):
            # The hub already passed entries this listener has not read: read them here.
            subscription._backlog = backlog + self.read_range(key, start, hub_cursor)
        if wake:
            self._wake()
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            followed = self._streams.get(subscription.key)
            if followed is not None:
                followed.listeners.discard(subscription)
                if not followed.listeners:
                    del self._streams[subscription.key]   # the reader drops it on its next round

    def read_range(self, key: str, after: str, until: str = "+") -> list[Entry]:
        """Entries with ids after `after` (exclusive) up to `until` (inclusive), oldest first."""
        low = "-" if after == "0-0" else f"({after}"
        return _decode_entries(self.client.xrange(key, min=low, max=until))

    def latest(self, key: str) -> Entry | None:
        found = _decode_entries(self.client.xrevrange(key, count=1))
        return found[0] if found else None

    @property
    def followed_streams(self) -> int:
        with self._lock:
            return len(self._streams)

    @property
    def listeners(self) -> int:
        with self._lock:
            return sum(len(f.listeners) for f in self._streams.values())

    # -- the reader --------------------------------------------------------------------------------
    def _ensure_reader(self) -> None:
        if self._reader is None or not self._reader.is_alive():
            self._reader = threading.Thread(target=self._run, name="snapasset-stream-hub", daemon=True)
            self._reader.start()

    def _wake(self) -> None:
        """Make the reader start a new XREAD that includes newly followed streams."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wakeup_key, {"w": "1"}, maxlen=WAKEUP_MAXLEN, approximate=False)
                pipe.expire(self._wakeup_key, WAKEUP_TTL)
                pipe.execute()
        except redis.RedisError:
            # The reader's next round (at most block_ms later) picks the stream up; nothing is lost.
            log.warning("could not wake the stream hub's reader", exc_info=True)

    def _run(self) -> None:
        client = self._reader_client = redis.Redis.from_url(self.url, client_name=f"{self.name}-reader")
        wakeup_cursor = "0-0"
        failures = 0
        while not self._stopping:
            with self._lock:
                self._wake_pending = False
                streams = {key: followed.cursor for key, followed in self._streams.items()}
            streams[self._wakeup_key] = wakeup_cursor
            try:
                reply = client.xread(streams, count=READ_BATCH, block=self.block_ms)
            except Exception as exc:
                if self._stopping:
                    break
                failures += 1
                if not isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
                    log.exception("stream hub read failed (attempt %d); retrying", failures)
                elif failures == 1:   # an outage: one line when it starts, one when it ends
                    log.warning("stream hub: Redis unreachable (%s); retrying until it is back", exc)
                time.sleep(min(5.0, 0.1 * 2 ** failures))
                continue
            if failures:
                log.warning("stream hub: reading again after %d failed attempt(s)", failures)
                failures = 0
            for key, raw_entries in reply or ():
                key = key.decode() if isinstance(key, bytes) else key
                if key == self._wakeup_key:
                    last = raw_entries[-1][0]
                    wakeup_cursor = last.decode() if isinstance(last, bytes) else last
                    continue
                self._fan_out(key, raw_entries)
        client.close()

    def _fan_out(self, key: str, raw_entries) -> None:
        entries = _decode_entries(raw_entries)
        last = raw_entries[-1][0]
        last = last.decode() if isinstance(last, bytes) else last
        with self._lock:
            followed = self._streams.get(key)
            if followed is None:
                return
            entries = [entry for entry in entries if entry.order > followed.order]
            last_order = parse_id(last)
            if last_order > followed.order:
                followed.cursor, followed.order = last, last_order
            listeners = list(followed.listeners)
        if entries:
            for listener in listeners:
                listener._mailbox.push(entries)

    def close(self) -> None:
        """Stop the reader and close every connection (listeners get no more entries)."""
        with self._lock:
            self._stopping = True
            reader = self._reader
            listeners = [s for f in self._streams.values() for s in f.listeners]
            self._streams.clear()
        for listener in listeners:
            listener.closed = True
            listener._mailbox.wake()
        if reader is not None and reader.is_alive():
            self._wake()
            reader.join(timeout=5)
        try:
            self.client.delete(self._wakeup_key)
        except redis.RedisError:
            pass
        self.client.close()
        self.client.connection_pool.disconnect()
