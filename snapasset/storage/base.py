"""The port where rendered images are kept."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Storage", "object_key", "reference_key"]


def object_key(user_id: str, generation_id: str, platform_id: str, width: int, height: int, ext: str,
               variant: int = 0) -> str:
    """Where one rendered image lives: <userId>/<generationId>/<platform>-<w>x<h>.<ext>, and for
    the further variants of a job with n > 1, <platform>-<w>x<h>-v<variant>.<ext>."""
    suffix = f"-v{variant}" if variant else ""
    return f"{user_id}/{generation_id}/{platform_id}-{width}x{height}{suffix}.{ext}"


def reference_key(user_id: str, generation_id: str, index: int, ext: str) -> str:
    """Where a reference picture uploaded with a job (a data URL) is kept, beside its outputs."""
    return f"{user_id}/{generation_id}/references/reference-{index}.{ext}"


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store the object at key (overwriting), return the URL a client fetches it from.

        Raises snapasset.errors.StorageFailure when it cannot."""

    def get(self, key: str) -> bytes:
        """The object's bytes. Raises snapasset.errors.StorageFailure when it cannot."""

    def delete(self, keys: list[str]) -> None:
        """Remove these objects; missing ones are not an error."""

    def check(self) -> None:
        """Raise if the storage is unreachable (for /ready)."""
