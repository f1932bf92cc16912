"""Pictures and providers for benchmarks, loaded by worker processes via
SNAPASSET_PROVIDER=bench.providers:<name>.

A real model returns a different picture for every job, with a photo's detail, so a
benchmark job must too: a picture decoded once and then served from a cache, or a flat
drawing that compresses to a few KB, measures a worker nobody runs. `photo_pictures()` draws
distinct photo-like PNGs (a scene from the local provider with gaussian sensor grain, about
3 MB at 1536×1024, as gpt-image-1's PNGs are) before any timing starts, keeps them in a cache
folder across runs, and the providers hand out one file per generate() call, in turn.
"""

from __future__ import annotations

import io
import itertools
import os
import random
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageChops

from snapasset.providers.base import GeneratedImage, receiving

SOURCE_SIZE = (1536, 1024)
PICTURES_ENV = "BENCH_PICTURES"        # a folder of PNGs the providers hand out, one per job
LATENCY_ENV = "BENCH_LATENCY"
MAX_SIZE_ENV = "BENCH_PICTURE_SIZE"    # WxH: the largest picture the bench model may return
_GRAIN_SIGMA = 6                       # sensor grain: ~3 MB PNG at 1536×1024, like a model's
_CACHE = Path(tempfile.gettempdir()) / "snapasset-bench-pictures"


def photo_png(index: int, width: int, height: int) -> bytes:
    """A photo-like PNG, different for every index: a drawn scene plus per-pixel grain."""
    from snapasset.providers.local import draw
    scene = draw(f"A lighthouse on a rocky coast at sunset, take {index}", width, height)
    grain = Image.merge("RGB", [Image.effect_noise((width, height), _GRAIN_SIGMA) for _ in range(3)])
    buffer = io.BytesIO()
    ImageChops.add(scene, grain, offset=-128).save(buffer, "PNG")
    return buffer.getvalue()


def _write_picture(path: Path, index: int, width: int, height: int) -> None:
    partial = path.with_suffix(".part")
    partial.write_bytes(photo_png(index, width, height))
    partial.replace(path)


def photo_pictures(count: int, size: tuple[int, int] = SOURCE_SIZE) -> list[Path]:
    """`count` distinct photo-like PNGs of `size`, drawn (in parallel) the first time they are asked for."""
    width, height = size
    folder = _CACHE / f"{width}x{height}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{index:04d}.png" for index in range(count)]
    missing = [(path, index) for index, path in enumerate(paths) if not path.exists()]
    if missing:
        print(f"drawing {len(missing)} photo-like {width}×{height} pictures into {folder} (once)...", flush=True)
        with ProcessPoolExecutor() as pool:
            list(pool.map(_write_picture, *zip(*missing), [width] * len(missing), [height] * len(missing)))
    return paths


class PictureProvider:
    """Answers each request with the next picture of BENCH_PICTURES after `latency` seconds, give or
    take a quarter (uniformly: a real model's time varies from call to call, so a burst of jobs
    does not come back in the same millisecond); 0 = instant."""
    name = "bench"
    model = "bench-photos"

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        folder = Path(os.environ[PICTURES_ENV])
        self.paths = sorted(folder.glob("*.png"))
        if not self.paths:
            raise SystemExit(f"{PICTURES_ENV}={folder} holds no pictures")
        width, height = map(int, os.environ.get(MAX_SIZE_ENV, "x".join(map(str, SOURCE_SIZE))).split("x"))
        self.size = (width, height)
        self.max_pixels = width * height
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._jitter = random.Random(0)

    def choose_size(self, platforms):
        return self.size

    def generate(self, request, *, on_partial=None):
        with self._lock:
            path = self.paths[next(self._next) % len(self.paths)]
            latency = self.latency * self._jitter.uniform(0.75, 1.25)
        time.sleep(latency)
        with receiving(path.stat().st_size):   # as a real provider reads its answer's body
            data = path.read_bytes()
        return GeneratedImage(data=data, provider=self.name, model=self.model)


def instant(settings) -> PictureProvider:
    return PictureProvider(0.0)


def fixed_latency(settings) -> PictureProvider:
    return PictureProvider(float(os.environ.get(LATENCY_ENV, "2.0")))


__all__ = ["PictureProvider", "instant", "fixed_latency", "photo_png", "photo_pictures", "PICTURES_ENV",
           "LATENCY_ENV", "MAX_SIZE_ENV", "SOURCE_SIZE"]
