"""A local OpenAI Images API (``POST /v1/images/generations`` and ``/v1/images/edits``, the
latter multipart) for the real ``openai`` client.

    stub = OpenAIImagesStub.start()
    stub.script([rate_limited(retry_after=7), success()])   # one reply per call, in order
    client = openai.OpenAI(api_key="sk-test", base_url=stub.base_url, max_retries=0)
    ...
    stub.requests[0].json["size"]; stub.stop()

When the script runs out, every call gets ``success()``. Images are real PNGs of the size
asked for (``auto`` → 1024x1024), ``n`` of them, each of its own colour, so they decode with
Pillow and variants differ. An edit with a mask answers with the image it was given, its fully
transparent pixels painted ``EDIT_PAINT`` (what the model painted); one without (reference
pictures) answers as a generation does.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ._server import RecordedRequest, Reply, StubServer

__all__ = ["OpenAIImagesStub", "Scripted", "success", "stream", "raw_stream", "moderation_blocked", "rate_limited",
           "server_error", "error", "garbage", "slow", "png_bytes", "form_fields", "EDIT_PAINT"]

EDIT_PAINT = (255, 0, 200)
GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
DEFAULT_USAGE = {"input_tokens": 50, "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
                 "output_tokens": 4160, "total_tokens": 4210}


def png_bytes(width: int = 64, height: int = 64, color=(200, 120, 40)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Scripted:
    """One scripted answer: ``kind`` picks the shape, the rest tunes it."""
    kind: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict | None = None
    revised_prompt: str | None = None
    usage: dict | None = field(default_factory=lambda: dict(DEFAULT_USAGE))
    partials: int = 0
    image_b64: str | None = None      # overrides the generated image
    delay: float = 0.0
    pause: float = 0.0                # between a stream's events
    partial_b64: str | None = None    # overrides the generated partial images
    final: dict | None = None         # a stream's last event instead of image_generation.completed
    cut: bool = False                 # the stream ends without its last event
    chunks: list[bytes] | None = None  # raw_stream: the body's bytes, exactly so


def success(*, revised_prompt: str | None = None, usage: dict | None = DEFAULT_USAGE,
            image_b64: str | None = None) -> Scripted:
    return Scripted("success", revised_prompt=revised_prompt, usage=usage, image_b64=image_b64)


def stream(partials: int = 2, *, image_b64: str | None = None, pause: float = 0.0, partial_b64: str | None = None,
           final: dict | None = None, cut: bool = False) -> Scripted:
    """SSE: ``partials`` image_generation.partial_image events, then image_generation.completed
    (or the event ``final``, or nothing when ``cut``), ``pause`` seconds apart."""
    return Scripted("stream", partials=partials, image_b64=image_b64, pause=pause, partial_b64=partial_b64,
                    final=final, cut=cut)


def raw_stream(chunks: list[bytes], *, pause: float = 0.0) -> Scripted:
    """A text/event-stream body of exactly these bytes, sent chunk by chunk ``pause`` seconds apart."""
    return Scripted("raw_stream", chunks=chunks, pause=pause)


def error(status: int, message: str, *, code: str | None = None, type: str = "invalid_request_error",
          param: str | None = None, headers: dict[str, str] | None = None) -> Scripted:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return Scripted("error", status=status, body=body, headers=headers or {})


def moderation_blocked() -> Scripted:
    return error(400, "Your request was rejected as a result of our safety system. Your request may "
                      "contain content that is not allowed by our safety system.",
                 code="moderation_blocked", type="image_generation_user_error")


def rate_limited(retry_after: int = 7) -> Scripted:
    return error(429, "Rate limit reached for gpt-image-1 in organization org-test on images per minute.",
                 code="rate_limit_exceeded", type="requests", headers={"Retry-After": str(retry_after)})


def server_error(status: int = 500) -> Scripted:
    return error(status, "The server had an error while processing your request.", type="server_error")


def garbage() -> Scripted:
    """A 200 whose b64_json is valid base64 of bytes that are not an image."""
    return success(image_b64=_b64(b"this is not an image at all" * 10))


def slow(seconds: float) -> Scripted:
    """Answer (successfully) only after ``seconds``: longer than a short client timeout."""
    reply = success()
    reply.delay = seconds
    return reply


class OpenAIImagesStub(StubServer):
    def __init__(self):
        super().__init__()
        self._script: deque[Scripted] = deque()
        self._script_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, replies: list[Scripted]) -> None:
        with self._script_lock:
            self._script.extend(replies)

    def reset(self) -> None:
        super().reset()
        with self._script_lock:
            self._script.clear()

    @property
    def generations(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == GENERATIONS]

    @property
    def edits(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == EDITS]

    def _next(self) -> Scripted:
        with self._script_lock:
            return self._script.popleft() if self._script else success()

    def respond(self, request: RecordedRequest) -> Reply:
        if request.method == "POST" and request.path == EDITS and "mask" in form_fields(request):
            return self._edit(request)
        if request.method != "POST" or request.path not in (GENERATIONS, EDITS):
            return Reply.json({"error": {"message": f"Invalid URL ({request.method} {request.path})",
                                         "type": "invalid_request_error", "param": None, "code": None}}, 404)
        if request.path == EDITS:   # the form's text fields, as generations would send them
            params = {name: value.decode() for name, value in form_fields(request).items()
                      if name not in ("image", "image[]", "mask")}
        else:
            params = request.json or {}
        scripted = self._next()
        if scripted.kind == "error":
            reply = Reply.json(scripted.body, scripted.status, scripted.headers)
        elif scripted.kind == "raw_stream":
            reply = Reply(status=200, headers={"Content-Type": "text/event-stream"}, chunks=scripted.chunks,
                          pause=scripted.pause)
        elif scripted.kind == "stream" or (scripted.kind == "success" and params.get("stream")):
            reply = self._stream(params, scripted)
        else:
            reply = self._success(params, scripted)
        reply.delay = scripted.delay
        return reply

    @staticmethod
    def _size(params: dict) -> tuple[int, int]:
        size = params.get("size") or "auto"
        if size == "auto":
            return 1024, 1024
        width, height = size.split("x")
        return int(width), int(height)

    def _success(self, params: dict, scripted: Scripted) -> Reply:
        items = []
        for index in range(int(params.get("n") or 1)):
            colour = (200, 120 + 40 * index, 40)
            item = {"b64_json": scripted.image_b64 or _b64(png_bytes(*self._size(params), colour))}
            if scripted.revised_prompt is not None:
                item["revised_prompt"] = scripted.revised_prompt
            items.append(item)
        body = {"created": int(time.time()), "data": items, "size": params.get("size"),
                "quality": params.get("quality"), "output_format": params.get("output_format", "png"),
                "background": "opaque"}
        if scripted.usage is not None:
            body["usage"] = scripted.usage
        return Reply.json(body, headers={"x-request-id": "req_stub"})

    def _edit(self, request: RecordedRequest) -> Reply:
        from PIL import Image

        fields = form_fields(request)
        scripted = self._next()
        if scripted.kind == "error":
            return Reply.json(scripted.body, scripted.status, scripted.headers)
        image = Image.open(io.BytesIO(fields["image"])).convert("RGBA")
        painted = Image.new("RGBA", image.size, EDIT_PAINT + (255,))
        painted.alpha_composite(image)
        buffer = io.BytesIO()
        painted.convert("RGB").save(buffer, "PNG")
        params = {"size": fields.get("size", b"auto").decode(), "quality": fields.get("quality", b"auto").decode()}
        return self._success(params, success(image_b64=_b64(buffer.getvalue())))

    def _stream(self, params: dict, scripted: Scripted) -> Reply:
        width, height = self._size(params)
        common = {"background": "opaque", "created_at": int(time.time()),
                  "output_format": params.get("output_format", "png"),
                  "quality": params.get("quality", "auto"), "size": f"{width}x{height}"}
        count = scripted.partials or int(params.get("partial_images") or 0)
        chunks = []
        for index in range(count):
            shade = 60 + 40 * index
            event = {"type": "image_generation.partial_image", "partial_image_index": index,
                     "b64_json": scripted.partial_b64 or _b64(png_bytes(width // 4, height // 4, (shade,) * 3)),
                     **common}
            chunks.append(_sse(event))
        final = scripted.final or {"type": "image_generation.completed",
                                   "b64_json": scripted.image_b64 or _b64(png_bytes(width, height)),
                                   "usage": scripted.usage or DEFAULT_USAGE, **common}
        if not scripted.cut:
            chunks.append(_sse(final))
        return Reply(status=200, headers={"Content-Type": "text/event-stream"}, chunks=chunks, pause=scripted.pause)


def _sse(event: dict) -> bytes:
    return f"event: {event.get('type', 'error')}\ndata: {json.dumps(event)}\n\n".encode()


def form_fields(request: RecordedRequest) -> dict[str, bytes]:
    """The fields of a multipart/form-data request body, by name (files as their bytes)."""
    from email import policy
    from email.parser import BytesParser

    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=policy.default).parsebytes(head + request.body)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}
