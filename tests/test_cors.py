"""Cross-origin access (SPEC §2): preflights, headers on every API answer (errors and 429s too),
nothing for origins not listed. The browser's own view is in tests/test_browser.py."""

from __future__ import annotations

import pytest

from snapasset.config import ConfigError, Settings

FRONTEND = "https://app.example.com"
PROMPT = "A lighthouse on a rocky coast at sunset"


@pytest.fixture
def listed(make_app):
    return make_app(cors_origins=(FRONTEND,)).test_client()


def _allowed_headers(response) -> set[str]:
    return {h.strip().lower() for h in response.headers.get("Access-Control-Allow-Headers", "").split(",")}


def test_a_preflight_from_a_listed_origin_is_answered(listed):
    response = listed.options("/api/jobs", headers={
        "Origin": FRONTEND, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key, prefer"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert {"authorization", "content-type", "idempotency-key", "prefer"} <= _allowed_headers(response)
    assert {"GET", "POST", "DELETE"} <= set(map(str.strip, response.headers["Access-Control-Allow-Methods"].split(",")))


def test_every_listed_request_header_passes_a_preflight(listed):
    asked = "Authorization, Content-Type, Idempotency-Key, X-API-Key, Last-Event-ID, Prefer"
    response = listed.options("/api/sse/jobs", headers={
        "Origin": FRONTEND, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": asked})
    assert _allowed_headers(response) == {h.strip().lower() for h in asked.split(",")}


def test_answers_expose_rate_limit_retry_after_and_location(listed, auth):
    response = listed.post("/api/jobs", json={"prompt": PROMPT, "platforms": ["instagram-post"]},
                           headers={**auth, "Origin": FRONTEND})
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After", "Location"}


def test_json_errors_carry_the_cors_headers(listed, auth):
    for response in (listed.get("/api/jobs/gen-1-doesnotexist", headers={**auth, "Origin": FRONTEND}),
                     listed.get("/api/jobs", headers={"Origin": FRONTEND}),          # 401
                     listed.post("/api/jobs", json={"prompt": "short"}, headers={**auth, "Origin": FRONTEND})):
        assert response.status_code in (400, 401, 404)
        assert response.json["code"]
        assert response.headers["Access-Control-Allow-Origin"] == FRONTEND


def test_a_rate_limited_answer_carries_the_cors_headers(make_app, auth):
    client = make_app(cors_origins=(FRONTEND,), rate_limit="2 per minute").test_client()
    answers = [client.get("/api/jobs", headers={**auth, "Origin": FRONTEND}) for _ in range(3)]
    limited = answers[-1]
    assert limited.status_code == 429 and limited.json["code"] == "RATE_LIMIT_EXCEEDED"
    assert limited.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert "Retry-After" in limited.headers["Access-Control-Expose-Headers"]
    # preflights are not counted: the page can still ask
    preflight = client.options("/api/jobs", headers={"Origin": FRONTEND, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == FRONTEND


def test_an_origin_not_listed_gets_no_cors_header(listed, auth):
    for response in (listed.options("/api/jobs", headers={"Origin": "https://evil.example",
                                                          "Access-Control-Request-Method": "POST"}),
                     listed.get("/api/jobs", headers={**auth, "Origin": "https://evil.example"})):
        assert not [name for name in response.headers.keys() if name.startswith("Access-Control-")]


def test_development_allows_local_origins_on_any_port_and_production_none(make_app, auth):
    development = make_app().test_client()
    for origin in ("http://localhost:5173", "http://127.0.0.1:8080", "http://localhost"):
        response = development.get("/api/jobs", headers={**auth, "Origin": origin})
        assert response.headers["Access-Control-Allow-Origin"] == origin
    for origin in ("http://localhost.evil.example", "https://example.com", "http://127.0.0.1.nip.io:80"):
        assert "Access-Control-Allow-Origin" not in development.get("/api/jobs", headers={**auth, "Origin": origin}).headers
    production = make_app(env="production").test_client()
    assert "Access-Control-Allow-Origin" not in production.get(
        "/api/jobs", headers={**auth, "Origin": "http://localhost:5173"}).headers


def test_a_star_allows_any_origin_without_credentials(make_app, auth):
    client = make_app(cors_origins=("*",)).test_client()
    response = client.get("/api/jobs", headers={**auth, "Origin": "https://anywhere.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_pages_outside_the_api_get_no_cors_header(listed):
    assert "Access-Control-Allow-Origin" not in listed.get("/", headers={"Origin": FRONTEND}).headers


def test_the_origin_list_is_read_and_checked():
    assert Settings.from_env({"SNAPASSET_CORS_ORIGINS": "https://a.example, http://localhost:5173/"}).cors_origins \
        == ("https://a.example", "http://localhost:5173")
    assert Settings.from_env({"SNAPASSET_CORS_ORIGINS": "*"}).cors_origins == ("*",)
    assert Settings.from_env({}).cors_origins is None
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SNAPASSET_CORS_ORIGINS": "https://a.example/app"})
    assert "SNAPASSET_CORS_ORIGINS" in str(caught.value) and "\n" not in str(caught.value)
