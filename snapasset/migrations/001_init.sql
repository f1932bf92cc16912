-- SnapAsset records on Supabase: one `generations` row per finished job, one
-- `generated_images` row per rendered image (snapasset/records/supabase.py writes them).
--
-- Apply with the Supabase SQL editor or `supabase db push`. Safe to run twice.
--
-- Access: the worker writes with the service role key, which bypasses row level security.
-- Signed-in users (role `authenticated`) may only read their own rows; `anon` reads nothing.
-- There are deliberately no insert/update/delete policies: clients never write records.

create extension if not exists pgcrypto;   -- gen_random_uuid() (built in since PostgreSQL 13)

-- ---------------------------------------------------------------------------------------
-- generations
-- ---------------------------------------------------------------------------------------
create table if not exists public.generations (
    id              uuid primary key,                 -- derived from the job id by the worker
    job_id          text not null unique,
    -- text, not uuid: a JWT caller's id is auth.users.id (the `sub`), but an API-key caller acts
    -- for any userId its service names ("customer-42"); the policies compare auth.uid()::text.
    user_id         text not null,
    prompt          text not null,
    platforms       text[] not null,
    options         jsonb not null default '{}'::jsonb,
    provider        text not null,                    -- local | openai
    model           text not null,
    revised_prompt  text,
    usage           jsonb,                            -- the model's token usage, when it reports it
    status          text not null default 'processing'
                    check (status in ('processing', 'completed')),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);

create index if not exists generations_user_created_idx
    on public.generations (user_id, created_at desc);

-- ---------------------------------------------------------------------------------------
-- generated_images
-- ---------------------------------------------------------------------------------------
create table if not exists public.generated_images (
    id              uuid primary key default gen_random_uuid(),
    generation_id   uuid not null references public.generations (id) on delete cascade,
    user_id         text not null,                    -- as generations.user_id
    platform_id     text not null,
    url             text not null,
    storage_key     text not null,                    -- <userId>/<generationId>/<platform>-<w>x<h>.<ext>
    width           integer not null check (width > 0),
    height          integer not null check (height > 0),
    size            integer not null check (size >= 0),   -- bytes
    format          text not null,                    -- png | jpeg | webp
    blurhash        text not null,
    extra           jsonb not null default '{}'::jsonb,   -- ImageRecord.extra
    created_at      timestamptz not null default now(),
    unique (generation_id, platform_id)               -- the upsert key: a retried job writes once
);

create index if not exists generated_images_user_idx
    on public.generated_images (user_id, created_at desc);

-- ---------------------------------------------------------------------------------------
-- updated_at kept by the database, whatever the writer sends
-- ---------------------------------------------------------------------------------------
create or replace function public.snapasset_touch_updated_at() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    new.updated_at := now();
    return new;
end;
$$;

drop trigger if exists generations_touch_updated_at on public.generations;
create trigger generations_touch_updated_at
    before update on public.generations
    for each row execute function public.snapasset_touch_updated_at();

-- ---------------------------------------------------------------------------------------
-- Row level security
-- ---------------------------------------------------------------------------------------
alter table public.generations enable row level security;
alter table public.generated_images enable row level security;

revoke insert, update, delete on public.generations from anon, authenticated;
revoke insert, update, delete on public.generated_images from anon, authenticated;
revoke all on public.generations from anon;
revoke all on public.generated_images from anon;

-- `(select auth.uid())` is evaluated once per statement rather than once per row; user_id is
-- text (see above), so the uuid is compared as text.
drop policy if exists "generations: owners read" on public.generations;
create policy "generations: owners read" on public.generations
    for select to authenticated
    using (user_id = (select auth.uid())::text);

drop policy if exists "generated_images: owners read" on public.generated_images;
create policy "generated_images: owners read" on public.generated_images
    for select to authenticated
    using (user_id = (select auth.uid())::text);

-- ---------------------------------------------------------------------------------------
-- Storage bucket (SUPABASE_BUCKET, default `generated-images`)
-- ---------------------------------------------------------------------------------------
-- Public: images are served by their public URL (the keys are unguessable uuids) and the
-- worker uploads with the service role. For a private bucket instead, set `public` to false,
-- run the worker with SUPABASE_SIGNED_URLS=true, and the policy below lets a signed-in
-- user read objects under their own `<userId>/` folder.
insert into storage.buckets (id, name, public, allowed_mime_types)
values ('generated-images', 'generated-images', true, array['image/png', 'image/jpeg', 'image/webp'])
on conflict (id) do nothing;

drop policy if exists "generated-images: owners read" on storage.objects;
create policy "generated-images: owners read" on storage.objects
    for select to authenticated
    using (bucket_id = 'generated-images' and (storage.foldername(name))[1] = (select auth.uid())::text);
