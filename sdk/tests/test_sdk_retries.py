"""The retry policy as pure functions."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from snapasset_sdk.retries import (
    backoff_delay, parse_retry_after, reconnect_delay, retry_delay,
)


@pytest.mark.parametrize("value, seconds", [
    ("3", 3.0), ("0.5", 0.5), (" 7 ", 7.0), (12, 12.0), ("-4", 0.0),
    (None, None), ("", None), ("soon", None), (True, None),
])
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def always(value):
    return lambda: value


def test_rate_limited_requests_wait_what_the_server_says_whatever_the_method():
    assert retry_delay(attempt=0, max_retries=3, status=429, replayable=False,
                       retry_after=2.0) == 2.0


def test_rate_limit_without_retry_after_backs_off():
    assert retry_delay(attempt=1, max_retries=3, status=429, replayable=False,
                       rand=always(1.0)) == 1.0


def test_a_retry_after_beyond_the_cap_is_not_waited_for():
    assert retry_delay(attempt=0, max_retries=3, status=429, replayable=True,
                       retry_after=900.0) is None


@pytest.mark.parametrize("status", [502, 503, 504, None])
def test_transient_failures_are_retried_only_when_replayable(status):
    assert retry_delay(attempt=0, max_retries=3, status=status, replayable=True,
                       rand=always(0.0)) == 0.25
    assert retry_delay(attempt=0, max_retries=3, status=status, replayable=False) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 500])
def test_other_statuses_are_final(status):
    assert retry_delay(attempt=0, max_retries=3, status=status, replayable=True) is None


def test_no_retry_once_the_budget_is_spent():
    assert retry_delay(attempt=3, max_retries=3, status=429, replayable=True,
                       retry_after=1.0) is None
    assert retry_delay(attempt=0, max_retries=0, status=503, replayable=True) is None


def test_backoff_grows_and_is_capped():
    ceilings = [backoff_delay(n, rand=always(1.0)) for n in range(8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert backoff_delay(2, rand=always(0.0)) == 1.0  # jitter stays within [d/2, d]


def test_reconnect_delay_follows_the_server_hint_and_doubles():
    assert reconnect_delay(0) == 1.0
    assert reconnect_delay(0, retry_ms=3000) == 3.0
    assert [reconnect_delay(n, retry_ms=500) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert reconnect_delay(10) == 30.0
