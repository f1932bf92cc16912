"""Does the subject survive every crop? The project's framing against a centre crop and libvips.

    python bench/framing.py [--scenes 120] [--seed 1] [--save-misses DIR]

Builds its own scene set — a detailed subject off-centre on a sky-and-ground picture; a
third of the scenes add a second, smaller detailed object on the other side, a third a
detailed horizon band across the whole width — at the four sizes image models draw
(1536×1024, 1024×1536, 1024×1024, 1536×864). Each scene is cut for all 11 platforms by the
project's render path (``imaging.frame`` with ``fit=cover``, i.e. framing.frame_box with the
platform's safe zones), by a centre crop, and by libvips ``smartcrop(interesting=attention)``
(pyvips, an optional bench dependency: ``pip install -e '.[bench]'``; printed as n/a when it
cannot load). A (scene, platform) pair counts as whole when the subject's bounding box lies
inside the frame. Also prints the per-job analysis time (goal: under ~10 ms at 1536 px)
(map and frames for all 11 platforms) and the share of story frames whose subject sits in the
safe band.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snapasset import framing, imaging  # noqa: E402
from snapasset.platforms import PLATFORMS, Platform  # noqa: E402

SIZES = [(1536, 1024), (1024, 1536), (1024, 1024), (1536, 864)]
KINDS = ("single", "two-objects", "horizon")


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb((h % 360) / 360, s, v))


def _detailed_object(draw: ImageDraw.ImageDraw, box, rng: random.Random, hue: float) -> None:
    """Something with edges and colours inside ``box``: a body, patterned panels, small parts."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    shape = rng.choice(("ellipse", "house", "blob"))
    body = _hsv(hue, rng.uniform(0.5, 0.9), rng.uniform(0.55, 0.95))
    if shape == "ellipse":
        draw.ellipse(box, fill=body, outline=(30, 30, 30), width=max(2, round(w / 60)))
    elif shape == "house":
        draw.rectangle((left, top + h * 0.35, right, bottom), fill=body, outline=(30, 30, 30), width=3)
        draw.polygon([(left, top + h * 0.35), ((left + right) / 2, top), (right, top + h * 0.35)],
                     fill=_hsv(hue + 180, 0.7, 0.6))
    else:
        points = [((left + right) / 2 + math.cos(a) * w / 2 * rng.uniform(0.75, 1.0),
                   (top + bottom) / 2 + math.sin(a) * h / 2 * rng.uniform(0.75, 1.0))
                  for a in (i * math.tau / 14 for i in range(14))]
        draw.polygon(points, fill=body, outline=(30, 30, 30))
    for _ in range(rng.randint(8, 18)):   # patterned panels and small parts
        pw, ph = w * rng.uniform(0.08, 0.22), h * rng.uniform(0.08, 0.22)
        px = left + w * 0.2 + rng.random() * (w * 0.6 - pw)
        py = top + h * 0.4 + rng.random() * (h * 0.5 - ph)
        colour = _hsv(hue + rng.choice((30, 150, 200)), rng.uniform(0.4, 1), rng.uniform(0.3, 1))
        draw.rectangle((px, py, px + pw, py + ph), fill=colour, outline=(20, 20, 20))


