"""The port every image model sits behind."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from snapasset.platforms import Platform

__all__ = ["GenerationRequest", "GeneratedImage", "ImageProvider", "ExtendingProvider", "PartialImageCallback",
           "can_extend", "safety_identifier", "for_model", "model_drawing", "receiving", "receive_gate",
           "largest_answer_bytes"]

# Called with the bytes (PNG/JPEG/WebP) of a partial image while the model is still drawing.
PartialImageCallback = Callable[[bytes], None]

# A provider reads a picture's bytes (an HTTP body, a file) inside `receiving(at_most)`. A worker
# with a memory budget binds a gate here for the job: the read waits until the budget has room
# for it, so a burst of model answers arriving together is let in a few at a time instead of
# all in memory at once (workers/rendering.py, Arrivals). What was read stays counted until the
# job hands its pictures to the renderer. The context yields `give_back(keep=0)`, with which the
# reader counts only what it still holds once it knows (`keep` bytes: the decoded picture of a
# read reserved at its peak; 0: a partial image, gone once shown). Unbound (the CLI, tests): no wait.
ReceiveGate = Callable[[int], contextlib.AbstractContextManager[Callable[..., None]]]
_receive_gate: contextvars.ContextVar[ReceiveGate | None] = contextvars.ContextVar("snapasset_receive_gate",
                                                                                   default=None)


def largest_answer_bytes(max_pixels: int) -> int:
    """What reading one picture of `max_pixels` may hold at its peak, when nothing says its size:
    an uncompressed RGBA PNG (4 bytes a pixel) as base64 in a JSON body, that text parsed, and
    the decoded bytes."""
    return int(4 * max_pixels * (4 / 3 + 4 / 3 + 1))


@contextlib.contextmanager
def receiving(at_most: int) -> Iterator[Callable[..., None]]:
    """Around the read of up to `at_most` bytes of pictures (what the read itself holds at its
    peak): it may wait for the worker's memory budget first. Yields `give_back(keep=0)`, which
    gives back all of the reservation but `keep` bytes, for bytes the reader no longer holds."""
    gate = _receive_gate.get()
    if gate is None:
        yield _nothing_held
        return
    with gate(at_most) as give_back:
        yield give_back


def _nothing_held(keep: int = 0) -> None:
    pass


@contextlib.contextmanager
def receive_gate(gate: ReceiveGate) -> Iterator[None]:
    """Bind `gate` for the reads made in this context (and in threads started with a copy of it)."""
    token = _receive_gate.set(gate)
    try:
        yield
    finally:
        _receive_gate.reset(token)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    width: int
    height: int
    quality: str = "auto"          # low | medium | high | auto (standard/hd already mapped)
    style: str | None = None       # vivid | natural, a hint only
    output_format: str = "png"     # what the provider should return when it has the choice
    n: int = 1                     # distinct pictures wanted for this prompt (variants)
    seed: int | None = None        # the same seed, prompt and size draw the same picture, where honoured
    background: str = "auto"       # auto | opaque | transparent
    input_images: tuple[bytes, ...] = ()    # reference pictures to work from (image-to-image)
    safety_identifier: str | None = None    # who asked, hashed (safety_identifier()); never the raw id


@dataclass
class GeneratedImage:
    data: bytes                    # encoded image bytes as the model returned them (the first variant)
    provider: str                  # "local" | "openai"
    model: str
    revised_prompt: str | None = None
    usage: dict | None = field(default=None)
    # What the picture shows, when the provider knows it: the local provider names the subject
    # it drew ("cat", "landscape: mountains at sunset", "abstract"); models do not say.
    subject: str | None = None
    variants: tuple[bytes, ...] = ()   # the further pictures of a request with n > 1
    seed: int | None = None            # the seed the picture was drawn with; None when not honoured

    @property
    def pictures(self) -> list[bytes]:
        """Every picture drawn, variant 0 first."""
        return [self.data, *self.variants]


def safety_identifier(user_id: str) -> str:
    """The stable identifier of an end user that image models ask for (abuse monitoring): a hash,
    so that no user id or e-mail address leaves SnapAsset."""
    return hashlib.sha256(f"snapasset-user:{user_id}".encode()).hexdigest()


class ImageProvider(Protocol):
    name: str
    model: str
    # The most pixels a picture from this provider can legitimately have; a larger one is refused
    # from its header, before any decoding. A provider without it is held to imaging.MAX_PIXELS.
    max_pixels: int

    def choose_size(self, platforms: Sequence[Platform]) -> tuple[int, int]:
        """The (width, height) to ask the model for, losing least when cropped to every platform."""

    def generate(self, request: GenerationRequest, *,
                 on_partial: PartialImageCallback | None = None) -> GeneratedImage:
        """Draw request.n pictures. Raises snapasset.errors.JobFailure subclasses for known failures."""

    # Optional: `with_model(name) -> ImageProvider`, the same provider drawing with another model
    # (options.model). A provider without it draws with its own model whatever is asked.


class ExtendingProvider(ImageProvider, Protocol):
    """A provider that can also paint the part of a frame a picture does not cover
    (SPEC §5, ``fit=extend``). Providers without ``extend`` get ``contain`` instead."""

    def extend(self, request: GenerationRequest, image: bytes, mask: bytes) -> GeneratedImage:
        """Paint ``image`` (PNG, request.width × request.height) where ``mask`` (PNG of the same
        size) is fully transparent, keeping the rest; return the whole painted picture."""


def can_extend(provider: ImageProvider) -> bool:
    return callable(getattr(provider, "extend", None))


def for_model(provider: ImageProvider, model: str | None) -> ImageProvider:
    """The provider that draws with `model` (None: the provider's own)."""
    if model_drawing(provider, model) == provider.model:
        return provider
    return provider.with_model(model)


def model_drawing(provider: ImageProvider, model: str | None) -> str:
    """The model for_model(provider, model) draws with, without making that provider (the
    offline provider draws with its own whatever is asked)."""
    return model if model is not None and hasattr(provider, "with_model") else provider.model
