"""The SnapAsset client: one object, a lazily built ``requests.Session``, typed answers."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Union
from urllib.parse import quote

import requests
import urllib3

from ._version import __version__
from .errors import (
    APIConnectionError, JobCancelledError, JobFailedError, SnapAssetError, WaitTimeoutError,
    error_from_response,
)
from .models import (
    BulkRetryResult, CleanResult, Event, Job, JobResult, JobSummary, Platform, QueueState, QueueStats,
    Worker,
)
from .retries import (
    IDEMPOTENT_METHODS, MAX_RETRY_AFTER, RETRYABLE_STATUSES, parse_retry_after, reconnect_delay, retry_delay,
)
from .sse import SSEDecoder

__all__ = ["SnapAssetClient", "DEFAULT_BASE_URL", "ENV_URL", "ENV_TOKEN", "ENV_API_KEY"]

DEFAULT_BASE_URL = "http://localhost:3001"
ENV_URL = "SNAPASSET_URL"
ENV_TOKEN = "SNAPASSET_TOKEN"
ENV_API_KEY = "SNAPASSET_API_KEY"

# The server sends a heartbeat at least every 15 s; four missed ones mean the stream is dead.
STREAM_READ_TIMEOUT = 60.0
STREAM_CHUNK = 8192
MAX_PAGE_SIZE = 100
SEEN_IDS_KEPT = 4096

# A reference picture: an https:// or data: URL, a local file (path), or the picture's bytes.
InputImage = Union[str, "os.PathLike[str]", bytes]
# The leading bytes of the picture formats SnapAsset reads → their MIME type (for data URLs).
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"BM", "image/bmp"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))

# What a dropped connection looks like, from requests or (reading the raw stream) urllib3.
_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout,
                     requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError)


class SnapAssetClient:
    """A client for one SnapAsset server.

    ``base_url`` defaults to ``$SNAPASSET_URL`` or ``http://localhost:3001``;
    credentials to ``$SNAPASSET_TOKEN`` (sent as ``Authorization: Bearer``) or
    ``$SNAPASSET_API_KEY`` (sent as ``X-API-Key``). ``max_retries`` bounds the
    retries of one request and the consecutive fruitless reconnects of a
    stream; 0 turns both off. ``sleep`` replaces ``time.sleep`` for every wait
    the client makes (tests, or a scheduler of your own).
    """

    def __init__(self, base_url: str | None = None, *, token: str | None = None,
                 api_key: str | None = None, timeout: float = 30.0, max_retries: int = 3,
                 sleep: Callable[[float], None] | None = None):
        if token and api_key:
            raise ValueError("pass either token or api_key, not both")
        if not token and not api_key:
            token = os.environ.get(ENV_TOKEN) or None
            api_key = None if token else os.environ.get(ENV_API_KEY) or None
        self.base_url = (base_url or os.environ.get(ENV_URL) or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._token = token
        self._api_key = api_key
        self._sleep = sleep or time.sleep
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    # -- lifecycle ---------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """The HTTP session, built on first use."""
        if self._session is None:
            session = requests.Session()
            session.headers["User-Agent"] = (
                f"snapasset-sdk/{__version__} {requests.utils.default_user_agent()}")
            if self._token:
                session.headers["Authorization"] = f"Bearer {self._token}"
            elif self._api_key:
                session.headers["X-API-Key"] = self._api_key
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> SnapAssetClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------

    def create_job(self, prompt: str, platforms: Iterable[str] | str = (), *,
                   quality: str | None = None, style: str | None = None, format: str | None = None,
                   model: str | None = None, n: int | None = None, seed: int | None = None,
                   background: str | None = None, input_images: Iterable[InputImage] | None = None,
                   custom_platforms: Iterable[dict[str, Any]] | None = None,
                   options: dict[str, Any] | None = None, user_id: str | None = None,
                   webhook_url: str | None = None, idempotency_key: str | None = None,
                   fit: str | None = None, priority: str | None = None,
                   wait: bool | int | None = None) -> Job:
        """Queue a generation job (``POST /api/jobs``).

        Each option of the API is a keyword (``options`` may carry more, for
        options newer than this SDK; the keywords win). ``fit`` (``cover``,
        ``contain`` or ``extend``): how each picture fills a platform's frame.
        ``priority`` (``low``, ``normal``, ``high``): ``high`` needs an API key
        with the ``priority`` scope or an admin token.
        ``input_images`` takes https:// or data: URLs, paths of local files and
        bytes; files and bytes are sent as data URLs. ``custom_platforms`` are
        dicts with ``id``, ``width``, ``height`` and optionally ``maxBytes``.

        ``wait=True`` (or a number of seconds, at most 60) asks the server to
        answer once the job has ended (``Prefer: wait``): the returned job then
        carries its status and result, as :meth:`get_job` would.

        With retries enabled and no ``idempotency_key`` given, one is generated
        so that a retry after a lost answer returns the same job instead of
        queuing a second one.
        """
        chosen = {"quality": quality, "style": style, "format": format, "model": model, "n": n,
                  "seed": seed, "background": background, "fit": fit, "priority": priority,
                  "inputImages": None if input_images is None else [_image_url(i) for i in input_images],
                  "customPlatforms": None if custom_platforms is None else list(custom_platforms)}
        merged = {**(options or {}), **{k: v for k, v in chosen.items() if v is not None}}
        body: dict[str, Any] = {
            "prompt": prompt,
            "platforms": [platforms] if isinstance(platforms, str) else list(platforms),
        }
        for key, value in (("options", merged or None), ("userId", user_id),
                           ("webhookUrl", webhook_url)):
            if value is not None:
                body[key] = value
        if idempotency_key is None and self.max_retries > 0:
            idempotency_key = str(uuid.uuid4())
        headers, timeout = {}, None
        if wait:
            seconds = 60 if wait is True else int(wait)
            headers["Prefer"] = f"wait={seconds}"
            timeout = self.timeout + seconds       # the server holds the answer that long
        return Job.from_json(self._request("POST", "/api/jobs", json=body, idempotency_key=idempotency_key,
                                           headers=headers, timeout=timeout))

    def get_job(self, job_id: str) -> Job:
        return Job.from_json(self._request("GET", _job_path(job_id)))

    def list_jobs(self, *, status: str | None = None,
                  limit: int | None = None) -> Iterator[JobSummary]:
        """The caller's jobs, newest first, following ``nextCursor`` from page to page.

        ``limit`` caps how many jobs are yielded in all (not per page).
        """
        return self._paged("/api/jobs", {"status": status}, limit)

    def _paged(self, path: str, filters: dict[str, Any], limit: int | None) -> Iterator[JobSummary]:
        remaining = limit
        cursor: str | None = None
        while remaining is None or remaining > 0:
            params: dict[str, Any] = {**filters, "cursor": cursor,
                                      "limit": min(remaining or MAX_PAGE_SIZE, MAX_PAGE_SIZE)}
            page = self._request("GET", path, params={k: v for k, v in params.items() if v is not None})
            jobs = page.get("jobs") or []
            for item in jobs[:remaining]:
                yield JobSummary.from_json(item)
            if remaining is not None:
                remaining -= min(len(jobs), remaining)
            next_cursor = page.get("nextCursor")
            if not jobs or not next_cursor or next_cursor == cursor:
                return
            cursor = next_cursor

    def retry_job(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again (``409 ConflictError`` otherwise)."""
        return Job.from_json(self._request("POST", _job_path(job_id, "retry")))

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a waiting, delayed or active job (``409 ConflictError`` otherwise)."""
        return Job.from_json(self._request("DELETE", _job_path(job_id, "cancel")))

    def delete_job(self, job_id: str) -> None:
        """Delete a finished job with its history, records and stored images
        (``409 ConflictError`` for an unfinished one: cancel it first)."""
        self._request("DELETE", _job_path(job_id))

    # -- live progress -----------------------------------------------------

    def stream_job(self, job_id: str) -> Iterator[Event]:
        """The job's events as they happen, ending after its last one.

        A dropped connection is reopened with ``Last-Event-ID``: no event is
        missed or repeated. If the server answers ``204`` (the job had already
        ended) the iterator simply stops; call :meth:`get_job` for the outcome.
        """
        return self._stream(f"/api/sse/jobs/{quote(job_id, safe='')}", until_terminal=True)

    def stream_jobs(self) -> Iterator[Event]:
        """Events of all the caller's jobs (each names its ``job_id``); runs until closed."""
        return self._stream("/api/sse/jobs", until_terminal=False)

    def wait(self, job_id: str, *, timeout: float | None = None,
             on_progress: Callable[[Event], None] | None = None) -> JobResult:
        """Block until the job ends and return its result.

        ``on_progress`` is called with every event before the last one
        (``connected``, ``progress``, ``image``, a ``failed`` that will be
        retried). Raises :class:`JobFailedError` (with ``.code``),
        :class:`JobCancelledError`, or :class:`WaitTimeoutError` after
        ``timeout`` seconds; the job itself is not touched by a timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            events = self._stream(f"/api/sse/jobs/{quote(job_id, safe='')}",
                                  until_terminal=True, deadline=deadline,
                                  label=f"job {job_id}")
            last: Event | None = None
            for event in events:
                if event.is_terminal:
                    last = event
                elif on_progress is not None:
                    on_progress(event)
            if last is not None and last.type == "done" and last.result is not None:
                return last.result
            job = self.get_job(job_id)
            if job.status == "completed":
                if job.result is None:
                    raise SnapAssetError(f"job {job_id} completed without a result")
                return job.result
            if job.status == "failed" or (last is not None and last.type == "failed"):
                error = (last.error if last is not None else None) or job.error
                raise JobFailedError(
                    (error.message if error else None) or job.failed_reason or "job failed",
                    code=error.code if error else None, job=job)
            if job.status == "cancelled" or (last is not None and last.type == "cancelled"):
                raise JobCancelledError(f"job {job_id} was cancelled", job=job)
            # The stream stopped (204) while the job still looks unfinished: look again shortly.
            self._pause(reconnect_delay(1), deadline, f"job {job_id}")

    # -- queue administration (admin scope) ---------------------------------

    def queue_stats(self) -> QueueStats:
        return QueueStats.from_json(self._request("GET", "/api/queue/stats"))

    def clean_queue(self, *, status: str = "completed", grace_ms: int = 86_400_000,
                    limit: int = 1000) -> CleanResult:
        """Remove jobs in ``status`` that finished more than ``grace_ms`` ago."""
        body = {"status": status, "grace": grace_ms, "limit": limit}
        return CleanResult.from_json(self._request("POST", "/api/queue/clean", json=body))

    def pause_queue(self) -> QueueState:
        return QueueState.from_json(self._request("POST", "/api/queue/pause", idempotent=True))

    def resume_queue(self) -> QueueState:
        return QueueState.from_json(self._request("POST", "/api/queue/resume", idempotent=True))

    # -- operators (admin scope) ---------------------------------------------

    def list_all_jobs(self, *, status: str | None = None, user_id: str | None = None,
                      error_code: str | None = None, limit: int | None = None) -> Iterator[JobSummary]:
        """Every user's jobs, newest first, each with ``user_id`` (and ``error`` when failed);
        ``error_code`` keeps failed jobs with that code. ``limit`` caps the total yielded."""
        return self._paged("/api/admin/jobs", {"status": status, "userId": user_id, "errorCode": error_code},
                           limit)

    def retry_failed_jobs(self, *, error_code: str | None = None, limit: int = 100) -> BulkRetryResult:
        """Queue up to ``limit`` failed jobs again (newest first), only those with ``error_code``
        when given."""
        body: dict[str, Any] = {"status": "failed", "limit": limit}
        if error_code is not None:
            body["errorCode"] = error_code
        return BulkRetryResult.from_json(self._request("POST", "/api/admin/jobs/retry", json=body))

    def workers(self) -> list[Worker]:
        """The live workers, what each runs and when each last beat."""
        body = self._request("GET", "/api/admin/workers")
        return [Worker.from_json(item) for item in body.get("workers") or []]

    def platforms(self) -> list[Platform]:
        body = self._request("GET", "/api/platforms")
        items = body.get("platforms", body) if isinstance(body, dict) else body
        if isinstance(items, dict):
            items = [{"id": key, **value} for key, value in items.items()]
        return [Platform.from_json(item) for item in items]

    # -- plumbing ----------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 json: Any = None, idempotency_key: str | None = None,
                 idempotent: bool | None = None, headers: dict[str, str] | None = None,
                 timeout: float | None = None) -> Any:
        """Send one API call, retrying as :mod:`snapasset_sdk.retries` decides; the JSON answer
        (None for 204 No Content)."""
        headers = {"Accept": "application/json", **(headers or {})}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS or idempotency_key is not None
        url = self._url(path)
        attempt = 0
        while True:
            try:
                response = self.session.request(method, url, params=params, json=json,
                                                headers=headers, timeout=timeout or self.timeout)
            except _TRANSPORT_ERRORS as exc:
                delay = retry_delay(attempt=attempt, max_retries=self.max_retries, status=None,
                                    replayable=idempotent)
                if delay is None:
                    raise APIConnectionError(f"{method} {url} failed: {exc}") from exc
            else:
                if response.status_code == 204:
                    return None
                if response.status_code < 400:
                    return _json(response)
                error = error_from_response(response)
                delay = retry_delay(attempt=attempt, max_retries=self.max_retries,
                                    status=response.status_code, replayable=idempotent,
                                    retry_after=_retry_after(error, response))
                if delay is None:
                    raise error
            self._sleep(delay)
            attempt += 1

    def _stream(self, path: str, *, until_terminal: bool, deadline: float | None = None,
                label: str = "stream") -> Iterator[Event]:
        """Follow an event stream across reconnects (generator; closing it closes the socket)."""
        url = self._url(path)
        last_id: str | None = None
        seen: deque[str] = deque(maxlen=SEEN_IDS_KEPT)
        connected_sent = False
        retry_ms: int | None = None
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            received = False
            wait_hint: float | None = None
            try:
                response = self.session.get(url, headers=headers, stream=True,
                                            timeout=(self.timeout, _read_timeout(deadline)))
            except _TRANSPORT_ERRORS as exc:
                problem: SnapAssetError = APIConnectionError(f"GET {url} failed: {exc}")
            else:
                try:
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        problem = error_from_response(response)
                        if response.status_code not in RETRYABLE_STATUSES | {429}:
                            raise problem
                        wait_hint = _retry_after(problem, response)
                    else:
                        problem = APIConnectionError(f"{label}: the event stream ended early")
                        decoder = SSEDecoder()
                        for chunk in _iter_chunks(response):
                            received = received or bool(chunk)
                            for message in decoder.feed(chunk):
                                event = Event.from_sse(message.data, id=message.id,
                                                       event=message.event)
                                if event.type == "connected":
                                    # Each connection starts with one; the caller needs the first.
                                    if connected_sent:
                                        continue
                                    connected_sent = True
                                elif event.id:
                                    if event.id in seen:
                                        continue
                                    seen.append(event.id)
                                    last_id = event.id
                                yield event
                                if until_terminal and event.is_terminal:
                                    return
                            retry_ms = decoder.retry if decoder.retry is not None else retry_ms
                            _check_deadline(deadline, label)
                except _TRANSPORT_ERRORS as exc:
                    problem = APIConnectionError(f"{label}: connection lost: {exc}")
                finally:
                    response.close()
            _check_deadline(deadline, label)
            failures = 0 if received else failures + 1
            if failures > self.max_retries or (wait_hint or 0) > MAX_RETRY_AFTER:
                raise problem
            delay = wait_hint if wait_hint is not None else reconnect_delay(failures,
                                                                            retry_ms=retry_ms)
            self._pause(delay, deadline, label)

    def _pause(self, delay: float, deadline: float | None, label: str) -> None:
        if deadline is not None:
            _check_deadline(deadline, label)
            delay = min(delay, deadline - time.monotonic())
        self._sleep(max(0.0, delay))


def _image_url(image: InputImage) -> str:
    """A reference picture as the API takes it: URLs as they are, files and bytes as data URLs."""
    if isinstance(image, str) and image.startswith(("https://", "http://", "data:")):
        return image
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    mime = next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)
    if mime is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime = "image/webp"
    elif mime is None and data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        mime = "image/avif"
    if mime is None:
        raise ValueError(f"{image if not isinstance(image, bytes) else 'the bytes given'} is not a PNG, JPEG, "
                         "WebP, AVIF, GIF, BMP or TIFF picture")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _job_path(job_id: str, action: str | None = None) -> str:
    path = f"/api/jobs/{quote(job_id, safe='')}"
    return f"{path}/{action}" if action else path


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise SnapAssetError(f"expected JSON from {response.request.method} {response.url}, "
                             f"got {response.headers.get('Content-Type', 'no content type')}",
                             status=response.status_code, response=response) from None


def _retry_after(error: SnapAssetError, response: requests.Response) -> float | None:
    value = getattr(error, "retry_after", None)
    return value if value is not None else parse_retry_after(response.headers.get("Retry-After"))


def _read_timeout(deadline: float | None) -> float:
    if deadline is None:
        return STREAM_READ_TIMEOUT
    return max(0.001, min(STREAM_READ_TIMEOUT, deadline - time.monotonic()))


def _check_deadline(deadline: float | None, label: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise WaitTimeoutError(f"{label} did not finish in time")


def _iter_chunks(response: requests.Response) -> Iterator[bytes]:
    """Bytes as they arrive: ``read1`` returns whatever one network read brought
    (chunked or not), where ``iter_content`` may wait to fill a buffer first."""
    raw = response.raw
    if not hasattr(raw, "read1"):  # urllib3 1.x
        yield from response.iter_content(chunk_size=None)
        return
    while chunk := raw.read1(STREAM_CHUNK, decode_content=True):
        yield chunk