def scene(index: int, seed: int) -> tuple[Image.Image, tuple[int, int, int, int], str]:
    """Scene ``index``: the picture, its subject's bounding box (pixels) and its kind."""
    rng = random.Random(seed * 100_003 + index)
    width, height = SIZES[index % len(SIZES)]
    kind = KINDS[(index // len(SIZES)) % len(KINDS)]
    hue = rng.uniform(0, 360)
    horizon = rng.uniform(0.55, 0.7) * height
    img = Image.new("RGB", (width, height))
    sky = Image.linear_gradient("L").resize((width, height))
    img.paste(Image.composite(Image.new("RGB", img.size, _hsv(hue + 180, 0.25, 0.98)),
                              Image.new("RGB", img.size, _hsv(hue + 200, 0.6, 0.8)), sky))
    clouds = Image.new("L", img.size)
    for _ in range(rng.randint(1, 3)):   # soft clouds
        cx, cy, r = rng.random() * width, rng.uniform(0.05, 0.35) * height, rng.uniform(0.04, 0.08) * width
        ImageDraw.Draw(clouds).ellipse((cx - r * 1.8, cy - r * 0.6, cx + r * 1.8, cy + r * 0.6), fill=230)
    img.paste(_hsv(hue + 180, 0.08, 1.0), mask=clouds.filter(ImageFilter.GaussianBlur(width / 120)))
    d = ImageDraw.Draw(img)
    d.rectangle((0, horizon, width, height), fill=_hsv(hue + 100, 0.45, 0.5))
    if kind == "horizon":   # a detailed band across the whole width: hills, trees, houses
        base = horizon
        for x in range(0, width, max(6, width // 90)):
            tree_h = rng.uniform(0.03, 0.09) * height
            d.polygon([(x, base), (x + width / 180, base - tree_h), (x + width / 90, base)],
                      fill=_hsv(hue + 120 + rng.uniform(-20, 20), 0.6, rng.uniform(0.2, 0.5)))
    # the subject must be able to fit whole in the narrowest frame of every platform
    narrowest_w = min(framing.cover_box((width, height), p.width, p.height)[0] for p in PLATFORMS.values())
    narrowest_h = min(framing.cover_box((width, height), p.width, p.height)[1] for p in PLATFORMS.values())
    sub_w = rng.uniform(0.35, 0.75) * narrowest_w
    sub_h = rng.uniform(0.45, 0.8) * narrowest_h
    side = rng.choice((-1, 1))
    cx = width / 2 + side * rng.uniform(0.12, 0.38) * width
    cy = rng.uniform(0.35, 0.65) * height
    left = round(min(max(cx - sub_w / 2, 4), width - sub_w - 4))
    top = round(min(max(cy - sub_h / 2, 4), height - sub_h - 4))
    subject = (left, top, round(left + sub_w), round(top + sub_h))
    if kind == "two-objects":   # smaller and detailed, on the other side
        ow, oh = sub_w * rng.uniform(0.3, 0.55), sub_h * rng.uniform(0.3, 0.55)
        ox = width / 2 - side * rng.uniform(0.25, 0.42) * width
        oy = rng.uniform(0.15, 0.5) * height
        ol = min(max(ox - ow / 2, 4), width - ow - 4)
        ot = min(max(oy - oh / 2, 4), height - oh - 4)
        _detailed_object(d, (ol, ot, ol + ow, ot + oh), rng, hue + 90)
    # drawn on a layer of its own, so that its true extent (what must survive) is known
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    _detailed_object(ImageDraw.Draw(layer), subject, rng, hue + rng.uniform(-60, 60))
    subject = layer.getchannel("A").getbbox()
    img.paste(layer, mask=layer)
    grain = Image.effect_noise(img.size, 6).convert("RGB")
    img = Image.blend(img, grain, 0.04).filter(ImageFilter.SMOOTH)
    return img, subject, kind


def inside(box, subject) -> bool:
    return (box[0] <= subject[0] and box[1] <= subject[1]
            and box[2] >= subject[2] and box[3] >= subject[3])


def in_safe_band(box, subject, platform: Platform) -> bool:
    top, bottom = box[1], box[3]
    band_top = top + platform.safe_top * (bottom - top)
    band_bottom = bottom - platform.safe_bottom * (bottom - top)
    return inside(box, subject) and subject[1] >= band_top and subject[3] <= band_bottom


def project_box(img: Image.Image, analysis, platform: Platform):
    """The frame the render path cuts: imaging.frame uses exactly this box under cover."""
    return framing.frame_box(analysis, platform.width, platform.height,
                             safe_top=platform.safe_top, safe_bottom=platform.safe_bottom)


def libvips_boxes():
    """A function giving libvips' attention crop box, or None when pyvips cannot run."""
    try:
        import pyvips
    except (ImportError, OSError) as exc:
        print(f"libvips: n/a ({type(exc).__name__}: {exc})")
        return None

    def box(img: Image.Image, platform: Platform):
        vimg = pyvips.Image.new_from_memory(img.tobytes(), img.width, img.height, 3, "uchar")
        w, h = (max(1, round(v)) for v in framing.cover_box(img.size, platform.width, platform.height))
        _out, found = vimg.smartcrop(w, h, interesting="attention", attention_x=True, attention_y=True)
        # libvips centres its crop on the attention point, clipped to the picture (vips_smartcrop)
        left = min(max(0, found["attention_x"] - w // 2), img.width - w)
        top = min(max(0, found["attention_y"] - h // 2), img.height - h)
        return left, top, left + w, top + h
    return box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save-misses", type=Path, help="write the scenes the project cut badly here")
    args = parser.parse_args()

    vips_box = libvips_boxes()
    platforms = list(PLATFORMS.values())
    story = PLATFORMS["instagram-story"]
    methods = ["project", "centre", "libvips"]
    whole = {(m, k): 0 for m in methods for k in KINDS}
    pairs = {k: 0 for k in KINDS}
    safe = {m: 0 for m in methods}
    analysis_ms = []
    for index in range(args.scenes):
        img, subject, kind = scene(index, args.seed)
        timings = []
        for _ in range(3):   # the per-job analysis (the map once, a frame per platform), best of 3
            started = time.perf_counter()
            analysis = framing.analyse(img)
            frames = [project_box(img, analysis, platform) for platform in platforms]
            timings.append((time.perf_counter() - started) * 1000)
        analysis_ms.append(min(timings))
        missed = []
        for platform, frame in zip(platforms, frames):
            pairs[kind] += 1
            boxes = {"project": frame, "centre": imaging.crop_box(img.size, platform.width, platform.height)}
            if vips_box is not None:
                boxes["libvips"] = vips_box(img, platform)
            for method, box in boxes.items():
                whole[method, kind] += inside(box, subject)
                if platform is story:
                    safe[method] += in_safe_band(box, subject, platform)
            if not inside(boxes["project"], subject):
                missed.append((platform.id, boxes["project"]))
        if missed and args.save_misses:
            args.save_misses.mkdir(parents=True, exist_ok=True)
            marked = img.copy()
            d = ImageDraw.Draw(marked)
            d.rectangle(subject, outline=(255, 0, 0), width=5)
            for _pid, box in missed:
                d.rectangle(box, outline=(0, 255, 255), width=3)
            marked.save(args.save_misses / f"scene-{index:03d}-{kind}.png")

    total = sum(pairs.values())
    print(f"{args.scenes} scenes × {len(platforms)} platforms = {total} pairs (seed {args.seed})\n")
    print("| scenes | pairs | project | centre crop | libvips attention |")
    print("|---|---|---|---|---|")

    def share(method, kinds) -> str:
        if method == "libvips" and vips_box is None:
            return "n/a"
        return f"{100 * sum(whole[method, k] for k in kinds) / sum(pairs[k] for k in kinds):.1f} %"

    for label, kinds in [(k, [k]) for k in KINDS] + [("all", list(KINDS))]:
        cells = " | ".join(share(m, kinds) for m in methods)
        print(f"| {label} | {sum(pairs[k] for k in kinds)} | {cells} |")
    stories = args.scenes
    cells = " | ".join("n/a" if (m == "libvips" and vips_box is None) else f"{100 * safe[m] / stories:.1f} %"
                       for m in methods)
    print(f"| story subject in the safe band | {stories} | {cells} |")
    print(f"\nper-job analysis (saliency map + frames for {len(platforms)} platforms): median "
          f"{statistics.median(analysis_ms):.1f} ms, max {max(analysis_ms):.1f} ms "
          f"({len(analysis_ms)} pictures of up to 1536 px, best of 3 runs each)")


if __name__ == "__main__":
    main()
