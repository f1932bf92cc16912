"""Generation records in Supabase (PostgREST): tables `generations` and `generated_images`.

Every write is an upsert on the row's natural key, so a retried job writes each row once:
`generations` on its id (derived from the job id), `generated_images` on
(generation_id, platform_id, variant). Schema: snapasset/migrations/001_init.sql and
002_variants.sql.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone

from snapasset.errors import StorageFailure
from snapasset.records.base import GenerationRecord, ImageRecord

__all__ = ["SupabaseRecords", "GENERATIONS", "IMAGES"]

GENERATIONS = "generations"
IMAGES = "generated_images"
IMAGE_CONFLICT_KEY = "generation_id,platform_id,variant"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _is_transient(exc: Exception) -> bool:
    import httpx
    from postgrest.exceptions import APIError

    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, APIError):
        code = str(exc.code or "")
        if len(code) == 3 and code.isdigit():       # no PostgREST body (a proxy's page): the HTTP status
            return int(code) >= 500 or code in ("408", "429")
        # PGRST000-003: PostgREST cannot reach the database; SQLSTATE 08 connection, 40 rollback
        # (serialization/deadlock), 53 resources, 57P operator intervention.
        return code in _TRANSIENT_PGRST or code[:2] in ("08", "40", "53") or code.startswith("57P")
    return False


_TRANSIENT_PGRST = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})


class SupabaseRecords:
    def __init__(self, *, client):
        self._client = client

    def __repr__(self) -> str:
        return "SupabaseRecords()"

    def _run(self, what: str, query):
        from postgrest.exceptions import APIError
        import httpx

        try:
            return query.execute()
        except (APIError, httpx.HTTPError) as exc:
            detail = f"{exc.code}: {exc.message}" if isinstance(exc, APIError) else type(exc).__name__
            raise StorageFailure(f"Supabase could not {what} ({detail})", retryable=_is_transient(exc)) from None

    def save_generation(self, record: GenerationRecord) -> None:
        row = asdict(record)
        if row["created_at"] is None:
            del row["created_at"]            # the column default, and never overwritten on a retry
        row["updated_at"] = _now_iso()
        self._run(f"save generation {record.id}",
                  self._client.table(GENERATIONS).upsert(row, on_conflict="id", returning="minimal"))

    def save_image(self, record: ImageRecord) -> None:
        row = asdict(record)
        self._run(f"save the {record.platform_id} image of generation {record.generation_id}",
                  self._client.table(IMAGES).upsert(row, on_conflict=IMAGE_CONFLICT_KEY, returning="minimal"))

    def delete_generation(self, generation_id: str) -> None:
        # The foreign key cascades; deleting the images first keeps this correct without it.
        self._run(f"delete the images of generation {generation_id}",
                  self._client.table(IMAGES).delete(returning="minimal").eq("generation_id", generation_id))
        self._run(f"delete generation {generation_id}",
                  self._client.table(GENERATIONS).delete(returning="minimal").eq("id", generation_id))

    def get_generation(self, generation_id: str) -> dict | None:
        found = self._run(f"read generation {generation_id}",
                          self._client.table(GENERATIONS).select("*").eq("id", generation_id).limit(1))
        if not found.data:
            return None
        generation = dict(found.data[0])
        images = self._run(f"read the images of generation {generation_id}",
                           self._client.table(IMAGES).select("*").eq("generation_id", generation_id))
        order = {platform: index for index, platform in enumerate(generation.get("platforms") or [])}
        generation["images"] = sorted(images.data, key=lambda row: (row.get("variant") or 0,
                                                                    order.get(row.get("platform_id"), len(order))))
        return generation
