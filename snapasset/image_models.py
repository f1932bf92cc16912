"""The OpenAI image models SnapAsset can ask for: one table of what each offers (sizes, quality
tiers), and the retired ones that are refused at start.

Taken from what the installed ``openai`` package documents in ``openai.types.image_model`` and
``image_generate_params`` (models, sizes, ``quality``), and kept here, without importing the
package, so that configuration and request validation need no provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ModelSpec", "MODELS", "RETIRED", "DEFAULT_MODEL", "BASE_QUALITIES", "ALL_QUALITIES",
           "model_spec", "retirement", "STANDARD_SIZES"]

DEFAULT_MODEL = "gpt-image-2"

# The three sizes every GPT image model accepts.
STANDARD_SIZES: tuple[tuple[int, int], ...] = ((1024, 1024), (1536, 1024), (1024, 1536))
BASE_QUALITIES = ("low", "medium", "high", "auto")
ALL_QUALITIES = (*BASE_QUALITIES, "xhigh", "max")   # the 2.5 models add xhigh and max


@dataclass(frozen=True)
class ModelSpec:
    flexible_size: bool                          # any WxH within the limits, else STANDARD_SIZES only
    qualities: tuple[str, ...] = BASE_QUALITIES  # `quality` values the model takes
    streaming: bool = True                       # stream=True with partial_images


MODELS: dict[str, ModelSpec] = {
    "gpt-image-1-mini": ModelSpec(flexible_size=False),
    "gpt-image-1.5": ModelSpec(flexible_size=False),
    "gpt-image-2": ModelSpec(flexible_size=True),
    "gpt-image-2.5-sunburst": ModelSpec(flexible_size=True, qualities=ALL_QUALITIES),
    "gpt-image-2.5-flare": ModelSpec(flexible_size=True, qualities=ALL_QUALITIES),
    # listed by the package without size or quality notes: the conservative common ground
    "gpt-image-2.6-sunburst": ModelSpec(flexible_size=False),
    "gpt-image-2.6-flare": ModelSpec(flexible_size=False),
    "chatgpt-image-latest": ModelSpec(flexible_size=False),
}

# Model → why it cannot be used any more (one line, with what to use instead).
RETIRED: dict[str, str] = {
    "gpt-image-1": "gpt-image-1 was shut down on 2026-10-23; use gpt-image-2 "
                   "(or gpt-image-2.5-sunburst / gpt-image-2.5-flare)",
    "dall-e-2": "dall-e-2 was retired in May 2026; use a GPT image model such as gpt-image-2",
    "dall-e-3": "dall-e-3 was retired in May 2026; use a GPT image model such as gpt-image-2",
}

# A dated snapshot ("gpt-image-2-2026-04-21") behaves as its family.
_SNAPSHOT = re.compile(r"^(?P<family>.+?)-\d{4}-\d{2}-\d{2}$")


def _family(model: str) -> str:
    match = _SNAPSHOT.match(model)
    return match["family"] if match and model not in MODELS else model


def retirement(model: str) -> str | None:
    """Why ``model`` (or the family of a dated snapshot) can no longer be used; None if it can."""
    return RETIRED.get(model) or RETIRED.get(_family(model))


def model_spec(model: str) -> ModelSpec:
    """What ``model`` offers; ValueError for a retired or unknown model."""
    reason = retirement(model)
    if reason:
        raise ValueError(reason)
    spec = MODELS.get(model) or MODELS.get(_family(model))
    if spec is None:
        raise ValueError(f"unknown OpenAI image model {model!r}; expected one of {', '.join(MODELS)} "
                         "(or a dated snapshot of one)")
    return spec
