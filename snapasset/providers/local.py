"""The offline provider: draws the prompt's subject, deterministically, with no model involved.

Used when no OpenAI key is configured (development, tests, benchmarks). The prompt's words
pick what is drawn — one of the subjects of local_subjects (animals, food, people, places,
objects, products), on a landscape or a studio backdrop — where the words put it ("on the
left", "in the top corner"), in the colours and at the time of day they name. A prompt that
names no subject gets its landscape ("a sunset over mountains") or, failing that, an abstract
composition of its colours with its key words set in type. The picture is drawn at the size
asked for (anti-aliased by drawing the subject twice as large and reducing it), carries a
"SnapAsset local preview" label so nobody takes it for a model's, and the result names what
was drawn (``GeneratedImage.subject``).

It honours what a request asks beyond the prompt, as a model would: the seed (the same prompt,
seed and size draw the same bytes; without one, the seed the prompt picks, reported in the
result so that the picture can be drawn again), ``n`` variants (seeds seed, seed + 1, …), a
transparent background (the top of the picture becomes see-through) and a reference picture
(the first one is placed mid-scene, framed).
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from snapasset.imaging import best_aspect, decode, size_for_aspect
from snapasset.platforms import Platform
from snapasset.providers.base import GeneratedImage, GenerationRequest, PartialImageCallback
from snapasset.providers.local_subjects import SUBJECTS, Pen, Subject, hsv, mix

__all__ = ["LocalProvider", "Composition", "compose", "draw", "LABEL"]

LABEL = "SnapAsset local preview"
SEED_MAX = 2**31 - 1
_PARTIAL_LONG_SIDE = 384     # partial images are small: they only feed live previews
_SUPERSAMPLE_PIXELS = 2400 * 2400   # the subject is drawn at 2× unless that would exceed this

_TIMES = {
    "night": ("night", "midnight", "moon", "moonlit", "star", "stars", "starry", "dark", "galaxy"),
    "sunset": ("sunset", "dusk", "evening", "golden", "twilight"),
    "dawn": ("dawn", "sunrise", "morning"),
    "day": ("day", "noon", "sunny", "bright", "summer"),
}
_SETTINGS = {
    "water": ("ocean", "sea", "beach", "lake", "water", "coast", "harbor", "harbour", "river", "bay", "island"),
    "city": ("city", "urban", "skyline", "street", "downtown", "town", "metropolis"),
    "desert": ("desert", "dune", "dunes", "sand", "sahara", "canyon"),
    "mountains": ("mountain", "mountains", "peak", "peaks", "alps", "alpine", "summit", "snow", "hills"),
}
_HUES = {
    "red": 360, "crimson": 350, "orange": 28, "amber": 40, "gold": 45, "golden": 45, "yellow": 55,
    "lime": 90, "green": 120, "emerald": 140, "teal": 175, "cyan": 185, "turquoise": 175,
    "blue": 215, "navy": 230, "indigo": 250, "purple": 275, "violet": 280, "magenta": 305,
    "pink": 330, "rose": 340,
}
_STOPWORDS = frozenset(
    "a an the of on in at to for and or with without by from over under into onto near next this that "
    "these those its it is are be my our your their his her up off out as".split())


# --------------------------------------------------------------------------- what to draw

@dataclass(frozen=True)
class Composition:
    """Every choice made from the prompt; painted at any size by ``paint``."""
    subject: str | None          # a key of SUBJECTS, or None for a landscape / abstract picture
    kind: str                    # "subject", "landscape" or "abstract"
    hue: float | None            # the colour the prompt names first, if any
    second_hue: float | None     # the next colour it names
    time: str                    # night, sunset, dawn, day
    setting: str                 # water, city, desert, mountains, hills
    x: float                     # the subject's centre, as fractions of width and height
    y: float
    scale: float                 # the subject's side, as a fraction of the picture's short side
    words: tuple[str, ...]       # the prompt's key words (for the abstract picture's type)
    seed: int                    # 0 … SEED_MAX: what the rest of the drawing is chosen by

    @property
    def description(self) -> str:
        """What the picture shows, in a few words ("cat", "landscape: mountains at sunset")."""
        if self.kind == "subject":
            return self.subject
        if self.kind == "landscape":
            return f"landscape: {self.setting} at {self.time}"
        return "abstract"


def compose(prompt: str) -> Composition:
    """Read the prompt: its subject (the one named first; a two-word name wins over a word it
    starts with: "running shoes" is a shoe, not a runner), colour, time of day, setting and
    where the subject goes."""
    text = " ".join(prompt.lower().split())
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    tokens = re.findall(r"[a-z0-9%$€£'-]+", text)
    words = set(tokens)
    subject = _first_subject(text)
    named_hues = [_HUES[w] for w in tokens if w in _HUES]
    time_of_day = _pick(words, _TIMES) or rng.choice(("day", "sunset", "dawn", "day"))
    setting = _pick(words, _SETTINGS)
    if subject is not None:
        kind = "subject"
    elif setting is not None or _pick(words, _TIMES) is not None:
        kind = "landscape"
    else:
        kind = "abstract"
    x, y, scale = _placement(words, rng)
    key_words = tuple(w for w in tokens if w not in _STOPWORDS and len(w) > 1)[:4]
    return Composition(subject=subject, kind=kind, hue=named_hues[0] if named_hues else None,
                       second_hue=named_hues[1] if len(named_hues) > 1 else None,
                       time=time_of_day, setting=setting or rng.choice(("hills", "mountains", "water")),
                       x=x, y=y, scale=scale, words=key_words, seed=int.from_bytes(digest[8:12], "big") & SEED_MAX)


def _first_subject(text: str) -> str | None:
    best = None   # (position, -length, name)
    for name, subject in SUBJECTS.items():
        for phrase in subject.words:
            match = re.search(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])", text)
            if match and (best is None or (match.start(), -len(phrase)) < best[:2]):
                best = (match.start(), -len(phrase), name)
    return best[2] if best else None


def _pick(words: set[str], table: dict[str, tuple[str, ...]]) -> str | None:
    for key, keys in table.items():
        if words.intersection(keys):
            return key
    return None


def _placement(words: set[str], rng: random.Random) -> tuple[float, float, float]:
    """Where the prompt's words put the subject: (x, y, scale)."""
    left = bool(words & {"left", "west"})
    right = bool(words & {"right", "east"})
    top = bool(words & {"top", "upper", "above", "sky", "flying"})
    bottom = bool(words & {"bottom", "lower", "below", "foreground"})
    corner = bool(words & {"corner", "corners"})
    if corner and not (left or right):
        right = True
    if corner and not (top or bottom):
        bottom = True
    jitter = lambda: rng.uniform(-0.03, 0.03)  # noqa: E731 - a small hash-chosen offset, so pictures differ
    x = (0.27 if left else 0.73 if right else 0.5) + jitter()
    y = (0.32 if top else 0.7 if bottom else 0.54) + jitter()
    scale = 0.42 if corner or ((left or right) and (top or bottom)) else 0.5 if (left or right or top or bottom) else 0.58
    return x, y, scale


