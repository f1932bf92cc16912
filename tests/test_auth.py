"""Authentication through HTTP: HS256 and JWKS (ES256/RS256) access tokens and every attack on
them, API keys and their scopes, admins, and who may see whose jobs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from snapasset.auth import Authenticator, JwksKeys
from snapasset.config import ApiKey

JOB = {"prompt": "A beautiful sunset over mountains", "platforms": ["facebook-cover"]}
JOBS_KEY = "jobs-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
BOTH_KEY = "both-key-0123456789abcdefgh"


class JwksServer:
    """A local HTTP server publishing a JWKS, counting how often it is fetched."""

    def __init__(self):
        self.keys: list[dict] = []
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/auth/v1/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, private_key, kid: str, **extra) -> None:
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[
            "ES256" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "RS256"
        ].to_jwk(private_key.public_key()))
        self.keys.append({**jwk, "kid": kid, "use": "sig", **extra})


@pytest.fixture
def jwks():
    server = JwksServer()
    yield server
    server.httpd.shutdown()


@pytest.fixture
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_app(make_app, jwks, ec_key, rsa_key):
    jwks.publish(ec_key, "ec-1")
    jwks.publish(rsa_key, "rsa-1")
    app = make_app(jwks_url=jwks.url, api_keys=(
        ApiKey("backend", JOBS_KEY, frozenset({"jobs"})),
        ApiKey("ops", ADMIN_KEY, frozenset({"admin"})),
        ApiKey("all", BOTH_KEY, frozenset({"jobs", "admin"})),
    ))
    services = app.extensions["snapasset"]
    # refetch on an unknown kid at most every 0.3 s (30 s in production) so the test can see both
    services.auth = Authenticator(services.settings, jwks=JwksKeys(jwks.url, min_refresh=0.3))
    return app


@pytest.fixture
def jclient(jwks_app):
    return jwks_app.test_client()


def claims(**overrides):
    now = int(time.time())
    base = {"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated", "iat": now,
            "exp": now + 3600, "app_metadata": {}}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key, alg: str, kid: str | None, **overrides) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_401(response):
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.json["code"] == "UNAUTHORIZED"


# -- valid tokens ---------------------------------------------------------------------------

def test_hs256_es256_and_rs256_tokens_are_accepted(jclient, make_token, ec_key, rsa_key):
    assert jclient.get("/api/jobs", headers=bearer(make_token())).status_code == 200
    assert jclient.get("/api/jobs", headers=bearer(sign(ec_key, "ES256", "ec-1"))).status_code == 200
    assert jclient.get("/api/jobs", headers=bearer(sign(rsa_key, "RS256", "rsa-1"))).status_code == 200


def test_the_subject_of_a_jwks_token_is_the_user(jclient, ec_key):
    user = str(uuid.uuid4())
    auth = bearer(sign(ec_key, "ES256", "ec-1", sub=user))
    created = jclient.post("/api/jobs", json=JOB, headers=auth)
    assert created.status_code == 201
    assert jclient.get(f"/api/jobs/{created.json['jobId']}", headers=auth).json["data"]["userId"] == user


# -- attacks ----------------------------------------------------------------------------------

def test_alg_none_is_refused(jclient):
    unsigned = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}."
    assert_401(jclient.get("/api/jobs", headers=bearer(unsigned)))
    none_with_kid = jwt.encode(claims(), None, algorithm="none", headers={"kid": "ec-1"})
    assert_401(jclient.get("/api/jobs", headers=bearer(none_with_kid)))


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", None])
def test_hs256_signed_with_the_public_key_is_refused(jclient, rsa_key, ec_key, kid):
    """Algorithm confusion: the attacker uses our published public key as an HMAC secret."""
    public = (rsa_key if kid != "ec-1" else ec_key).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    assert_401(jclient.get("/api/jobs", headers=bearer(f"{signing_input}.{b64(signature)}")))


def test_rs256_header_on_an_ec_key_is_refused(jclient, rsa_key):
    # RS256 signature, but naming the EC key: the key's type decides the algorithm
    assert_401(jclient.get("/api/jobs", headers=bearer(sign(rsa_key, "RS256", "ec-1"))))


def test_bad_signature_is_refused(jclient, ec_key):
    impostor = ec.generate_private_key(ec.SECP256R1())
    assert_401(jclient.get("/api/jobs", headers=bearer(sign(impostor, "ES256", "ec-1"))))
    token = sign(ec_key, "ES256", "ec-1")
    head, payload, signature = token.split(".")
    forged_payload = b64(json.dumps(claims(sub="someone-else")).encode())
    assert_401(jclient.get("/api/jobs", headers=bearer(f"{head}.{forged_payload}.{signature}")))
    assert_401(jclient.get("/api/jobs", headers=bearer(jwt.encode(claims(), "another-secret-of-32-bytes-or-more!!",
                                                                   algorithm="HS256"))))


def test_a_token_once_accepted_is_not_trusted_past_its_expiry(jclient, settings):
    """A process remembers tokens it verified (a browser sends the same one every request), but
    never past the token's own expiry (plus the 30 s of clock skew allowed)."""
    warm = jwt.encode(claims(), settings.jwt_secret, algorithm="HS256")
    assert jclient.get("/api/jobs", headers=bearer(warm)).status_code == 200   # the app's first request is slow
    expiry = int(time.time()) - 27                                   # still accepted for 3 s (30 s of skew)
    token = jwt.encode(claims(exp=expiry), settings.jwt_secret, algorithm="HS256")
    assert jclient.get("/api/jobs", headers=bearer(token)).status_code == 200
    assert jclient.get("/api/jobs", headers=bearer(token)).status_code == 200
    time.sleep(max(0.0, expiry + 30 - time.time()) + 1.1)             # past it, whatever the requests took
    refused = jclient.get("/api/jobs", headers=bearer(token))
    assert_401(refused)
    assert "expired" in refused.json["message"]


