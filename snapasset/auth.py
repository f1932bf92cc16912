"""Who is calling: Supabase access tokens (HS256 or ES256/RS256 via the project's JWKS), API keys
and per-job stream tokens → Principal."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import jwt

from snapasset.config import ApiKey, Settings
from snapasset.errors import APIError, ErrorCode

__all__ = ["Principal", "Authenticator", "JwksKeys", "unauthorized", "forbidden", "mint_access_token",
           "STREAM_TOKEN_TTL", "ASYMMETRIC_ALGORITHMS"]

log = logging.getLogger(__name__)

STREAM_TOKEN_TTL = 15 * 60
STREAM_AUDIENCE = "snapasset-stream"
# A JWKS key's type decides its algorithm; the token's header never does.
ASYMMETRIC_ALGORITHMS = {("EC", "P-256"): "ES256", ("RSA", None): "RS256"}
TOKEN_LEEWAY = 30              # seconds of clock skew allowed on exp
VERIFIED_TOKENS_KEPT = 10_000  # access tokens a process remembers having verified
VERIFIED_TOKEN_SECONDS = 60    # how long it trusts that memory (a rotated-out JWKS key, at most this)


def unauthorized(message: str = "Authentication required") -> APIError:
    return APIError(401, ErrorCode.UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str = "You are not allowed to do this") -> APIError:
    return APIError(403, ErrorCode.FORBIDDEN, message)


@dataclass(frozen=True)
class Principal:
    """The caller. `user_id` is None for an API key acting for nobody in particular."""
    user_id: str | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    via: str = "jwt"                      # jwt | api_key | stream_token
    key_name: str | None = None
    job_id: str | None = None             # a stream token is good for this job only

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def may_prioritise(self) -> bool:
        """Whether it may ask for `high` priority: a `priority`-scoped key or an admin."""
        return "priority" in self.scopes or self.is_admin


class JwksKeys:
    """The public keys of `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`, cached.

    The set is refetched when it is older than `max_age`, and at once when a token names a `kid`
    we do not know (a key rotation) — but never more often than every `min_refresh` seconds, so
    a flood of tokens with made-up `kid`s cannot turn into a flood of requests to Supabase.
    """

    def __init__(self, url: str, *, max_age: float = 600.0, min_refresh: float = 30.0, timeout: float = 5.0):
        self.url = url
        self.max_age = max_age
        self.min_refresh = min_refresh
        self.timeout = timeout
        self._keys: dict[str, tuple[str, object]] = {}    # kid → (algorithm, public key)
        self._fetched_at: float | None = None
        self._attempted_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, kid: str) -> tuple[str, object] | None:
        """(algorithm, key) for this kid, or None if the JWKS does not have it."""
        now = time.monotonic()
        if self._fetched_at is None or now - self._fetched_at > self.max_age or kid not in self._keys:
            with self._lock:
                if time.monotonic() - self._attempted_at >= self.min_refresh:
                    self._refresh()
        if self._fetched_at is None:
            raise APIError(503, ErrorCode.SERVICE_UNAVAILABLE,
                           "The token signing keys could not be fetched; try again shortly",
                           headers={"Retry-After": str(max(1, int(self.min_refresh)))})
        return self._keys.get(kid)

    def _refresh(self) -> None:
        self._attempted_at = time.monotonic()
        try:
            request = urllib.request.Request(self.url, headers={"Accept": "application/json",
                                                                "User-Agent": "snapasset"})
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                document = json.loads(response.read())
        except Exception as exc:      # keep the keys we have; say why we could not refresh
            log.warning("could not fetch the JWKS from %s: %s", self.url, exc)
            return
        keys = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            usable = _usable_key(entry)
            if usable is not None:
                keys[entry["kid"]] = usable
        self._keys = keys
        self._fetched_at = time.monotonic()


def _usable_key(entry) -> tuple[str, object] | None:
    """(algorithm, public key) for a JWKS entry we accept: an EC P-256 or RSA signing key with a kid."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
        return None
    kty = entry.get("kty")
    algorithm = ASYMMETRIC_ALGORITHMS.get((kty, entry.get("crv") if kty == "EC" else None))
    if algorithm is None or entry.get("alg", algorithm) != algorithm or entry.get("use", "sig") != "sig":
        return None
    try:
        return algorithm, jwt.PyJWK(entry, algorithm=algorithm).key
    except jwt.PyJWTError:
        return None