# --------------------------------------------------------------------------- the provider

class LocalProvider:
    """An offline ImageProvider: same prompt and size, same bytes."""

    name = "local"
    model = "snapasset-local-1"
    max_pixels = 1536 * 1536     # the largest picture choose_size asks for (a 1536 long side)

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
        composition = compose(request.prompt)
        seed = request.seed if request.seed is not None else composition.seed
        pictures = [self._picture(request, replace(composition, seed=(seed + variant) % (SEED_MAX + 1)))
                    for variant in range(request.n)]
        fmt = _output_format(request.output_format)
        if request.background == "transparent" and fmt == "jpeg":
            fmt = "png"   # JPEG has no alpha
        partials = self.partial_images if on_partial is not None else 0
        # The simulated model time is spread so partials arrive while the "model" still draws.
        pause = self.latency / (partials + 1)
        for index in range(1, partials + 1):
            _sleep(pause)
            on_partial(_encode(_partial(pictures[0], index, partials), fmt))
        _sleep(pause)
        encoded = [_encode(picture, fmt) for picture in pictures]
        return GeneratedImage(data=encoded[0], variants=tuple(encoded[1:]), provider=self.name, model=self.model,
                              revised_prompt=None, usage=None, subject=composition.description, seed=seed)

    @staticmethod
    def _picture(request: GenerationRequest, composition: Composition) -> Image.Image:
        image = paint(composition, request.width, request.height)
        if request.input_images:
            image = with_reference(image, request.input_images[0])
        if request.background == "transparent":
            image = with_transparent_sky(image)
        return image


def draw(prompt: str, width: int, height: int) -> Image.Image:
    """The picture for this prompt at exactly width × height (RGB)."""
    return paint(compose(prompt), width, height)


