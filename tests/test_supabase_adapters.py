"""SupabaseStorage and SupabaseRecords through the real ``supabase`` client against local stubs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
import supabase

from snapasset.errors import ErrorCode, StorageFailure
from snapasset.records.base import GenerationRecord, ImageRecord
from snapasset.records.supabase import SupabaseRecords
from snapasset.storage.base import object_key
from snapasset.storage.supabase import SupabaseStorage
from tests.stubs.openai_images import png_bytes
from tests.stubs.supabase import SupabaseStub

BUCKET = "generated-images"
SERVICE_KEY = "service-role-test-key"
USER = "5b1a4a0e-8d3c-4f8e-9a51-0c2b7d6e1f00"
GENERATION = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"


@pytest.fixture
def supabase_stub():
    stub = SupabaseStub.start(buckets=[BUCKET])
    yield stub
    stub.stop()


@pytest.fixture
def client(supabase_stub):
    return supabase.create_client(supabase_stub.url, SERVICE_KEY)


@pytest.fixture
def storage(client):
    return SupabaseStorage(client=client, bucket=BUCKET, backoff=0.01)


# -- storage -------------------------------------------------------------------------------

def test_put_uploads_at_the_key_with_type_and_long_cache(storage, supabase_stub):
    png = png_bytes(120, 80)
    jpeg_key = object_key(USER, GENERATION, "twitter-post", 1200, 675, "jpg")
    png_key = object_key(USER, GENERATION, "instagram-post", 1080, 1080, "png")
    jpeg_url = storage.put(jpeg_key, b"\xff\xd8\xff fake jpeg", "image/jpeg")
    png_url = storage.put(png_key, png, "image/png")

    assert jpeg_key == f"{USER}/{GENERATION}/twitter-post-1200x675.jpg"
    stored = supabase_stub.objects[BUCKET]
    assert set(stored) == {jpeg_key, png_key}
    assert stored[png_key].data == png and stored[png_key].content_type == "image/png"
    assert stored[jpeg_key].content_type == "image/jpeg"
    assert stored[png_key].cache_control == "max-age=31536000, immutable"
    upload = supabase_stub.requests_to("POST", f"/storage/v1/object/{BUCKET}/")[0]
    assert upload.headers["x-upsert"] == "true"
    assert upload.headers["authorization"] == f"Bearer {SERVICE_KEY}"

    assert png_url == f"{supabase_stub.url}/storage/v1/object/public/{BUCKET}/{png_key}"
    served = requests.get(png_url, timeout=5)
    assert served.content == png
    assert served.headers["Content-Type"] == "image/png"
    assert "max-age=31536000" in served.headers["Cache-Control"] and "immutable" in served.headers["Cache-Control"]
    assert requests.get(jpeg_url, timeout=5).headers["Content-Type"] == "image/jpeg"


def test_put_overwrites_an_existing_object(storage, supabase_stub):
    key = object_key(USER, GENERATION, "og-image", 1200, 630, "png")
    storage.put(key, b"first", "image/png")
    storage.put(key, b"second", "image/png")
    assert supabase_stub.objects[BUCKET][key].data == b"second"


def test_a_transient_503_is_retried(storage, supabase_stub):
    supabase_stub.fail_uploads(1, status=503)
    key = object_key(USER, GENERATION, "instagram-post", 1080, 1080, "png")
    url = storage.put(key, b"bytes", "image/png")
    assert url.endswith(key)
    assert len(supabase_stub.requests_to("POST", f"/storage/v1/object/{BUCKET}/")) == 2
    assert supabase_stub.objects[BUCKET][key].data == b"bytes"


def test_a_dropped_connection_is_retried(storage, supabase_stub):
    supabase_stub.fail_next(1, method="POST", path_prefix="/storage/v1/object/", drop=True)
    key = object_key(USER, GENERATION, "instagram-post", 1080, 1080, "png")
    storage.put(key, b"bytes", "image/png")
    assert key in supabase_stub.objects[BUCKET]


def test_persistent_failure_is_a_storage_failure_after_bounded_attempts(storage, supabase_stub):
    supabase_stub.fail_uploads(10, status=500)
    with pytest.raises(StorageFailure) as caught:
        storage.put(object_key(USER, GENERATION, "instagram-post", 1080, 1080, "png"), b"x", "image/png")
    assert caught.value.code == ErrorCode.STORAGE_ERROR
    assert caught.value.retryable is True
    assert SERVICE_KEY not in str(caught.value)
    assert len(supabase_stub.requests_to("POST", f"/storage/v1/object/{BUCKET}/")) == 3


def test_a_client_error_is_not_retried(client, supabase_stub):
    storage = SupabaseStorage(client=client, bucket="no-such-bucket", backoff=0.01)
    with pytest.raises(StorageFailure) as caught:
        storage.put("a/b/c.png", b"x", "image/png")
    assert caught.value.retryable is False
    assert len(supabase_stub.requests_to("POST", "/storage/v1/object/no-such-bucket/")) == 1


def test_delete_removes_objects_and_ignores_missing_ones(storage, supabase_stub):
    keys = [object_key(USER, GENERATION, p, 100, 100, "png") for p in ("instagram-post", "og-image")]
    for key in keys:
        storage.put(key, b"x", "image/png")
    storage.delete(keys + [f"{USER}/{GENERATION}/missing.png"])
    assert supabase_stub.objects[BUCKET] == {}
    storage.delete([])   # nothing to do, no request
    assert len(supabase_stub.requests_to("DELETE", "/storage/v1/object/")) == 1


def test_private_bucket_returns_signed_urls(client, supabase_stub):
    storage = SupabaseStorage(client=client, bucket=BUCKET, public=False, signed_url_ttl=600)
    key = object_key(USER, GENERATION, "instagram-post", 1080, 1080, "png")
    url = storage.put(key, b"x", "image/png")
    assert re.fullmatch(rf"{re.escape(supabase_stub.url)}/storage/v1/object/sign/{BUCKET}/{re.escape(key)}"
                        r"\?token=[0-9a-f]+", url)
    [sign] = supabase_stub.requests_to("POST", "/storage/v1/object/sign/")
    assert sign.json["expiresIn"] == "600"


def test_check_passes_when_reachable_and_raises_otherwise(client, supabase_stub):
    SupabaseStorage(client=client, bucket=BUCKET).check()
    with pytest.raises(StorageFailure):
        SupabaseStorage(client=client, bucket="no-such-bucket").check()
    unreachable = supabase.create_client("http://127.0.0.1:9", SERVICE_KEY)
    with pytest.raises(StorageFailure):
        SupabaseStorage(client=unreachable, bucket=BUCKET).check()


# -- records -------------------------------------------------------------------------------

def generation(**changes) -> GenerationRecord:
    values = dict(id=GENERATION, job_id="job_abc123", user_id=USER, prompt="A lighthouse at dawn",
                  platforms=["instagram-post", "twitter-post"], options={"quality": "high", "format": "png"},
                  provider="openai", model="gpt-image-1")
    values.update(changes)
    return GenerationRecord(**values)


def image(platform: str, **changes) -> ImageRecord:
    values = dict(generation_id=GENERATION, user_id=USER, platform_id=platform,
                  url=f"https://cdn.example/{platform}.png",
                  storage_key=object_key(USER, GENERATION, platform, 100, 100, "png"),
                  width=100, height=100, size=1234, format="png", blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj")
    values.update(changes)
    return ImageRecord(**values)


@pytest.fixture
def records(client):
    return SupabaseRecords(client=client)


def test_saving_a_generation_twice_writes_one_row(records, supabase_stub):
    records.save_generation(generation())
    records.save_generation(generation(status="completed", revised_prompt="A red lighthouse",
                                       usage={"total_tokens": 4210}))
    [row] = supabase_stub.tables["generations"]
    assert row["status"] == "completed" and row["revised_prompt"] == "A red lighthouse"
    assert row["usage"] == {"total_tokens": 4210} and row["options"] == {"quality": "high", "format": "png"}
    assert row["platforms"] == ["instagram-post", "twitter-post"] and row["job_id"] == "job_abc123"
    upserts = supabase_stub.requests_to("POST", "/rest/v1/generations")
    assert all(r.query["on_conflict"] == "id" for r in upserts)
    assert all("resolution=merge-duplicates" in r.headers["prefer"] for r in upserts)
    assert all("created_at" not in r.json for r in upserts)   # the first write's timestamp survives


def test_images_are_upserted_once_per_generation_platform_and_variant(records, supabase_stub):
    records.save_generation(generation())
    records.save_image(image("instagram-post"))
    records.save_image(image("twitter-post", width=1200, height=675))
    records.save_image(image("instagram-post", url="https://cdn.example/retry.png", size=999))   # a retry
    rows = supabase_stub.tables["generated_images"]
    assert sorted(r["platform_id"] for r in rows) == ["instagram-post", "twitter-post"]
    insta = next(r for r in rows if r["platform_id"] == "instagram-post")
    assert insta["url"] == "https://cdn.example/retry.png" and insta["size"] == 999
    upserts = supabase_stub.requests_to("POST", "/rest/v1/generated_images")
    assert {r.query["on_conflict"] for r in upserts} == {"generation_id,platform_id,variant"}
    records.save_image(image("instagram-post", variant=1))          # another picture of the same job
    assert sorted((r["platform_id"], r["variant"]) for r in rows) == [
        ("instagram-post", 0), ("instagram-post", 1), ("twitter-post", 0)]


def test_get_generation_returns_the_row_with_its_images_in_platform_order(records):
    records.save_generation(generation(status="completed"))
    records.save_image(image("twitter-post"))
    records.save_image(image("instagram-post"))
    got = records.get_generation(GENERATION)
    assert got["id"] == GENERATION and got["status"] == "completed"
    assert [i["platform_id"] for i in got["images"]] == ["instagram-post", "twitter-post"]
    assert records.get_generation("11111111-2222-3333-4444-555555555555") is None


def test_delete_generation_removes_its_rows(records, supabase_stub):
    records.save_generation(generation())
    records.save_image(image("instagram-post"))
    other = "22222222-3333-4444-5555-666666666666"
    records.save_generation(generation(id=other, job_id="job_other"))
    records.save_image(image("instagram-post", generation_id=other))
    records.delete_generation(GENERATION)
    assert [r["id"] for r in supabase_stub.tables["generations"]] == [other]
    assert [r["generation_id"] for r in supabase_stub.tables["generated_images"]] == [other]
    assert records.get_generation(GENERATION) is None


def test_a_records_outage_is_a_retryable_storage_failure(records, supabase_stub):
    supabase_stub.fail_next(1, status=503, method="POST", path_prefix="/rest/v1/")
    with pytest.raises(StorageFailure) as caught:
        records.save_generation(generation())
    assert caught.value.retryable is True
    assert SERVICE_KEY not in str(caught.value)


def test_a_constraint_violation_is_not_retryable(records, supabase_stub):
    records.save_generation(generation())
    with pytest.raises(StorageFailure) as caught:   # same job id, another generation id
        records.save_generation(generation(id="33333333-4444-5555-6666-777777777777"))
    assert caught.value.retryable is False and "23505" in caught.value.message


# -- migration -------------------------------------------------------------------------------

MIGRATION = Path(__file__).resolve().parents[1] / "snapasset" / "migrations" / "001_init.sql"


def sql_statements(text: str) -> list[str]:
    """Split on semicolons outside $$-quoted bodies, dropping -- comments."""
    text = re.sub(r"--[^\n]*", "", text)
    statements, current, in_dollar = [], [], False
    for token in re.split(r"(\$\$|;)", text):
        if token == "$$":
            in_dollar = not in_dollar
        if token == ";" and not in_dollar:
            statements.append(" ".join("".join(current).split()))
            current = []
        else:
            current.append(token)
    assert not in_dollar and not "".join(current).strip(), "unterminated statement"
    return [s for s in statements if s]


def test_migration_creates_both_tables_with_rls_and_owner_policies():
    statements = [s.lower() for s in sql_statements(MIGRATION.read_text())]

    def one(prefix: str) -> str:
        found = [s for s in statements if s.startswith(prefix)]
        assert len(found) == 1, prefix
        return found[0]

    generations = one("create table if not exists public.generations")
    for column in ("id uuid primary key", "job_id text not null unique", "user_id text not null",
                   "prompt text", "platforms text[]", "options jsonb", "provider text", "model text",
                   "revised_prompt text", "usage jsonb", "status text", "created_at timestamptz",
                   "updated_at timestamptz"):
        assert column in generations, column
    images = one("create table if not exists public.generated_images")
    for column in ("id uuid primary key default gen_random_uuid()",
                   "generation_id uuid not null references public.generations (id) on delete cascade",
                   "user_id text not null", "platform_id text", "url text", "storage_key text", "width integer",
                   "height integer", "size integer", "format text", "blurhash text",
                   "unique (generation_id, platform_id)"):
        assert column in images, column

    for table in ("generations", "generated_images"):
        one(f"alter table public.{table} enable row level security")
        policy = [s for s in statements if s.startswith("create policy") and f" on public.{table} " in s]
        assert len(policy) == 1
        assert "for select to authenticated" in policy[0]
        assert "user_id = (select auth.uid())::text" in policy[0]
        assert not any(s.startswith("create policy") and f"on public.{table}" in s
                       and re.search(r"for (insert|update|delete|all)", s) for s in statements)
    assert any(s.startswith("insert into storage.buckets") for s in statements)
