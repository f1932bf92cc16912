"""An incremental ``text/event-stream`` decoder (WHATWG HTML, "Server-sent events").

Feed it bytes as they arrive, in chunks of any size; it hands back each event
once its terminating blank line has been seen. No I/O here.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["ServerSentEvent", "SSEDecoder"]

_BOM = "\ufeff"


@dataclass(frozen=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Turns a stream of bytes into :class:`ServerSentEvent` objects.

    ``retry`` holds the last reconnection time (milliseconds) the server asked
    for, ``last_event_id`` the last ``id:`` seen. Following the spec, an event
    the stream ends in the middle of (no blank line yet) is never dispatched.
    """

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._after_cr = False
        self._data: list[str] = []
        self._event = ""
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes | str) -> list[ServerSentEvent]:
        text = self._text.decode(chunk) if isinstance(chunk, bytes) else chunk
        if not self._started and text:
            self._started = True
            text = text.removeprefix(_BOM)
        if self._after_cr and text:
            # The previous chunk ended in CR: a LF right after it belongs to the same line ending.
            text = text.removeprefix("\n")
            self._after_cr = False
        self._buffer += text
        events: list[ServerSentEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, width = cut
            line = self._buffer[:end]
            if width == 1 and self._buffer[end] == "\r" and end + 1 == len(self._buffer):
                self._after_cr = True
            self._buffer = self._buffer[end + width:]
            event = self._process(line)
            if event is not None:
                events.append(event)
        return events

    def _process(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(data="\n".join(data), event=event or "message",
                               id=self.last_event_id, retry=self.retry)


def _line_end(buffer: str) -> tuple[int, int] | None:
    """Position and width of the first line terminator (CRLF, LF or CR), if any."""
    lf, cr = buffer.find("\n"), buffer.find("\r")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, 1
    if cr + 1 < len(buffer) and buffer[cr + 1] == "\n":
        return cr, 2
    return cr, 1