def test_a_remembered_token_does_not_vouch_for_a_forged_one(jclient, settings):
    genuine = jwt.encode(claims(sub="alice"), settings.jwt_secret, algorithm="HS256")
    assert jclient.get("/api/jobs", headers=bearer(genuine)).status_code == 200
    head, _payload, signature = genuine.split(".")
    as_bob = f"{head}.{b64(json.dumps(claims(sub='bob')).encode())}.{signature}"
    assert_401(jclient.get("/api/jobs", headers=bearer(as_bob)))
    assert_401(jclient.get("/api/jobs", headers=bearer(genuine[:-2] + ("AA" if genuine[-2:] != "AA" else "BB"))))
    assert jclient.get("/api/jobs", headers=bearer(genuine)).status_code == 200


@pytest.mark.parametrize("overrides", [
    {"exp": int(time.time()) - 3600},           # expired
    {"exp": None},                              # no expiry at all
    {"aud": "anon"},                            # wrong audience
    {"aud": None},                              # no audience
    {"sub": None},                              # no subject
    {"sub": ""},                                # empty subject
])
def test_expired_wrong_audience_and_missing_sub_are_refused(jclient, ec_key, settings, overrides):
    assert_401(jclient.get("/api/jobs", headers=bearer(sign(ec_key, "ES256", "ec-1", **overrides))))
    hs = jwt.encode(claims(**overrides), settings.jwt_secret, algorithm="HS256")
    assert_401(jclient.get("/api/jobs", headers=bearer(hs)))


def test_unknown_kid_refetches_once_then_is_refused_and_refetches_are_rate_limited(jclient, jwks):
    stranger = ec.generate_private_key(ec.SECP256R1())
    assert_401(jclient.get("/api/jobs", headers=bearer(sign(stranger, "ES256", "nobody-1"))))
    fetched = jwks.fetches
    assert fetched == 1
    for n in range(5):   # made-up kids do not turn into a request each to the JWKS
        assert_401(jclient.get("/api/jobs", headers=bearer(sign(stranger, "ES256", f"nobody-{n + 2}"))))
    assert jwks.fetches == fetched
    time.sleep(0.35)
    assert_401(jclient.get("/api/jobs", headers=bearer(sign(stranger, "ES256", "nobody-9"))))
    assert jwks.fetches == fetched + 1


