"""Response bodies that arrive in pieces or break off like a real socket, and SSE framing."""

from __future__ import annotations

import io
import json

BASE = "http://snapasset.test"


class _Pieces(io.RawIOBase):
    def __init__(self, pieces: list[bytes], drop: bool):
        self._pieces = list(pieces)
        self._drop = drop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._pieces:
            if self._drop:
                raise ConnectionResetError("connection reset by peer")
            return 0
        piece = self._pieces.pop(0)
        head, rest = piece[:len(buffer)], piece[len(buffer):]
        if rest:
            self._pieces.insert(0, rest)
        buffer[:len(head)] = head
        return len(head)


def arriving(*pieces: str | bytes, drop: bool = False) -> io.BufferedReader:
    """A body read one piece per network read; with ``drop`` the connection then resets."""
    return io.BufferedReader(_Pieces([p.encode() if isinstance(p, str) else p for p in pieces],
                                     drop))


def sse(event_id: str | None, payload: dict) -> str:
    """One SSE message as the server writes it."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {json.dumps(payload)}\n\n"
