"""The OpenAI Images API behind the ImageProvider port (GPT image models).

The client is built lazily and never retries on its own: a failed call becomes a coded
JobFailure at once, and the job decides whether and when to try again (honouring
``retry_after``), so one attempt of a job is exactly one request to OpenAI.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import io
import json
import re
import sys
import threading
from collections.abc import Iterator, Sequence

from snapasset.errors import (
    ContentPolicyViolation, InvalidImage, JobFailure, JobTimedOut, ProviderError, ProviderRateLimited,
)
from snapasset.image_models import DEFAULT_MODEL, STANDARD_SIZES, model_spec
from snapasset.platforms import Platform
from snapasset.providers.base import (GeneratedImage, GenerationRequest, PartialImageCallback, largest_answer_bytes,
                                     receiving)

__all__ = ["OpenAIProvider"]

# gpt-image-2 custom sizes: sides divisible by 16, ratio within 1:3..3:1, total pixels in
# [655,360, 8,294,400], longest side <= 3840. Sizes above 2560x1440 are "experimental" per
# the API reference, so we stay at or under that pixel count; we ask for a 1536 long side,
# which covers the largest platform (1920 long side) after an upscale of at most 1.25x
# and costs the same order of tokens as the fixed 1536x1024 size.
FLEX_MULTIPLE = 16
FLEX_LONG_SIDE = 1536
FLEX_MIN_PIXELS = 655_360
FLEX_MAX_PIXELS = 2560 * 1440
FLEX_MAX_SIDE = 3840
FLEX_API_MAX_PIXELS = 3840 * 2160   # the most a custom size may have: what a picture is checked against
FLEX_MIN_RATIO, FLEX_MAX_RATIO = 1 / 3, 3.0

OUTPUT_FORMATS = frozenset({"png", "jpeg", "webp"})

# What OpenAI answers when its safety system refuses a prompt.
_MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
_MODERATION_TEXT = re.compile(r"safety system|content policy|moderation", re.IGNORECASE)
_BILLING_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})
_SECRET_LIKE = re.compile(r"\bsk-[A-Za-z0-9_\-*]{4,}")


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def fit_flexible_size(width: int, height: int) -> tuple[int, int]:
    """Bring a wished-for size within gpt-image-2's limits, keeping its aspect as far as they allow."""
    ratio = min(max(width / height, FLEX_MIN_RATIO), FLEX_MAX_RATIO)
    pixels = width * height
    scale = 1.0
    if pixels > FLEX_MAX_PIXELS:
        scale = (FLEX_MAX_PIXELS / pixels) ** 0.5
    elif pixels < FLEX_MIN_PIXELS:
        scale = (FLEX_MIN_PIXELS / pixels) ** 0.5
    height_f = (width * height * scale * scale / ratio) ** 0.5
    w, h = _round_to(height_f * ratio, FLEX_MULTIPLE), _round_to(height_f, FLEX_MULTIPLE)
    # Rounding may step just outside a bound; nudge by one multiple until inside.
    while (w * h > FLEX_MAX_PIXELS or max(w, h) > FLEX_MAX_SIDE) and min(w, h) > FLEX_MULTIPLE:
        if w >= h:
            w -= FLEX_MULTIPLE
        else:
            h -= FLEX_MULTIPLE
    while w * h < FLEX_MIN_PIXELS:
        if w <= h:
            w += FLEX_MULTIPLE
        else:
            h += FLEX_MULTIPLE
    while w / h > FLEX_MAX_RATIO:
        h += FLEX_MULTIPLE
    while h / w > FLEX_MAX_RATIO:
        w += FLEX_MULTIPLE
    return w, h


def _verified_image(b64: str | None, what: str) -> bytes:
    """Decode base64 image data and make sure Pillow reads it as an image."""
    from PIL import Image

    if not b64:
        raise InvalidImage(f"the image model returned no {what}")
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage(f"the image model returned a {what} that is not valid base64") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception:  # Pillow raises many types (UnidentifiedImageError, SyntaxError, DecompressionBomb…)
        raise InvalidImage(f"the image model returned a {what} that is not a readable image") from None
    return data


