"""What the encoder settings buy: bytes and quality of the project's encodings.

    python bench/encoding.py

On pictures the offline provider draws (flat art) and on photo-like scenes from
bench/framing.py, each cut to 1080×1080 by the project's render path:
- JPEG at the render path's first quality (88): Pillow's defaults against optimised Huffman
  tables (what the project writes) and against optimised tables + progressive scans (what it
  wrote before) — the same pixels, fewer bytes, more encode time;
- AVIF (the render path's speed) at the lowest quality whose SSIM is at least the JPEG's,
  against that JPEG — bytes at equal quality; and the encode times of all three;
- the PNG palette fallback (256 colours) of a sky gradient: plain octree quantisation against
  the render path's dithered palette — how far each strays from the original once both are
  seen at a normal viewing blur (banding shows as a large error), and bytes.
SSIM is computed on luma with an 8×8 box window (enough to rank encodings).
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.framing import scene  # noqa: E402
from snapasset import framing, imaging  # noqa: E402
from snapasset.platforms import PLATFORMS  # noqa: E402
from snapasset.providers.local import draw  # noqa: E402

PROMPTS = ["A cat sleeping on a sofa", "A cup of coffee on a wooden table", "Summer sale: 50% off running shoes",
           "A lighthouse on the ocean coast at sunset", "Bold purple and orange for our brand relaunch"]
JPEG_QUALITY = 88


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def luma(data_or_img) -> np.ndarray:
    img = data_or_img if isinstance(data_or_img, Image.Image) else Image.open(io.BytesIO(data_or_img))
    return np.asarray(img.convert("L"), dtype=np.float64)


def ssim(a: np.ndarray, b: np.ndarray, window: int = 8) -> float:
    """Mean SSIM over non-overlapping window × window blocks."""
    h, w = (a.shape[0] // window) * window, (a.shape[1] // window) * window
    blocks = lambda x: x[:h, :w].reshape(h // window, window, w // window, window)  # noqa: E731
    ab, bb = blocks(a), blocks(b)
    mu_a, mu_b = ab.mean(axis=(1, 3)), bb.mean(axis=(1, 3))
    var_a, var_b = ab.var(axis=(1, 3)), bb.var(axis=(1, 3))
    cov = (ab * bb).mean(axis=(1, 3)) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float((((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))).mean())


def frames() -> list[tuple[str, Image.Image]]:
    post = PLATFORMS["instagram-post"]
    pictures = [("drawn", draw(p, 1536, 1024)) for p in PROMPTS]
    pictures += [("photo-like", scene(i, 7)[0]) for i in range(5)]
    return [(kind, imaging.frame(img, post, framing.analyse(img))) for kind, img in pictures]


def main() -> None:
    rows = {"drawn": [], "photo-like": []}
    for kind, img in frames():
        baseline = encode(img, "JPEG", quality=JPEG_QUALITY)
        optimised = encode(img, "JPEG", quality=JPEG_QUALITY, optimize=True)
        progressive = encode(img, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
        assert np.array_equal(luma(baseline), luma(optimised)), "optimize must not change pixels"
        assert np.array_equal(luma(baseline), luma(progressive)), "progressive must not change pixels"
        original = luma(img)
        target = ssim(original, luma(optimised))
        low, high = 1, 100
        while low < high:   # the lowest AVIF quality at least as good as the JPEG
            mid = (low + high) // 2
            if ssim(original, luma(encode(img, "AVIF", quality=mid, speed=imaging._AVIF_SPEED))) >= target:
                high = mid
            else:
                low = mid + 1
        started = time.perf_counter()
        avif = encode(img, "AVIF", quality=low, speed=imaging._AVIF_SPEED)
        avif_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        encode(img, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
        progressive_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        encode(img, "JPEG", quality=JPEG_QUALITY, optimize=True)
        jpeg_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        encode(img, "JPEG", quality=JPEG_QUALITY)
        baseline_ms = (time.perf_counter() - started) * 1000
        rows[kind].append((len(optimised) / len(baseline), len(avif) / len(optimised), low, avif_ms, jpeg_ms,
                           baseline_ms, len(progressive) / len(baseline), progressive_ms))

    print(f"1080×1080 frames, JPEG quality {JPEG_QUALITY}\n")
    print("| pictures | optimised JPEG / baseline JPEG | optimised + progressive / baseline | "
          "AVIF / JPEG at equal SSIM | AVIF quality | encode ms: AVIF / optimised / progressive / baseline JPEG |")
    print("|---|---|---|---|---|---|")
    spread = lambda values, i: (f"{statistics.median(v[i] for v in values):.2f} (median; "  # noqa: E731
                                f"{min(v[i] for v in values):.2f}–{max(v[i] for v in values):.2f})")
    for kind, values in rows.items():
        qualities = f"{min(v[2] for v in values)}–{max(v[2] for v in values)}"
        ms = " / ".join(f"{statistics.median(v[i] for v in values):.0f}" for i in (3, 4, 7, 5))
        print(f"| {kind} ({len(values)}) | {spread(values, 0)} | {spread(values, 6)} | {spread(values, 1)} | "
              f"{qualities} | {ms} |")

    # the PNG palette fallback on a smooth sky
    sky = Image.linear_gradient("L").resize((1080, 1080))
    sky = Image.merge("RGB", (sky.point(lambda v: 40 + v // 3), sky.point(lambda v: 90 + v // 2),
                              sky.point(lambda v: 160 + v // 3)))
    seen = lambda img: luma(img.convert("RGB").filter(ImageFilter.GaussianBlur(2)))  # noqa: E731
    plain = sky.quantize(256, method=Image.Quantize.FASTOCTREE)
    dithered = imaging._dithered_palette(sky, 256)
    reference = seen(sky)
    print("\n| PNG palette of a sky gradient (256 colours) | error seen at a 2-px blur (mean |Δ| luma) | bytes |")
    print("|---|---|---|")
    for name, img in (("octree, no dithering (before)", plain), ("median cut + Floyd–Steinberg (now)", dithered)):
        error = float(np.abs(seen(img) - reference).mean())
        print(f"| {name} | {error:.2f} | {len(encode(img, 'PNG', optimize=True)):,} |")


if __name__ == "__main__":
    main()