def test_a_rotated_in_key_is_picked_up_on_its_first_token(jclient, jwks, ec_key):
    assert jclient.get("/api/jobs", headers=bearer(sign(ec_key, "ES256", "ec-1"))).status_code == 200
    rotated = ec.generate_private_key(ec.SECP256R1())
    jwks.publish(rotated, "ec-2")
    time.sleep(0.35)
    assert jclient.get("/api/jobs", headers=bearer(sign(rotated, "ES256", "ec-2"))).status_code == 200
    assert jclient.get("/api/jobs", headers=bearer(sign(ec_key, "ES256", "ec-1"))).status_code == 200


def test_jwks_keys_with_a_symmetric_or_mismatched_alg_are_ignored(make_app, jwks, ec_key):
    jwks.keys.append({"kty": "oct", "k": b64(b"guessable-secret-guessable-secret"), "kid": "oct-1", "alg": "HS256"})
    jwks.publish(ec_key, "ec-rs", alg="RS256")
    client = make_app(jwks_url=jwks.url).test_client()
    hs = jwt.encode(claims(), "guessable-secret-guessable-secret", algorithm="HS256", headers={"kid": "oct-1"})
    assert_401(client.get("/api/jobs", headers=bearer(hs)))
    assert_401(client.get("/api/jobs", headers=bearer(sign(ec_key, "ES256", "ec-rs"))))


def test_unreachable_jwks_is_503_not_a_crash(make_app, ec_key):
    client = make_app(jwks_url="http://127.0.0.1:9/jwks.json").test_client()
    r = client.get("/api/jobs", headers=bearer(sign(ec_key, "ES256", "ec-1")))
    assert r.status_code == 503 and r.json["code"] == "SERVICE_UNAVAILABLE"


