"""Settings, read once from the environment (SPEC §12). Every variable name is defined here."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Settings", "ConfigError", "ApiKey", "Env"]


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line meant for the operator."""


class Env:
    """The environment variable names, defined once."""
    ENV = "SNAPASSET_ENV"
    PORT = "PORT"
    REDIS_URL = "REDIS_URL"
    JWT_SECRET = "SUPABASE_JWT_SECRET"
    JWT_AUDIENCE = "SUPABASE_JWT_AUDIENCE"
    SUPABASE_URL = "SUPABASE_URL"
    SUPABASE_KEY = "SUPABASE_SERVICE_ROLE_KEY"
    SUPABASE_BUCKET = "SUPABASE_BUCKET"
    SUPABASE_JWKS = "SUPABASE_JWKS_URL"
    SUPABASE_SIGNED_URLS = "SUPABASE_SIGNED_URLS"
    API_KEYS = "SNAPASSET_API_KEYS"
    OPENAI_API_KEY = "OPENAI_API_KEY"
    OPENAI_BASE_URL = "OPENAI_BASE_URL"
    OPENAI_TIMEOUT = "SNAPASSET_OPENAI_TIMEOUT"
    IMAGE_MODEL = "SNAPASSET_IMAGE_MODEL"
    IMAGE_MODELS = "SNAPASSET_IMAGE_MODELS"
    CORS_ORIGINS = "SNAPASSET_CORS_ORIGINS"
    PROVIDER = "SNAPASSET_PROVIDER"
    LOCAL_LATENCY = "SNAPASSET_LOCAL_LATENCY"
    MEDIA_DIR = "SNAPASSET_MEDIA_DIR"
    DATABASE = "SNAPASSET_DATABASE"
    DATA_DIR = "SNAPASSET_DATA_DIR"
    RATE_LIMIT = "SNAPASSET_RATE_LIMIT"
    JOB_RATE_LIMIT = "SNAPASSET_JOB_RATE_LIMIT"
    MAX_ACTIVE_JOBS = "SNAPASSET_MAX_ACTIVE_JOBS"
    TRUSTED_PROXIES = "SNAPASSET_TRUSTED_PROXIES"
    WEBHOOK_SECRET = "SNAPASSET_WEBHOOK_SECRET"
    WEBHOOK_ALLOW_PRIVATE = "SNAPASSET_WEBHOOK_ALLOW_PRIVATE"
    PUBLIC_URL = "SNAPASSET_PUBLIC_URL"
    QUEUE = "SNAPASSET_QUEUE"
    JOB_TIMEOUT = "SNAPASSET_JOB_TIMEOUT"
    JOB_ATTEMPTS = "SNAPASSET_JOB_ATTEMPTS"
    RETRY_BACKOFF = "SNAPASSET_RETRY_BACKOFF"
    JOB_TTL = "SNAPASSET_JOB_TTL"
    WORKER_CONCURRENCY = "SNAPASSET_WORKER_CONCURRENCY"
    RENDER_PROCESSES = "SNAPASSET_RENDER_PROCESSES"
    MAX_SOURCES = "SNAPASSET_MAX_SOURCES"
    WORKER_MEMORY_MB = "SNAPASSET_WORKER_MEMORY_MB"
    SSE_HEARTBEAT = "SNAPASSET_SSE_HEARTBEAT"
    SECRET_KEY = "SNAPASSET_SECRET_KEY"
    METRICS_TOKEN = "SNAPASSET_METRICS_TOKEN"
    WORKER_HEARTBEAT = "SNAPASSET_WORKER_HEARTBEAT"
    EVENTS_TTL = "SNAPASSET_EVENTS_TTL"
    # prometheus_client's own: the folder where a dyno's web processes keep their metrics
    PROMETHEUS_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ApiKey:
    name: str
    key: str = field(repr=False)  # never printed
    scopes: frozenset[str]


API_KEY_SCOPES = frozenset({"jobs", "admin", "priority"})


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def parse_api_keys(raw: str | None) -> tuple[ApiKey, ...]:
    """`name:key:scope+scope,...` → ApiKeys. The key itself never appears in an error."""
    keys = []
    for index, item in enumerate(filter(None, (part.strip() for part in (raw or "").split(","))), 1):
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"{Env.API_KEYS} entry #{index} must look like name:key:scope+scope")
        name, key, scope_text = parts
        scopes = frozenset(scope_text.split("+"))
        unknown = scopes - API_KEY_SCOPES
        if unknown:
            raise ConfigError(f"{Env.API_KEYS} entry {name!r} has unknown scope(s): {', '.join(sorted(unknown))}")
        if len(key) < 16:
            raise ConfigError(f"{Env.API_KEYS} entry {name!r}: the key must be at least 16 characters")
        keys.append(ApiKey(name=name, key=key, scopes=scopes))
    return tuple(keys)


