"""Live job events over Server-Sent Events (SPEC §8), over a real Redis and real workers.

The streams are parsed here by the SSE specification itself (a few lines below), never by
our SDK, so that the wire format is what these tests pin.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import threading
import time
import uuid

import pytest
import redis as redis_lib

from snapasset import jobrecord, keys
from snapasset.api.sse import close_stream_state
from snapasset.cli import web_command
from snapasset.processes import stop_processes
from snapasset.streaming import HUB_CLIENT_NAME, StreamHub
from tests.conftest import job_history, ROOT, settings_env, wait_for

PROMPT = "A beautiful sunset over mountains"
HEARTBEAT = 0.3
LATENCY = "1.2"                     # the local provider's simulated model time, in seconds


@pytest.fixture
def settings(settings):
    return settings.replace(sse_heartbeat=HEARTBEAT)


@pytest.fixture(autouse=True)
def _close_hub(app):
    yield
    close_stream_state(app)


# -- SSE by the spec (https://html.spec.whatwg.org/multipage/server-sent-events.html) ----------
class SSEParser:
    """Feed text; get dispatched messages. Also keeps comments, `retry:` and every field name."""

    def __init__(self):
        self.buffer = ""
        self.data: list[str] = []
        self.event = ""
        self.last_id = ""
        self.retry: int | None = None
        self.comments: list[str] = []
        self.fields: list[str] = []

    def feed(self, text: str) -> list[dict]:
        self.buffer += text
        out = []
        while True:
            positions = [p for p in (self.buffer.find("\r\n"), self.buffer.find("\n"), self.buffer.find("\r"))
                         if p >= 0]
            if not positions:
                return out
            end = min(positions)
            line = self.buffer[:end]
            self.buffer = self.buffer[end + (2 if self.buffer.startswith("\r\n", end) else 1):]
            if line == "":
                if self.data:
                    out.append({"id": self.last_id, "event": self.event or "message",
                                "data": "\n".join(self.data)})
                self.data, self.event = [], ""
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            self.fields.append(name)
            if name == "data":
                self.data.append(value)
            elif name == "event":
                self.event = value
            elif name == "id" and "\0" not in value:
                self.last_id = value
            elif name == "retry" and value.isdigit():
                self.retry = int(value)


def decoded(message: dict) -> dict:
    return {**json.loads(message["data"]), "_id": message["id"]}


def stream_events(redis_client, job_id: str) -> list[tuple[str, dict]]:
    return job_history(redis_client, job_id)


# -- in-process streaming through the Flask test client ---------------------------------------
class Follower:
    """Reads one SSE response on a thread of its own until the stream ends or `stop` says so."""

    def __init__(self, client, url: str, headers: dict | None = None, stop=None):
        self.messages: list[dict] = []
        self.parser = SSEParser()
        self.status: int | None = None
        self.headers = None
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._stop = stop or (lambda messages: False)
        self._thread = threading.Thread(target=self._run, args=(client, url, headers or {}), daemon=True)
        self._thread.start()

    def _run(self, client, url, headers):
        try:
            response = client.get(url, headers=headers, buffered=False)
            self.status, self.headers = response.status_code, response.headers
            try:
                for chunk in response.response:
                    self.messages.extend(decoded(m) for m in self.parser.feed(
                        chunk.decode() if isinstance(chunk, bytes) else chunk))
                    if self._stop(self.messages):
                        break
            finally:
                response.close()
        except BaseException as exc:   # surfaced by join()
            self.error = exc
        finally:
            self.finished.set()

    def join(self, timeout: float = 60) -> list[dict]:
        assert self.finished.wait(timeout), f"stream did not end; got {[m['type'] for m in self.messages]}"
        if self.error:
            raise self.error
        return self.messages

    def wait_until(self, predicate, timeout: float = 60):
        return wait_for(lambda: predicate(self.messages) or self.finished.is_set(), timeout=timeout)


def create_job(client, headers, platforms=("instagram-post", "twitter-post")) -> dict:
    response = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": list(platforms)}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def stream_path(created: dict) -> str:
    return created["streamUrl"].replace("http://testserver", "")


def assert_same_as_stream(received: list[dict], stored: list[tuple[str, dict]]):
    """The received events (after `connected`) are the job's stream: same ids, same order, once —
    live previews excepted: they leave the stream with the terminal event (jobrecord.publish)."""
    received = [m for m in received if "preview" not in m]
    assert [m["_id"] for m in received] == [entry_id for entry_id, _ in stored]
    for message, (_, event) in zip(received, stored):
        assert message["type"] == event["type"]
        assert message.get("progress") == event.get("progress")


# -- tests --------------------------------------------------------------------------------------
def test_before_during_and_after_a_job_every_client_gets_the_whole_sequence(client, auth, worker_process,
                                                                             redis_handle):
    created = create_job(client, auth)
    job_id, path = created["jobId"], stream_path(created)
    before = Follower(client, path)
    before.wait_until(lambda ms: ms)
    assert before.messages[0]["type"] == "connected" and before.messages[0]["status"] == "waiting"

    worker_process({"SNAPASSET_LOCAL_LATENCY": LATENCY})
    before.wait_until(lambda ms: any(m.get("stage") == "generating" for m in ms))
    during = Follower(client, path)
    first = before.join()
    second = during.join()
    after = Follower(client, path).join()

    stored = stream_events(redis_handle.client, job_id)
    assert stored[-1][1]["type"] == "done"
    assert not [event for _, event in stored if "preview" in event]   # no picture stays in Redis
    for messages in (first, second, after):
        assert messages[0]["type"] == "connected" and messages[0]["jobId"] == job_id
        assert_same_as_stream(messages[1:], stored)
        assert messages[-1]["type"] == "done"
        assert all(m["jobId"] == job_id for m in messages)
    assert second[0]["status"] == "active" and 0 < second[0]["progress"] < 100
    assert after[0]["status"] == "completed" and after[0]["progress"] == 100
    # progress never goes backwards; partial previews come through while generating
    progress = [m["progress"] for m in first[1:] if "progress" in m]
    assert progress == sorted(progress)
    previews = [m["preview"] for m in first if m.get("preview")]
    assert previews and all(p.startswith("data:image/") for p in previews)
    # image URLs are absolute, in `image` events and in the final result
    images = [m["image"] for m in first if m["type"] == "image"]
    assert [i["platformId"] for i in images] == ["instagram-post", "twitter-post"]
    assert all(i["url"].startswith("http://testserver/media/") for i in images)
    assert all(i["url"].startswith("http://testserver/") for i in first[-1]["result"]["images"])


def test_drop_and_reconnect_with_last_event_id_loses_nothing_and_repeats_nothing(
        client, make_token, user, worker_process, redis_handle):
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    jobs = [create_job(client, headers, platforms=("instagram-post", "twitter-post", "og-image"))
            for _ in range(4)]
    worker_process({"SNAPASSET_LOCAL_LATENCY": LATENCY})
    rng = random.Random(7)
    drops = 0
    for created in jobs:
        job_id, received, last_id = created["jobId"], [], None
        while not received or received[-1]["type"] != "done":
            # half the reconnects send the header (SDKs, browsers), half the query (constrained clients)
            path, extra = stream_path(created), {}
            if last_id is not None and drops % 2:
                extra["Last-Event-ID"] = last_id
            elif last_id is not None:
                path += f"&lastEventId={last_id}"
            response = client.get(path, headers=extra, buffered=False)
            if response.status_code == 204:
                break
            assert response.status_code == 200
            parser, wanted = SSEParser(), rng.randint(1, 2)
            try:
                taken = 0
                for chunk in response.response:
                    for message in parser.feed(chunk if isinstance(chunk, str) else chunk.decode()):
                        event = decoded(message)
                        if event["type"] == "connected":
                            assert event["_id"] == (last_id or "0-0")
                            continue
                        received.append(event)
                        last_id = event["_id"]
                        taken += 1
                        if taken >= wanted:
                            break      # whatever else that chunk held is lost with the connection
                    if taken >= wanted or received[-1:] and received[-1]["type"] == "done":
                        break
            finally:
                response.close()       # the drop: mid-stream, wherever the job happens to be
            drops += 1
        stored = stream_events(redis_handle.client, job_id)
        assert_same_as_stream(received, stored)
        assert len({m["_id"] for m in received}) == len(received)
    assert drops >= 30


def test_reconnect_after_the_end_gets_204_and_earlier_ids_get_the_rest(client, auth, run_jobs, redis_handle):
    created = create_job(client, auth)
    run_jobs()
    stored = stream_events(redis_handle.client, created["jobId"])
    assert stored[-1][1]["type"] == "done"
    response = client.get(stream_path(created), headers={"Last-Event-ID": stored[-1][0]})
    assert response.status_code == 204
    middle = len(stored) // 2
    rest = Follower(client, stream_path(created), {"Last-Event-ID": stored[middle][0]}).join()
    assert rest[0] == {"type": "connected", "jobId": created["jobId"], "status": "completed",
                       "progress": 100, "stage": rest[0]["stage"], "_id": stored[middle][0]}
    assert_same_as_stream(rest[1:], stored[middle + 1:])


def test_after_the_replay_window_the_record_answers_and_only_the_record_stays(
        settings, make_app, make_token, user, redis_handle):
    """SNAPASSET_EVENTS_TTL after its end, a job's history is gone from Redis: a late client still
    gets `connected` and the outcome at once (from the record), a reconnect still gets 204."""
    from tests.conftest import InProcessWorker
    from workers.bootstrap import bootstrap
    from workers.terminal_events import build_worker

    short = settings.replace(events_ttl=1)
    client = make_app(events_ttl=1).test_client()
    auth = {"Authorization": f"Bearer {make_token(user)}"}
    created = create_job(client, auth)
    live = Follower(client, stream_path(created))   # the ids as they happen: the history lasts 1 s
    live.wait_until(lambda ms: ms)
    build_worker(bootstrap(short, redis=redis_handle), InProcessWorker).work(burst=True)
    last_id = live.join()[-1]["_id"]
    conn = redis_handle.client
    wait_for(lambda: not conn.exists(keys.job_events(created["jobId"]), keys.user_events(user)), timeout=10)
    left = sorted(k.decode() for k in conn.keys(f"*{created['jobId']}*"))
    assert left == [f"rq:job:{created['jobId']}"]     # the record alone: no stream, no RQ result stream

    late = Follower(client, stream_path(created)).join()
    assert [m["type"] for m in late] == ["connected", "done"]
    assert late[0]["status"] == "completed"
    assert late[1]["result"]["images"][0]["url"].startswith("http://testserver/media/")
    assert client.get(stream_path(created), headers={"Last-Event-ID": last_id}).status_code == 204
    assert client.get(f"/api/jobs/{created['jobId']}", headers=auth).json["result"] == late[1]["result"]


def test_user_stream_interleaves_jobs_and_keeps_each_jobs_order(client, auth, worker_process, redis_handle):
    dashboard = Follower(client, "/api/sse/jobs", auth,
                         stop=lambda ms: sum(m["type"] == "done" for m in ms) == 2)
    dashboard.wait_until(lambda ms: ms)
    first, second = create_job(client, auth)["jobId"], create_job(client, auth)["jobId"]
    worker_process({"SNAPASSET_LOCAL_LATENCY": LATENCY, "SNAPASSET_WORKER_CONCURRENCY": "2"})
    messages = dashboard.join()
    assert messages[0]["type"] == "connected"
    live = messages[1:]
    assert {m["jobId"] for m in live} == {first, second}
    ids = [m["_id"] for m in live]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == len(ids)
    for job_id in (first, second):
        mine = [(m["type"], m.get("progress"), m.get("message")) for m in live if m["jobId"] == job_id]
        stored = [(e["type"], e.get("progress"), e.get("message")) for _, e in stream_events(redis_handle.client, job_id)]
        assert mine == stored

    # the dashboard resumes too: from the middle, exactly the rest (the user stream never ends)
    middle = live[len(live) // 2]["_id"]
    rest = Follower(client, "/api/sse/jobs", {**auth, "Last-Event-ID": middle},
                    stop=lambda ms: sum(m["type"] == "done" for m in ms) == 2 or
                    len(ms) > len(live)).join()
    assert [m["_id"] for m in rest[1:]] == [m["_id"] for m in live[len(live) // 2 + 1:]]


def test_heartbeats_arrive_while_nothing_happens(client, auth):
    created = create_job(client, auth)
    quiet = Follower(client, stream_path(created),
                     stop=lambda ms: False)
    time.sleep(HEARTBEAT * 5)
    assert quiet.parser.comments.count("ping") >= 3
    assert [m["type"] for m in quiet.messages] == ["connected"]
    assert quiet.parser.retry is not None


def _first_chunk(client, path, headers=None):
    response = client.get(path, headers=headers or {}, buffered=False)
    try:
        if response.status_code != 200:
            return response.status_code, response.get_data(as_text=True)
        chunk = next(iter(response.response))
        return 200, chunk if isinstance(chunk, str) else chunk.decode()
    finally:
        response.close()


def test_stream_auth(client, make_token, user):
    mine = {"Authorization": f"Bearer {make_token(user)}"}
    a, b = create_job(client, mine), create_job(client, mine)
    token_a = stream_path(a).split("?token=")[1]
    other = create_job(client, {"Authorization": f"Bearer {make_token()}"})

    status, body = _first_chunk(client, stream_path(a))                     # the streamUrl itself
    assert status == 200 and '"type":"connected"' in body
    assert _first_chunk(client, f"/api/sse/jobs/{b['jobId']}?token={token_a}")[0] == 401   # token for A on B
    assert _first_chunk(client, f"/api/sse/jobs/{a['jobId']}?token=not-a-token")[0] == 401
    assert _first_chunk(client, f"/api/sse/jobs/{a['jobId']}")[0] == 401
    assert _first_chunk(client, f"/api/sse/jobs/{a['jobId']}",
                        {"Authorization": "Bearer nonsense"})[0] == 401
    assert _first_chunk(client, f"/api/sse/jobs/{a['jobId']}", mine)[0] == 200        # header (SDK)
    access = make_token(user)
    assert _first_chunk(client, f"/api/sse/jobs/{a['jobId']}?access_token={access}")[0] == 200
    # another user's job and a missing one answer alike
    status, body = _first_chunk(client, f"/api/sse/jobs/{other['jobId']}", mine)
    assert status == 404 and json.loads(body)["code"] == "JOB_NOT_FOUND"
    status, body = _first_chunk(client, "/api/sse/jobs/gen-1-nosuchjob000", mine)
    assert status == 404 and json.loads(body)["code"] == "JOB_NOT_FOUND"
    assert _first_chunk(client, f"/api/sse/jobs/{other['jobId']}?access_token={access}")[0] == 404
    # a job's stream token does not open the user's stream; an access token does
    assert _first_chunk(client, f"/api/sse/jobs?token={token_a}")[0] == 401
    assert _first_chunk(client, f"/api/sse/jobs?access_token={access}")[0] == 200
    assert _first_chunk(client, f"/api/sse/jobs/{a['jobId']}", {**mine, "Last-Event-ID": "garbage"})[0] == 400


def test_an_api_key_streams_for_the_user_it_names(make_app, make_token, user):
    from snapasset.config import ApiKey
    key = "sse-jobs-key-0123456789abcdef"
    client = make_app(api_keys=(ApiKey("backend", key, frozenset({"jobs"})),)).test_client()
    job = create_job(client, {"Authorization": f"Bearer {make_token(user)}"})
    headers = {"X-API-Key": key}
    status, body = _first_chunk(client, f"/api/sse/jobs/{job['jobId']}?userId={user}", headers)
    assert status == 200 and '"type":"connected"' in body
    # the job names its owner, so the key need not; a user it names must be the owner
    assert _first_chunk(client, f"/api/sse/jobs/{job['jobId']}", headers)[0] == 200
    assert _first_chunk(client, f"/api/sse/jobs/{job['jobId']}?userId=someone-else", headers)[0] == 404
    assert _first_chunk(client, f"/api/sse/jobs?userId={user}", headers)[0] == 200
    status, body = _first_chunk(client, "/api/sse/jobs", headers)                      # whose jobs?
    assert status == 400 and "userId" in json.loads(body)["details"]


# -- the hub itself ----------------------------------------------------------------------------
def test_hub_subscribers_racing_a_publisher_see_every_entry_once_in_order(redis_url, redis_handle):
    hub = StreamHub(redis_url, queue_limit=50)      # small mailboxes: the lag/resync path runs too
    key = keys.job_events(f"hub-{uuid.uuid4().hex}")
    total = 1500
    done = threading.Event()

    def publish():
        conn = redis_lib.Redis.from_url(redis_url)
        for index in range(total):
            conn.xadd(key, {"data": json.dumps({"type": "progress", "n": index})})
            if index % 100 == 0:
                time.sleep(0.01)
        done.set()

    results: dict[int, list[int]] = {}

    def listen(slot: int, delay: float, slow: bool):
        time.sleep(delay)
        got = []
        with hub.subscribe(key) as subscription:
            while len(got) < total:
                batch = subscription.receive(5)
                if not batch and done.is_set():
                    break                                 # stalled: the comparison below shows it
                got.extend(entry.event["n"] for entry in batch)
                if slow:
                    time.sleep(0.02)
        results[slot] = got

    try:
        threads = [threading.Thread(target=publish)] + [
            threading.Thread(target=listen, args=(slot, random.random() * 0.3, slot % 3 == 0))
            for slot in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(results) == 12
        for got in results.values():
            assert got == list(range(total))
        assert hub.listeners == 0
    finally:
        hub.close()
        redis_handle.client.delete(key)


def _hub_connections(redis_client) -> int:
    return sum(1 for c in redis_client.client_list() if c.get("name", "").startswith(HUB_CLIENT_NAME))


# -- the real server, started as the Procfile starts it -------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RawSSE:
    """HTTP/1.1 over a plain socket: status line, headers, chunked body, SSE parsed by the spec."""

    def __init__(self, port: int, path: str, headers: dict | None = None, timeout: float = 20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream",
                 "Accept-Encoding: gzip, deflate"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""
        head = self._until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.parser = SSEParser()
        self.text = ""

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.raw:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.raw += data
        found, _, self.raw = self.raw.partition(marker)
        return found

    def chunks(self):
        """The chunked body's chunks, as they arrive; ends at the zero-length chunk."""
        while True:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            while len(self.raw) < size + 2:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("connection closed mid-chunk")
                self.raw += data
            chunk, self.raw = self.raw[:size], self.raw[size + 2:]
            if size == 0:
                return
            yield chunk.decode()

    def messages(self):
        for chunk in self.chunks():
            self.text += chunk
            for message in self.parser.feed(chunk):
                yield message

    def close(self):
        self.sock.close()


