"""Providers the worker subprocess loads through SNAPASSET_PROVIDER=tests.fake_providers:<factory>.

They sit at the edge of the system (where the image model would be) and fail in scripted ways.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

from PIL import Image

from snapasset.errors import ContentPolicyViolation, ProviderError
from snapasset.providers import GeneratedImage
from snapasset.providers.base import receiving
from snapasset.providers.local import LocalProvider


class FailingFirstAttempt(LocalProvider):
    """Fails once per prompt (a retryable provider error), then draws like the local provider."""

    def __init__(self, marker_dir: Path):
        super().__init__()
        self.marker_dir = marker_dir

    def generate(self, request, *, on_partial=None):
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        marker = self.marker_dir / f"failed-{abs(hash(request.prompt)) % 10**12}"
        if not marker.exists():
            marker.touch()
            raise ProviderError("The model is overloaded, try again")
        return super().generate(request, on_partial=on_partial)


class Oversized(LocalProvider):
    """Says it sends at most 1536×1024, then sends a 6000×6000 picture (36 MP: small on the wire,
    ~144 MB once decoded) — a model gone wrong, or a decompression bomb."""
    max_pixels = 1536 * 1024

    def generate(self, request, *, on_partial=None):
        generated = super().generate(request)
        buffer = io.BytesIO()
        Image.new("RGB", (6000, 6000), (40, 90, 160)).save(buffer, "PNG")
        generated.data = buffer.getvalue()
        return generated


class Refusing(LocalProvider):
    def generate(self, request, *, on_partial=None):
        raise ContentPolicyViolation("The prompt was refused by the safety system")


def failing_first_attempt(settings):
    return FailingFirstAttempt(settings.data_dir / "markers")


def refusing(settings):
    return Refusing()


class Failing(LocalProvider):
    """The model is down: every call fails with a (retryable) provider error."""

    def generate(self, request, *, on_partial=None):
        raise ProviderError("The model is unavailable")


def failing(settings):
    return Failing()


def oversized(settings):
    return Oversized()


LEAKED_KEY = "sk-live-0123456789abcdefSECRET"


class Leaky(LocalProvider):
    """A provider whose error text holds its own API key and a Python repr, as careless ones do."""

    def generate(self, request, *, on_partial=None):
        raise ProviderError(f"upstream refused api_key={LEAKED_KEY} while reading "
                            "<_io.BytesIO object at 0x7f3a2c1d9e50>", retryable=False)


class Undecodable(LocalProvider):
    """Answers with bytes that are no picture (Pillow's error names the buffer's repr)."""

    def generate(self, request, *, on_partial=None):
        drawn = super().generate(request, on_partial=on_partial)
        return GeneratedImage(data=b"\x89PNG\r\n\x1a\n" + b"not really" * 10, provider=drawn.provider,
                              model=drawn.model)


def leaky(settings):
    return Leaky()


class HeavyAnswers(LocalProvider):
    """Each answer is announced as 40 MB to read (as a 3840×2160 PNG's HTTP body would be) and
    takes 0.3 s to read. It writes down, in the data folder, how many model calls it had waiting
    at once and how many reads at once: a worker's memory budget should let every call wait
    together but only as many reads in as it has room for."""
    ANNOUNCED = 40 * 2**20

    def __init__(self, folder: Path):
        super().__init__(latency=1.5)
        self.folder = folder
        self._lock = threading.Lock()
        self._now = {"waiting": 0, "reading": 0}
        self._most = {"waiting": 0, "reading": 0}

    def _count(self, what: str, step: int) -> None:
        with self._lock:
            self._now[what] += step
            self._most[what] = max(self._most[what], self._now[what])
            (self.folder / "most-at-once.json").write_text(json.dumps(self._most))

    def generate(self, request, *, on_partial=None):
        self._count("waiting", 1)
        try:
            drawn = super().generate(request)   # the model's time: nothing held yet
        finally:
            self._count("waiting", -1)
        with receiving(self.ANNOUNCED):
            self._count("reading", 1)
            time.sleep(0.3)
            self._count("reading", -1)
        return drawn


def heavy_answers(settings):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return HeavyAnswers(settings.data_dir)
