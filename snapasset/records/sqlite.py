"""Generation records in a local SQLite file (same tables as the Supabase flavour)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from snapasset.records.base import GenerationRecord, ImageRecord

__all__ = ["SqliteRecords"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    platforms TEXT NOT NULL,
    options TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    revised_prompt TEXT,
    usage TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS generations_user ON generations (user_id, created_at);
CREATE TABLE IF NOT EXISTS generated_images (
    generation_id TEXT NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    url TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size INTEGER NOT NULL,
    format TEXT NOT NULL,
    blurhash TEXT NOT NULL,
    variant INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (generation_id, platform_id, variant)
);
"""

IMAGE_COLUMNS = ("generation_id, user_id, platform_id, url, storage_key, width, height, size, format, blurhash, "
                 "created_at")


BUSY_TIMEOUT = 30.0   # seconds a statement waits for another process's lock


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch the file to write-ahead logging (it stays so). The switch takes the file's lock
    and, unlike other statements, fails at once with "database is locked" rather than waiting
    for it: two processes opening a new file together (two workers starting, a worker and the
    web process) each tried once, and one of them died at start. So it is tried again until
    the lock comes free, as long as any statement would wait."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SqliteRecords:
    """One connection per thread and process (a connection crosses neither), in WAL mode with
    synchronous=NORMAL: a crash loses at most the last transactions, never consistency."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(SCHEMA)
            self._add_variants(db)

    @staticmethod
    def _add_variants(db: sqlite3.Connection) -> None:
        """A file made before variants keyed images by (generation_id, platform_id); SQLite cannot
        change a primary key in place, so that table is rebuilt once, its rows kept as variant 0."""
        if "variant" in {row[1] for row in db.execute("PRAGMA table_info(generated_images)")}:
            return
        db.execute("ALTER TABLE generated_images RENAME TO generated_images_before_variants")
        db.executescript(SCHEMA)
        db.execute(f"INSERT INTO generated_images ({IMAGE_COLUMNS}) "
                   f"SELECT {IMAGE_COLUMNS} FROM generated_images_before_variants")
        db.execute("DROP TABLE generated_images_before_variants")

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():   # new thread, or a forked child
            local.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT)
            _use_wal(local.db)
            local.db.execute("PRAGMA synchronous=NORMAL")
            local.db.execute("PRAGMA foreign_keys=ON")
            local.pid = os.getpid()
        return local.db

    @contextmanager
    def _connect(self):
        db = self._connection()
        with db:   # one transaction: committed on success, rolled back on error
            yield db

    def save_generation(self, record: GenerationRecord) -> None:
        row = asdict(record)
        row["platforms"] = json.dumps(row["platforms"])
        row["options"] = json.dumps(row["options"])
        row["usage"] = json.dumps(row["usage"]) if row["usage"] is not None else None
        row.pop("created_at")
        with self._connect() as db:
            db.execute(
                """INSERT INTO generations (id, job_id, user_id, prompt, platforms, options, provider, model,
                                            revised_prompt, usage, status)
                   VALUES (:id, :job_id, :user_id, :prompt, :platforms, :options, :provider, :model,
                           :revised_prompt, :usage, :status)
                   ON CONFLICT (id) DO UPDATE SET provider=excluded.provider, model=excluded.model,
                       revised_prompt=excluded.revised_prompt, usage=excluded.usage, status=excluded.status,
                       updated_at=strftime('%Y-%m-%dT%H:%M:%fZ', 'now')""", row)

    def save_image(self, record: ImageRecord) -> None:
        row = asdict(record)
        row.pop("extra")
        with self._connect() as db:
            db.execute(
                """INSERT INTO generated_images (generation_id, user_id, platform_id, url, storage_key, width,
                                                 height, size, format, blurhash, variant)
                   VALUES (:generation_id, :user_id, :platform_id, :url, :storage_key, :width, :height, :size,
                           :format, :blurhash, :variant)
                   ON CONFLICT (generation_id, platform_id, variant) DO UPDATE SET url=excluded.url,
                       storage_key=excluded.storage_key, width=excluded.width, height=excluded.height,
                       size=excluded.size, format=excluded.format, blurhash=excluded.blurhash""", row)

    def delete_generation(self, generation_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM generations WHERE id = ?", (generation_id,))

    def get_generation(self, generation_id: str) -> dict | None:
        with self._connect() as db:
            cursor = db.cursor()
            cursor.row_factory = sqlite3.Row
            row = cursor.execute("SELECT * FROM generations WHERE id = ?", (generation_id,)).fetchone()
            if row is None:
                return None
            images = cursor.execute("SELECT * FROM generated_images WHERE generation_id = ? "
                                    "ORDER BY variant, platform_id",
                                    (generation_id,)).fetchall()
        generation = dict(row)
        for name in ("platforms", "options", "usage"):
            if generation[name] is not None:
                generation[name] = json.loads(generation[name])
        generation["images"] = [dict(image) for image in images]
        return generation

    def check(self) -> None:
        with self._connect() as db:
            db.execute("SELECT 1")
