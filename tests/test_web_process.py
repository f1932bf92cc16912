"""The web process exactly as the Procfile runs it (gunicorn + gevent), served to real sockets."""

from __future__ import annotations

import socket
import threading
import time

from tests.conftest import running_web

PIPELINED = 4000


def test_a_connection_with_requests_always_waiting_does_not_starve_the_others(settings, tmp_path):
    """gevent switches greenlets only when one waits, and a keep-alive connection whose next
    request is already buffered never waits: one busy client (here an HTTP/1.1 pipeline of 4,000
    health checks) held a web process to itself while every other connection, new ones
    included, waited for it to finish. Each request now lets the others have a turn, so a
    second client is answered while the first one's requests are still being served."""
    with running_web(settings, tmp_path / "web.log") as (base, _):
        host, port = base.removeprefix("http://").split(":")
        answered = {"busy": 0}
        busy_done = threading.Event()

        busy = socket.create_connection((host, int(port)))
        request = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

        def read_busy() -> None:
            marker, tail = b"HTTP/1.1 200", b""
            while answered["busy"] < PIPELINED:
                chunk = busy.recv(1 << 16)
                if not chunk:
                    break
                seen = tail + chunk                  # a status line split over two reads counts once
                answered["busy"] += seen.count(marker)
                tail = seen[-(len(marker) - 1):]
            busy_done.set()

        reader = threading.Thread(target=read_busy, daemon=True)
        reader.start()
        threading.Thread(target=busy.sendall, args=(request * PIPELINED,), daemon=True).start()
        deadline = time.monotonic() + 10
        while answered["busy"] < 50 and time.monotonic() < deadline:   # the pipeline is being served
            time.sleep(0.001)
        try:
            with socket.create_connection((host, int(port)), timeout=30) as other:
                other.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                reply = other.recv(1 << 16)
            served_before = answered["busy"]
            assert reply.startswith(b"HTTP/1.1 200")
            assert busy_done.wait(60), "the pipelined requests were not all answered"
            assert answered["busy"] == PIPELINED
            # answered in turn: while most of the busy client's requests were still to come
            assert served_before < PIPELINED // 2, f"answered after {served_before} of {PIPELINED}"
        finally:
            busy.close()