class Authenticator:
    """Verifies credentials against the configured secrets; holds no per-request state."""

    def __init__(self, settings: Settings, *, jwks: JwksKeys | None = None):
        self.settings = settings
        self._hs_secret = settings.signing_secret() if (settings.jwt_secret or not settings.production) else None
        self._stream_secret = settings.stream_secret()
        self._jwks = jwks or (JwksKeys(settings.jwks_url) if settings.jwks_url else None)
        # Keys are compared as SHA-256 digests: equal length, so the comparison leaks nothing.
        self._api_keys = [(hashlib.sha256(k.key.encode()).digest(), k) for k in settings.api_keys]
        # token -> (principal, trusted until): a browser sends the same token with every request,
        # and checking its signature and claims again was a tenth of a job creation's CPU. Keyed
        # by the whole token, signature included, so any other token is verified in full.
        self._verified: dict[str, tuple[Principal, float]] = {}

    # -- API keys -------------------------------------------------------------------
    def verify_api_key(self, presented: str) -> Principal:
        """The configured key equal to `presented`; every key is compared, in constant time."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: ApiKey | None = None
        for stored, api_key in self._api_keys:
            if hmac.compare_digest(digest, stored):
                found = api_key
        if found is None:
            raise unauthorized("Invalid API key")
        return Principal(user_id=None, scopes=found.scopes, via="api_key", key_name=found.name)

    # -- access tokens -------------------------------------------------------
    def verify_access_token(self, token: str) -> Principal:
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, until = remembered
            if time.time() < until:
                return principal
            del self._verified[token]
        principal, expires = self._verify_access_token(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = (principal, min(expires + TOKEN_LEEWAY, time.time() + VERIFIED_TOKEN_SECONDS))
        return principal

    def _verify_access_token(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthorized("Malformed access token") from None
        algorithm = header.get("alg")
        if algorithm == "HS256" and self._hs_secret:
            key, algorithms = self._hs_secret, ["HS256"]
        elif algorithm in ASYMMETRIC_ALGORITHMS.values() and self._jwks is not None:
            kid = header.get("kid")
            found = self._jwks.get(kid) if isinstance(kid, str) else None
            if found is None:
                raise unauthorized("Access token signed with an unknown key")
            key_algorithm, key = found
            if key_algorithm != algorithm:
                raise unauthorized("Access token algorithm does not match its key")
            algorithms = [key_algorithm]
        else:
            # Only algorithms we hold a key for are accepted: no 'none', no HS/RS confusion.
            raise unauthorized("Unsupported token algorithm")
        claims = self._decode(token, key, algorithms, self.settings.jwt_audience)
        return self._principal_from_claims(claims), float(claims["exp"])

    def _decode(self, token: str, key, algorithms: list[str], audience: str) -> dict:
        try:
            return jwt.decode(token, key, algorithms=algorithms, audience=audience,
                              options={"require": ["exp", "sub"]}, leeway=TOKEN_LEEWAY)
        except jwt.ExpiredSignatureError:
            raise unauthorized("Access token expired") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("Access token has the wrong audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized(f"Access token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidTokenError:
            raise unauthorized("Invalid access token") from None

    @staticmethod
    def _principal_from_claims(claims: dict) -> Principal:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise unauthorized("Access token lacks the 'sub' claim")
        metadata = claims.get("app_metadata")
        role = metadata.get("role") if isinstance(metadata, dict) else None
        scopes = frozenset({"jobs", "admin"} if role == "admin" else {"jobs"})
        return Principal(user_id=subject, scopes=scopes, via="jwt")

    # -- stream tokens ---------------------------------------------------------
    def mint_stream_token(self, user_id: str, job_id: str, ttl: int = STREAM_TOKEN_TTL) -> str:
        now = int(time.time())
        return jwt.encode({"sub": user_id, "job": job_id, "aud": STREAM_AUDIENCE, "iat": now,
                           "exp": now + ttl}, self._stream_secret, algorithm="HS256")

    def verify_stream_token(self, token: str, job_id: str) -> Principal:
        try:
            claims = jwt.decode(token, self._stream_secret, algorithms=["HS256"], audience=STREAM_AUDIENCE,
                                options={"require": ["exp", "sub", "job"]})
        except jwt.InvalidTokenError:
            raise unauthorized("Invalid or expired stream token") from None
        if claims["job"] != job_id:
            raise unauthorized("This stream token is for another job")
        return Principal(user_id=claims["sub"], scopes=frozenset(), via="stream_token", job_id=job_id)


def mint_access_token(settings: Settings, user_id: str, *, ttl: int = 24 * 3600, admin: bool = False,
                      email: str | None = None) -> str:
    """A Supabase-shaped HS256 access token signed with the configured secret (dev and tests)."""
    now = int(time.time())
    claims = {"sub": user_id, "aud": settings.jwt_audience, "role": "authenticated", "iat": now,
              "exp": now + ttl, "app_metadata": {"role": "admin"} if admin else {}}
    if email:
        claims["email"] = email
    return jwt.encode(claims, settings.signing_secret(), algorithm="HS256")
