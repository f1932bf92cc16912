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


def test_each_web_process_freezes_what_the_loaded_app_holds_out_of_full_collections(settings):
    """gunicorn calls post_worker_init in each worker once the app is loaded: after it, a full
    collection walks what requests make, not the modules and the app (47–65 ms pauses of every
    connection of a process under load, before)."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT, settings_env

    code = (
        "import gc, json, time\n"
        "import snapasset, snapasset.gunicorn_config as hooks\n"
        "app = snapasset.create_app()\n"
        "def full_collection():\n"
        "    started = time.perf_counter(); gc.collect(); return time.perf_counter() - started\n"
        "before = min(full_collection() for _ in range(3))\n"
        "hooks.post_worker_init(None)\n"
        "after = min(full_collection() for _ in range(3))\n"
        "print(json.dumps({'frozen': gc.get_freeze_count(), 'walked': len(gc.get_objects()),\n"
        "                  'before': before, 'after': after}))\n")
    out = subprocess.run([sys.executable, "-c", code], env=settings_env(settings), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["frozen"] > 10 * seen["walked"], seen
    assert seen["after"] < seen["before"] / 3, seen
