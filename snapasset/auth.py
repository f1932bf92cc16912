"""Who is calling: bearer access tokens (Supabase JWTs) and per-job stream tokens → Principal."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt

from snapasset.config import Settings
from snapasset.errors import APIError, ErrorCode

__all__ = ["Principal", "Authenticator", "unauthorized", "forbidden", "mint_access_token",
           "STREAM_TOKEN_TTL"]

STREAM_TOKEN_TTL = 15 * 60
STREAM_AUDIENCE = "snapasset-stream"


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


class Authenticator:
    """Verifies credentials against the configured secrets; holds no per-request state."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._hs_secret = settings.signing_secret() if (settings.jwt_secret or not settings.production) else None
        self._stream_secret = settings.stream_secret()

    # -- access tokens -------------------------------------------------------
    def verify_access_token(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthorized("Malformed access token") from None
        algorithm = header.get("alg")
        if algorithm != "HS256" or not self._hs_secret:
            # Only the algorithm(s) we hold a key for are accepted: no 'none', no confusion.
            raise unauthorized("Unsupported token algorithm")
        claims = self._decode(token, self._hs_secret, ["HS256"], self.settings.jwt_audience)
        return self._principal_from_claims(claims)

    def _decode(self, token: str, key, algorithms: list[str], audience: str) -> dict:
        try:
            return jwt.decode(token, key, algorithms=algorithms, audience=audience,
                              options={"require": ["exp", "sub"]}, leeway=30)
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
        role = (claims.get("app_metadata") or {}).get("role") if isinstance(claims.get("app_metadata"), dict) else None
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