@pytest.fixture
def web_server(settings, tmp_path):
    port = _free_port()
    log = open(tmp_path / "web.log", "wb")
    # many streams of one user from one address: lift the general API limit for this server
    env = {**settings_env(settings), "SNAPASSET_SSE_HEARTBEAT": str(HEARTBEAT),
           "SNAPASSET_RATE_LIMIT": "100000 per minute"}
    proc = subprocess.Popen(web_command(settings, workers=1, bind=f"127.0.0.1:{port}"), env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            assert proc.poll() is None, (tmp_path / "web.log").read_text()
            return False
    wait_for(up, timeout=30)
    yield port
    stop_processes(proc)
    log.close()


def test_wire_format_from_gunicorn_gevent_as_the_procfile_runs_it(web_server, client, auth, worker_process,
                                                                  redis_handle):
    port = web_server
    created = create_job(client, auth)
    job_id = created["jobId"]
    path = created["streamUrl"].replace("http://testserver", "")
    stream = RawSSE(port, path)
    try:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in stream.headers          # asked for gzip; never buffered by it
        assert stream.headers["transfer-encoding"] == "chunked"
        worker_process({"SNAPASSET_LOCAL_LATENCY": LATENCY})
        received = []
        for message in stream.messages():
            received.append(message)
            if json.loads(message["data"])["type"] == "done":
                break
        # the server closes the stream after `done`
        assert list(stream.chunks()) == []
    finally:
        stream.close()

    assert "event" not in stream.parser.fields                      # unnamed: onmessage sees them all
    assert stream.text.startswith("retry: ") and stream.parser.retry == 3000
    assert "ping" in stream.parser.comments                         # heartbeats while the worker started
    assert all(m["event"] == "message" and m["id"] for m in received)
    payloads = [json.loads(m["data"]) for m in received]
    assert payloads[0]["type"] == "connected" and payloads[0]["status"] == "waiting"
    assert all(p["jobId"] == job_id and "type" in p for p in payloads)
    stored = stream_events(redis_handle.client, job_id)
    live = [m["id"] for m, p in zip(received[1:], payloads[1:]) if "preview" not in p]   # previews: live only
    assert live == [entry_id for entry_id, _ in stored]
    assert {"progress", "image", "done"} <= {p["type"] for p in payloads}

    # a reconnect after the end: 204, no body
    late = RawSSE(port, path, {"Last-Event-ID": stored[-1][0]})
    try:
        assert late.status == 204
    finally:
        late.close()


def test_many_streams_share_a_bounded_number_of_redis_connections(web_server, client, auth, redis_handle):
    port = web_server
    created = [create_job(client, auth) for _ in range(4)]
    # other web processes of the session (the shared live stack) have hubs on this Redis too
    elsewhere = _hub_connections(redis_handle.client)
    streams = []
    try:
        for index in range(120):
            stream = RawSSE(port, created[index % 4]["streamUrl"].replace("http://testserver", ""))
            assert stream.status == 200
            streams.append(stream)
        for stream in streams:
            assert next(stream.messages())["data"].startswith('{"type":"connected"')
        hub = _hub_connections(redis_handle.client) - elsewhere
        assert 1 <= hub <= 9, hub             # the reader plus at most the pool, not one per client
        for index, item in enumerate(created):
            jobrecord.publish(redis_handle.client, item["jobId"], "whoever", jobrecord.Progress(progress=5),
                              ttl=60, replay_window=60)
        for stream in streams:
            assert json.loads(next(stream.messages())["data"])["progress"] == 5
        assert _hub_connections(redis_handle.client) - elsewhere == hub
    finally:
        for stream in streams:
            stream.close()