def _image_models(env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """(the default model, the models a request may choose); the default is always among them.
    A retired or unknown model is refused here, at start, whichever process reads it."""
    from snapasset.image_models import DEFAULT_MODEL, model_spec

    default = (env.get(Env.IMAGE_MODEL) or DEFAULT_MODEL).strip()
    listed = [m.strip() for m in (env.get(Env.IMAGE_MODELS) or "").split(",") if m.strip()]
    allowed = tuple(dict.fromkeys([default, *listed]))
    for name, models in ((Env.IMAGE_MODEL, [default]), (Env.IMAGE_MODELS, listed)):
        for model in models:
            try:
                model_spec(model)
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    return default, allowed


def _cors_origins(env: Mapping[str, str]) -> tuple[str, ...] | None:
    """SNAPASSET_CORS_ORIGINS: None when unset (the default of the mode applies), ("*",) for any."""
    raw = env.get(Env.CORS_ORIGINS)
    if raw is None or not raw.strip():
        return None
    origins = tuple(dict.fromkeys(o.strip().rstrip("/") for o in raw.split(",") if o.strip()))
    if origins == ("*",):
        return origins
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise ConfigError(f"{Env.CORS_ORIGINS} entries must be origins like https://app.example.com "
                              f"(scheme, host, optional port; or * alone), got {origin!r}")
    return origins


def _limit(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    try:
        from limits import parse_many
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name} is not a rate limit like '100 per 15 minutes': {value!r}") from None
    return value


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    port: int = 3001
    redis_url: str | None = None
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_audience: str = "authenticated"
    jwks_url: str | None = None
    supabase_url: str | None = None
    supabase_service_role_key: str | None = field(default=None, repr=False)
    supabase_bucket: str = "generated-images"
    supabase_signed_urls: bool = False
    api_keys: tuple[ApiKey, ...] = ()
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    openai_timeout: float = 120.0       # seconds for one Images API request
    image_model: str = "gpt-image-2"
    image_models: tuple[str, ...] = ("gpt-image-2",)   # what options.model may name; the default among them
    cors_origins: tuple[str, ...] | None = None        # None: the mode's default (snapasset.cors)
    provider: str = "local"            # local | openai | module:factory
    local_latency: float = 0.0
    media_dir: Path = Path("media")
    database: Path = Path("snapasset.db")
    data_dir: Path = Path(".snapasset")
    rate_limit: str = "100 per 15 minutes"
    job_rate_limit: str = "20 per hour"
    max_active_jobs: int = 5
    trusted_proxies: int = 0
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_allow_private: bool = False
    public_url: str | None = None
    queue_name: str = "snapasset"
    job_timeout: int = 300
    job_attempts: int = 3
    retry_backoff: float = 10.0
    job_ttl: int = 7 * 24 * 3600
    worker_concurrency: int = 64       # jobs in flight per worker process; sized for a 512 MB dyno (bench/worker_concurrency.py)
    render_processes: int = 0          # 0 → one per core
    max_sources: int = 3               # pictures asked of the model per job, one per shape family (SPEC §5)
    worker_memory_mb: int = 0          # 0 → the container's memory limit, else 512 (workers/memory.py)
    sse_heartbeat: float = 15.0
    secret_key: str | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)
    worker_heartbeat: int = 5          # seconds between a worker's heartbeats; 3 missed → gone (worker_liveness)
    events_ttl: int = 600              # seconds an ended job's event history (and a user's) is kept for replay

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def retry_intervals(self) -> list[int]:
        """Exponential backoff between attempts: base, 4×base, 16×base … (seconds)."""
        return [max(0, round(self.retry_backoff * 4 ** i)) for i in range(max(0, self.job_attempts - 1))]

    @property
    def worker_liveness(self) -> int:
        """How long after its last heartbeat a worker (and each job it runs) still counts as alive:
        three heartbeats, so one late beat under load is no death. /ready, lost-job recovery and
        the admin's worker list all judge by it."""
        return 3 * self.worker_heartbeat

    def replace(self, **changes) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        mode = (env.get(Env.ENV) or "development").strip().lower()
        if mode not in {"development", "production"}:
            raise ConfigError(f"{Env.ENV} must be 'development' or 'production', got {mode!r}")
        supabase_url = (env.get(Env.SUPABASE_URL) or "").rstrip("/") or None
        jwks_url = env.get(Env.SUPABASE_JWKS) or (
            f"{supabase_url}/auth/v1/.well-known/jwks.json" if supabase_url else None)
        openai_key = env.get(Env.OPENAI_API_KEY) or None
        provider = env.get(Env.PROVIDER) or ("openai" if openai_key else "local")
        image_model, image_models = _image_models(env)
        settings = cls(
            env=mode,
            port=_int(env, Env.PORT, 3001, 1),
            redis_url=env.get(Env.REDIS_URL) or None,
            jwt_secret=env.get(Env.JWT_SECRET) or None,
            jwt_audience=env.get(Env.JWT_AUDIENCE) or "authenticated",
            jwks_url=jwks_url,
            supabase_url=supabase_url,
            supabase_service_role_key=env.get(Env.SUPABASE_KEY) or None,
            supabase_bucket=env.get(Env.SUPABASE_BUCKET) or "generated-images",
            supabase_signed_urls=_bool(env.get(Env.SUPABASE_SIGNED_URLS)),
            api_keys=parse_api_keys(env.get(Env.API_KEYS)),
            openai_api_key=openai_key,
            openai_base_url=env.get(Env.OPENAI_BASE_URL) or None,
            openai_timeout=_float(env, Env.OPENAI_TIMEOUT, 120.0),
            image_model=image_model,
            image_models=image_models,
            cors_origins=_cors_origins(env),
            provider=provider,
            local_latency=_float(env, Env.LOCAL_LATENCY, 0.0),
            media_dir=Path(env.get(Env.MEDIA_DIR) or "media"),
            database=Path(env.get(Env.DATABASE) or "snapasset.db"),
            data_dir=Path(env.get(Env.DATA_DIR) or ".snapasset"),
            rate_limit=_limit(env, Env.RATE_LIMIT, "100 per 15 minutes"),
            job_rate_limit=_limit(env, Env.JOB_RATE_LIMIT, "20 per hour"),
            max_active_jobs=_int(env, Env.MAX_ACTIVE_JOBS, 5, 1),
            trusted_proxies=_int(env, Env.TRUSTED_PROXIES, 0),
            webhook_secret=env.get(Env.WEBHOOK_SECRET) or None,
            webhook_allow_private=_bool(env.get(Env.WEBHOOK_ALLOW_PRIVATE)),
            public_url=(env.get(Env.PUBLIC_URL) or "").rstrip("/") or None,
            queue_name=env.get(Env.QUEUE) or "snapasset",
            job_timeout=_int(env, Env.JOB_TIMEOUT, 300, 1),
            job_attempts=_int(env, Env.JOB_ATTEMPTS, 3, 1),
            retry_backoff=_float(env, Env.RETRY_BACKOFF, 10.0),
            job_ttl=_int(env, Env.JOB_TTL, 7 * 24 * 3600, 60),
            worker_concurrency=_int(env, Env.WORKER_CONCURRENCY, 64, 1),
            render_processes=_int(env, Env.RENDER_PROCESSES, 0),
            max_sources=_int(env, Env.MAX_SOURCES, 3, 1),
            worker_memory_mb=_int(env, Env.WORKER_MEMORY_MB, 0),
            sse_heartbeat=_float(env, Env.SSE_HEARTBEAT, 15.0),
            secret_key=env.get(Env.SECRET_KEY) or None,
            metrics_token=env.get(Env.METRICS_TOKEN) or None,
            worker_heartbeat=_int(env, Env.WORKER_HEARTBEAT, 5, 1),
            events_ttl=_int(env, Env.EVENTS_TTL, 600, 1),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.provider == "openai" and not self.openai_api_key:
            raise ConfigError(f"{Env.PROVIDER}=openai needs {Env.OPENAI_API_KEY}")
        if self.supabase_url and not self.supabase_service_role_key:
            raise ConfigError(f"{Env.SUPABASE_URL} is set but {Env.SUPABASE_KEY} is missing")
        if self.production:
            if not (self.jwt_secret or self.jwks_url):
                raise ConfigError(f"production needs {Env.JWT_SECRET} (or {Env.SUPABASE_URL} for its JWKS) "
                                  "to verify access tokens; refusing to start without auth")
            if not (self.secret_key or self.jwt_secret):
                raise ConfigError(f"production needs {Env.SECRET_KEY} to sign stream tokens")
            if not self.redis_url:
                raise ConfigError(f"production needs {Env.REDIS_URL}; the embedded Redis is for development")
            if not self.supabase_url and not self.public_url:
                raise ConfigError(f"production with local storage needs {Env.PUBLIC_URL} (e.g. "
                                  "https://snapasset.example.com): webhook bodies carry absolute image URLs")

    @property
    def public_base_url(self) -> str | None:
        """The absolute base for URLs handed out without a request to resolve them against
        (webhook bodies): SNAPASSET_PUBLIC_URL, or in development the local web address."""
        if self.public_url:
            return self.public_url
        return None if self.production else f"http://localhost:{self.port}"

    def signing_secret(self) -> str:
        """The HS256 secret for access tokens; in development one is generated and kept in data_dir."""
        if self.jwt_secret:
            return self.jwt_secret
        if self.production:
            raise ConfigError(f"production needs {Env.JWT_SECRET}")
        return self._dev_secret("dev-jwt-secret")

    def stream_secret(self) -> str:
        """The key that signs the short-lived per-job stream tokens (never a user's access token)."""
        if self.secret_key:
            return self.secret_key
        if self.jwt_secret:
            return "stream:" + self.jwt_secret
        if self.production:
            raise ConfigError(f"production needs {Env.SECRET_KEY}")
        return self._dev_secret("dev-stream-secret")

    def _dev_secret(self, name: str) -> str:
        path = self.data_dir / name
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            secret = secrets.token_urlsafe(32)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secret)
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)   # first writer wins when two processes race
            except FileExistsError:
                pass
            tmp.unlink(missing_ok=True)
            return path.read_text().strip()
