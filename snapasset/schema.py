"""Parsing and validating what clients send (SPEC §6); every problem is named per field."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from snapasset.config import Settings
from snapasset.errors import APIError, ErrorCode
from snapasset.image_models import ALL_QUALITIES, model_spec
from snapasset.platforms import PLATFORMS, custom_platform, describe_unknown
from snapasset.references import MAX_REFERENCES, ReferenceError, check_reference_url, read_data_url
from snapasset.webhooks import WebhookDeliveryError, check_target

__all__ = ["JobRequest", "parse_job_request", "QUALITY_ALIASES", "FORMATS_ALLOWED", "FITS", "invalid", "BACKGROUNDS",
           "TRANSPARENT_FORMATS", "VARIANTS_MAX", "SEED_MAX", "CUSTOM_PLATFORMS_MAX", "CUSTOM_SIDE", "WAIT_DEFAULT",
           "WAIT_MAX"]

PROMPT_MIN, PROMPT_MAX = 10, 4000
QUALITIES = ALL_QUALITIES          # xhigh and max only for the models that take them
QUALITY_ALIASES = {"standard": "medium", "hd": "high"}  # accepted from older clients
STYLES = ("vivid", "natural")
FORMATS_ALLOWED = ("jpeg", "png", "webp", "avif")
FITS = ("cover", "contain", "extend")   # how a picture fills a platform's frame (SPEC §5)
BACKGROUNDS = ("auto", "opaque", "transparent")
TRANSPARENT_FORMATS = ("png", "webp", "avif")
VARIANTS_MAX = 4
SEED_MAX = 2**31 - 1
CUSTOM_PLATFORMS_MAX = 4
CUSTOM_SIDE = (64, 4096)
CUSTOM_ID = r"[a-z0-9-]{1,40}"
WAIT_DEFAULT, WAIT_MAX = 60, 60     # Prefer: wait (seconds)
TOP_FIELDS = {"userId", "prompt", "platforms", "options", "webhookUrl"}
OPTION_FIELDS = {"quality", "style", "format", "fit", "priority", "model", "n", "seed", "background", "inputImages",
                 "customPlatforms"}


class Priority:
    """`options.priority` (SPEC §6): the lane a job waits in; workers take HIGH before NORMAL
    before LOW. HIGH needs an API key with the `priority` scope or an admin."""
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    ALL = (LOW, NORMAL, HIGH)
    ORDER = (HIGH, NORMAL, LOW)   # the order workers take them in


def invalid(details: dict[str, str], message: str | None = None) -> APIError:
    first_field, first_problem = next(iter(details.items()))
    if message is None:
        message = (f"Missing required field: {first_field}" if first_problem == "is required"
                   else f"Invalid field {first_field}: {first_problem}")
    return APIError(400, ErrorCode.INVALID_REQUEST, message, details=details)


@dataclass(frozen=True)
class JobRequest:
    prompt: str
    platforms: tuple[str, ...]
    options: dict = field(default_factory=dict)
    webhook_url: str | None = None
    user_id: str | None = None  # as given in the body, checked against the caller elsewhere
    # inputImages given as data URLs: (index in inputImages, picture bytes), read at parse time
    uploads: tuple[tuple[int, bytes], ...] = field(default=(), repr=False)
    # once stored (snapasset.api.jobs): index → the stored copy's URL, shown in the job's data
    stored_urls: dict[int, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What makes two requests 'the same' for an Idempotency-Key (data URLs by their text)."""
        body = {"prompt": self.prompt, "platforms": self.platforms, "options": self.options,
                "webhook_url": self.webhook_url}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    @property
    def priority(self) -> str:
        return self.options.get("priority", Priority.NORMAL)

    def payload(self, user_id: str) -> dict:
        """The job's data as stored and shown (SPEC: data: {userId, prompt, platforms, options});
        an uploaded reference picture appears as its stored copy's URL, never as its bytes."""
        options = dict(self.options)
        if "inputImages" in options:
            options["inputImages"] = [self.stored_urls.get(index, url)
                                      for index, url in enumerate(options["inputImages"])]
        data = {"userId": user_id, "prompt": self.prompt, "platforms": list(self.platforms),
                "options": options}
        if self.webhook_url:
            data["webhookUrl"] = self.webhook_url
        return data


