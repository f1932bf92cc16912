"""Where rendered images go: the Storage port and its adapters (local folder, Supabase)."""

from __future__ import annotations

from snapasset.config import Settings
from snapasset.storage.base import Storage, object_key, reference_key

__all__ = ["Storage", "object_key", "reference_key", "build_storage"]


def build_storage(settings: Settings, supabase_client=None) -> Storage:
    if settings.supabase_url:
        from snapasset.storage.supabase import SupabaseStorage
        return SupabaseStorage(client=supabase_client, bucket=settings.supabase_bucket,
                               public=not settings.supabase_signed_urls)
    from snapasset.storage.local import LocalStorage
    return LocalStorage(settings.media_dir)
