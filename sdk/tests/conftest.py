"""Fixtures for the SDK tests: a client against a fake base URL and recorded sleeps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import responses


def _load_sdk_from_this_checkout() -> None:
    """Test the source next to these tests, installed or not. Only ``snapasset_sdk``
    is registered: putting ``sdk/`` on sys.path would also expose this folder as a
    second ``tests`` package to the project's own test suite."""
    package = Path(__file__).resolve().parents[1] / "snapasset_sdk"
    spec = importlib.util.spec_from_file_location(
        "snapasset_sdk", package / "__init__.py", submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["snapasset_sdk"] = module
    spec.loader.exec_module(module)


_load_sdk_from_this_checkout()

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
