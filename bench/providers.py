"""Providers for benchmarks, loaded by worker processes via SNAPASSET_PROVIDER=bench.providers:<name>."""

from __future__ import annotations

import io
import os
import time
from functools import lru_cache

from snapasset.providers.base import GeneratedImage
from snapasset.providers.local import draw

SOURCE_SIZE = (1536, 864)


@lru_cache(maxsize=1)
def source_png() -> bytes:
    """A picture drawn once: the 'model output' every benchmark job receives."""
    buffer = io.BytesIO()
    draw("A lighthouse on a rocky coast at sunset", *SOURCE_SIZE).save(buffer, "PNG")
    return buffer.getvalue()


class FixedImageProvider:
    """Answers every request with the same picture after a fixed latency (0 = instant)."""
    name = "bench"
    model = "bench-fixed"

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.data = source_png()

    def choose_size(self, platforms):
        return SOURCE_SIZE

    def generate(self, request, *, on_partial=None):
        if self.latency:
            time.sleep(self.latency)
        return GeneratedImage(data=self.data, provider=self.name, model=self.model)


def instant(settings) -> FixedImageProvider:
    return FixedImageProvider(0.0)


def fixed_latency(settings) -> FixedImageProvider:
    return FixedImageProvider(float(os.environ.get("BENCH_LATENCY", "2.0")))


__all__ = ["FixedImageProvider", "instant", "fixed_latency", "source_png"]