class OpenAIProvider:
    """Draws with a GPT image model through the official ``openai`` client."""

    name = "openai"

    def __init__(self, *, api_key: str, model: str = DEFAULT_MODEL, base_url: str | None = None,
                 timeout: float = 120.0, partial_images: int = 2, client=None):
        if not api_key and client is None:
            raise ValueError("OpenAIProvider needs an api_key")
        if not 0 <= partial_images <= 3:
            raise ValueError(f"partial_images must be between 0 and 3, got {partial_images}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.model = model
        self._spec = model_spec(model)
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._partial_images = partial_images
        self._client = client
        self._client_lock = threading.Lock()

    @property
    def max_pixels(self) -> int:
        """The largest picture this model can legitimately return (checked before decoding)."""
        if self._spec.flexible_size:
            return FLEX_API_MAX_PIXELS
        return max(width * height for width, height in STANDARD_SIZES)

    def __repr__(self) -> str:  # never the key
        return f"OpenAIProvider(model={self.model!r}, base_url={self._base_url!r})"

    def with_model(self, model: str) -> OpenAIProvider:
        """This provider drawing with another model (same client and settings)."""
        if model == self.model:
            return self
        clone = copy.copy(self)
        clone.model, clone._spec = model, model_spec(model)
        clone._client = self._openai()
        return clone

    # -- size --------------------------------------------------------------------------------
    def choose_size(self, platforms: Sequence[Platform]) -> tuple[int, int]:
        from snapasset import imaging

        if not self._spec.flexible_size:
            return tuple(imaging.best_size(platforms, STANDARD_SIZES))
        aspect = imaging.best_aspect(platforms, min_ratio=FLEX_MIN_RATIO, max_ratio=FLEX_MAX_RATIO)
        width, height = imaging.size_for_aspect(aspect, long_side=FLEX_LONG_SIDE, multiple=FLEX_MULTIPLE)
        return fit_flexible_size(width, height)

    def _size_param(self, request: GenerationRequest) -> str:
        size = (request.width, request.height)
        if self._spec.flexible_size:
            size = fit_flexible_size(*size)
        elif size not in STANDARD_SIZES:
            raise ValueError(f"{self.model} draws only at {', '.join(f'{w}x{h}' for w, h in STANDARD_SIZES)}; "
                             f"got {request.width}x{request.height} (use choose_size)")
        return f"{size[0]}x{size[1]}"

    # -- generation --------------------------------------------------------------------------
    def _openai(self):
        with self._client_lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(api_key=self._api_key, base_url=self._base_url,
                                             timeout=self._timeout, max_retries=0)
            return self._client

    def generate(self, request: GenerationRequest, *,
                 on_partial: PartialImageCallback | None = None) -> GeneratedImage:
        params = self._params(request)
        # One picture from a prompt alone streams its partial images; several, or an edit of
        # reference pictures, come at once.
        stream = (on_partial is not None and self._spec.streaming and self._partial_images > 0
                  and request.n == 1 and not request.input_images)
        if stream:
            return self._failing_as_job_failures(lambda: self._generate_streaming(params, on_partial))
        images = self._openai().images.with_streaming_response
        if request.input_images:
            return self._failing_as_job_failures(lambda: self._received(
                images.edit(image=_uploads(request.input_images), **params), request.n))
        return self._failing_as_job_failures(lambda: self._received(images.generate(**params), request.n))

    def extend(self, request: GenerationRequest, image: bytes, mask: bytes) -> GeneratedImage:
        """Paint the transparent part of ``image`` through the image-edit endpoint (``fit=extend``)."""
        params = self._params(request)
        params["image"] = ("picture.png", image, "image/png")
        params["mask"] = ("mask.png", mask, "image/png")
        return self._failing_as_job_failures(lambda: self._received(
            self._openai().images.with_streaming_response.edit(**params), 1))

    def _params(self, request: GenerationRequest) -> dict:
        if request.quality not in self._spec.qualities:
            raise ValueError(f"{self.model} takes quality {', '.join(self._spec.qualities)}; got {request.quality!r}")
        params = {
            "model": self.model,
            "prompt": request.prompt,
            "size": self._size_param(request),
            "quality": request.quality,
            "n": request.n,
        }
        if request.output_format in OUTPUT_FORMATS:
            params["output_format"] = request.output_format
        if request.background != "auto":
            params["background"] = request.background
        if request.safety_identifier:
            params["safety_identifier"] = request.safety_identifier
        # request.style is a DALL·E-era hint the GPT image models reject, so it is not sent, and
        # no GPT image model takes a seed: the result says "seed": null.
        return params

    def _failing_as_job_failures(self, call):
        try:
            return call()
        except JobFailure:
            raise
        except Exception as exc:
            failure = self._failure_for(exc)
            if failure is None:
                raise
            raise failure from None

    def _received(self, answer, pictures: int) -> GeneratedImage:
        """The pictures of an answer whose headers have come and whose body has not been read:
        it is read once the worker has room for it (providers.base.receiving). The read holds
        the body, its parsed JSON (base64 text as long) and the decoded pictures: about three
        times its Content-Length; without one, what `pictures` of the largest size may take.
        Once read, only the decoded pictures stay counted."""
        with answer as response:
            length = response.headers.get("content-length", "")
            cost = 3 * int(length) if length.isdigit() else pictures * largest_answer_bytes(self.max_pixels)
            with receiving(cost) as give_back:
                result = self._collect(response.parse())
                give_back(keep=sum(map(len, (result.data, *result.variants))))
                return result

    def _collect(self, response) -> GeneratedImage:
        items = list(response.data or [])
        if not items:
            raise InvalidImage("the image model returned no image")
        pictures = [_verified_image(item.b64_json, "image") for item in items]
        usage = response.usage.model_dump(exclude_none=True) if response.usage is not None else None
        return GeneratedImage(data=pictures[0], variants=tuple(pictures[1:]), provider=self.name, model=self.model,
                              revised_prompt=getattr(items[0], "revised_prompt", None), usage=usage)

    def _generate_streaming(self, params: dict, on_partial: PartialImageCallback) -> GeneratedImage:
        """The events of a streamed answer (_StreamedEvents), each read once the worker has room
        for one picture of the size asked for: a partial image gives its room back once shown,
        the completed picture keeps room for its decoded bytes until the job hands it to the
        renderer. Between events, while the model draws, the call holds nothing of them."""
        width, height = (int(side) for side in params["size"].split("x"))
        with self._openai().images.with_streaming_response.generate(
                **params, stream=True, partial_images=self._partial_images) as answer:
            events = _StreamedEvents(answer.http_response, largest_answer_bytes(width * height),
                                     longest=_longest_event(width * height))
            try:
                for event in events:
                    picture = self._streamed_event(event, events, on_partial)
                    del event   # nothing of it is held while the next one is awaited
                    if picture is not None:
                        return picture
            finally:
                events.done()
        raise ProviderError("the image model's stream ended before the image was completed", retryable=True)

    def _streamed_event(self, event: dict, events: "_StreamedEvents",
                        on_partial: PartialImageCallback) -> GeneratedImage | None:
        """The picture, for the completed event; None for the others, shown and dropped."""
        kind = event.get("type")
        if kind == "image_generation.completed":
            data = _verified_image(event.pop("b64_json", None), "image")
            events.keep(len(data))
            usage = event.get("usage")
            return GeneratedImage(data=data, provider=self.name, model=self.model,
                                  usage=_without_none(usage) if isinstance(usage, dict) else None)
        if kind == "image_generation.partial_image":
            try:
                partial = _verified_image(event.pop("b64_json", None), "partial image")
            except InvalidImage:
                partial = None   # a bad preview is not worth failing the job for
            if partial is not None:
                on_partial(partial)
        events.done()
        return None

    # -- errors ------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "[redacted]")
        return _SECRET_LIKE.sub("sk-[redacted]", text)

    def _failure_for(self, exc: Exception) -> JobFailure | None:
        """The coded failure for an exception of the openai package; None for anything else."""
        import openai

        if not isinstance(exc, openai.OpenAIError):
            return None
        if isinstance(exc, openai.APITimeoutError):
            return JobTimedOut(f"the image model did not answer within {self._timeout:g}s", retryable=True)
        if isinstance(exc, openai.APIConnectionError):
            return ProviderError("could not reach the image model (connection failed)", retryable=True)
        if not isinstance(exc, openai.APIError):
            return ProviderError(self._redact(f"the image model client failed: {exc}"), retryable=False)

        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("message") if isinstance(body.get("message"), str) else exc.message
        detail = self._redact(detail or "")
        code = exc.code or ""
        status = getattr(exc, "status_code", None)

        if code in _MODERATION_CODES or _MODERATION_TEXT.search(detail):
            return ContentPolicyViolation("the prompt was refused by the image model's safety system"
                                          + (f": {detail}" if detail else ""))
        if code in _BILLING_CODES:
            return ProviderError(f"the OpenAI account cannot pay for this request ({code})", retryable=False)
        if status is None:   # an error event inside a stream: the server's own failure
            if code == "rate_limit_exceeded":
                return ProviderRateLimited(f"the image model is rate limited: {detail}", retryable=True)
            return ProviderError(f"the image model failed while drawing: {detail or code or 'unknown error'}",
                                 retryable=True)
        retry_after = _retry_after(exc.response.headers) if isinstance(exc, openai.APIStatusError) else None
        if status == 429:
            return ProviderRateLimited(f"the image model is rate limited (429): {detail}",
                                       retryable=True, retry_after=retry_after)
        if status == 401:
            return ProviderError("the OpenAI API key was rejected (401)", retryable=False)
        if status == 403:
            return ProviderError(f"the OpenAI account may not use {self.model} (403): {detail}", retryable=False)
        if status == 404:
            return ProviderError(f"the image model {self.model} was not found (404): {detail}", retryable=False)
        if status in (408, 409) or status >= 500:
            return ProviderError(f"the image model failed ({status}): {detail or 'server error'}",
                                 retryable=True, retry_after=retry_after)
        return ProviderError(f"the image model refused the request ({status}): {detail}", retryable=False)


class _StreamedEvents:
    """The JSON of each server-sent event of a streamed answer, read from the HTTP response.

    Each event is read inside providers.base.receiving: its room is reserved when its first
    bytes come (the rest wait in the socket until it is granted) and ends when the reader says
    it is done with the event (`done`) or keeps its picture (`keep`: counted until the job
    settles). Read here rather than by the SDK's Stream because each event is a whole picture
    as base64 text (6 MB for 1536×1536) and the SDK's iterators keep the last event, parsed and
    unparsed, while they wait for the next, for the seconds the model draws: 64 streams held a
    GB that way. Here an event's line is parsed in place and nothing is kept between events.
    Error events raise openai.APIError, as the SDK's Stream does; transport failures raise the
    SDK's APITimeoutError / APIConnectionError."""

    def __init__(self, response, at_most: int, *, longest: int):
        self._response = response
        self._at_most = at_most
        self._longest = longest   # an event's bytes, at most (_longest_event)
        self._length = 0          # of the event being read, so far
        self._held: contextlib.ExitStack | None = None
        self._give_back = None
        self._data: list[bytearray] = []   # the data lines of the event being read

    def __iter__(self) -> Iterator[dict]:
        import openai

        # the SDK's HTTP library (httpx, or httpx2 in newer SDKs), for its exception types
        library = sys.modules[type(self._response).__module__.partition(".")[0]]
        request = self._response.request
        try:
            yield from self._events(self._response.iter_bytes())
        except library.TimeoutException:
            raise openai.APITimeoutError(request=request) from None
        except (library.RequestError, OSError):   # OSError: a TLS failure the library does not wrap
            raise openai.APIConnectionError(request=request) from None

    def _events(self, chunks: Iterator[bytes]) -> Iterator[dict]:
        line, after_cr = bytearray(), False   # the line so far; the last chunk ended in CR
        for chunk in chunks:
            if not chunk:
                continue
            start = 1 if after_cr and chunk[:1] == b"\n" else 0   # a CRLF split between chunks
            after_cr = False
            for end in _LINE_END.finditer(chunk, start):
                self._take(line, memoryview(chunk)[start:end.start()])
                start, after_cr = end.end(), end.group() == b"\r" and end.end() == len(chunk)
                if self._field(line):
                    yield self._dispatch()   # a temporary: the generator keeps nothing of it
                line = bytearray()
            if start < len(chunk):
                self._take(line, memoryview(chunk)[start:])
        # the end of the body: an event not ended by an empty line is dropped, as the format says

    def _take(self, line: bytearray, piece: memoryview) -> None:
        self._reserve()
        self._length += len(piece)
        if self._length > self._longest:
            raise InvalidImage("the image model sent an event larger than a picture of the size asked for")
        line += piece

    def _field(self, line: bytearray) -> bool:
        """Take in one line (the SSE format's fields); True when it ends an event that has data."""
        if not line:
            self._length = 0
            if not self._data:
                self.done()   # a comment or a keep-alive: nothing to keep room for while the model draws
            return bool(self._data)
        colon = line.find(b":")
        if (line[:colon] if colon >= 0 else line) == b"data":
            value_at = colon + 1 + (line[colon + 1:colon + 2] == b" ") if colon >= 0 else len(line)
            del line[:value_at]   # in place: the picture's base64 text is not copied
            self._data.append(line)
        return False   # `event`, `id`, `retry` and comments: the JSON says what the event is

    def _dispatch(self) -> dict:
        import openai

        data, self._data = self._data, []
        text = data[0] if len(data) == 1 else b"\n".join(data)
        del data
        if text == b"[DONE]":
            return {}   # the end, as some OpenAI streams mark it: no picture came before it
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        del text
        if not isinstance(event, dict):
            raise ProviderError("the image model sent an event that is not a JSON object", retryable=True)
        error = event.get("error") if isinstance(event.get("error"), dict) else (
            event if event.get("type") == "error" else None)
        if error is not None:
            message = error.get("message") if isinstance(error.get("message"), str) else None
            raise openai.APIError(message or "An error occurred during streaming", self._response.request,
                                  body=error)
        return event

    def _reserve(self) -> None:
        """An event's first bytes: wait for room before reading the rest."""
        if self._held is None:
            held = contextlib.ExitStack()
            self._give_back = held.enter_context(receiving(self._at_most))
            self._held = held

    def done(self) -> None:
        """The event read last is gone: its room is given back."""
        self._end(keep=0)

    def keep(self, held: int) -> None:
        """The event read last is the job's picture, `held` bytes: counted until the job settles."""
        self._end(keep=held)

    def _end(self, *, keep: int) -> None:
        if self._held is None:
            return
        self._give_back(keep)
        held, self._held = self._held, None
        held.close()


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _longest_event(pixels: int) -> int:
    """The most an event may carry for a picture of `pixels`: as an uncompressed RGBA PNG would
    be as base64, and 64 KB for the event's fields and the rest of its JSON."""
    return 4 * -(-4 * pixels // 3) + 64 * 1024


def _without_none(value):
    """A JSON value with the null members of its objects left out (as model_dump(exclude_none))."""
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    return value


def _uploads(images: tuple[bytes, ...]) -> list[tuple[str, bytes, str]]:
    """The reference pictures as the multipart files images.edit sends (name, bytes, content type)."""
    from snapasset.references import check_picture, content_type

    files = []
    for index, data in enumerate(images):
        extension = check_picture(data)
        files.append((f"reference-{index}.{extension}", data, content_type(extension)))
    return files


def _retry_after(headers) -> float | None:
    """Seconds from Retry-After / retry-after-ms; None when absent or a date we do not parse."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            from email.utils import parsedate_to_datetime
            from datetime import datetime, timezone
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            seconds = (when - datetime.now(timezone.utc)).total_seconds()
        if seconds >= 0:
            return seconds
    return None
