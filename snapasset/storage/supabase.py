"""Supabase Storage behind the Storage port (through supabase-py's storage3 client)."""

from __future__ import annotations

import logging
import time

from snapasset.errors import StorageFailure

__all__ = ["SupabaseStorage", "CACHE_CONTROL"]

log = logging.getLogger(__name__)

# Keys are unique per generation and never rewritten with other bytes, so caches may keep
# them for a year without revalidating. The Storage API turns the multipart `cacheControl`
# field into `Cache-Control: max-age=<value>`, hence no "max-age=" here.
CACHE_CONTROL = "31536000, immutable"
_REMOVE_BATCH = 1000   # the Storage API's limit of prefixes per remove call


def _status_of(exc: Exception) -> int | None:
    """The HTTP status a storage3 StorageApiError carries (int or numeric str), if any."""
    status = getattr(exc, "status", None)
    try:
        return int(str(status))
    except (TypeError, ValueError):
        return None


def _is_transient(exc: Exception) -> bool:
    import httpx
    from storage3.exceptions import StorageApiError

    if isinstance(exc, httpx.TransportError):   # connect/read failures and timeouts
        return True
    if isinstance(exc, StorageApiError):
        status = _status_of(exc)
        return status is not None and (status >= 500 or status in (408, 429))
    return False


def _describe(exc: Exception) -> str:
    from storage3.exceptions import StorageApiError

    if isinstance(exc, StorageApiError):
        return f"{exc.status} {exc.code}: {exc.message}"
    return type(exc).__name__


class SupabaseStorage:
    """Objects in one bucket; URLs are public (or signed, for a private bucket)."""

    def __init__(self, *, client, bucket: str, public: bool = True, signed_url_ttl: int = 7 * 24 * 3600,
                 attempts: int = 3, backoff: float = 0.25):
        if not bucket:
            raise ValueError("SupabaseStorage needs a bucket name")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        if signed_url_ttl <= 0:
            raise ValueError(f"signed_url_ttl must be positive, got {signed_url_ttl}")
        self._client = client
        self.bucket = bucket
        self.public = public
        self.signed_url_ttl = signed_url_ttl
        self.attempts = attempts
        self.backoff = backoff

    def __repr__(self) -> str:
        return f"SupabaseStorage(bucket={self.bucket!r}, public={self.public})"

    def _files(self):
        return self._client.storage.from_(self.bucket)

    def _with_retries(self, what: str, call):
        """Run ``call`` up to ``attempts`` times while it fails transiently; StorageFailure otherwise."""
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except Exception as exc:
                transient = _is_transient(exc)
                if not transient and not _is_storage_error(exc):
                    raise
                if not transient or attempt == self.attempts:
                    raise StorageFailure(f"Supabase Storage could not {what} ({_describe(exc)}"
                                         f"{f', after {attempt} attempts' if attempt > 1 else ''})",
                                         retryable=transient) from None
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning("storage: %s failed (%s), attempt %d of %d, retrying in %.2fs",
                            what, _describe(exc), attempt, self.attempts, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def put(self, key: str, data: bytes, content_type: str) -> str:
        options = {"content-type": content_type, "cache-control": CACHE_CONTROL, "upsert": "true"}
        self._with_retries(f"upload {key}", lambda: self._files().upload(key, data, file_options=options))
        return self.url_for(key)

    def url_for(self, key: str) -> str:
        if self.public:
            return self._files().get_public_url(key)   # computed locally, no request
        signed = self._with_retries(f"sign a URL for {key}",
                                    lambda: self._files().create_signed_url(key, self.signed_url_ttl))
        url = signed.get("signedURL") or signed.get("signedUrl")
        if not url:
            raise StorageFailure(f"Supabase Storage returned no signed URL for {key}", retryable=True)
        return url

    def get(self, key: str) -> bytes:
        return self._with_retries(f"download {key}", lambda: self._files().download(key))

    def delete(self, keys: list[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), _REMOVE_BATCH):
            batch = keys[start:start + _REMOVE_BATCH]
            self._with_retries(f"remove {len(batch)} object(s)", lambda batch=batch: self._files().remove(batch))

    def check(self) -> None:
        """Raise StorageFailure when the bucket cannot be reached (one cheap request, no retries)."""
        try:
            self._client.storage.get_bucket(self.bucket)
        except Exception as exc:
            if not (_is_transient(exc) or _is_storage_error(exc)):
                raise
            raise StorageFailure(f"Supabase Storage bucket {self.bucket!r} is unreachable ({_describe(exc)})",
                                 retryable=True) from None


def _is_storage_error(exc: Exception) -> bool:
    import httpx
    from storage3.utils import StorageException

    return isinstance(exc, (StorageException, httpx.HTTPError))
