-- SnapAsset: several pictures per job (options.n). Each rendered image names its `variant`
-- (0-based), and the upsert key of generated_images becomes (generation_id, platform_id, variant).
-- Apply after 001_init.sql, the same way. Safe to run twice.

alter table public.generated_images
    add column if not exists variant integer not null default 0 check (variant >= 0);

alter table public.generated_images
    drop constraint if exists generated_images_generation_id_platform_id_key;

do $$
begin
    if not exists (select 1 from pg_constraint where conname = 'generated_images_generation_platform_variant_key') then
        alter table public.generated_images
            add constraint generated_images_generation_platform_variant_key
            unique (generation_id, platform_id, variant);
    end if;
end $$;
