"""The site blueprint: readiness, metrics, the OpenAPI document (against the app's real routes and
real responses) and the offline docs page."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry
from prometheus_client.parser import text_string_to_metric_families

from snapasset import create_app
from snapasset.config import Env
from snapasset.connections import RedisHandle
from snapasset.platforms import PLATFORMS
from tests.conftest import wait_for
from tests.stubs.supabase import SupabaseStub

PROMPT = "A beautiful sunset over mountains"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


# -- /ready ------------------------------------------------------------------------------------
def test_ready_is_503_without_a_worker_and_200_once_one_listens(client, worker_process):
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert set(body) >= {"error", "message", "code", "timestamp"}
    assert body["details"] == {"workers": "no live worker"}
    assert body["checks"]["redis"]["ok"] and body["checks"]["storage"]["ok"]
    assert response.headers["Retry-After"]

    worker_process()
    response = wait_for(lambda: (r := client.get("/ready")).status_code == 200 and r, timeout=60)
    body = response.json
    assert body["status"] == "ready"
    assert body["checks"]["workers"]["count"] == 1
    assert all(check["ok"] for check in body["checks"].values())


def _ready_status(client) -> int:
    return client.get("/ready").status_code


def test_ready_turns_503_soon_after_the_last_worker_dies(make_app, worker_process):
    """Judged by heartbeats (every SNAPASSET_WORKER_HEARTBEAT s; alive for three of them), not by
    RQ's registration, which outlives a SIGKILLed worker by minutes."""
    client = make_app(worker_heartbeat=1).test_client()
    worker = worker_process({Env.WORKER_HEARTBEAT: "1"})
    wait_for(lambda: _ready_status(client) == 200, timeout=60, interval=0.2)
    worker.kill()
    died = time.monotonic()
    wait_for(lambda: _ready_status(client) == 503, timeout=60, interval=0.2)
    assert time.monotonic() - died < 60
    assert client.get("/ready").json["details"] == {"workers": "no live worker"}


def test_ready_is_not_fooled_by_a_registration_restored_from_the_append_only_file(
        make_app, redis_server, worker_process):
    server = redis_server("--appendonly", "yes", "--appendfsync", "always", "--save", "")
    handle = RedisHandle(client=redis_lib.Redis.from_url(server.url), url=server.url)
    client = make_app(redis=handle, redis_url=server.url, worker_heartbeat=1).test_client()
    worker = worker_process({Env.REDIS_URL: server.url, Env.WORKER_HEARTBEAT: "1"})
    wait_for(lambda: _ready_status(client) == 200, timeout=60, interval=0.2)
    worker.kill()
    died = time.monotonic()
    server.stop()
    server.start()   # the dead worker's registration comes back from the AOF, its key TTL and all
    assert handle.client.keys("rq:worker:*"), "the registration was restored"
    wait_for(lambda: _ready_status(client) == 503, timeout=60, interval=0.2)
    assert time.monotonic() - died < 60
    handle.client.close()


def test_ready_checks_supabase_storage_when_configured(make_app):
    stub = SupabaseStub.start(buckets=["generated-images"])
    try:
        supabase = {"supabase_url": stub.url, "supabase_service_role_key": "service-role-test-key"}
        checks = make_app(**supabase).test_client().get("/ready").json["checks"]
        assert checks["storage"] == {"ok": True}
        assert stub.requests_to("GET", "/storage/v1/bucket/generated-images")
        missing = make_app(**supabase, supabase_bucket="no-such-bucket").test_client().get("/ready").json
        assert missing["checks"]["storage"]["ok"] is False and "storage" in missing["details"]
    finally:
        stub.stop()


def test_ready_names_unwritable_storage(settings, redis_handle, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    app = create_app(settings.replace(media_dir=blocker / "media"), redis=redis_handle)
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.json["checks"]["storage"]["ok"] is False
    assert "storage" in response.json["details"]


@pytest.fixture
def app_without_redis(settings):
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5,
                           retry=Retry(NoBackoff(), 0))
    return create_app(settings, redis=RedisHandle(client=dead, url="redis://127.0.0.1:1"))


def test_ready_and_metrics_when_redis_is_down(app_without_redis):
    client = app_without_redis.test_client()
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json["code"] == "SERVICE_UNAVAILABLE"
    assert response.json["checks"]["redis"]["ok"] is False
    assert set(response.json["details"]) == {"redis", "workers"}

    response = client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert families["snapasset_redis_up"].samples[0].value == 0


# -- /metrics ----------------------------------------------------------------------------------
def _samples(text: str, name: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == name]


