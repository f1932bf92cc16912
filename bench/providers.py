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


class StreamingImagesServer:
    """An HTTP server that answers the OpenAI Images API's streamed generations as a GPT image
    model does, for the real `openai` SDK in a worker (SNAPASSET_PROVIDER=openai, OPENAI_BASE_URL
    = `base_url`): server-sent events, `partials` partial images and then the completed picture,
    spread over `latency` seconds give or take a quarter, every event a full-size picture (the
    next of `pictures`, in turn; draw them at the size the worker asks for)."""

    def __init__(self, pictures: list[Path], latency: float, partials: int = 2):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.pictures, self.latency, self.partials = pictures, latency, partials
        self._next, self._lock, self._jitter = itertools.count(), threading.Lock(), random.Random(0)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server._answer(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256   # a burst of 64+ model calls connects at once

        self._http = Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def _answer(self, handler) -> None:
        import base64
        import json
        with self._lock:
            path = self.pictures[next(self._next) % len(self.pictures)]
            latency = self.latency * self._jitter.uniform(0.75, 1.25)
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        with Image.open(path) as picture:
            size = f"{picture.width}x{picture.height}"
        common = {"background": "opaque", "created_at": int(time.time()), "output_format": "png",
                  "quality": "auto", "size": size}
        steps = self.partials + 1
        for step in range(steps):
            time.sleep(latency / steps)
            b64 = base64.b64encode(path.read_bytes()).decode()
            event = ({"type": "image_generation.partial_image", "partial_image_index": step, "b64_json": b64, **common}
                     if step < self.partials else
                     {"type": "image_generation.completed", "b64_json": b64, **common,
                      "usage": {"input_tokens": 50, "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
                                "output_tokens": 4160, "total_tokens": 4210}})
            handler.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            handler.wfile.flush()
        handler.close_connection = True

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


__all__ = ["PictureProvider", "StreamingImagesServer", "instant", "fixed_latency", "photo_png", "photo_pictures",
           "PICTURES_ENV", "LATENCY_ENV", "MAX_SIZE_ENV", "SOURCE_SIZE"]
