"""Fixtures for the SDK tests: a client against a fake base URL and recorded sleeps."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import responses

# Run from a source checkout without installing the distribution first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapasset_sdk import SnapAssetClient  # noqa: E402

from sdk_fakes import BASE  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("SNAPASSET_URL", "SNAPASSET_TOKEN", "SNAPASSET_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def sleeps():
    """The delays the client asked to sleep for, in order (nothing really sleeps)."""
    return []


@pytest.fixture
def client(sleeps):
    with SnapAssetClient(BASE, token="tok-123", sleep=sleeps.append) as c:
        yield c
