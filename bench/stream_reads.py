"""Memory of streamed OpenAI answers read in one process, with and without the picture budget.

    python bench/stream_reads.py [--streams 16] [--no-gate] [--budget-mb 107]

The real OpenAI provider reads `--streams` answers at once from bench.providers'
StreamingImagesServer (two full-size partial images, then the picture; 1536×1536 photo-like
PNGs of ~4.6 MB), each in its own thread as the worker's model calls are, with a MemoryBudget
of `--budget-mb` bound as each call's receive gate (`--no-gate`: none bound, every event read as
it comes). The server runs in a process of its own, so what is measured is the reading side
alone: no rendering, no worker. `--previews` makes each partial image into the job's preview as
the worker does. Printed: the process's RSS before, at its peak (sampled every 20 ms) and one
second after the last read.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.providers import StreamingImagesServer, photo_pictures  # noqa: E402
from snapasset.providers.base import GenerationRequest, receive_gate  # noqa: E402
from snapasset.providers.openai import OpenAIProvider  # noqa: E402
from workers.memory import MemoryBudget, return_freed_memory  # noqa: E402
from workers.rendering import Arrivals  # noqa: E402

SIZE = (1536, 1536)


def _serve(pictures, latency, conn) -> None:
    server = StreamingImagesServer(pictures, latency)
    conn.send(server.base_url)
    conn.recv()   # until told to stop
    server.close()


def serve_elsewhere(pictures, latency):
    """A StreamingImagesServer in a process of its own (its base64 answers are not in our RSS):
    its base URL, and what stops it (it also ends when this process does: its pipe closes)."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(pictures, latency, theirs), daemon=True)
    process.start()
    def stop() -> None:
        ours.send(None)
        process.join(10)
    return ours.recv(), stop


def main() -> None:
    import psutil
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--no-gate", action="store_true")
    parser.add_argument("--previews", action="store_true", help="make each partial image a preview")
    parser.add_argument("--budget-mb", type=int, default=107, help="the worker's picture budget (its log says it)")
    args = parser.parse_args()
    return_freed_memory()   # as the worker does at start
    base_url, stop = serve_elsewhere(photo_pictures(args.streams, SIZE), latency=2.0)
    provider = OpenAIProvider(api_key="sk-bench", base_url=base_url, model="gpt-image-2")
    budget = MemoryBudget(args.budget_mb * 2**20)
    process = psutil.Process()
    base, peak, sampling = process.memory_info().rss, [0], threading.Event()

    def sample() -> None:
        while not sampling.wait(0.02):
            peak[0] = max(peak[0], process.memory_info().rss)

    finished, failed = [], []

    def preview(data: bytes) -> None:
        from snapasset import imaging
        imaging.preview_data_url(data, max_pixels=SIZE[0] * SIZE[1])

    def read() -> None:
        arrivals = Arrivals(budget)
        try:
            with receive_gate(arrivals.receiving) if not args.no_gate else contextlib.nullcontext():
                provider.generate(GenerationRequest(prompt="A lighthouse", width=SIZE[0], height=SIZE[1]),
                                  on_partial=preview if args.previews else lambda data: None)
            finished.append(1)
        except Exception as exc:
            failed.append(exc)
        finally:
            arrivals.close()

    threading.Thread(target=sample, daemon=True).start()
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(read,)) for _ in range(args.streams)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    time.sleep(1)
    sampling.set()
    stop()
    print(f"{args.streams} streams, {'no gate' if args.no_gate else f'budget {args.budget_mb} MB'}: "
          f"{len(finished)} read, {len(failed)} failed, in {took:.1f} s; RSS before {base >> 20} MB, "
          f"peak {peak[0] >> 20} MB, 1 s after {process.memory_info().rss >> 20} MB")


if __name__ == "__main__":
    main()