def test_metrics_show_a_queued_job_and_request_counts(client, auth, settings):
    created = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["instagram-post"]}, headers=auth)
    assert created.status_code == 201
    client.get(f"/api/jobs/{created.json['jobId']}", headers=auth)
    client.get("/no/such/route")

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)

    jobs = {s.labels["status"]: s.value for s in _samples(text, "snapasset_queue_jobs")
            if s.labels["queue"] == settings.queue_name}
    assert jobs == {"waiting": 1, "active": 0, "delayed": 0, "failed": 0, "completed": 0, "cancelled": 0}
    assert [s.value for s in _samples(text, "snapasset_workers")] == [0]
    assert [s.value for s in _samples(text, "snapasset_queue_paused")] == [0]
    assert [s.value for s in _samples(text, "snapasset_redis_up")] == [1]

    requests = {(s.labels["method"], s.labels["endpoint"], s.labels["status"]): s.value
                for s in _samples(text, "snapasset_http_requests_total")}
    assert requests[("POST", "/api/jobs", "201")] == 1
    assert requests[("GET", "/api/jobs/<job_id>", "200")] == 1
    assert requests[("GET", "<unmatched>", "404")] == 1
    # ids never become label values: only route templates do
    assert created.json["jobId"] not in text
    latency = _samples(text, "snapasset_http_request_duration_seconds_count")
    assert any(s.labels["endpoint"] == "/api/jobs" and s.value == 1 for s in latency)


def test_metrics_count_open_event_streams(client, auth):
    created = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"]}, headers=auth)
    stream = client.get(created.json["streamUrl"].replace("http://testserver", ""), buffered=False)
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"

    def open_streams() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return sum(s.value for s in _samples(text, "snapasset_sse_connections"))

    assert open_streams() == 1
    stream.close()   # what the server does when the client goes away
    assert open_streams() == 0


def test_metrics_token_guards_the_scrape_when_configured(settings, redis_handle):
    guarded = settings.replace(metrics_token="scrape-token-0123456789")
    client = create_app(guarded, redis=redis_handle).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).json["code"] == "UNAUTHORIZED"
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert ok.status_code == 200 and "snapasset_queue_jobs" in ok.get_data(as_text=True)


# -- /openapi.json -----------------------------------------------------------------------------
@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json


def _template(path: str) -> str:
    """/api/jobs/<job_id> and /api/jobs/{jobId} both → /api/jobs/{}"""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def _app_operations(app) -> set[tuple[str, str]]:
    return {(method.lower(), _template(rule.rule)) for rule in app.url_map.iter_rules()
            if rule.endpoint != "static"   # the page's own assets, not part of the API
            for method in rule.methods - IGNORED_METHODS}


def _documented_operations(document) -> set[tuple[str, str]]:
    return {(method, _template(path)) for path, item in document["paths"].items()
            for method in item if method in {"get", "post", "put", "patch", "delete"}}


def test_openapi_documents_every_route_the_app_has(app, document):
    undocumented = _app_operations(app) - _documented_operations(document)
    assert not undocumented, f"routes missing from the OpenAPI document: {sorted(undocumented)}"


def test_openapi_documents_no_route_the_app_lacks(app, document):
    phantom = _documented_operations(document) - _app_operations(app)
    assert not phantom, f"documented but not served: {sorted(phantom)}"


def test_openapi_is_a_3_1_document_with_the_contracts_shapes(document):
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] and document["info"]["version"]
    assert document["servers"] == [{"url": "http://testserver"}]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer",
                                     "bearerFormat": "JWT"}
    assert (schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("header", "X-API-Key")
    assert (schemes["streamToken"]["in"], schemes["streamToken"]["name"]) == ("query", "token")
    schemas = document["components"]["schemas"]
    assert schemas["PlatformId"]["enum"] == list(PLATFORMS)
    assert schemas["Error"]["required"] == ["error", "message", "code", "timestamp"]
    # every operation answers with something, and each error response is the Error shape
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and "$ref" in response:
                    assert response["$ref"].startswith("#/components/responses/")
                    target = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                    assert target["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    stream = document["paths"]["/api/sse/jobs/{jobId}"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {"streamToken": []} in stream["security"]


def test_openapi_passes_the_openapi_spec_validator(document):
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_real_responses_match_the_documented_schemas(client, auth, run_jobs, document):
    validators = pytest.importorskip("openapi_schema_validator")
    import jsonschema   # openapi_schema_validator's own dependency

    def check(instance, schema_name):
        validators.validate(instance, {**document, "$ref": f"#/components/schemas/{schema_name}"},
                            cls=validators.OAS31Validator)

    created = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["instagram-post", "og-image"],
                                             "options": {"format": "png"}}, headers=auth)
    check(created.json, "JobCreated")
    check(client.get(f"/api/jobs/{created.json['jobId']}", headers=auth).json, "Job")
    run_jobs()
    done = client.get(f"/api/jobs/{created.json['jobId']}", headers=auth).json
    assert done["status"] == "completed"
    check(done, "Job")
    check(client.get("/api/jobs", headers=auth).json, "JobList")
    check(client.get("/api/jobs/gen-1-doesnotexist", headers=auth).json, "Error")
    check(client.post("/api/jobs", json={"prompt": "short"}, headers=auth).json, "Error")
    for platform in client.get("/api/platforms").json["platforms"]:
        check(platform, "Platform")
    check(client.get("/health").json, "Health")
    with pytest.raises(jsonschema.ValidationError):
        check({"prompt": PROMPT, "platforms": ["myspace-banner"]}, "JobRequest")