def with_reference(image: Image.Image, reference: bytes) -> Image.Image:
    """The reference picture placed in the scene: fitted into the middle 45 % of the frame, on a
    white mat with a soft shadow (its own transparency kept), so that it is plainly there."""
    picture = decode(reference).convert("RGBA")
    w, h = image.size
    picture.thumbnail((max(1, round(w * 0.45)), max(1, round(h * 0.45))), Image.Resampling.LANCZOS)
    mat = max(2, round(min(w, h) * 0.012))
    x, y = (w - picture.width) // 2, round(h * 0.52 - picture.height / 2)
    out = image.convert("RGBA")
    shadow = Image.new("L", out.size, 0)
    ImageDraw.Draw(shadow).rectangle((x - mat + mat * 2, y - mat + mat * 2, x + picture.width + mat * 3,
                                      y + picture.height + mat * 3), fill=110)
    out.paste((0, 0, 0, 255), mask=shadow.filter(ImageFilter.GaussianBlur(mat * 2)))
    ImageDraw.Draw(out).rectangle((x - mat, y - mat, x + picture.width + mat - 1, y + picture.height + mat - 1),
                                  fill=(250, 250, 246, 255))
    out.alpha_composite(picture, (x, y))
    return out.convert("RGB")


def with_transparent_sky(image: Image.Image) -> Image.Image:
    """A transparent background: the top third (the sky) see-through, fading in towards the land."""
    w, h = image.size
    alpha = Image.linear_gradient("L").resize((1, 256)).resize((w, h), Image.Resampling.BILINEAR)
    clear_until, opaque_from = 0.3, 0.45
    ramp = opaque_from - clear_until
    alpha = alpha.point(lambda v: round(255 * min(1.0, max(0.0, (v / 255 - clear_until) / ramp))))
    out = image.convert("RGBA")
    out.putalpha(alpha)
    return out


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


# --------------------------------------------------------------------------- painting

def paint(composition: Composition, width: int, height: int) -> Image.Image:
    """The composition at exactly width × height (RGB)."""
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    rng = random.Random(composition.seed)
    if composition.kind == "abstract":
        canvas, words_box = _abstract(composition, rng, width, height)
        _label(canvas, words_box)
        return canvas
    subject = SUBJECTS.get(composition.subject) if composition.subject else None
    box = _subject_box(composition, width, height)
    if subject is not None and subject.place == "studio":
        canvas = _studio(composition, width, height, floor=box[3] / height - 0.06)
    else:
        # a subject that stands on the ground stands on this picture's ground line
        ground = box[3] / height - 0.03 if subject is not None and subject.place == "outdoor" else None
        canvas = _Landscape(composition, rng).paint(width, height, ground)
    if subject is not None:
        _paste_subject(canvas, subject, composition.hue, box)
        _label(canvas, box)
    else:
        _label(canvas, (0, 0, width, height))
    return canvas


def _subject_box(composition: Composition, width: int, height: int) -> tuple[int, int, int, int]:
    """The subject's square in pixels: at the composition's place, kept inside the picture."""
    # in a tall or wide picture the short side is the tight one: the subject may take more of it
    elongation = max(width, height) / min(width, height)
    side = max(8, round(min(width, height) * min(0.72, composition.scale * min(1.2, elongation ** 0.5))))
    margin = round(min(width, height) * 0.03)
    left = round(composition.x * width - side / 2)
    top = round(composition.y * height - side / 2)
    left = max(margin, min(width - side - margin, left))
    top = max(margin, min(height - side - margin, top))
    return left, top, left + side, top + side


