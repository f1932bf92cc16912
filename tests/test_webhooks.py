"""Completion webhooks: Standard Webhooks signatures, retries, and refusing private targets."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections import deque

import pytest
from standardwebhooks import Webhook

from snapasset.config import ConfigError
from snapasset.webhooks import (
    EVENT_COMPLETED, EVENT_FAILED, WebhookDeliveryError, WebhookTargetRefused, build_event, check_target,
    deliver, message_id, sign,
)
from tests.stubs._server import RecordedRequest, Reply, StubServer

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()


class Receiver(StubServer):
    """Answers each POST with the next scripted status (200 when the script is empty)."""

    def __init__(self):
        super().__init__()
        self.statuses: deque[int] = deque()

    def respond(self, request: RecordedRequest) -> Reply:
        status = self.statuses.popleft() if self.statuses else 200
        headers = {"Location": "http://example.com/elsewhere"} if 300 <= status < 400 else {}
        return Reply(status=status, headers=headers, body=b"ok")


@pytest.fixture
def receiver():
    stub = Receiver.start()
    yield stub
    stub.stop()


def completed_event(job_id: str = "job_123") -> dict:
    return build_event(EVENT_COMPLETED, job_id, result={"images": [{"platform": "instagram-post",
                                                                    "url": "https://cdn.example/a.png"}]})


# -- signing and events --------------------------------------------------------------------

def test_sign_matches_the_standard_webhooks_reference():
    body = b'{"type":"job.completed"}'
    signature = sign(SECRET, "msg_1", 1_700_000_000, body)
    from datetime import datetime, timezone
    expected = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(1_700_000_000, tz=timezone.utc), body.decode())
    assert signature == expected and signature.startswith("v1,")


def test_sign_rejects_a_malformed_secret():
    with pytest.raises(ValueError, match="whsec_"):
        sign("whsec_***not base64***", "msg", 1, b"{}")


def test_build_event_shapes():
    done = completed_event()
    assert set(done) == {"type", "jobId", "result", "timestamp"} and done["type"] == "job.completed"
    failed = build_event(EVENT_FAILED, "job_123", error={"code": "PROVIDER_ERROR", "message": "down"})
    assert set(failed) == {"type", "jobId", "error", "timestamp"} and failed["error"]["code"] == "PROVIDER_ERROR"
    with pytest.raises(ValueError):
        build_event("job.started", "job_123")
    with pytest.raises(ValueError):
        build_event(EVENT_FAILED, "job_123", result={})


def test_message_id_is_stable_per_job_and_event():
    assert message_id("job_1", EVENT_COMPLETED) == message_id("job_1", EVENT_COMPLETED)
    assert message_id("job_1", EVENT_COMPLETED) != message_id("job_1", EVENT_FAILED)
    assert message_id("job_1", EVENT_COMPLETED) != message_id("job_2", EVENT_COMPLETED)


# -- delivery ------------------------------------------------------------------------------

def test_delivery_is_a_signed_post_that_verifies(receiver):
    payload = completed_event()
    msg_id = message_id("job_123", EVENT_COMPLETED)
    status = deliver(f"{receiver.url}/hooks", payload, secret=SECRET, msg_id=msg_id, allow_private=True)
    assert status == 200
    [got] = receiver.requests
    assert got.method == "POST" and got.path == "/hooks"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == msg_id
    assert Webhook(SECRET).verify(got.body, got.headers) == payload
    assert SECRET not in json.dumps(got.headers)


def test_a_retried_delivery_keeps_its_webhook_id(receiver):
    receiver.statuses.extend([500])
    payload, msg_id = completed_event(), message_id("job_123", EVENT_COMPLETED)
    with pytest.raises(WebhookDeliveryError) as caught:
        deliver(receiver.url, payload, secret=SECRET, msg_id=msg_id, allow_private=True)
    assert caught.value.status == 500
    assert deliver(receiver.url, payload, secret=SECRET, msg_id=msg_id, allow_private=True) == 200
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == msg_id
    assert first.body == second.body
    for attempt in (first, second):
        Webhook(SECRET).verify(attempt.body, attempt.headers)


@pytest.mark.parametrize("status", [400, 404, 410, 503])
def test_a_failing_receiver_makes_deliver_raise(receiver, status):
    receiver.statuses.append(status)
    with pytest.raises(WebhookDeliveryError, match=str(status)):
        deliver(receiver.url, completed_event(), secret=SECRET, msg_id="msg_x", allow_private=True)


def test_redirects_are_not_followed(receiver):
    receiver.statuses.append(302)
    with pytest.raises(WebhookDeliveryError) as caught:
        deliver(receiver.url, completed_event(), secret=SECRET, msg_id="msg_x", allow_private=True)
    assert caught.value.status == 302
    assert len(receiver.requests) == 1


def test_an_unreachable_receiver_makes_deliver_raise():
    with socket.socket() as probe:      # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(WebhookDeliveryError):
        deliver(f"http://127.0.0.1:{port}/", completed_event(), secret=SECRET, msg_id="m", allow_private=True,
                timeout=2)


class DripFeeder:
    """A receiver that reads the POST, then sends its answer one byte every `pace` seconds, for
    as long as the client listens: every single read is quick, the answer never ends."""

    def __init__(self, pace: float = 0.2):
        self.pace = pace
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            connection.recv(65536)
            answer = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10_000
            try:
                for index in range(len(answer)):
                    connection.sendall(answer[index:index + 1])
                    time.sleep(self.pace)
            except OSError:   # the client hung up: what we expect
                pass

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


def test_a_receiver_that_drip_feeds_its_answer_is_cut_off_at_the_deadline():
    receiver = DripFeeder()
    started = time.monotonic()
    try:
        with pytest.raises(WebhookDeliveryError, match="did not answer within 1s"):
            deliver(receiver.url, completed_event(), secret=SECRET, msg_id="m", allow_private=True, timeout=1)
    finally:
        receiver.close()
    assert time.monotonic() - started < 3


# -- refusing private targets --------------------------------------------------------------

PRIVATE_TARGETS = ["http://127.0.0.1/hook", "http://localhost:8080/hook", "http://api.localhost/hook",
                   "http://10.1.2.3/hook", "http://192.168.0.10/hook", "http://172.16.5.4/hook",
                   "http://[::1]:9000/hook", "http://[::ffff:127.0.0.1]/hook", "http://100.64.0.1/hook",
                   "http://224.0.0.1/hook", "http://0.0.0.0/hook", "http://[fe80::1]/hook",
                   "http://240.0.0.1/hook"]


@pytest.mark.parametrize("url", PRIVATE_TARGETS + ["http://169.254.169.254/latest/meta-data/",
                                                   "http://[fd00:ec2::254]/"])
def test_private_targets_are_refused_by_default(url):
    with pytest.raises(WebhookTargetRefused):
        check_target(url, allow_private=False)
    with pytest.raises(WebhookTargetRefused):
        deliver(url, completed_event(), secret=SECRET, msg_id="m")


@pytest.mark.parametrize("url", PRIVATE_TARGETS)
def test_private_targets_are_allowed_when_configured(url):
    check_target(url, allow_private=True, resolve=False)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
                                 "http://[::ffff:169.254.169.254]/"])
def test_cloud_metadata_stays_refused_even_when_private_is_allowed(url):
    with pytest.raises(WebhookTargetRefused, match="metadata"):
        check_target(url, allow_private=True)


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "https://user:pw@example.com/",
                                 "http:///nohost", "javascript:alert(1)"])
def test_malformed_targets_are_refused(url):
    with pytest.raises(WebhookTargetRefused):
        check_target(url, allow_private=True)


def test_a_public_address_is_accepted():
    check_target("https://8.8.8.8/hook")
    check_target("https://[2001:4860:4860::8888]/hook")


class FakeDNS:
    """socket.getaddrinfo for chosen names (answers consumed in order), the real one for the rest."""

    def __init__(self, monkeypatch, answers: dict[str, list[str]]):
        self.answers = {name: deque(ips) for name, ips in answers.items()}
        self.lookups: list[str] = []
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        if host not in self.answers:
            return self._real(host, port, family, type, proto, flags)
        self.lookups.append(host)
        queue = self.answers[host]
        ip = queue.popleft() if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port)))]


def test_dns_rebinding_to_a_private_address_is_refused_at_connect_time(receiver, monkeypatch):
    # Public when the job is created, the receiver's loopback address when the worker connects.
    dns = FakeDNS(monkeypatch, {"hooks.rebind.test": ["93.184.216.34", "127.0.0.1"]})
    url = f"http://hooks.rebind.test:{receiver.port}/hook"
    check_target(url, allow_private=False)
    with pytest.raises(WebhookTargetRefused, match="127.0.0.1"):
        deliver(url, completed_event(), secret=SECRET, msg_id="m")
    assert dns.lookups == ["hooks.rebind.test", "hooks.rebind.test"]
    assert receiver.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(receiver, monkeypatch):
    FakeDNS(monkeypatch, {"receiver.internal.test": ["127.0.0.1"]})
    url = f"http://receiver.internal.test:{receiver.port}/hook"
    assert deliver(url, completed_event(), secret=SECRET, msg_id="m", allow_private=True) == 200
    [got] = receiver.requests
    assert got.headers["host"] == f"receiver.internal.test:{receiver.port}"


def test_environment_proxies_are_ignored(receiver, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("http_proxy", "http://10.9.9.9:3128")
    assert deliver(receiver.url, completed_event(), secret=SECRET, msg_id="m", allow_private=True, timeout=3) == 200


# -- the RQ job ----------------------------------------------------------------------------

def test_deliver_webhook_reads_secret_and_allow_private_from_the_environment(receiver, monkeypatch):
    from workers.webhooks import deliver_webhook

    monkeypatch.setenv("SNAPASSET_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SNAPASSET_WEBHOOK_ALLOW_PRIVATE", "true")
    payload = completed_event()
    assert deliver_webhook(receiver.url, payload, "msg_env") == {"delivered": True, "status": 200}
    Webhook(SECRET).verify(receiver.requests[0].body, receiver.requests[0].headers)

    monkeypatch.setenv("SNAPASSET_WEBHOOK_ALLOW_PRIVATE", "false")
    result = deliver_webhook(receiver.url, payload, "msg_env")
    assert result["delivered"] is False and "loopback" in result["reason"]
    assert len(receiver.requests) == 1

    monkeypatch.setenv("SNAPASSET_WEBHOOK_ALLOW_PRIVATE", "true")
    receiver.statuses.append(503)
    with pytest.raises(WebhookDeliveryError):
        deliver_webhook(receiver.url, payload, "msg_env")

    monkeypatch.delenv("SNAPASSET_WEBHOOK_SECRET")
    with pytest.raises(ConfigError):
        deliver_webhook(receiver.url, payload, "msg_env")


def test_enqueue_webhook_retries_with_backoff_and_never_fails_the_caller(redis_handle, receiver, monkeypatch):
    from rq import Queue, SimpleWorker

    from workers.webhooks import RETRY_INTERVALS, enqueue_webhook

    monkeypatch.setenv("SNAPASSET_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SNAPASSET_WEBHOOK_ALLOW_PRIVATE", "true")
    queue = Queue(f"webhooks-test-{id(receiver)}", connection=redis_handle.client)
    try:
        receiver.statuses.append(500)
        job = enqueue_webhook(queue, receiver.url, completed_event(), "msg_q")
        assert job.retries_left == 5 and job.retry_intervals == RETRY_INTERVALS == [5, 30, 120, 600, 1800]
        SimpleWorker([queue], connection=redis_handle.client).work(burst=True)
        job.refresh()
        assert job.get_status() == "scheduled"          # failed once, waiting 5 s for its retry
        assert job.retries_left == 4
        assert len(receiver.requests) == 1
    finally:
        queue.empty()
        for registry in (queue.scheduled_job_registry, queue.failed_job_registry, queue.finished_job_registry):
            for job_id in registry.get_job_ids():
                registry.remove(job_id, delete_job=True)


def test_a_backlog_of_generations_never_holds_up_a_delivery(receiver, settings, redis_handle, worker_process,
                                                             tmp_path):
    """One generation slot, four long generations queued: the webhook enqueued after them is
    delivered while they wait, on the worker's delivery slots (SNAPASSET_WORKER_CONCURRENCY=1)."""
    from snapasset.config import Env
    from snapasset.jobs import JobService, open_queue, open_webhook_queue
    from snapasset.schema import parse_job_request
    from tests.conftest import wait_for
    from workers.webhooks import enqueue_webhook

    conn = redis_handle.client
    service = JobService(conn, settings.replace(max_active_jobs=10))
    request = parse_job_request({"prompt": "A lighthouse on a rocky coast at dusk", "platforms": ["og-image"]}, settings)
    for _ in range(4):
        service.create("backlogged-user", request)
    worker_process({Env.WORKER_CONCURRENCY: "1", Env.LOCAL_LATENCY: "3", Env.WEBHOOK_SECRET: SECRET,
                    Env.WEBHOOK_ALLOW_PRIVATE: "true"})
    wait_for(lambda: open_queue(conn, settings).count == 3, timeout=60, interval=0.1)   # one running
    enqueue_webhook(open_webhook_queue(conn, settings), receiver.url, completed_event(), "msg_fair")
    wait_for(lambda: receiver.requests, timeout=10, interval=0.1)
    assert open_queue(conn, settings).count >= 2, "delivered only once the generations had run"


def test_a_delivery_with_no_retry_left_records_the_webhook_as_failed(redis_handle, receiver, monkeypatch):
    from rq import Queue, SimpleWorker

    from snapasset.jobrecord import webhook_state
    from workers.webhooks import deliver_webhook

    monkeypatch.setenv("SNAPASSET_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("SNAPASSET_WEBHOOK_ALLOW_PRIVATE", "true")
    queue = Queue(f"webhooks-final-{id(receiver)}", connection=redis_handle.client)
    payload = completed_event(f"gen-1-final{id(queue)}")     # a job of its own: no earlier attempts
    try:
        receiver.statuses.append(503)
        queue.enqueue(deliver_webhook, receiver.url, payload, "msg_final")   # no retries
        SimpleWorker([queue], connection=redis_handle.client).work(burst=True)
        state = webhook_state(redis_handle.client, payload["jobId"])
        assert (state["status"], state["attempts"], state["deliveredAt"]) == ("failed", 1, None)
        assert "503" in state["lastError"]
    finally:
        redis_handle.client.delete(f"snapasset:job:{payload['jobId']}:webhook")
        for job_id in queue.failed_job_registry.get_job_ids():
            queue.failed_job_registry.remove(job_id, delete_job=True)