def test_malformed_headers_are_401(jclient):
    assert_401(jclient.get("/api/jobs"))
    assert_401(jclient.get("/api/jobs", headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    assert_401(jclient.get("/api/jobs", headers=bearer("a.b.c")))


# -- admins -------------------------------------------------------------------------------------

def test_admin_role_in_app_metadata_makes_an_admin(jclient, ec_key, make_token):
    admin = bearer(sign(ec_key, "ES256", "ec-1", app_metadata={"role": "admin"}))
    assert jclient.get("/api/queue/stats", headers=admin).status_code == 200
    assert jclient.get("/api/queue/stats", headers=bearer(make_token(admin=True))).status_code == 200
    # a role claim at the top level (user-editable user_metadata neither) does not
    for token in (sign(ec_key, "ES256", "ec-1", role="admin"),
                  sign(ec_key, "ES256", "ec-1", user_metadata={"role": "admin"}),
                  make_token()):
        r = jclient.get("/api/queue/stats", headers=bearer(token))
        assert r.status_code == 403 and r.json["code"] == "FORBIDDEN"


# -- API keys -----------------------------------------------------------------------------------

def test_api_key_with_jobs_scope_acts_for_the_given_user(jclient, make_token):
    user = str(uuid.uuid4())
    key = {"X-API-Key": JOBS_KEY}
    missing = jclient.post("/api/jobs", json=JOB, headers=key)
    assert missing.status_code == 400 and "userId" in missing.json["details"]
    created = jclient.post("/api/jobs", json={**JOB, "userId": user}, headers=key)
    assert created.status_code == 201, created.json
    job_id = created.json["jobId"]
    assert jclient.get(f"/api/jobs/{job_id}?userId={user}", headers=key).json["data"]["userId"] == user
    assert jclient.get(f"/api/jobs?userId={user}", headers=key).json["count"] == 1
    # one job names its owner: the key may leave the user out there (not when listing)
    assert jclient.get(f"/api/jobs/{job_id}", headers=key).json["data"]["userId"] == user
    assert jclient.get("/api/jobs", headers=key).status_code == 400
    # the user id becomes part of storage paths and Redis keys: no separators in it
    for bad in ("../other", "a/b", "a:b", " spaced", ""):
        r = jclient.post("/api/jobs", json={**JOB, "userId": bad}, headers=key)
        assert r.status_code == 400 and "userId" in r.json["details"], bad
    other = str(uuid.uuid4())
    assert jclient.get(f"/api/jobs/{job_id}?userId={other}", headers=key).json["code"] == "JOB_NOT_FOUND"
    # the user sees the job the service created for them
    assert jclient.get(f"/api/jobs/{job_id}", headers=bearer(make_token(user))).status_code == 200
    assert jclient.delete(f"/api/jobs/{job_id}/cancel?userId={user}", headers=key).status_code == 200
    assert jclient.get("/api/queue/stats", headers=key).status_code == 403


def test_api_key_scopes(jclient):
    user = str(uuid.uuid4())
    admin_only = {"X-API-Key": ADMIN_KEY}
    assert jclient.get("/api/queue/stats", headers=admin_only).status_code == 200
    r = jclient.post("/api/jobs", json={**JOB, "userId": user}, headers=admin_only)
    assert r.status_code == 403 and r.json["code"] == "FORBIDDEN"
    both = {"X-API-Key": BOTH_KEY}
    assert jclient.get("/api/queue/stats", headers=both).status_code == 200
    assert jclient.post("/api/jobs", json={**JOB, "userId": user}, headers=both).status_code == 201


def test_wrong_api_keys_are_401_and_keys_never_appear_in_answers_or_logs(jclient, caplog):
    caplog.set_level(logging.DEBUG)
    for presented in ("nope", JOBS_KEY[:-1], JOBS_KEY + "x", "", JOBS_KEY.upper()):
        r = jclient.get("/api/queue/stats", headers={"X-API-Key": presented})
        assert_401(r)
    r = jclient.get("/api/queue/stats", headers={"X-API-Key": ADMIN_KEY})
    assert r.status_code == 200
    both = jclient.get("/api/jobs", headers={"X-API-Key": JOBS_KEY, "Authorization": "Bearer x.y.z"})
    assert_401(both)
    for secret in (JOBS_KEY, ADMIN_KEY, BOTH_KEY):
        assert secret not in caplog.text
        assert secret not in r.get_data(as_text=True)
    settings = jclient.application.extensions["snapasset"].settings
    assert JOBS_KEY not in repr(settings) and JOBS_KEY not in repr(settings.api_keys)


# -- whose jobs ------------------------------------------------------------------------------------

def test_another_users_job_is_404_exactly_like_a_missing_one(client, make_token):
    owner, stranger = bearer(make_token()), bearer(make_token())
    job_id = client.post("/api/jobs", json=JOB, headers=owner).json["jobId"]
    missing = "gen-1700000000-doesnotexist"
    for method, path in (("get", "/api/jobs/{}"), ("post", "/api/jobs/{}/retry"),
                         ("delete", "/api/jobs/{}/cancel")):
        theirs = getattr(client, method)(path.format(job_id), headers=stranger)
        nothing = getattr(client, method)(path.format(missing), headers=stranger)
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.json["code"] == nothing.json["code"] == "JOB_NOT_FOUND"
        assert theirs.json["message"] == nothing.json["message"]
    assert client.get("/api/jobs", headers=stranger).json["count"] == 0
    assert client.get(f"/api/jobs/{job_id}", headers=owner).status_code == 200


def test_a_user_cannot_act_for_someone_else(client, make_token, user, auth):
    r = client.post("/api/jobs", json={**JOB, "userId": str(uuid.uuid4())}, headers=auth)
    assert r.status_code == 403 and r.json["code"] == "FORBIDDEN"
    assert client.post("/api/jobs", json={**JOB, "userId": user}, headers=auth).status_code == 201
    assert client.get(f"/api/jobs?userId={uuid.uuid4()}", headers=auth).status_code == 403


def test_a_stream_token_opens_only_its_stream(client, auth):
    created = client.post("/api/jobs", json=JOB, headers=auth).json
    token = created["streamUrl"].split("token=")[1]
    assert_401(client.get(f"/api/jobs/{created['jobId']}?token={token}"))
    assert_401(client.get(f"/api/jobs/{created['jobId']}?access_token={token}"))
    assert_401(client.get(f"/api/jobs/{created['jobId']}", headers=bearer(token)))
