"""The generation job (SPEC §7): prompt → model (a picture per shape family, SPEC §5) → one
rendered image per platform → storage → records.

Progress, stage and log lines live in the job's stored state (what GET /api/jobs/:id shows) and
every step is published as an event on the job's stream (what SSE clients see); both through
snapasset.jobrecord. The time an attempt waited in the queue, the model's time and the render
time go to the shared job metrics (snapasset.metrics) in the same round trips.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from datetime import datetime, timezone

from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from snapasset import framing, imaging, jobrecord, keys, metrics
from snapasset.jobrecord import Stage
from snapasset.errors import ErrorCode, JobCancelled, JobFailure
from snapasset.metrics import Duration
from snapasset.platforms import Platform, job_platforms
from snapasset.imaging import RenderedImage
from snapasset.providers import GeneratedImage, GenerationRequest, for_model, safety_identifier
from snapasset.providers.base import can_extend
from snapasset.records import GenerationRecord, ImageRecord, generation_id_for
from snapasset.references import fetch_reference
from snapasset.storage import object_key
from workers.bootstrap import WorkerContext, current_context

__all__ = ["run_generation", "Generation", "generation_id_for", "discard_outputs"]

log = logging.getLogger(__name__)

# Under fit=extend, a platform that contain would leave less than this share of its frame to
# fill is rendered as contain: a model call is not worth a sliver.
EXTEND_MIN_GAP = 0.03


def run_generation(payload: dict) -> dict:
    """The RQ job function."""
    job = get_current_job()
    return Generation(current_context(), job, payload).run()


def output_keys(payload: dict, generation_id: str) -> list[str]:
    """Every object key this job can write, so that a failed attempt can remove all of them."""
    fmt = payload["options"].get("format", "jpeg")
    ext = imaging.FORMATS[fmt][1]
    return [object_key(payload["userId"], generation_id, p.id, p.width, p.height, ext, variant)
            for variant in range(payload["options"].get("n", 1)) for p in job_platforms(payload)]


def discard_outputs(ctx: WorkerContext, job_id: str, payload: dict) -> None:
    """Remove whatever an unfinished attempt uploaded and recorded."""
    generation_id = generation_id_for(job_id)
    # rows first: a row must never point at a removed file, while a stray file harms nobody
    ctx.records.delete_generation(generation_id)
    ctx.storage.delete(output_keys(payload, generation_id))


class Generation:
    def __init__(self, ctx: WorkerContext, job: Job, payload: dict):
        self.ctx = ctx
        self.job = job
        self.payload = payload
        self.user_id = payload["userId"]
        self.platforms: list[Platform] = job_platforms(payload)
        self.options = payload.get("options", {})
        self.format = self.options.get("format", "jpeg")
        self.provider = for_model(ctx.provider, self.options.get("model"))   # the job's model
        self.generation_id = generation_id_for(job.id)
        self._progress = 0
        self._durations: list[tuple[str, float]] = []   # sent with the next progress write
        self._render_seconds = 0.0
        self._arrivals = None   # this job's pictures on their way in (Renderer.arrivals), while it runs
        # the most pixels the job's model can legitimately send; a larger picture is refused by its header
        self._max_pixels = getattr(self.provider, "max_pixels", imaging.MAX_PIXELS)

    # -- reporting -------------------------------------------------------------
    def report(self, progress: int, stage: str, message: str | None = None, **extra) -> None:
        """Record and publish progress; raises JobCancelled when the owner cancelled the job."""
        self._advance(progress)
        jobrecord.record_progress(self.job, self._progress, stage, message)
        self._write(jobrecord.Progress(progress=self._progress, stage=stage, message=message or None, **extra))

    def _advance(self, progress: float) -> int:
        self._progress = max(self._progress, round(progress))   # never backwards within an attempt
        return self._progress

    def _write(self, event: jobrecord.Event) -> None:
        """Store the state and publish the event together, then check the cancel flag."""
        conn = self.ctx.redis.client
        with conn.pipeline(transaction=True) as pipe:
            jobrecord.save_state(self.job, pipe)
            jobrecord.publish(conn, self.job.id, self.user_id, event, ttl=self.ctx.settings.job_ttl,
                              replay_window=self.ctx.settings.events_ttl, pipeline=pipe)
            for metric, seconds in self._durations:
                metrics.observe(pipe, self.ctx.settings.queue_name, metric, seconds,
                                provider=self.provider.name, model=self.provider.model)
            self._durations.clear()
            pipe.exists(keys.job_cancel(self.job.id))
            cancelled = pipe.execute()[-1]
        if cancelled:
            raise JobCancelled(self.job.id)

    # -- the job -----------------------------------------------------------------
    def run(self) -> dict:
        jobrecord.start_attempt(self.job, self._max_attempts())
        try:
            return self._run()
        except JobCancelled:
            jobrecord.mark_cancelled(self.job)
            self._discard()
            raise
        except JobFailure as failure:
            self._fail(failure.code, failure.message, retryable=failure.retryable,
                       retry_after=failure.retry_after)
            raise
        except JobTimeoutException:
            self._fail(ErrorCode.TIMEOUT, f"The job ran longer than {self.job.timeout} seconds", retryable=True)
            raise
        except Exception:   # its text stays in the worker's log: it may hold anything
            self._fail(ErrorCode.INTERNAL_ERROR, "An internal error stopped this attempt", retryable=True)
            raise

    def _run(self) -> dict:
        provider = self.provider
        if self.job.enqueued_at is not None:
            enqueued = self.job.enqueued_at.replace(tzinfo=self.job.enqueued_at.tzinfo or timezone.utc)
            self._durations.append((Duration.QUEUE_WAIT,
                                    (datetime.now(timezone.utc) - enqueued).total_seconds()))
        self.report(0, Stage.STARTING, "Starting image generation...")
        self.references = self._references()
        # one picture per shape family (SPEC §5): 1 to SNAPASSET_MAX_SOURCES model calls
        plans = framing.plan_sources(self.platforms, provider.choose_size, self.ctx.settings.max_sources)
        self.report(10, Stage.GENERATING, f"Generating image with {provider.model}...")
        # each picture is read when the worker's memory budget has room for it (arrivals), and
        # goes to the renderer as soon as it arrives, which holds it within that budget (or on
        # disk) until its platforms are rendered
        model_seconds = 0.0
        with contextlib.ExitStack() as held:
            self._arrivals = held.enter_context(self.ctx.renderer.arrivals())
            sources: list[GeneratedImage] = []
            renders: list[dict[str, Iterator[RenderedImage]]] = []   # by variant, then platform
            extensions: list[GeneratedImage] = []
            variants = self.options.get("n", 1)
            for index, plan in enumerate(plans):
                started = time.perf_counter()
                sources.append(self._generate(plan, index, len(plans)))
                model_seconds += time.perf_counter() - started
                started = time.perf_counter()   # fit=extend: the model's edits count as rendering
                painted, drawn = self._render_plan(plan, sources[-1], renders, held)
                self._settle()
                if index < len(plans) - 1:
                    _render_now(plan, renders)
                extensions += painted
                variants = min(variants, drawn)
                self._render_seconds += time.perf_counter() - started
            self._durations.append((Duration.MODEL, model_seconds))
            self.report(30, Stage.GENERATING, "Image generated successfully")
            self.report(30, Stage.DOWNLOADING, "Downloading image...")
            return self._store(plans, sources, extensions, renders, variants)

    def _store(self, plans: list[framing.SourcePlan], sources: list[GeneratedImage],
               extensions: list[GeneratedImage], renders: list[dict[str, Iterator[RenderedImage]]],
               variants: int) -> dict:
        self.report(40, Stage.SAVING, "Saving to database...")
        first = sources[0]
        record = GenerationRecord(
            id=self.generation_id, job_id=self.job.id, user_id=self.user_id, prompt=self.payload["prompt"],
            platforms=[p.id for p in self.platforms], options=self.options, provider=first.provider,
            model=first.model, revised_prompt=first.revised_prompt,
            usage=total_usage([g.usage for g in sources + extensions]))
        self.ctx.records.save_generation(record)

        source_of = {platform.id: index for index, plan in enumerate(plans) for platform in plan.platforms}
        images = []
        outputs = [(variant, platform) for variant in range(variants) for platform in self.platforms]
        share = 50 / len(outputs)
        for index, (variant, platform) in enumerate(outputs):
            label = f" (variant {variant + 1} of {variants})" if variants > 1 else ""
            self.report(50 + index * share, Stage.PROCESSING, f"Processing {platform.name}{label}...")
            # each plan's renders come in its platforms' order, which is the job's order
            waited = time.perf_counter()
            rendered = next(renders[variant][platform.id])
            self._render_seconds += time.perf_counter() - waited
            key = object_key(self.user_id, self.generation_id, platform.id, rendered.width, rendered.height,
                             rendered.extension, variant)
            url = self.ctx.storage.put(key, rendered.data, rendered.content_type)
            self.ctx.records.save_image(ImageRecord(
                generation_id=self.generation_id, user_id=self.user_id, platform_id=platform.id, url=url,
                storage_key=key, width=rendered.width, height=rendered.height, size=rendered.size,
                format=rendered.format, blurhash=rendered.blurhash, variant=variant))
            image = jobrecord.image_entry(platform=platform.name, platform_id=platform.id, url=url,
                                          width=rendered.width, height=rendered.height, size=rendered.size,
                                          fmt=rendered.format, blurhash=rendered.blurhash, variant=variant,
                                          source_index=source_of[platform.id])
            images.append(image)
            jobrecord.record_progress(self.job, self._advance(50 + (index + 1) * share))
            self._write(jobrecord.Image(progress=self._progress, image=image))

        record.status = "completed"
        self.ctx.records.save_generation(record)
        self._durations.append((Duration.RENDER, self._render_seconds))
        self.report(100, Stage.PROCESSING, f"Processed {len(images)} image{'s' if len(images) != 1 else ''}")
        return {"success": True, "generationId": self.generation_id, "images": images,
                "revisedPrompt": first.revised_prompt, "provider": first.provider, "model": first.model,
                "seed": first.seed, "background": self.options.get("background", "auto")}

    def _request(self, size: tuple[int, int], *, n: int | None = None) -> GenerationRequest:
        """What the model is asked for at `size`: n pictures (the job's variants; 1 for an extension)."""
        return GenerationRequest(prompt=self.payload["prompt"], width=size[0], height=size[1],
                                 quality=self.options.get("quality", "auto"), style=self.options.get("style"),
                                 n=n or self.options.get("n", 1), seed=self.options.get("seed"),
                                 background=self.options.get("background", "auto"),
                                 input_images=self.references, safety_identifier=safety_identifier(self.user_id))

    def _references(self) -> tuple[bytes, ...]:
        """The reference pictures: uploaded ones from storage, the others fetched behind the guard."""
        stored = jobrecord.reference_keys(self.job)
        allow_private = self.ctx.settings.webhook_allow_private
        return tuple(self.ctx.storage.get(stored[str(index)]) if str(index) in stored
                     else fetch_reference(url, allow_private=allow_private)
                     for index, url in enumerate(self.options.get("inputImages") or []))

    def _generate(self, plan: framing.SourcePlan, index: int, count: int) -> GeneratedImage:
        """The index-th of the job's count pictures; each takes an equal slice of the generating
        stage (10–30), its partial images advancing within it."""
        low = 10 + 20 * index / count
        high = 10 + 20 * (index + 1) / count
        if index:
            self.report(low, Stage.GENERATING)
        previews = iter([low + (high - low) * step / 5 for step in range(1, 5)])

        def on_partial(data: bytes) -> None:
            self.report(next(previews, high - 1), Stage.GENERATING,
                        preview=imaging.preview_data_url(data, max_pixels=self._max_pixels))

        return self.provider.generate(self._request(plan.size), on_partial=on_partial)

    def _render_plan(self, plan: framing.SourcePlan, source: GeneratedImage,
                     renders: list[dict[str, Iterator[RenderedImage]]],
                     held: contextlib.ExitStack) -> tuple[list[GeneratedImage], int]:
        """Hand each picture of one model call (its variants) to the renderer for its plan's
        platforms (an iterator shared by them, so the render pool works on all of them while the
        first ones upload); answers the pictures the model painted for ``fit=extend``, each
        rendered for its own platform, and how many variants the call drew."""
        fit = self.options.get("fit", "cover")
        by_id = {platform.id: platform for platform in self.platforms}
        pictures = _take_pictures(source)
        extensions: list[GeneratedImage] = []
        for variant in range(len(pictures)):
            if len(renders) == variant:
                renders.append({})
            extending = fit == "extend" and can_extend(self.provider)
            if extending:
                self._settle()   # the edits' answers wait for room: this job must not hold it meanwhile
            painted = self._extend(plan, pictures[variant]) if extending else {}
            extensions += painted.values()
            for platform_id, extended in painted.items():
                renders[variant][platform_id] = held.enter_context(
                    self._render_each(_take_picture(extended), [by_id[platform_id]], "cover"))
            rest = [p for p in plan.platforms if p.id not in painted]
            if rest:
                shared = held.enter_context(self._render_each(_take(pictures, variant), rest,
                                                              "contain" if fit == "extend" else fit))
                renders[variant].update((platform.id, shared) for platform in rest)
        return extensions, len(pictures)

    def _settle(self) -> None:
        """The pictures read so far are in the renderer's hands (and count in its budget there)."""
        if self._arrivals is not None:
            self._arrivals.settle()

    def _render_each(self, picture: bytes, platforms: list[Platform], fit: str):
        """The renderer's context for one picture, checked by its header first. The renderer gets
        the only reference to the picture's bytes: it may keep them out of memory."""
        size = imaging.probe(picture, max_pixels=self._max_pixels)
        return self.ctx.renderer.render_each(picture, size, platforms, self.format, fit)

    def _extend(self, plan: framing.SourcePlan, data: bytes) -> dict[str, GeneratedImage]:
        """``fit=extend``: the model paints the frame around the picture, one edit per platform
        that ``contain`` would leave noticeably unfilled; the others are rendered as contain."""
        picture = imaging.decode(data)
        analysis = framing.analyse(picture)
        painted = {}
        for platform in plan.platforms:
            left, top, right, bottom = imaging.contain_layout(analysis, platform)
            if (right - left) * (bottom - top) >= (1 - EXTEND_MIN_GAP) * platform.width * platform.height:
                continue
            size = self.provider.choose_size([platform])
            canvas = imaging.extension_canvas(picture, analysis, platform, size)
            painted[platform.id] = self.provider.extend(self._request(size, n=1), canvas, canvas)
            self.report(min(39, self._progress + 1), Stage.DOWNLOADING)
        return painted

    # -- failure -------------------------------------------------------------------
    def _max_attempts(self) -> int:
        return self.ctx.settings.job_attempts

    def _discard(self) -> None:
        discard_outputs(self.ctx, self.job.id, self.payload)

    def _fail(self, code: str, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        """Record why this attempt failed and whether RQ should try again; the caller re-raises."""
        try:
            self._discard()
        except Exception:   # never mask the real failure; the next attempt overwrites the same keys
            log.warning("job %s: could not remove the outputs of a failed attempt", self.job.id, exc_info=True)
        jobrecord.record_failure(self.job, code, message)
        if not retryable:
            self.job.retries_left = 0
        elif retry_after and self.job.retries_left:
            stretch_next_retry(self.job, retry_after)
        jobrecord.save_state(self.job)


def total_usage(usages: list[dict | None]) -> dict | None:
    """The model's usage over the job's calls: numbers added up, key by key (nested too)."""
    known = [usage for usage in usages if usage]
    if not known:
        return None
    total: dict = {}
    for usage in known:
        for key, value in usage.items():
            if isinstance(value, dict):
                total[key] = total_usage([total.get(key), value])
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total.setdefault(key, value)
    return total


def _take_picture(generated: GeneratedImage) -> bytes:
    picture, generated.data = generated.data, b""
    return picture


def _take_pictures(generated: GeneratedImage) -> list[bytes]:
    """Every variant's bytes, which the generated image no longer holds."""
    pictures, generated.data, generated.variants = generated.pictures, b"", ()
    return pictures


def _take(pictures: list[bytes], index: int) -> bytes:
    picture, pictures[index] = pictures[index], b""
    return picture


def stretch_next_retry(job: Job, seconds: float) -> None:
    """Make the next retry wait at least `seconds` (a provider's Retry-After); RQ reads
    retry_intervals[len - retries_left] when it schedules the retry. RQ stores the retry time in
    whole seconds, rounded down, so one more second makes the wait at least `seconds`."""
    intervals = list(job.retry_intervals or [0] * job.retries_left)
    index = max(len(intervals) - job.retries_left, 0)
    intervals[index] = max(intervals[index], math.ceil(seconds) + 1)
    job.retry_intervals = intervals


def _render_now(plan: framing.SourcePlan, renders: list[dict[str, Iterator[RenderedImage]]]) -> None:
    """Render a plan's platforms before the job asks the model for its next picture, so that the
    renderer gives this picture's memory back first. A job that held its first picture while
    waiting for room for its second deadlocked a burst of jobs with platforms of more than one
    shape (bench/worker_memory.py --stream: 16 such jobs held the budget and waited for good)."""
    for by_platform in renders:
        rendered: dict[int, Iterator[RenderedImage]] = {}
        for platform in plan.platforms:
            images = by_platform.get(platform.id)
            if images is None:
                continue
            if id(images) not in rendered:   # one context's images, in its platforms' order
                rendered[id(images)] = iter(list(images))
            by_platform[platform.id] = rendered[id(images)]
