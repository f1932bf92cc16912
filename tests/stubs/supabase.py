"""A local Supabase (Storage API + PostgREST) for the real ``supabase`` client.

    stub = SupabaseStub.start(buckets=["generated-images"])
    client = supabase.create_client(stub.url, "service-role-test-key")
    stub.fail_next(2, status=503, method="POST", path_prefix="/storage/v1/object/")
    stub.objects["generated-images"]["u/g/x.png"]  -> StoredObject(data, content_type, cache_control)
    stub.tables["generations"]                      -> list of row dicts

Storage: upload (POST/PUT /storage/v1/object/<bucket>/<key>, multipart, x-upsert), download
(GET /storage/v1/object/<bucket>/<key>), remove
(DELETE /storage/v1/object/<bucket>), sign (POST /storage/v1/object/sign/<bucket>/<key>),
get bucket, and public download (GET /storage/v1/object/public/<bucket>/<key>) with the
Content-Type and Cache-Control the real service would serve.

PostgREST: /rest/v1/generations and /rest/v1/generated_images — insert/upsert (POST with
Prefer: resolution=merge-duplicates and ?on_conflict=), select with eq./in. filters and
limit, delete with filters (cascading images like the foreign key). Unique keys are enforced.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import HTTP

from ._server import RecordedRequest, Reply, StubServer

__all__ = ["SupabaseStub", "StoredObject", "TABLES"]

# table -> (primary key, other unique keys, defaults, children deleted with a row: (table, fk column))
TABLES = {
    "generations": {"pk": ("id",), "unique": [("job_id",)], "defaults": {},
                    "children": [("generated_images", "generation_id")]},
    "generated_images": {"pk": ("id",), "unique": [("generation_id", "platform_id", "variant")],
                         "defaults": {"id": lambda: str(uuid.uuid4()), "variant": lambda: 0}, "children": []},
}


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    cache_control: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _storage_error(status: int, error: str, message: str) -> Reply:
    # The Storage API's error shape; statusCode is a string there.
    return Reply.json({"statusCode": str(status), "error": error, "message": message}, status)


def _pgrst_error(status: int, code: str, message: str, details: str | None = None) -> Reply:
    return Reply.json({"code": code, "details": details, "hint": None, "message": message}, status)


class SupabaseStub(StubServer):
    def __init__(self, buckets: list[str] | tuple[str, ...] = ("generated-images",)):
        super().__init__()
        self.objects: dict[str, dict[str, StoredObject]] = {bucket: {} for bucket in buckets}
        self.tables: dict[str, list[dict]] = {name: [] for name in TABLES}
        self._failures: list[dict] = []
        self._data_lock = threading.RLock()

    # -- scripting -------------------------------------------------------------------------
    def fail_next(self, count: int, *, status: int = 503, method: str | None = None,
                  path_prefix: str = "/", drop: bool = False) -> None:
        """The next ``count`` matching requests get ``status`` (or a dropped connection)."""
        with self._data_lock:
            self._failures.append({"count": count, "status": status, "method": method,
                                   "prefix": path_prefix, "drop": drop})

    def reset(self) -> None:
        """Empty buckets and tables, forget scripted failures and received requests."""
        super().reset()
        with self._data_lock:
            self._failures.clear()
            for bucket in self.objects.values():
                bucket.clear()
            for rows in self.tables.values():
                rows.clear()

    def fail_uploads(self, count: int, *, status: int = 503) -> None:
        self.fail_next(count, status=status, method="POST", path_prefix="/storage/v1/object/")

    def _scripted_failure(self, request: RecordedRequest) -> Reply | None:
        with self._data_lock:
            for failure in self._failures:
                if failure["count"] > 0 and request.path.startswith(failure["prefix"]) \
                        and failure["method"] in (None, request.method):
                    failure["count"] -= 1
                    if failure["drop"]:
                        return Reply(drop=True)
                    if request.path.startswith("/rest/"):
                        return Reply(status=failure["status"], headers={"Content-Type": "text/html"},
                                     body=b"<html>upstream unavailable</html>")
                    return _storage_error(failure["status"], "ServiceUnavailable", "Service Unavailable")
        return None

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # -- routing ---------------------------------------------------------------------------
    def respond(self, request: RecordedRequest) -> Reply:
        failure = self._scripted_failure(request)
        if failure is not None:
            return failure
        if request.path.startswith("/storage/v1/"):
            if request.method != "GET" or "/object/public/" not in request.path:
                if not request.headers.get("authorization", "").startswith("Bearer "):
                    return _storage_error(400, "Unauthorized", "headers must have required property 'authorization'")
            return self._storage(request, request.path[len("/storage/v1"):])
        if request.path.startswith("/rest/v1/"):
            if "apikey" not in request.headers:
                return Reply.json({"message": "No API key found in request"}, 401)
            return self._rest(request, request.path[len("/rest/v1/"):])
        return Reply.json({"message": "not found"}, 404)

    # -- storage ---------------------------------------------------------------------------
    def _storage(self, request: RecordedRequest, path: str) -> Reply:
        parts = path.strip("/").split("/")
        with self._data_lock:
            if parts[:1] == ["bucket"] and len(parts) == 2 and request.method == "GET":
                if parts[1] not in self.objects:
                    return _storage_error(404, "Bucket not found", "Bucket not found")
                return Reply.json({"id": parts[1], "name": parts[1], "public": True, "owner": "",
                                   "file_size_limit": None, "allowed_mime_types": None,
                                   "created_at": _now(), "updated_at": _now()})
            if parts[:2] == ["object", "public"] and request.method in ("GET", "HEAD"):
                stored = self.objects.get(parts[2], {}).get("/".join(parts[3:]))
                if stored is None:
                    return _storage_error(400, "not_found", "Object not found")
                return Reply(headers={"Content-Type": stored.content_type, "Cache-Control": stored.cache_control},
                             body=stored.data)
            if parts[:2] == ["object", "sign"] and request.method == "POST":
                bucket, key = parts[2], "/".join(parts[3:])
                if key not in self.objects.get(bucket, {}):
                    return _storage_error(400, "not_found", "Object not found")
                token = uuid.uuid4().hex
                return Reply.json({"signedURL": f"/object/sign/{bucket}/{key}?token={token}"})
            if parts[:1] == ["object"] and len(parts) == 2 and request.method == "DELETE":
                bucket = self.objects.get(parts[1])
                if bucket is None:
                    return _storage_error(404, "Bucket not found", "Bucket not found")
                removed = [{"name": key, "bucket_id": parts[1]} for key in request.json["prefixes"]
                           if bucket.pop(key, None) is not None]
                return Reply.json(removed)
            if parts[:1] == ["object"] and len(parts) >= 3 and request.method == "GET":   # authenticated download
                stored = self.objects.get(parts[1], {}).get("/".join(parts[2:]))
                if stored is None:
                    return _storage_error(400, "not_found", "Object not found")
                return Reply(headers={"Content-Type": stored.content_type}, body=stored.data)
            if parts[:1] == ["object"] and len(parts) >= 3 and request.method in ("POST", "PUT"):
                return self._upload(request, parts[1], "/".join(parts[2:]))
        return _storage_error(404, "not_found", f"no route for {request.method} {path}")

    def _upload(self, request: RecordedRequest, bucket_id: str, key: str) -> Reply:
        bucket = self.objects.get(bucket_id)
        if bucket is None:
            return _storage_error(404, "Bucket not found", "Bucket not found")
        message = message_from_bytes(
            f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.body, policy=HTTP)
        fields, file_part = {}, None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                file_part = part
            else:
                fields[name] = part.get_content().strip()
        if file_part is None:
            return _storage_error(400, "InvalidRequest", "No content provided")
        upsert = request.headers.get("x-upsert") == "true" or request.method == "PUT"
        if key in bucket and not upsert:
            return _storage_error(400, "Duplicate", "The resource already exists")
        cache_time = fields.get("cacheControl")
        bucket[key] = StoredObject(data=file_part.get_payload(decode=True),
                                   content_type=file_part.get_content_type(),
                                   cache_control=f"max-age={cache_time}" if cache_time else "no-cache")
        return Reply.json({"Id": str(uuid.uuid4()), "Key": f"{bucket_id}/{key}"})

    # -- PostgREST -------------------------------------------------------------------------
    def _rest(self, request: RecordedRequest, table: str) -> Reply:
        if table not in TABLES:
            return _pgrst_error(404, "PGRST205", f"Could not find the table 'public.{table}' in the schema cache")
        prefer = {item.strip() for item in request.headers.get("prefer", "").split(",") if item.strip()}
        with self._data_lock:
            if request.method == "POST":
                return self._insert(table, request, prefer)
            if request.method == "GET":
                rows = self._filtered(table, request.query)
                if "limit" in request.query:
                    rows = rows[:int(request.query["limit"])]
                return Reply.json(self._project(rows, request.query.get("select", "*")))
            if request.method == "DELETE":
                rows = self._filtered(table, request.query)
                for row in rows:
                    self._delete_row(table, row)
                if "return=representation" in prefer:
                    return Reply.json(rows)
                return Reply(status=204)
        return _pgrst_error(405, "PGRST117", f"Unsupported HTTP method: {request.method}")

    def _insert(self, table: str, request: RecordedRequest, prefer: set[str]) -> Reply:
        spec = TABLES[table]
        rows = request.json if isinstance(request.json, list) else [request.json]
        merge = "resolution=merge-duplicates" in prefer
        ignore = "resolution=ignore-duplicates" in prefer
        conflict_cols = tuple(request.query["on_conflict"].split(",")) if "on_conflict" in request.query \
            else spec["pk"]
        written = []
        for incoming in rows:
            existing = self._find(table, conflict_cols, incoming) if (merge or ignore) else None
            if existing is not None:
                if merge:
                    existing.update(incoming)
                written.append(existing)
                continue
            row = {name: make() for name, make in spec["defaults"].items()}
            row.setdefault("created_at", _now())
            row.update(incoming)
            for key in [spec["pk"], *spec["unique"]]:
                if self._find(table, key, row) is not None:
                    return _pgrst_error(409, "23505", "duplicate key value violates unique constraint "
                                        f"\"{table}_{'_'.join(key)}_key\"",
                                        f"Key ({', '.join(key)}) already exists.")
            self.tables[table].append(row)
            written.append(row)
        if "return=representation" in prefer:
            return Reply.json([dict(row) for row in written], 201)
        return Reply(status=201)

    def _find(self, table: str, columns: tuple[str, ...], values: dict) -> dict | None:
        if not all(column in values for column in columns):
            return None
        for row in self.tables[table]:
            if all(row.get(column) == values[column] for column in columns):
                return row
        return None

    def _filtered(self, table: str, query: dict[str, str]) -> list[dict]:
        filters = {column: value for column, value in query.items()
                   if column not in ("select", "limit", "offset", "order", "on_conflict", "columns")}
        return [row for row in self.tables[table]
                if all(_matches(row.get(column), condition) for column, condition in filters.items())]

    @staticmethod
    def _project(rows: list[dict], select: str) -> list[dict]:
        if select.strip() == "*":
            return [dict(row) for row in rows]
        columns = [column.strip() for column in select.split(",")]
        return [{column: row.get(column) for column in columns} for row in rows]

    def _delete_row(self, table: str, row: dict) -> None:
        self.tables[table].remove(row)
        for child_table, fk in TABLES[table]["children"]:
            for child in [c for c in self.tables[child_table] if c.get(fk) == row.get("id")]:
                self._delete_row(child_table, child)


def _matches(value, condition: str) -> bool:
    operator, _, operand = condition.partition(".")
    text = "null" if value is None else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    if operator == "eq":
        return text == operand
    if operator == "neq":
        return text != operand
    if operator == "in":
        return text in [item.strip().strip('"') for item in operand.strip("()").split(",")]
    if operator == "is":
        return (operand == "null") == (value is None)
    raise ValueError(f"the stub does not understand the filter {condition!r}")
