"""Where a process keeps what jobs produce: the storage and the records, built on first use
(no network at start) from one Supabase client when SUPABASE_URL is set."""

from __future__ import annotations

import threading

from snapasset.config import Settings
from snapasset.records import Records, build_records, supabase_client
from snapasset.storage import Storage, build_storage

__all__ = ["Stores"]


class Stores:
    def __init__(self, settings: Settings, *, storage: Storage | None = None, records: Records | None = None):
        self._settings = settings
        self._storage = storage
        self._records = records
        self._supabase = None
        self._lock = threading.Lock()

    def _client(self):
        if self._supabase is None:
            self._supabase = supabase_client(self._settings)
        return self._supabase

    @property
    def storage(self) -> Storage:
        with self._lock:
            if self._storage is None:
                self._storage = build_storage(self._settings, self._client())
            return self._storage

    @property
    def records(self) -> Records:
        with self._lock:
            if self._records is None:
                self._records = build_records(self._settings, self._client())
            return self._records
