"""A local webhook receiver: answers each POST with the next scripted status (200 when none is left)."""

from __future__ import annotations

import threading
from collections import deque

from ._server import RecordedRequest, Reply, StubServer

__all__ = ["WebhookReceiver"]


class WebhookReceiver(StubServer):
    def __init__(self):
        super().__init__()
        self._statuses: deque[int] = deque()
        self._statuses_lock = threading.Lock()

    def script(self, statuses: list[int]) -> None:
        with self._statuses_lock:
            self._statuses.extend(statuses)

    def reset(self) -> None:
        super().reset()
        with self._statuses_lock:
            self._statuses.clear()

    @property
    def posts(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def respond(self, request: RecordedRequest) -> Reply:
        with self._statuses_lock:
            status = self._statuses.popleft() if self._statuses else 200
        return Reply(status=status, body=b"ok" if status < 300 else b"not now")
