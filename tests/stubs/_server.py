"""A threaded stdlib HTTP server on 127.0.0.1 (port 0) that records every request."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str                       # without the query string
    query: dict[str, str]
    headers: dict[str, str]         # lower-cased names
    body: bytes
    received_at: float = field(default_factory=time.monotonic)   # when the request was read

    @property
    def json(self):
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None   # sent one by one with a flush between them (SSE)
    delay: float = 0.0                  # seconds to wait before answering
    pause: float = 0.0                  # seconds between chunks (a model still drawing)
    drop: bool = False                  # close the connection without answering

    @classmethod
    def json(cls, data, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status=status, headers={"Content-Type": "application/json", **(headers or {})},
                   body=json.dumps(data).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass   # a client that gave up (timeout tests) is not a test failure


class StubServer:
    """Subclasses implement ``respond(request) -> Reply``."""

    def __init__(self):
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, *args, **kwargs):
        stub = cls(*args, **kwargs)
        stub._serve()
        return stub

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget what was received (and, in subclasses, what was scripted) between tests."""
        with self._lock:
            self.requests.clear()

    def respond(self, request: RecordedRequest) -> Reply:  # pragma: no cover - overridden
        raise NotImplementedError

    def _serve(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = RecordedRequest(method=self.command, path=parts.path,
                                          query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                                          headers={k.lower(): v for k, v in self.headers.items()}, body=body)
                with stub._lock:
                    stub.requests.append(request)
                reply = stub.respond(request)
                if reply.delay and stub._stopping.wait(reply.delay):
                    return
                if reply.drop:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunks is not None:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for index, chunk in enumerate(reply.chunks):
                        if index and reply.pause and stub._stopping.wait(reply.pause):
                            return
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=type(self).__name__,
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
