"""``AsyncSnapAssetClient``: the same API for asyncio code.

Each call runs the synchronous client in a worker thread (``asyncio.to_thread``)
and streams become async iterators, so the two clients cannot drift apart.
Callbacks given to ``wait(on_progress=...)`` run in that worker thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .client import SnapAssetClient

__all__ = ["AsyncSnapAssetClient"]

_EXHAUSTED = object()


def _in_thread(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(self: AsyncSnapAssetClient, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(method, self.sync, *args, **kwargs)
    return call


def _iterated_in_thread(method: Callable[..., Iterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(method)
    async def iterate(self: AsyncSnapAssetClient, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        iterator = method(self.sync, *args, **kwargs)  # a generator: no I/O until the first next()
        try:
            while (item := await asyncio.to_thread(next, iterator, _EXHAUSTED)) is not _EXHAUSTED:
                yield item
        finally:
            try:
                iterator.close()  # type: ignore[attr-defined]
            except ValueError:
                # Cancelled while a worker thread was inside next(): that thread still owns
                # the generator, which closes its connection when it is collected.
                pass
    return iterate


class AsyncSnapAssetClient:
    """Takes the same arguments as :class:`SnapAssetClient`; ``sync`` is the client underneath."""

    def __init__(self, base_url: str | None = None, **options: Any):
        self.sync = SnapAssetClient(base_url, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sync.base_url!r})"

    async def __aenter__(self) -> AsyncSnapAssetClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    close = _in_thread(SnapAssetClient.close)
    create_job = _in_thread(SnapAssetClient.create_job)
    get_job = _in_thread(SnapAssetClient.get_job)
    retry_job = _in_thread(SnapAssetClient.retry_job)
    cancel_job = _in_thread(SnapAssetClient.cancel_job)
    delete_job = _in_thread(SnapAssetClient.delete_job)
    wait = _in_thread(SnapAssetClient.wait)
    queue_stats = _in_thread(SnapAssetClient.queue_stats)
    clean_queue = _in_thread(SnapAssetClient.clean_queue)
    pause_queue = _in_thread(SnapAssetClient.pause_queue)
    resume_queue = _in_thread(SnapAssetClient.resume_queue)
    platforms = _in_thread(SnapAssetClient.platforms)
    retry_failed_jobs = _in_thread(SnapAssetClient.retry_failed_jobs)
    workers = _in_thread(SnapAssetClient.workers)
    list_jobs = _iterated_in_thread(SnapAssetClient.list_jobs)
    list_all_jobs = _iterated_in_thread(SnapAssetClient.list_all_jobs)
    stream_job = _iterated_in_thread(SnapAssetClient.stream_job)
    stream_jobs = _iterated_in_thread(SnapAssetClient.stream_jobs)
