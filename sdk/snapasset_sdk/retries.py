"""When to retry a request and how long to wait first — pure functions, no I/O.

Policy (documented in the README):

* ``429`` is retried for every method: the server refused the request before
  doing anything. The wait is the server's ``Retry-After``; if that is longer
  than ``MAX_RETRY_AFTER`` we give up at once rather than block the caller for
  minutes (the error carries ``retry_after``).
* ``502``/``503``/``504`` and connection errors are retried only for requests
  that are safe to repeat: idempotent methods, or a POST carrying an
  ``Idempotency-Key``.
* Every other status is final.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from time import time as _now

__all__ = [
    "IDEMPOTENT_METHODS", "RETRYABLE_STATUSES", "MAX_RETRY_AFTER", "parse_retry_after",
    "backoff_delay", "retry_delay", "reconnect_delay",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})
RATE_LIMITED = 429
MAX_RETRY_AFTER = 60.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
RECONNECT_BASE = 1.0
RECONNECT_CAP = 30.0


def parse_retry_after(value: object, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return max(0.0, float(value))
    text = str(value).strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (_now() if now is None else now))


def backoff_delay(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                  rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter for the ``attempt``-th retry (0-based).

    The delay lies in ``[d/2, d]`` with ``d = min(cap, base * 2**attempt)``, so
    clients that failed together do not all come back at the same instant.
    """
    ceiling = min(cap, base * (2 ** attempt))
    return ceiling / 2 + rand() * ceiling / 2


def retry_delay(*, attempt: int, max_retries: int, status: int | None, replayable: bool,
                retry_after: float | None = None, max_retry_after: float = MAX_RETRY_AFTER,
                rand: Callable[[], float] = random.random) -> float | None:
    """Seconds to wait before retrying, or None when the request must not be retried.

    ``attempt`` counts the retries already made; ``status`` is None for a
    connection error; ``replayable`` says the request may safely be sent again
    (idempotent method or an idempotency key).
    """
    if attempt >= max_retries:
        return None
    transient = status is None or status in RETRYABLE_STATUSES
    if not (status == RATE_LIMITED or (transient and replayable)):
        return None
    if retry_after is not None:
        return retry_after if retry_after <= max_retry_after else None
    return backoff_delay(attempt, rand=rand)


def reconnect_delay(failures: int, *, retry_ms: int | None = None,
                    cap: float = RECONNECT_CAP) -> float:
    """Seconds to wait before reopening an event stream.

    The base is the server's ``retry:`` hint (as ``EventSource`` does), else
    one second; it doubles with each consecutive connection that brought
    nothing, up to ``cap``. ``failures`` is 0 after a stream that delivered
    data and then closed.
    """
    base = retry_ms / 1000 if retry_ms is not None else RECONNECT_BASE
    return min(cap, base * (2 ** max(0, failures - 1)))
