"""The generation job (SPEC §7): prompt → model → one rendered image per platform → storage → records.

Progress, stage and log lines live in the job's stored state (what GET /api/jobs/:id shows) and
every step is published as an event on the job's stream (what SSE clients see); both through
snapasset.jobrecord.
"""

from __future__ import annotations

import logging
import math
import uuid
from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from snapasset import imaging, jobrecord, keys
from snapasset.jobrecord import Stage
from snapasset.errors import ErrorCode, JobCancelled, JobFailure
from snapasset.platforms import Platform, get_platform
from snapasset.providers import GenerationRequest
from snapasset.records import GenerationRecord, ImageRecord
from snapasset.storage import object_key
from workers.bootstrap import WorkerContext, current_context

__all__ = ["run_generation", "Generation", "generation_id_for", "discard_outputs"]

log = logging.getLogger(__name__)

GENERATION_NAMESPACE = uuid.UUID("6f1c1d1e-5a5e-4c8b-9a57-1e2a7d0c5a11")


def generation_id_for(job_id: str) -> str:
    """One generation per job, the same across retries: rows and object keys never double."""
    return str(uuid.uuid5(GENERATION_NAMESPACE, job_id))


def run_generation(payload: dict) -> dict:
    """The RQ job function."""
    job = get_current_job()
    return Generation(current_context(), job, payload).run()


def output_keys(payload: dict, generation_id: str) -> list[str]:
    """Every object key this job can write, so that a failed attempt can remove all of them."""
    fmt = payload["options"].get("format", "jpeg")
    ext = imaging.FORMATS[fmt][1]
    return [object_key(payload["userId"], generation_id, p.id, p.width, p.height, ext)
            for p in map(get_platform, payload["platforms"])]


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
        self.platforms: list[Platform] = [get_platform(p) for p in payload["platforms"]]
        self.options = payload.get("options", {})
        self.format = self.options.get("format", "jpeg")
        self.generation_id = generation_id_for(job.id)
        self._progress = 0

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
            jobrecord.publish(conn, self.job.id, self.user_id, event, ttl=self.ctx.settings.job_ttl, pipeline=pipe)
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
        except Exception as exc:
            self._fail(ErrorCode.INTERNAL_ERROR, f"Internal error ({type(exc).__name__})", retryable=True)
            raise

    def _run(self) -> dict:
        provider = self.ctx.provider
        self.report(0, Stage.STARTING, "Starting image generation...")
        width, height = provider.choose_size(self.platforms)
        request = GenerationRequest(prompt=self.payload["prompt"], width=width, height=height,
                                    quality=self.options.get("quality", "auto"), style=self.options.get("style"))
        self.report(10, Stage.GENERATING, f"Generating image with {provider.model}...")
        previews = iter(range(12, 30, 4))

        def on_partial(data: bytes) -> None:
            self.report(next(previews, 28), Stage.GENERATING, preview=imaging.preview_data_url(data))

        generated = provider.generate(request, on_partial=on_partial)
        self.report(30, Stage.GENERATING, "Image generated successfully")

        self.report(30, Stage.DOWNLOADING, "Downloading image...")
        # decoded once; each platform rendered in a render process when the worker has a pool
        renders = self.ctx.renderer.render_each(generated.data, self.platforms, self.format)

        self.report(40, Stage.SAVING, "Saving to database...")
        record = GenerationRecord(
            id=self.generation_id, job_id=self.job.id, user_id=self.user_id, prompt=self.payload["prompt"],
            platforms=[p.id for p in self.platforms], options=self.options, provider=generated.provider,
            model=generated.model, revised_prompt=generated.revised_prompt, usage=generated.usage)
        self.ctx.records.save_generation(record)

        images = []
        share = 50 / len(self.platforms)
        for index, (platform, rendered) in enumerate(zip(self.platforms, renders)):
            self.report(50 + index * share, Stage.PROCESSING, f"Processing {platform.name}...")
            key = object_key(self.user_id, self.generation_id, platform.id, rendered.width, rendered.height,
                             rendered.extension)
            url = self.ctx.storage.put(key, rendered.data, rendered.content_type)
            self.ctx.records.save_image(ImageRecord(
                generation_id=self.generation_id, user_id=self.user_id, platform_id=platform.id, url=url,
                storage_key=key, width=rendered.width, height=rendered.height, size=rendered.size,
                format=rendered.format, blurhash=rendered.blurhash))
            image = {"platform": platform.name, "platformId": platform.id, "url": url,
                     "width": rendered.width, "height": rendered.height, "size": rendered.size,
                     "format": rendered.format, "blurhash": rendered.blurhash}
            images.append(image)
            jobrecord.record_progress(self.job, self._advance(50 + (index + 1) * share))
            self._write(jobrecord.Image(progress=self._progress, image=image))

        record.status = "completed"
        self.ctx.records.save_generation(record)
        self.report(100, Stage.PROCESSING, f"Processed {len(images)} image{'s' if len(images) != 1 else ''}")
        return {"success": True, "generationId": self.generation_id, "images": images,
                "revisedPrompt": generated.revised_prompt, "provider": generated.provider,
                "model": generated.model}

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


def stretch_next_retry(job: Job, seconds: float) -> None:
    """Make the next retry wait at least `seconds` (a provider's Retry-After); RQ reads
    retry_intervals[len - retries_left] when it schedules the retry. RQ stores the retry time in
    whole seconds, rounded down, so one more second makes the wait at least `seconds`."""
    intervals = list(job.retry_intervals or [0] * job.retries_left)
    index = max(len(intervals) - job.retries_left, 0)
    intervals[index] = max(intervals[index], math.ceil(seconds) + 1)
    job.retry_intervals = intervals
