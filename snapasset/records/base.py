"""The port for generation records: one `generations` row per job, one `generated_images` row per image."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["GenerationRecord", "ImageRecord", "Records", "generation_id_for"]

GENERATION_NAMESPACE = uuid.UUID("6f1c1d1e-5a5e-4c8b-9a57-1e2a7d0c5a11")


def generation_id_for(job_id: str) -> str:
    """One generation per job, the same across retries: rows and object keys never double."""
    return str(uuid.uuid5(GENERATION_NAMESPACE, job_id))


@dataclass
class GenerationRecord:
    id: str                 # uuid, derived from the job id so that retries write the same row
    job_id: str
    user_id: str
    prompt: str
    platforms: list[str]
    options: dict
    provider: str
    model: str
    revised_prompt: str | None = None
    usage: dict | None = None
    status: str = "processing"   # processing | completed
    created_at: str | None = None


@dataclass
class ImageRecord:
    generation_id: str
    user_id: str
    platform_id: str
    url: str
    storage_key: str
    width: int
    height: int
    size: int
    format: str
    blurhash: str
    variant: int = 0               # which of the job's n pictures (0-based)
    extra: dict = field(default_factory=dict)


class Records(Protocol):
    def save_generation(self, record: GenerationRecord) -> None:
        """Insert or update the generation (keyed by id): never a second row for one job."""

    def save_image(self, record: ImageRecord) -> None:
        """Insert or update the image (keyed by generation_id + platform_id + variant)."""

    def delete_generation(self, generation_id: str) -> None:
        """Remove the generation and its images (a failed, cancelled or deleted job leaves none)."""

    def get_generation(self, generation_id: str) -> dict | None:
        """The stored generation with an `images` list, or None."""