def parse_job_request(body, settings: Settings) -> JobRequest:
    """Validate a create body; settings say which models may be named and whether private
    addresses are allowed for webhooks and reference pictures."""
    if not isinstance(body, dict):
        raise invalid({"body": "must be a JSON object"}, "The request body must be a JSON object")
    details: dict[str, str] = {}
    for name in sorted(set(body) - TOP_FIELDS):
        details[name] = "is not a known field"

    prompt = body.get("prompt")
    if prompt is None:
        details["prompt"] = "is required"
    elif not isinstance(prompt, str):
        details["prompt"] = "must be a string"
    else:
        prompt = prompt.strip()
        if len(prompt) < PROMPT_MIN:
            details["prompt"] = f"must be at least {PROMPT_MIN} characters"
        elif len(prompt) > PROMPT_MAX:
            details["prompt"] = f"must be at most {PROMPT_MAX} characters"

    platforms = body.get("platforms")
    if platforms is None:
        details["platforms"] = "is required"
    elif not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
        details["platforms"] = "must be an array of platform ids"
    elif not platforms and not (isinstance(body.get("options"), dict) and body["options"].get("customPlatforms")):
        details["platforms"] = "must name at least one platform (or give options.customPlatforms)"
    else:
        unknown = [p for p in platforms if p not in PLATFORMS]
        duplicates = sorted({p for p in platforms if platforms.count(p) > 1})
        if unknown:
            details["platforms"] = describe_unknown(unknown)
        elif duplicates:
            details["platforms"] = f"duplicate platform(s): {', '.join(duplicates)}"

    options, uploads = _parse_options(body.get("options"), details, settings)

    webhook_url = body.get("webhookUrl")
    if webhook_url is not None:
        if not isinstance(webhook_url, str):
            details["webhookUrl"] = "must be a string"
        else:
            parts = urlsplit(webhook_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                details["webhookUrl"] = "must be an absolute http(s) URL"
            elif parts.username or parts.password:
                details["webhookUrl"] = "must not contain credentials"
            else:
                try:   # a host that *is* a refused address; names are checked when delivering
                    check_target(webhook_url, settings.webhook_allow_private, resolve=False)
                except WebhookDeliveryError as exc:
                    details["webhookUrl"] = str(exc)

    user_id = body.get("userId")
    if user_id is not None and (not isinstance(user_id, str) or not user_id.strip()):
        details["userId"] = "must be a non-empty string"

    if details:
        raise invalid(details)
    return JobRequest(prompt=prompt, platforms=tuple(platforms), options=options,
                      webhook_url=webhook_url, user_id=user_id, uploads=uploads)


def _choice(options: dict, name: str, allowed: tuple[str, ...], parsed: dict, details: dict) -> None:
    """An optional option that takes one of ``allowed``: kept in ``parsed`` or named in ``details``."""
    value = options.get(name)
    if value is None:
        return
    if value not in allowed:
        details[f"options.{name}"] = f"must be one of {', '.join(allowed)}"
    else:
        parsed[name] = value


def _parse_options(options, details: dict, settings: Settings) -> tuple[dict, tuple[tuple[int, bytes], ...]]:
    if options is None:
        options = {}
    if not isinstance(options, dict):
        details["options"] = "must be an object"
        return {}, ()
    for name in sorted(set(options) - OPTION_FIELDS):
        details[f"options.{name}"] = "is not a known option"
    parsed: dict = {}
    model = options.get("model")
    if model is not None:
        if model not in settings.image_models:
            details["options.model"] = f"must be one of {', '.join(settings.image_models)}"
        else:
            parsed["model"] = model
    quality = options.get("quality")
    if quality is not None:
        quality = QUALITY_ALIASES.get(quality, quality) if isinstance(quality, str) else quality
        offered = model_spec(parsed.get("model", settings.image_model)).qualities
        if quality not in QUALITIES:
            details["options.quality"] = f"must be one of {', '.join(QUALITIES + tuple(QUALITY_ALIASES))}"
        elif quality not in offered:
            details["options.quality"] = (f"{quality} is not offered by {parsed.get('model', settings.image_model)}"
                                          f" (it takes {', '.join(offered)})")
        else:
            parsed["quality"] = quality
    _choice(options, "style", STYLES, parsed, details)
    _choice(options, "priority", Priority.ALL, parsed, details)
    fmt = options.get("format", "jpeg")
    if fmt not in FORMATS_ALLOWED:
        details["options.format"] = f"must be one of {', '.join(FORMATS_ALLOWED)}"
    else:
        parsed["format"] = fmt
    _choice(options, "fit", FITS, parsed, details)
    _whole_option(options, "n", 1, VARIANTS_MAX, details, parsed, default=1)
    _whole_option(options, "seed", 0, SEED_MAX, details, parsed)
    background = options.get("background", "auto")
    if background not in BACKGROUNDS:
        details["options.background"] = f"must be one of {', '.join(BACKGROUNDS)}"
    elif background == "transparent" and parsed.get("format") not in TRANSPARENT_FORMATS:
        details["options.background"] = (f"transparent needs format {', '.join(TRANSPARENT_FORMATS)} "
                                         f"(not {fmt}: it has no transparency)")
    else:
        parsed["background"] = background
    uploads = _parse_input_images(options.get("inputImages"), details, settings, parsed)
    _parse_custom_platforms(options.get("customPlatforms"), details, parsed)
    return parsed, uploads


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole_option(options: dict, name: str, low: int, high: int, details: dict, parsed: dict,
                  default: int | None = None) -> None:
    value = options.get(name, default)
    if value is None:
        return
    if not _whole(value) or not low <= value <= high:
        details[f"options.{name}"] = f"must be a whole number from {low} to {high}"
    else:
        parsed[name] = value


def _parse_input_images(images, details: dict, settings: Settings, parsed: dict) -> tuple[tuple[int, bytes], ...]:
    if images is None:
        return ()
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images) \
            or not 1 <= len(images) <= MAX_REFERENCES:
        details["options.inputImages"] = f"must be an array of 1 to {MAX_REFERENCES} URLs"
        return ()
    uploads = []
    for index, url in enumerate(images):
        try:
            if url.startswith("data:"):
                uploads.append((index, read_data_url(url)))
            else:
                check_reference_url(url, settings.webhook_allow_private)
        except ReferenceError as exc:
            details[f"options.inputImages[{index}]"] = str(exc)
    parsed["inputImages"] = images
    return tuple(uploads)


