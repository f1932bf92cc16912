"""The offline provider: draws a deterministic landscape from the prompt, no model involved.

Used when no OpenAI key is configured (development, tests, benchmarks). The picture depends
visibly on the prompt — palette, time of day, scenery and subject come from its words and
its hash — and carries a "SnapAsset local preview" label so nobody takes it for a model's.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import re
import time
from collections.abc import Sequence
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from snapasset.imaging import best_aspect, size_for_aspect
from snapasset.platforms import Platform
from snapasset.providers.base import GeneratedImage, GenerationRequest, PartialImageCallback

__all__ = ["LocalProvider"]

LABEL = "SnapAsset local preview"
_DRAW_LONG_SIDE = 768        # drawn at this size, then upscaled: smooth edges, a few ms
_PARTIAL_LONG_SIDE = 384     # partial images are small: they only feed live previews

_TIMES = {
    "night": ("night", "midnight", "moon", "moonlit", "star", "stars", "starry", "dark", "galaxy"),
    "sunset": ("sunset", "dusk", "evening", "golden", "twilight"),
    "dawn": ("dawn", "sunrise", "morning"),
    "day": ("day", "noon", "sunny", "bright", "summer"),
}
_SCENES = {
    "water": ("ocean", "sea", "beach", "lake", "water", "coast", "harbor", "harbour", "river", "bay"),
    "city": ("city", "urban", "skyline", "street", "downtown", "town", "metropolis"),
    "desert": ("desert", "dune", "dunes", "sand", "sahara", "canyon"),
    "mountains": ("mountain", "mountains", "peak", "peaks", "alps", "alpine", "summit", "snow"),
}
_SUBJECTS = {
    "lighthouse": ("lighthouse", "beacon", "tower"),
    "tree": ("tree", "trees", "forest", "oak", "pine", "woods", "garden", "park"),
    "house": ("house", "home", "cabin", "cottage", "hut", "village", "barn"),
    "balloon": ("balloon", "balloons", "festival", "party", "celebration"),
    "rocket": ("rocket", "space", "launch", "spaceship", "startup", "future"),
}
_HUES = {
    "red": 0, "crimson": 350, "orange": 28, "amber": 40, "gold": 45, "golden": 45, "yellow": 55,
    "lime": 90, "green": 120, "emerald": 140, "teal": 175, "cyan": 185, "turquoise": 175,
    "blue": 215, "navy": 230, "indigo": 250, "purple": 275, "violet": 280, "magenta": 305,
    "pink": 330, "rose": 340,
}


class LocalProvider:
    """An offline ImageProvider: same prompt and size, same bytes."""

    name = "local"
    model = "snapasset-local-1"

    def __init__(self, *, latency: float = 0.0, partial_images: int = 3):
        if latency < 0:
            raise ValueError("latency must not be negative")
        if partial_images < 0:
            raise ValueError("partial_images must not be negative")
        self.latency = latency
        self.partial_images = partial_images

    def choose_size(self, platforms: Sequence[Platform]) -> tuple[int, int]:
        return size_for_aspect(best_aspect(platforms))

    def generate(self, request: GenerationRequest, *,
                 on_partial: PartialImageCallback | None = None) -> GeneratedImage:
        image = draw(request.prompt, request.width, request.height)
        fmt = _output_format(request.output_format)
        partials = self.partial_images if on_partial is not None else 0
        # The simulated model time is spread so partials arrive while the "model" still draws.
        pause = self.latency / (partials + 1)
        for index in range(1, partials + 1):
            _sleep(pause)
            on_partial(_encode(_partial(image, index, partials), fmt))
        _sleep(pause)
        return GeneratedImage(data=_encode(image, fmt), provider=self.name, model=self.model,
                              revised_prompt=None, usage=None)


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def _output_format(requested: str | None) -> str:
    name = (requested or "png").lower()
    return {"jpg": "jpeg"}.get(name, name) if name in ("jpeg", "jpg", "webp") else "png"


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.save(buf, "JPEG", quality=92)
    elif fmt == "webp":
        image.save(buf, "WEBP", quality=90)
    else:
        image.save(buf, "PNG", compress_level=1)  # smooth drawing: level 1 is small enough
    return buf.getvalue()


def _partial(image: Image.Image, index: int, count: int) -> Image.Image:
    """The index-th of count partial versions: coarse and blurred first, sharper each time."""
    steps_left = count - index + 1
    scale = _PARTIAL_LONG_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    coarse_scale = scale / (2 ** steps_left)
    coarse = (max(1, round(image.width * coarse_scale)), max(1, round(image.height * coarse_scale)))
    small = image.resize(coarse, Image.Resampling.BOX, reducing_gap=2.0)
    return small.resize(size, Image.Resampling.BILINEAR).filter(
        ImageFilter.GaussianBlur(1.5 * steps_left))


# --------------------------------------------------------------------------- the drawing

def draw(prompt: str, width: int, height: int) -> Image.Image:
    """The picture for this prompt at exactly width × height (RGB)."""
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    digest = hashlib.sha256(" ".join(prompt.split()).encode("utf-8")).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    scene = _Scene(rng, words, digest)

    scale = min(1.0, _DRAW_LONG_SIDE / max(width, height))
    dw, dh = max(8, round(width * scale)), max(8, round(height * scale))
    canvas = scene.paint(dw, dh)
    if (dw, dh) != (width, height):
        canvas = canvas.resize((width, height), Image.Resampling.BICUBIC)
    _label(canvas, scene.subject_x)
    return canvas


def _pick(words: set[str], table: dict[str, tuple[str, ...]], rng: random.Random,
          default: Sequence[str]) -> str:
    for key, keys in table.items():
        if words.intersection(keys):
            return key
    return rng.choice(list(default))


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    """HSV (hue in degrees, s and v in 0..1) to an RGB triple."""
    h = (h % 360) / 60
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    m = v - c
    return tuple(round((u + m) * 255) for u in (r, g, b))


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


class _Scene:
    """Every choice made from the prompt, then painted at any size in relative coordinates."""

    def __init__(self, rng: random.Random, words: set[str], digest: bytes):
        self.rng = rng
        self.time = _pick(words, _TIMES, rng, ("day", "sunset", "dawn", "night"))
        self.setting = _pick(words, _SCENES, rng, ("hills", "mountains", "water", "desert"))
        self.subject = _pick(words, _SUBJECTS, rng, list(_SUBJECTS))
        named = [_HUES[w] for w in sorted(words) if w in _HUES]
        self.hue = named[0] if named else digest[8] / 255 * 360
        self.tint = digest[9] / 255 * 40 - 20
        side = rng.random() < 0.5
        self.subject_x = rng.uniform(0.18, 0.3) if side else rng.uniform(0.7, 0.82)
        self.sun_x = rng.uniform(0.55, 0.85) if side else rng.uniform(0.15, 0.45)
        self.sun_y = rng.uniform(0.15, 0.35)
        self.horizon = rng.uniform(0.55, 0.68)
        self.sky_top, self.sky_bottom, self.sun_colour = self._sky_colours()

    def _sky_colours(self):
        t = self.tint  # a small hash-chosen shift, so skies of one time of day still differ
        if self.time == "night":
            return _hsv(225 + t, 0.7, 0.12), _hsv(245 + t, 0.5, 0.36), (238, 236, 218)
        if self.time == "sunset":
            return _hsv(262 + t, 0.55, 0.42), _hsv(22 + t, 0.72, 0.98), (255, 214, 120)
        if self.time == "dawn":
            return _hsv(208 + t, 0.4, 0.78), _hsv(345 + t, 0.28, 0.98), (255, 240, 200)
        return _hsv(205 + t / 2, 0.62, 0.88), _hsv(195 + t / 2, 0.18, 1.0), (255, 250, 225)

    def paint(self, w: int, h: int) -> Image.Image:
        mask = Image.linear_gradient("L").resize((w, h), Image.Resampling.BILINEAR)
        canvas = Image.composite(Image.new("RGB", (w, h), self.sky_bottom),
                                 Image.new("RGB", (w, h), self.sky_top), mask)
        d = ImageDraw.Draw(canvas)
        unit = min(w, h)
        if self.time == "night":
            self._stars(d, w, h)
        self._sun(d, w, h, unit)
        self._clouds(d, w, h, unit)
        ground = self._land(d, w, h)
        self._subject(d, w, h, unit, ground)
        return canvas

    # -- sky
    def _stars(self, d, w, h):
        for _ in range(120):
            x, y = self.rng.random() * w, self.rng.random() * h * self.horizon
            r = self.rng.choice((0.6, 0.8, 1.2))
            d.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 235))

    def _sun(self, d, w, h, unit):
        cx, cy, r = self.sun_x * w, self.sun_y * h, unit * self.rng.uniform(0.06, 0.09)
        sky_here = _mix(self.sky_top, self.sky_bottom, self.sun_y)
        for i in range(8, 0, -1):  # halo: rings fading into the sky
            rr = r * (1 + i * 0.22)
            d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr),
                      fill=_mix(sky_here, self.sun_colour, (1 - i / 9) * 0.55))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self.sun_colour)
        if self.time == "night":  # the moon's seas
            for dx, dy, k in ((-0.3, -0.2, 0.28), (0.25, 0.1, 0.2), (-0.05, 0.4, 0.16)):
                x, y, rr = cx + dx * r, cy + dy * r, k * r
                d.ellipse((x - rr, y - rr, x + rr, y + rr), fill=_mix(self.sun_colour, (150, 150, 150), 0.4))

    def _clouds(self, d, w, h, unit):
        colour = _mix(self.sky_bottom, (255, 255, 255), 0.6 if self.time != "night" else 0.15)
        for _ in range(self.rng.randint(2, 4)):
            cx, cy = self.rng.random() * w, self.rng.uniform(0.08, 0.4) * h * self.horizon * 1.6
            for _ in range(5):
                rx = unit * self.rng.uniform(0.04, 0.09)
                ox, oy = self.rng.uniform(-2, 2) * rx, self.rng.uniform(-0.3, 0.3) * rx
                d.ellipse((cx + ox - rx * 1.6, cy + oy - rx, cx + ox + rx * 1.6, cy + oy + rx * 0.6),
                          fill=colour)

    # -- land
    def _ridge(self, w, h, base, amplitude, roughness):
        phases = [self.rng.random() * math.tau for _ in range(3)]
        freqs = [self.rng.uniform(1, 2.5), self.rng.uniform(3, 6), self.rng.uniform(9, 14)]
        points = []
        for i in range(65):
            x = i / 64
            y = sum(math.sin(x * f * math.tau / 2 + p) * a
                    for f, p, a in zip(freqs, phases, (1.0, 0.35 * roughness, 0.12 * roughness)))
            points.append((x * w, (base - amplitude * y) * h))
        return points

    def _land(self, d, w, h) -> float:
        """Draw the layers of the setting; return the ground line (fraction of height)."""
        hz = self.horizon
        far = _mix(self.sky_bottom, _hsv(self.hue + 150, 0.4, 0.45), 0.45)
        near = _hsv(self.hue + 120, 0.55, 0.32 if self.time != "night" else 0.12)
        if self.setting == "mountains":
            peaks = self._ridge(w, h, hz - 0.08, 0.12, 2.0)
            d.polygon(peaks + [(w, h), (0, h)], fill=far)
            snow = _mix(far, (255, 255, 255), 0.7)
            for i in range(2, len(peaks) - 2):  # snow caps hug the ridge around each summit
                if peaks[i][1] < peaks[i - 1][1] and peaks[i][1] <= peaks[i + 1][1]:
                    cap = peaks[i - 2:i + 3]
                    depth = h * 0.035
                    d.polygon(cap + [(cap[-1][0], cap[-1][1] + depth * 0.3),
                                     (peaks[i][0], peaks[i][1] + depth),
                                     (cap[0][0], cap[0][1] + depth * 0.3)], fill=snow)
        else:
            d.polygon(self._ridge(w, h, hz - 0.03, 0.05, 1.0) + [(w, h), (0, h)], fill=far)
        if self.setting == "water":
            water = _mix(self.sky_bottom, _hsv(self.hue + 200, 0.6, 0.4), 0.5)
            d.rectangle((0, hz * h, w, h), fill=water)
            glint = _mix(water, self.sun_colour, 0.6)
            for i in range(14):  # the sun's reflection broken into ripples
                y = (hz + (1 - hz) * (i + 0.5) / 14) * h
                half = w * (0.02 + 0.006 * i) * self.rng.uniform(0.6, 1.3)
                d.line((self.sun_x * w - half, y, self.sun_x * w + half, y), fill=glint,
                       width=max(1, round(h * 0.006)))
            shore = hz + 0.2
            d.polygon(self._ridge(w, h, shore, 0.02, 0.5) + [(w, h), (0, h)],
                      fill=_hsv(self.hue + 40, 0.35, 0.75 if self.time != "night" else 0.2))
            return shore
        if self.setting == "city":
            self._skyline(d, w, h, hz)
        mid = _mix(far, near, 0.5)
        d.polygon(self._ridge(w, h, hz + 0.06, 0.04, 1.0) + [(w, h), (0, h)], fill=mid)
        ground_colour = (_hsv(self.hue + 35, 0.5, 0.8) if self.setting == "desert" else near)
        ground = hz + 0.16
        d.polygon(self._ridge(w, h, ground, 0.025, 0.6) + [(w, h), (0, h)], fill=ground_colour)
        return ground

    def _skyline(self, d, w, h, hz):
        dark = _hsv(self.hue + 230, 0.3, 0.25)
        lit = (255, 226, 140)
        x = 0.0
        while x < w:
            bw = w * self.rng.uniform(0.03, 0.07)
            top = (hz - self.rng.uniform(0.05, 0.25)) * h
            d.rectangle((x, top, x + bw, hz * h + h * 0.08), fill=dark)
            for wy in range(int(top) + 4, int(hz * h), 7):
                for wx in range(int(x) + 3, int(x + bw) - 3, 6):
                    if self.rng.random() < 0.35:
                        d.rectangle((wx, wy, wx + 2, wy + 3), fill=lit)
            x += bw + w * 0.004

    # -- subject: the detailed thing the crop must keep
    def _subject(self, d, w, h, unit, ground):
        cx, base = self.subject_x * w, ground * h + unit * 0.02
        size = unit * 0.42
        getattr(self, "_" + self.subject)(d, cx, base, size)

    def _tree(self, d, cx, base, s):
        bark = (92, 60, 38)
        d.rectangle((cx - s * 0.05, base - s * 0.45, cx + s * 0.05, base), fill=bark)
        leaf = _hsv(self.hue * 0.3 + 95, 0.65, 0.55)
        light = _mix(leaf, (255, 255, 200), 0.35)
        for i in range(26):
            a = self.rng.random() * math.tau
            dist = self.rng.random() ** 0.5 * s * 0.32
            x, y = cx + math.cos(a) * dist, base - s * 0.68 + math.sin(a) * dist * 0.85
            r = s * self.rng.uniform(0.08, 0.14)
            d.ellipse((x - r, y - r, x + r, y + r), fill=light if i % 3 == 0 else leaf,
                      outline=_mix(leaf, (0, 0, 0), 0.35))
        for i in range(10):
            x = cx + self.rng.uniform(-0.3, 0.3) * s
            y = base - s * 0.68 + self.rng.uniform(-0.25, 0.25) * s
            d.ellipse((x - s * 0.02, y - s * 0.02, x + s * 0.02, y + s * 0.02), fill=_hsv(self.hue, 0.8, 0.95))

    def _house(self, d, cx, base, s):
        wall = _hsv(self.hue + 20, 0.35, 0.92)
        roof = _hsv(self.hue, 0.7, 0.6)
        left, right, top = cx - s * 0.32, cx + s * 0.32, base - s * 0.42
        d.rectangle((left, top, right, base), fill=wall, outline=(60, 45, 40), width=2)
        d.polygon([(left - s * 0.06, top), (cx, top - s * 0.3), (right + s * 0.06, top)], fill=roof,
                  outline=(60, 30, 30))
        d.rectangle((cx + s * 0.12, top - s * 0.26, cx + s * 0.2, top - s * 0.08), fill=(120, 70, 60))
        for wx in (left + s * 0.07, right - s * 0.2):
            d.rectangle((wx, top + s * 0.08, wx + s * 0.13, top + s * 0.2), fill=(255, 224, 130),
                        outline=(70, 50, 40), width=2)
            d.line((wx + s * 0.065, top + s * 0.08, wx + s * 0.065, top + s * 0.2), fill=(70, 50, 40), width=2)
        d.rectangle((cx - s * 0.06, base - s * 0.22, cx + s * 0.06, base), fill=(110, 70, 45))

    def _lighthouse(self, d, cx, base, s):
        top, half_base, half_top = base - s * 0.85, s * 0.13, s * 0.08
        red = _hsv(self.hue * 0.1 + 355, 0.8, 0.85)
        bands = 6
        for i in range(bands):
            y0 = base - (base - top) * i / bands
            y1 = base - (base - top) * (i + 1) / bands
            hw0 = half_base + (half_top - half_base) * i / bands
            hw1 = half_base + (half_top - half_base) * (i + 1) / bands
            d.polygon([(cx - hw0, y0), (cx + hw0, y0), (cx + hw1, y1), (cx - hw1, y1)],
                      fill=red if i % 2 == 0 else (245, 245, 240))
        d.rectangle((cx - half_top * 1.3, top - s * 0.12, cx + half_top * 1.3, top), fill=(50, 50, 60))
        d.rectangle((cx - half_top * 0.9, top - s * 0.1, cx + half_top * 0.9, top - s * 0.02), fill=(255, 240, 150))
        d.polygon([(cx - half_top * 1.5, top - s * 0.12), (cx, top - s * 0.22),
                   (cx + half_top * 1.5, top - s * 0.12)], fill=red)
        beam = _mix(self.sky_bottom, (255, 245, 180), 0.5)
        d.polygon([(cx, top - s * 0.06), (cx + s * 0.7, top - s * 0.2), (cx + s * 0.7, top + s * 0.05)], fill=beam)

    def _balloon(self, d, cx, base, s):
        cy, r = base - s * 0.75, s * 0.28
        gores = 6  # nested ellipses of shrinking width read as the balloon's vertical panels
        d.polygon([(cx - r * 0.86, cy + r * 0.5), (cx + r * 0.86, cy + r * 0.5), (cx + r * 0.2, cy + r * 1.25),
                   (cx - r * 0.2, cy + r * 1.25)], fill=_hsv(self.hue, 0.75, 0.8))
        for i in range(gores):
            half = r * (1 - i / gores)
            d.ellipse((cx - half, cy - r, cx + half, cy + r),
                      fill=_hsv(self.hue + i * 360 / gores, 0.75, 0.95), outline=(70, 50, 50))
        d.rectangle((cx - r * 0.18, cy + r * 1.4, cx + r * 0.18, cy + r * 1.65), fill=(120, 80, 40))
        for dx in (-0.2, 0.2):
            d.line((cx + dx * r, cy + r * 1.25, cx + dx * r * 0.9, cy + r * 1.4), fill=(60, 40, 30), width=2)

    def _rocket(self, d, cx, base, s):
        body = (235, 235, 240)
        top, bottom, half = base - s * 0.95, base - s * 0.2, s * 0.09
        d.rectangle((cx - half, top + s * 0.15, cx + half, bottom), fill=body, outline=(90, 90, 100), width=2)
        d.polygon([(cx - half, top + s * 0.15), (cx, top - s * 0.02), (cx + half, top + s * 0.15)],
                  fill=_hsv(self.hue, 0.8, 0.85))
        for side in (-1, 1):
            d.polygon([(cx + side * half, bottom - s * 0.15), (cx + side * half * 2.4, bottom + s * 0.02),
                       (cx + side * half, bottom)], fill=_hsv(self.hue, 0.8, 0.7))
        d.ellipse((cx - half * 0.55, top + s * 0.3, cx + half * 0.55, top + s * 0.3 + half * 1.1),
                  fill=(120, 190, 255), outline=(60, 60, 70), width=2)
        for i, colour in enumerate(((255, 240, 120), (255, 170, 60), (240, 90, 40))):
            f = 1 - i * 0.28
            d.polygon([(cx - half * f, bottom), (cx + half * f, bottom), (cx, bottom + s * 0.2 * f)], fill=colour)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _label(canvas: Image.Image, subject_x: float) -> None:
    """Write the local-preview label at the bottom, under the subject so crops keep it."""
    w, h = canvas.size
    font = _font(max(10, round(min(w, h) / 42)))
    d = ImageDraw.Draw(canvas)
    left, top, right, bottom = d.textbbox((0, 0), LABEL, font=font)
    pad = max(3, (bottom - top) // 3)
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(max(0, round(subject_x * w - box_w / 2)), max(0, w - box_w))
    y = max(0, h - box_h - max(2, h // 60))
    d.rectangle((x, y, x + box_w, y + box_h), fill=(20, 20, 24))
    d.text((x + pad - left, y + pad - top), LABEL, font=font, fill=(245, 245, 245))
