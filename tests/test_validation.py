"""Bad input answers the spec's status and code, in the spec's JSON shape, and enqueues nothing."""

import time

import jwt
import pytest

from snapasset.jobs import open_queue
from snapasset.platforms import PLATFORMS

GOOD = {"prompt": "A beautiful sunset over mountains", "platforms": ["instagram-post"]}


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == code
    assert set(body) >= {"error", "message", "code", "timestamp"}
    assert "Traceback" not in response.get_data(as_text=True)
    return body


@pytest.fixture
def queue(app, settings, redis_handle):
    return open_queue(redis_handle.client, settings)


@pytest.mark.parametrize("body, field", [
    ({"platforms": ["instagram-post"]}, "prompt"),
    ({**GOOD, "prompt": "too short"}, "prompt"),
    ({**GOOD, "prompt": "   short    "}, "prompt"),
    ({**GOOD, "prompt": "x" * 4001}, "prompt"),
    ({**GOOD, "prompt": 42}, "prompt"),
    ({"prompt": GOOD["prompt"]}, "platforms"),
    ({**GOOD, "platforms": []}, "platforms"),
    ({**GOOD, "platforms": "instagram-post"}, "platforms"),
    ({**GOOD, "platforms": ["myspace-banner"]}, "platforms"),
    ({**GOOD, "platforms": ["instagram-post", "instagram-post"]}, "platforms"),
    ({**GOOD, "platforms": [1, 2]}, "platforms"),
    ({**GOOD, "colour": "red"}, "colour"),
    ({**GOOD, "options": {"quality": "ultra"}}, "options.quality"),
    ({**GOOD, "options": {"format": "gif"}}, "options.format"),
    ({**GOOD, "options": {"style": "grim"}}, "options.style"),
    ({**GOOD, "options": {"fit": "stretch"}}, "options.fit"),
    ({**GOOD, "options": {"dpi": 300}}, "options.dpi"),
    ({**GOOD, "options": "hd"}, "options"),
    ({**GOOD, "webhookUrl": "ftp://example.com/x"}, "webhookUrl"),
    ({**GOOD, "webhookUrl": "https://user:pw@example.com/x"}, "webhookUrl"),
])
def test_invalid_fields_are_named(client, auth, queue, body, field):
    r = client.post("/api/jobs", json=body, headers=auth)
    error = assert_error(r, 400, "INVALID_REQUEST")
    assert field in error["details"], error
    assert queue.count == 0


def test_missing_prompt_message(client, auth):
    r = client.post("/api/jobs", json={"platforms": ["instagram-post"]}, headers=auth)
    assert assert_error(r, 400, "INVALID_REQUEST")["message"] == "Missing required field: prompt"


def test_every_problem_is_reported_at_once(client, auth):
    r = client.post("/api/jobs", json={"prompt": "short", "platforms": ["nope"], "extra": 1}, headers=auth)
    assert set(assert_error(r, 400, "INVALID_REQUEST")["details"]) == {"prompt", "platforms", "extra"}


@pytest.mark.parametrize("data, content_type", [
    ("{not json", "application/json"),
    ("", "application/json"),
    ("[1, 2]", "application/json"),
    ("prompt=hello", "application/x-www-form-urlencoded"),
])
def test_bad_json(client, auth, queue, data, content_type):
    r = client.post("/api/jobs", data=data, content_type=content_type, headers=auth)
    assert_error(r, 400, "INVALID_REQUEST")
    assert queue.count == 0


def test_old_quality_words_are_accepted(client, auth, settings, redis_handle):
    for given, meant in (("hd", "high"), ("standard", "medium"), ("low", "low")):
        r = client.post("/api/jobs", json={**GOOD, "options": {"quality": given}}, headers=auth)
        assert r.status_code == 201
        job = client.get(f"/api/jobs/{r.json['jobId']}", headers=auth).json
        assert job["data"]["options"]["quality"] == meant
        assert job["data"]["options"]["format"] == "jpeg"


@pytest.mark.parametrize("fit", ["cover", "contain", "extend"])
def test_fit_and_avif_are_accepted_and_kept(client, auth, fit):
    r = client.post("/api/jobs", json={**GOOD, "options": {"fit": fit, "format": "avif"}}, headers=auth)
    assert r.status_code == 201, r.json
    job = client.get(f"/api/jobs/{r.json['jobId']}", headers=auth).json
    assert (job["data"]["options"]["fit"], job["data"]["options"]["format"]) == (fit, "avif")


def test_prompt_is_trimmed(client, auth):
    r = client.post("/api/jobs", json={**GOOD, "prompt": "   " + GOOD["prompt"] + "\n"}, headers=auth)
    job = client.get(f"/api/jobs/{r.json['jobId']}", headers=auth).json
    assert job["data"]["prompt"] == GOOD["prompt"]


