"""The web process exactly as the Procfile runs it (gunicorn + gevent), served to real sockets."""

from __future__ import annotations

import selectors
import socket
import statistics
import threading
import time

from tests.conftest import running_web

PIPELINED = 4000


def _health_check(host: str) -> bytes:
    return f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


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
        request = _health_check(host)

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


BUSY_CONNECTIONS = 24
NEW_CONNECTIONS = 16


def _answer(conn: socket.socket) -> bytes:
    """One whole HTTP answer (gunicorn sends the head and the body apart)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(1 << 16)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += conn.recv(1 << 16)
    return head


def _first_and_second_answer(host: str, port: int, start: threading.Barrier) -> tuple[float, float]:
    """Seconds from connecting to the first answer, then from asking again to the second."""
    request = _health_check(host)
    start.wait()
    began = time.perf_counter()
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(request)
        assert _answer(conn).startswith(b"HTTP/1.1 200")
        first = time.perf_counter()
        conn.sendall(request)
        assert _answer(conn).startswith(b"HTTP/1.1 200")
        return first - began, time.perf_counter() - first


def test_new_connections_to_busy_web_processes_are_taken_in_one_turn(settings, tmp_path):
    """With two web processes, gunicorn has each take one new connection per turn of its gevent
    loop, and under load a turn serves every ready connection first: a burst of new
    connections waited a turn each, so a browser opening a page on a busy dyno waited many
    times as long for its first answer as for its next. Each process now takes a few per
    turn, so the first answer takes about the two turns of accepting and being served."""
    with running_web(settings, tmp_path / "web.log", workers=2) as (base, _):
        host, port_text = base.removeprefix("http://").split(":")
        port = int(port_text)
        busy = [socket.create_connection((host, port)) for _ in range(BUSY_CONNECTIONS)]
        stop = threading.Event()
        drained = [0]

        def drain() -> None:        # keep the busy connections' answers flowing
            with selectors.DefaultSelector() as selector:
                for conn in busy:
                    selector.register(conn, selectors.EVENT_READ)
                while not stop.is_set():
                    for key, _ in selector.select(0.1):     # readable: recv does not block
                        chunk = key.fileobj.recv(1 << 18)
                        if not chunk:                       # closed: nothing more to read there
                            selector.unregister(key.fileobj)
                        drained[0] += len(chunk)

        request = _health_check(host)
        for conn in busy:       # every process has ready connections at every turn
            threading.Thread(target=conn.sendall, args=(request * PIPELINED,), daemon=True).start()
        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        try:
            time.sleep(0.5)
            before = drained[0]
            start = threading.Barrier(NEW_CONNECTIONS)
            timings: list[tuple[float, float]] = []
            clients = [threading.Thread(target=lambda: timings.append(_first_and_second_answer(host, port, start)))
                       for _ in range(NEW_CONNECTIONS)]
            for client in clients:
                client.start()
            for client in clients:
                client.join(60)
            assert len(timings) == NEW_CONNECTIONS
            first = statistics.median(t[0] for t in timings)
            turn = statistics.median(t[1] for t in timings)
            assert drained[0] > before, "the busy connections were not being served meanwhile"
            # one per turn: 11–25 times the next answer's wait (seven runs); in batches: 1–3.3
            assert first < 5 * turn, f"first answers {first * 1e3:.1f} ms, the next {turn * 1e3:.1f} ms"
        finally:
            stop.set()
            drainer.join(5)
            for conn in busy:
                conn.close()


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


def test_the_web_process_opens_no_gunicorn_control_socket(settings, tmp_path):
    """gunicorn ≥ 25.1 opens a control socket at one path per machine user, which a second web
    process on the machine would take over: ours runs without it."""
    import gunicorn
    import pytest
    import requests
    if gunicorn.version_info < (25, 1):
        pytest.skip(f"gunicorn {gunicorn.__version__} has no control socket")
    home = tmp_path / "home"
    home.mkdir()
    with running_web(settings, tmp_path / "web.log", {"HOME": str(home), "XDG_RUNTIME_DIR": ""}) as (base, _):
        assert requests.get(f"{base}/health", timeout=5).status_code == 200
        assert not (home / ".gunicorn").exists()
