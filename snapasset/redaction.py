"""Keeping secrets out of logs and out of what clients read.

* `redact(text)` blanks credentials wherever they show up in text: query-string credentials
  (`?access_token=`, `?token=` — the SSE routes take both — and the like), bearer tokens, JWTs,
  OpenAI-style `sk-…` keys, `whsec_…` secrets and `api_key=…`-style assignments.
* `clean_message(text)` is what a job's error message may say to its owner: redacted, without
  Python reprs (`<_io.BytesIO object at 0x7f…>`), on one line, and short.
* `install_log_redaction()` makes every log record of the process pass through `redact`,
  whichever logger or handler it goes to (RQ sets up handlers of its own; gunicorn too): the
  message is formatted when the record is made, and replaced when it held a secret; so is its
  traceback.
"""

from __future__ import annotations

import logging
import re
import traceback

__all__ = ["redact", "clean_message", "install_log_redaction", "REDACTED", "MESSAGE_MAX"]

REDACTED = "[redacted]"
MESSAGE_MAX = 300
CREDENTIAL_PARAMS = ("access_token", "refresh_token", "id_token", "token", "api_key", "apikey", "key",
                     "secret", "password", "signature", "sig")

_PATTERNS = (
    # ?access_token=…, &token=… (the value runs to the next separator)
    (re.compile(r"([?&;](?:%s)=)[^&;#\s\"'<>]+" % "|".join(CREDENTIAL_PARAMS), re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1 {REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),   # a JWT
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), f"sk-{REDACTED}"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), f"whsec_{REDACTED}"),
    # api_key=…, "password": "…", secret: …
    (re.compile(r"\b((?:api[_-]?key|apikey|secret|password|passwd|token|service_role_key)[\"']?\s*[:=]\s*[\"']?)"
                r"[^\s\"',;&}]+", re.IGNORECASE), rf"\1{REDACTED}"),
)
_REPR = re.compile(r"\s*<[A-Za-z_][\w.]* object at 0x[0-9a-fA-F]+>")


# Each pattern above needs one of these in the text (lower-cased): most lines (every access log
# line of a health check or a create) hold none, and are let through after one cheap look.
_TRIGGERS = ("token", "key", "secret", "passw", "sig", "bearer", "basic", "eyj", "sk-", "whsec_")


def redact(text: str) -> str:
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def clean_message(text: str) -> str:
    """One short redacted line with no Python reprs, for a client to read."""
    text = " ".join(_REPR.sub("", redact(str(text))).split())
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX - 1].rstrip() + "…"


def install_log_redaction() -> None:
    """Redact every log record this process makes (idempotent)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacting", False):
        return

    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:   # a malformed call; logging reports it when a handler formats it
            return record
        cleaned = redact(message)
        if cleaned != message:   # otherwise the template stays, for filters that match on it
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    make_record.redacting = True
    logging.setLogRecordFactory(make_record)
