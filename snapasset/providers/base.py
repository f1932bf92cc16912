"""The port every image model sits behind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from snapasset.platforms import Platform

__all__ = ["GenerationRequest", "GeneratedImage", "ImageProvider", "ExtendingProvider", "PartialImageCallback",
           "can_extend"]

# Called with the bytes (PNG/JPEG/WebP) of a partial image while the model is still drawing.
PartialImageCallback = Callable[[bytes], None]


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    width: int
    height: int
    quality: str = "auto"          # low | medium | high | auto (standard/hd already mapped)
    style: str | None = None       # vivid | natural, a hint only
    output_format: str = "png"     # what the provider should return when it has the choice


@dataclass
class GeneratedImage:
    data: bytes                    # encoded image bytes as the model returned them
    provider: str                  # "local" | "openai"
    model: str
    revised_prompt: str | None = None
    usage: dict | None = field(default=None)
    # What the picture shows, when the provider knows it: the local provider names the subject
    # it drew ("cat", "landscape: mountains at sunset", "abstract"); models do not say.
    subject: str | None = None


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
        """Draw one image. Raises snapasset.errors.JobFailure subclasses for known failures."""


class ExtendingProvider(ImageProvider, Protocol):
    """A provider that can also paint the part of a frame a picture does not cover
    (SPEC §5, ``fit=extend``). Providers without ``extend`` get ``contain`` instead."""

    def extend(self, request: GenerationRequest, image: bytes, mask: bytes) -> GeneratedImage:
        """Paint ``image`` (PNG, request.width × request.height) where ``mask`` (PNG of the same
        size) is fully transparent, keeping the rest; return the whole painted picture."""


def can_extend(provider: ImageProvider) -> bool:
    return callable(getattr(provider, "extend", None))