def _paste_subject(canvas: Image.Image, subject: Subject, hue: float | None,
                   box: tuple[int, int, int, int]) -> None:
    """Draw the subject on a transparent layer twice its size (anti-aliasing), reduce it, lay a
    soft shadow under it and paste it."""
    side = box[2] - box[0]
    factor = 2 if (side * 2) ** 2 <= _SUPERSAMPLE_PIXELS else 1
    pad = round(side * 0.06)   # room for parts that reach just past the square (a beam, a tail)
    layer = Image.new("RGBA", ((side + 2 * pad) * factor,) * 2, (0, 0, 0, 0))
    subject.draw(Pen(ImageDraw.Draw(layer), (pad * factor, pad * factor), side * factor, hue))
    if factor > 1:
        layer = layer.reduce(factor)
    alpha = layer.getchannel("A")
    # the shadow is all blur: made on a quarter-size copy
    small = alpha.reduce(4) if alpha.width >= 16 else alpha
    shadow = small.filter(ImageFilter.GaussianBlur(max(1, side / 60))).resize(alpha.size, Image.Resampling.BILINEAR)
    shadow = shadow.point(lambda v: v * 45 // 100)
    offset = max(1, side // 40)
    at = (box[0] - pad, box[1] - pad)
    canvas.paste((20, 20, 30), (at[0] + offset, at[1] + offset * 2), shadow)
    canvas.paste(layer, at, layer)


def _studio(composition: Composition, width: int, height: int, floor: float) -> Image.Image:
    """A seamless backdrop: a wall lit from above in a soft tint of the prompt's colour, a
    table or floor below the subject, a vignette."""
    hue = composition.hue if composition.hue is not None else (composition.seed % 360)
    wall_top, wall_bottom = hsv(hue + 20, 0.25, 0.98), hsv(hue + 20, 0.35, 0.82)
    # a warm wooden table, tinted a little towards the wall
    table_near, table_far = mix((150, 105, 70), wall_bottom, 0.15), mix((196, 156, 112), wall_bottom, 0.25)
    floor_y = max(1, min(height - 1, round(height * min(0.9, max(0.45, floor)))))
    gradient = Image.linear_gradient("L")
    canvas = Image.composite(Image.new("RGB", (width, floor_y), wall_bottom),
                             Image.new("RGB", (width, floor_y), wall_top),
                             gradient.resize((width, floor_y), Image.Resampling.BILINEAR))
    table = Image.composite(Image.new("RGB", (width, height - floor_y), table_near),
                            Image.new("RGB", (width, height - floor_y), table_far),
                            gradient.resize((width, height - floor_y), Image.Resampling.BILINEAR))
    full = Image.new("RGB", (width, height))
    full.paste(canvas, (0, 0))
    full.paste(table, (0, floor_y))
    vignette = Image.radial_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", (width, height), (30, 28, 36)), full,
                           vignette.point(lambda v: max(0, v - 150) * 60 // 105))


def _abstract(composition: Composition, rng: random.Random, width: int,
              height: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The prompt's colours in overlapping soft discs and rings, its key words set large; and
    the box of the words."""
    base = composition.hue if composition.hue is not None else composition.seed % 360
    second = composition.second_hue if composition.second_hue is not None else base + rng.choice((40, 150, 180))
    hues = [base, second, base + rng.choice((-30, 30))]
    # a diagonal gradient from the first colour to the second
    diagonal = Image.linear_gradient("L").resize((2, 2), Image.Resampling.BILINEAR)
    diagonal.putdata([0, 128, 128, 255] if rng.random() < 0.5 else [128, 0, 255, 128])
    canvas = Image.composite(Image.new("RGB", (width, height), hsv(hues[1], 0.7, 0.7)),
                             Image.new("RGB", (width, height), hsv(hues[0], 0.7, 0.85)),
                             diagonal.resize((width, height), Image.Resampling.BILINEAR))
    unit = min(width, height)
    shapes = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    d = ImageDraw.Draw(shapes)
    for i in range(9):
        cx, cy = rng.random() * width, rng.random() * height
        r = unit * rng.uniform(0.12, 0.35)
        colour = hsv(hues[i % 3] + rng.uniform(-15, 15), rng.uniform(0.5, 0.8), rng.uniform(0.75, 1.0))
        if i % 3 == 2:
            d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour + (200,), width=max(2, round(unit / 60)))
        else:
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour + (150,))
    canvas.paste(shapes, (0, 0), shapes)
    words = [w.upper() for w in composition.words] or ["SNAPASSET"]
    lines = [" ".join(words[:2]), " ".join(words[2:])] if len(words) > 2 else [" ".join(words)]
    d = ImageDraw.Draw(canvas)
    size = round(unit * 0.14)
    font = _font(size)
    while size > 10 and max(d.textlength(line, font=font) for line in lines) > width * 0.72:
        size = round(size * 0.9)
        font = _font(size)
    line_h = round(size * 1.2)
    block_w = max(d.textlength(line, font=font) for line in lines)
    block_h = line_h * len(lines)
    pad = round(size * 0.5)
    x0, y0 = (width - block_w) / 2, (height - block_h) / 2
    d.rounded_rectangle((x0 - pad, y0 - pad, x0 + block_w + pad, y0 + block_h + pad), radius=pad,
                        fill=mix(hsv(hues[0], 0.8, 0.3), (0, 0, 0), 0.3))
    for i, line in enumerate(lines):
        x = (width - d.textlength(line, font=font)) / 2
        d.text((x, y0 + i * line_h), line, font=font, fill=(250, 248, 240))
    return canvas, (round(x0 - pad), round(y0 - pad), round(x0 + block_w + pad), round(y0 + block_h + pad))


class _Landscape:
    """Sky, sun or moon, clouds, and the land of the setting."""

    def __init__(self, composition: Composition, rng: random.Random):
        self.rng = rng
        self.time = composition.time
        self.setting = composition.setting
        # the land's colours turn with the named colour; unnamed, they stay near natural greens
        self.hue = composition.hue if composition.hue is not None else rng.uniform(-25, 20)
        self.tint = rng.uniform(-20, 20)
        # the sun goes to the side away from the subject, so the two never overlap
        self.sun_x = rng.uniform(0.7, 0.88) if composition.x < 0.5 else rng.uniform(0.12, 0.3)
        self.sun_y = rng.uniform(0.12, 0.25)
        self.sky_top, self.sky_bottom, self.sun_colour = self._sky_colours()

    def _sky_colours(self):
        t = self.tint  # a small hash-chosen shift, so skies of one time of day still differ
        if self.time == "night":
            return hsv(225 + t, 0.7, 0.12), hsv(245 + t, 0.5, 0.36), (238, 236, 218)
        if self.time == "sunset":
            return hsv(262 + t, 0.55, 0.42), hsv(22 + t, 0.72, 0.98), (255, 214, 120)
        if self.time == "dawn":
            return hsv(208 + t, 0.4, 0.78), hsv(345 + t, 0.28, 0.98), (255, 240, 200)
        return hsv(205 + t / 2, 0.62, 0.88), hsv(195 + t / 2, 0.18, 1.0), (255, 250, 225)

    def paint(self, w: int, h: int, ground: float | None) -> Image.Image:
        self.horizon = min(0.8, max(0.45, (ground if ground is not None else 0.72) - 0.1))
        mask = Image.linear_gradient("L").resize((w, h), Image.Resampling.BILINEAR)
        canvas = Image.composite(Image.new("RGB", (w, h), self.sky_bottom),
                                 Image.new("RGB", (w, h), self.sky_top), mask)
        d = ImageDraw.Draw(canvas)
        unit = min(w, h)
        if self.time == "night":
            self._stars(d, w, h)
        self._sun(d, w, h, unit)
        canvas = self._clouds(canvas, w, h, unit)
        self._land(ImageDraw.Draw(canvas), w, h, ground)
        return canvas

    def _stars(self, d, w, h):
        for _ in range(120):
            x, y = self.rng.random() * w, self.rng.random() * h * self.horizon
            r = self.rng.choice((0.6, 0.8, 1.2)) * max(1, min(w, h) / 700)
            d.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 235))

    def _sun(self, d, w, h, unit):
        cx, cy, r = self.sun_x * w, self.sun_y * h, unit * self.rng.uniform(0.05, 0.07)
        sky_here = mix(self.sky_top, self.sky_bottom, self.sun_y)
        for i in range(8, 0, -1):  # halo: rings fading into the sky
            rr = r * (1 + i * 0.22)
            d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr),
                      fill=mix(sky_here, self.sun_colour, (1 - i / 9) * 0.45))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self.sun_colour)
        if self.time == "night":  # the moon's seas
            for dx, dy, k in ((-0.3, -0.2, 0.28), (0.25, 0.1, 0.2), (-0.05, 0.4, 0.16)):
                x, y, rr = cx + dx * r, cy + dy * r, k * r
                d.ellipse((x - rr, y - rr, x + rr, y + rr), fill=mix(self.sun_colour, (150, 150, 150), 0.4))

    def _clouds(self, canvas, w, h, unit):
        """Soft clouds: drawn on a small mask and blurred, so they stay scenery."""
        colour = mix(self.sky_bottom, (255, 255, 255), 0.7 if self.time != "night" else 0.15)
        small = (max(1, w // 8), max(1, h // 8))
        mask = Image.new("L", small)
        d = ImageDraw.Draw(mask)
        su = min(small)
        for _ in range(self.rng.randint(2, 4)):
            cx, cy = self.rng.random() * small[0], self.rng.uniform(0.06, 0.3) * small[1]
            for _ in range(5):
                rx = su * self.rng.uniform(0.04, 0.08)
                ox, oy = self.rng.uniform(-2, 2) * rx, self.rng.uniform(-0.3, 0.3) * rx
                d.ellipse((cx + ox - rx * 1.6, cy + oy - rx, cx + ox + rx * 1.6, cy + oy + rx * 0.6), fill=200)
        mask = mask.filter(ImageFilter.GaussianBlur(max(1, su / 60))).resize((w, h), Image.Resampling.BILINEAR)
        canvas.paste(colour, (0, 0, w, h), mask)
        return canvas

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

    def _land(self, d, w, h, ground: float | None) -> None:
        hz = self.horizon
        far = mix(self.sky_bottom, hsv(self.hue + 150, 0.4, 0.45), 0.45)
        near = hsv(self.hue + 120, 0.5, 0.42 if self.time != "night" else 0.14)
        if self.setting == "mountains":
            peaks = self._ridge(w, h, hz - 0.08, 0.12, 2.0)
            d.polygon(peaks + [(w, h), (0, h)], fill=far)
            snow = mix(far, (255, 255, 255), 0.7)
            for i in range(2, len(peaks) - 2):  # snow caps hug the ridge around each summit
                if peaks[i][1] < peaks[i - 1][1] and peaks[i][1] <= peaks[i + 1][1]:
                    cap = peaks[i - 2:i + 3]
                    depth = h * 0.035
                    d.polygon(cap + [(cap[-1][0], cap[-1][1] + depth * 0.3),
                                     (peaks[i][0], peaks[i][1] + depth),
                                     (cap[0][0], cap[0][1] + depth * 0.3)], fill=snow)
        else:
            d.polygon(self._ridge(w, h, hz - 0.03, 0.05, 1.0) + [(w, h), (0, h)], fill=far)
        if self.setting == "city":
            self._skyline(d, w, h, hz)
        if self.setting == "water":
            water = mix(self.sky_bottom, hsv(self.hue + 200, 0.6, 0.4), 0.5)
            d.rectangle((0, hz * h, w, h), fill=water)
            glint = mix(water, self.sun_colour, 0.6)
            for i in range(14):  # the sun's reflection broken into ripples
                y = (hz + (1 - hz) * (i + 0.5) / 14) * h
                half = w * (0.02 + 0.006 * i) * self.rng.uniform(0.6, 1.3)
                d.line((self.sun_x * w - half, y, self.sun_x * w + half, y), fill=glint,
                       width=max(1, round(h * 0.004)))
            if ground is None:
                return
        land = (hsv(self.hue + 35, 0.45, 0.8) if self.setting == "desert"
                else hsv(self.hue + 40, 0.3, 0.78) if self.setting == "water" else near)
        line = ground if ground is not None else hz + 0.12
        d.polygon(self._ridge(w, h, line, 0.015, 0.4) + [(w, h), (0, h)], fill=land)

    def _skyline(self, d, w, h, hz):
        dark = hsv(self.hue + 230, 0.3, 0.3)
        lit = (255, 226, 140)
        x = 0.0
        unit = max(1, round(min(w, h) / 150))
        while x < w:
            bw = w * self.rng.uniform(0.03, 0.07)
            top = (hz - self.rng.uniform(0.05, 0.22)) * h
            d.rectangle((x, top, x + bw, hz * h + h * 0.08), fill=dark)
            for wy in range(int(top) + 2 * unit, int(hz * h), 4 * unit):
                for wx in range(int(x) + 2 * unit, int(x + bw) - 2 * unit, 3 * unit):
                    if self.rng.random() < 0.3:
                        d.rectangle((wx, wy, wx + unit, wy + 2 * unit), fill=lit)
            x += bw + w * 0.004


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _label(canvas: Image.Image, subject: tuple[int, int, int, int]) -> None:
    """Write the local-preview label just under the subject (inside the picture), so that it is
    part of the subject's salient region: every crop that keeps the subject keeps the label,
    and the label is never taken for the subject."""
    w, h = canvas.size
    font = _font(max(10, round(min(w, h) / 48)))
    d = ImageDraw.Draw(canvas)
    left, top, right, bottom = d.textbbox((0, 0), LABEL, font=font)
    pad = max(3, (bottom - top) // 3)
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(max(0, round((subject[0] + subject[2]) / 2 - box_w / 2)), max(0, w - box_w))
    y = min(max(0, subject[3] - box_h // 2), max(0, h - box_h - max(2, h // 60)))
    d.rounded_rectangle((x, y, x + box_w, y + box_h), radius=pad, fill=(20, 20, 24))
    d.text((x + pad - left, y + pad - top), LABEL, font=font, fill=(245, 245, 245))