def test_the_new_request_fields_and_answers_match_the_documented_schemas(client, auth, run_jobs, document,
                                                                         monkeypatch):
    """n, seed, background, custom platforms, a reference picture, a webhook: the request as
    documented, and what GET, the waiting create and DELETE answer, each in its documented shape."""
    import base64
    import io

    from PIL import Image

    validators = pytest.importorskip("openapi_schema_validator")

    def check(instance, schema_name):
        validators.validate(instance, {**document, "$ref": f"#/components/schemas/{schema_name}"},
                            cls=validators.OAS31Validator)

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (0, 128, 255)).save(buffer, "PNG")
    body = {"prompt": PROMPT, "platforms": ["og-image"], "webhookUrl": "https://hooks.snapasset.invalid/hook",
            "options": {"format": "png", "n": 2, "seed": 5, "background": "transparent", "model": "gpt-image-2",
                        "inputImages": ["data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()],
                        "customPlatforms": [{"id": "shop-banner", "width": 1600, "height": 400, "maxBytes": 900000}]}}
    check(body, "JobRequest")
    assert document["components"]["schemas"]["Options"]["properties"]["model"]["enum"] == ["gpt-image-2"]
    created = client.post("/api/jobs", json=body, headers={**auth, "Prefer": "wait=1"})
    assert created.status_code == 201
    check(created.json, "JobCreatedAndWaited")
    assert created.json["queuePosition"] == 0 and created.json["webhook"]["status"] == "pending"
    check(client.get(f"/api/jobs/{created.json['jobId']}", headers=auth).json, "Job")
    monkeypatch.setenv("SNAPASSET_WEBHOOK_SECRET", "whsec_" + base64.b64encode(b"k" * 32).decode())
    run_jobs()
    done = client.get(f"/api/jobs/{created.json['jobId']}", headers=auth).json
    assert done["status"] == "completed" and len(done["result"]["images"]) == 4
    check(done, "Job")
    assert done["webhook"]["attempts"] >= 1        # .invalid never resolves: pending, to be retried
    deleted = client.delete(f"/api/jobs/{created.json['jobId']}", headers=auth)
    assert deleted.status_code == 204
    unfinished = client.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["og-image"]}, headers=auth).json
    check(client.delete(f"/api/jobs/{unfinished['jobId']}", headers=auth).json, "Error")


# -- the docs page and the page ----------------------------------------------------------------
class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if tag in ("script", "link", "img") and attrs.get(name):
                self.urls.append(attrs[name])


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("path, script", [("/api-docs", "api-docs.js"), ("/", "app.js")])
def test_html_pages_load_only_their_own_assets(client, path, script):
    response = client.get(path)
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    urls = _assets(response.get_data(as_text=True))
    assert any(url.endswith(script) for url in urls)
    for url in urls:
        if url.startswith("data:"):
            continue
        assert url.startswith("/"), f"{path} loads {url} from elsewhere: the page must work offline"
        asset = client.get(url)
        assert asset.status_code == 200, url
        expected = "text/css" if url.endswith(".css") else "text/javascript"
        assert asset.content_type.startswith(expected), (url, asset.content_type)


def test_page_explains_development_tokens(client):
    html = client.get("/").get_data(as_text=True)
    assert "snapasset token" in html
    assert 'for="prompt"' in html and 'for="token"' in html and "<legend>Platforms</legend>" in html


def test_the_page_may_fetch_its_images_where_they_are_served(make_app):
    """Its "Download all" zip fetches the images: connect-src names the public URL's host and
    Supabase's, and nothing else."""
    app = make_app(public_url="https://assets.example.com", supabase_url="https://abc.supabase.co",
                   supabase_service_role_key="service-role-key")
    policy = app.test_client().get("/").headers["Content-Security-Policy"]
    connect = next(part for part in policy.split("; ") if part.startswith("connect-src"))
    assert connect == "connect-src 'self' https://abc.supabase.co https://assets.example.com"
    assert "script-src 'self';" in policy