def test_payload_too_large(client, auth):
    from snapasset.api.jobs import CREATE_BODY_MAX

    # a create body may carry reference pictures as data URLs, up to its own limit
    r = client.post("/api/jobs", json={**GOOD, "prompt": "x" * (CREATE_BODY_MAX + 1)}, headers=auth)
    body = assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert body["details"] == {"body": f"must be at most {CREATE_BODY_MAX} bytes"}
    # every other body keeps the small one: the limit, in words and in bytes
    r = client.post("/api/jobs/gen-1-abcdefghij/retry", json={"userId": "x" * 100_000}, headers=auth)
    body = assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert body["message"] == "The request body is larger than this API accepts (64 kB)"
    assert body["details"] == {"body": "must be at most 65536 bytes"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}, {"X-API-Key": "wrong-key-0123456789"}])
def test_credentials_are_checked_before_the_body(client, queue, headers):
    """Who asks comes first: without valid credentials nothing about the body is said (a short
    prompt, a body too large, a body that is not JSON)."""
    for body in ({**GOOD, "prompt": "short"}, {**GOOD, "prompt": "x" * 100_000}):
        assert_error(client.post("/api/jobs", json=body, headers=headers), 401, "UNAUTHORIZED")
    assert_error(client.post("/api/jobs", data="{not json", content_type="application/json", headers=headers),
                 401, "UNAUTHORIZED")
    assert queue.count == 0


def test_an_unknown_platform_is_answered_with_a_suggestion_and_every_valid_id(client, auth, queue):
    body = assert_error(client.post("/api/jobs", json={**GOOD, "platforms": ["instagram-psot", "og-image"]},
                                    headers=auth), 400, "INVALID_REQUEST")
    message = body["details"]["platforms"]
    assert message.startswith("unknown platform 'instagram-psot' (did you mean 'instagram-post'?); valid ids: ")
    assert message.split("valid ids: ")[1].split(", ") == list(PLATFORMS)
    # nothing close: no guess, still the list
    body = assert_error(client.post("/api/jobs", json={**GOOD, "platforms": ["myspace-banner"]}, headers=auth),
                        400, "INVALID_REQUEST")
    assert body["details"]["platforms"].startswith("unknown platform 'myspace-banner'; valid ids: instagram-post, ")
    assert queue.count == 0


def test_unknown_route_and_wrong_method(client, auth):
    assert_error(client.get("/api/nothing-here", headers=auth), 404, "NOT_FOUND")
    r = client.put("/api/jobs", json=GOOD, headers=auth)
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in r.headers["Allow"]


def test_user_id_must_match_token(client, auth):
    r = client.post("/api/jobs", json={**GOOD, "userId": "someone-else"}, headers=auth)
    assert_error(r, 403, "FORBIDDEN")


def test_user_id_equal_to_sub_is_fine(client, auth, user):
    assert client.post("/api/jobs", json={**GOOD, "userId": user}, headers=auth).status_code == 201


# -- tokens -----------------------------------------------------------------------

def _claims(user, **overrides):
    now = int(time.time())
    return {"sub": user, "aud": "authenticated", "exp": now + 600, "iat": now, **overrides}


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_no_token(client, queue):
    r = client.post("/api/jobs", json=GOOD)
    assert_error(r, 401, "UNAUTHORIZED")
    assert queue.count == 0


@pytest.mark.parametrize("make", [
    lambda s, u: jwt.encode(_claims(u, exp=int(time.time()) - 3600), s, algorithm="HS256"),        # expired
    lambda s, u: jwt.encode(_claims(u), "another-secret-of-sufficient-length-000", algorithm="HS256"),  # wrong key
    lambda s, u: jwt.encode(_claims(u), None, algorithm="none"),                                  # alg none
    lambda s, u: jwt.encode(_claims(u, aud="anon"), s, algorithm="HS256"),                         # wrong aud
    lambda s, u: jwt.encode({k: v for k, v in _claims(u).items() if k != "exp"}, s, algorithm="HS256"),
    lambda s, u: jwt.encode({k: v for k, v in _claims(u).items() if k != "sub"}, s, algorithm="HS256"),
    lambda s, u: "not.a.token",
], ids=["expired", "bad-signature", "alg-none", "wrong-audience", "no-exp", "no-sub", "garbage"])
def test_bad_tokens(client, settings, user, queue, make):
    r = client.post("/api/jobs", json=GOOD, headers=_bearer(make(settings.jwt_secret, user)))
    assert_error(r, 401, "UNAUTHORIZED")
    assert queue.count == 0


def test_another_users_job_is_not_found(client, auth, make_token):
    job_id = client.post("/api/jobs", json=GOOD, headers=auth).json["jobId"]
    other = _bearer(make_token())
    assert_error(client.get(f"/api/jobs/{job_id}", headers=other), 404, "JOB_NOT_FOUND")
    missing = client.get("/api/jobs/gen-1700000000-doesnotexist", headers=other)
    assert_error(missing, 404, "JOB_NOT_FOUND")
    assert client.get("/api/jobs", headers=other).json["jobs"] == []


def test_list_validation(client, auth):
    assert_error(client.get("/api/jobs?limit=0", headers=auth), 400, "INVALID_REQUEST")
    assert_error(client.get("/api/jobs?limit=101", headers=auth), 400, "INVALID_REQUEST")
    assert_error(client.get("/api/jobs?status=done", headers=auth), 400, "INVALID_REQUEST")
    assert_error(client.get("/api/jobs?cursor=abc", headers=auth), 400, "INVALID_REQUEST")
