"""Generation records: the Records port and its adapters (SQLite, Supabase tables)."""

from __future__ import annotations

from snapasset.config import Settings
from snapasset.records.base import GenerationRecord, ImageRecord, Records, generation_id_for

__all__ = ["Records", "GenerationRecord", "ImageRecord", "build_records", "supabase_client", "generation_id_for"]


def supabase_client(settings: Settings):
    """The one Supabase client a process uses for storage and tables (None without SUPABASE_URL)."""
    if not settings.supabase_url:
        return None
    from supabase import create_client
    return create_client(settings.supabase_url, settings.supabase_service_role_key)


def build_records(settings: Settings, supabase=None) -> Records:
    if settings.supabase_url:
        from snapasset.records.supabase import SupabaseRecords
        return SupabaseRecords(client=supabase)
    from snapasset.records.sqlite import SqliteRecords
    return SqliteRecords(settings.database)