def _parse_custom_platforms(customs, details: dict, parsed: dict) -> None:
    if customs is None:
        return
    if not isinstance(customs, list) or not 1 <= len(customs) <= CUSTOM_PLATFORMS_MAX:
        details["options.customPlatforms"] = f"must be an array of 1 to {CUSTOM_PLATFORMS_MAX} objects"
        return
    low, high = CUSTOM_SIDE
    seen = set()
    for index, custom in enumerate(customs):
        where = f"options.customPlatforms[{index}]"
        if not isinstance(custom, dict) or set(custom) - {"id", "width", "height", "maxBytes"}:
            details[where] = "must be an object with id, width, height and optionally maxBytes"
            continue
        platform_id = custom.get("id")
        if not isinstance(platform_id, str) or not re.fullmatch(CUSTOM_ID, platform_id):
            details[f"{where}.id"] = "must be 1 to 40 of a-z, 0-9 and -"
        elif platform_id in PLATFORMS or platform_id in seen:
            details[f"{where}.id"] = "is already a platform of this job (built-in ids are taken)"
        seen.add(platform_id)
        for side in ("width", "height"):
            if not _whole(custom.get(side)) or not low <= custom[side] <= high:
                details[f"{where}.{side}"] = f"must be a whole number from {low} to {high}"
        max_bytes = custom.get("maxBytes")
        if max_bytes is not None and (not _whole(max_bytes) or not 10_000 <= max_bytes <= 50_000_000):
            details[f"{where}.maxBytes"] = "must be a whole number of bytes from 10000 to 50000000"
    if not any(key.startswith("options.customPlatforms") for key in details):
        parsed["customPlatforms"] = [custom_platform(custom).to_json() for custom in customs]
