"""Parsing and validating what clients send (SPEC §6); every problem is named per field."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from snapasset.errors import APIError, ErrorCode
from snapasset.platforms import PLATFORMS, describe_unknown

__all__ = ["JobRequest", "parse_job_request", "QUALITY_ALIASES", "FORMATS_ALLOWED", "FITS", "invalid"]

PROMPT_MIN, PROMPT_MAX = 10, 4000
QUALITIES = ("low", "medium", "high", "auto")
QUALITY_ALIASES = {"standard": "medium", "hd": "high"}  # accepted from older clients
STYLES = ("vivid", "natural")
FORMATS_ALLOWED = ("jpeg", "png", "webp", "avif")
FITS = ("cover", "contain", "extend")   # how a picture fills a platform's frame (SPEC §5)
TOP_FIELDS = {"userId", "prompt", "platforms", "options", "webhookUrl"}
OPTION_FIELDS = {"quality", "style", "format", "fit", "priority"}


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

    def fingerprint(self) -> str:
        """What makes two requests 'the same' for an Idempotency-Key."""
        body = asdict(self)
        body.pop("user_id")
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    @property
    def priority(self) -> str:
        return self.options.get("priority", Priority.NORMAL)

    def payload(self, user_id: str) -> dict:
        """The job's data as stored and shown (SPEC: data: {userId, prompt, platforms, options})."""
        data = {"userId": user_id, "prompt": self.prompt, "platforms": list(self.platforms),
                "options": dict(self.options)}
        if self.webhook_url:
            data["webhookUrl"] = self.webhook_url
        return data


def parse_job_request(body) -> JobRequest:
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
    elif not platforms:
        details["platforms"] = "must name at least one platform"
    else:
        unknown = [p for p in platforms if p not in PLATFORMS]
        duplicates = sorted({p for p in platforms if platforms.count(p) > 1})
        if unknown:
            details["platforms"] = describe_unknown(unknown)
        elif duplicates:
            details["platforms"] = f"duplicate platform(s): {', '.join(duplicates)}"

    options = _parse_options(body.get("options"), details)

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

    user_id = body.get("userId")
    if user_id is not None and (not isinstance(user_id, str) or not user_id.strip()):
        details["userId"] = "must be a non-empty string"

    if details:
        raise invalid(details)
    return JobRequest(prompt=prompt, platforms=tuple(platforms), options=options,
                      webhook_url=webhook_url, user_id=user_id)


def _choice(options: dict, name: str, allowed: tuple[str, ...], parsed: dict, details: dict) -> None:
    """An optional option that takes one of ``allowed``: kept in ``parsed`` or named in ``details``."""
    value = options.get(name)
    if value is None:
        return
    if value not in allowed:
        details[f"options.{name}"] = f"must be one of {', '.join(allowed)}"
    else:
        parsed[name] = value


def _parse_options(options, details: dict) -> dict:
    if options is None:
        return {"format": "jpeg"}
    if not isinstance(options, dict):
        details["options"] = "must be an object"
        return {}
    for name in sorted(set(options) - OPTION_FIELDS):
        details[f"options.{name}"] = "is not a known option"
    parsed: dict = {}
    quality = options.get("quality")
    if quality is not None:
        quality = QUALITY_ALIASES.get(quality, quality) if isinstance(quality, str) else quality
        if quality not in QUALITIES:
            details["options.quality"] = f"must be one of {', '.join(QUALITIES + tuple(QUALITY_ALIASES))}"
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
    return parsed
