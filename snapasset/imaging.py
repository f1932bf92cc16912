"""Pillow work of a job: decode the model's image, find its subject, crop and resize it to
each platform, encode under the platform's byte cap, and a blurhash placeholder for each.

Also the geometry used to choose what size to ask a model for (``best_aspect``,
``best_size``, ``size_for_aspect``) and the small previews streamed while a model draws.
"""

from __future__ import annotations

import base64
import io
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import blurhash
from PIL import Image, ImageChops, ImageFilter, ImageOps

from snapasset.errors import InvalidImage
from snapasset.platforms import Platform

__all__ = [
    "FORMATS", "MAX_PIXELS", "RenderedImage", "decode", "focal_point", "crop_box", "render",
    "blurhash_for", "best_aspect", "best_size", "size_for_aspect",
    "preview_data_url",
]

# Output format name → (content type, file extension without the dot).
FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": ("image/jpeg", "jpg"),
    "png": ("image/png", "png"),
    "webp": ("image/webp", "webp"),
}
_FORMAT_ALIASES = {"jpg": "jpeg"}

# Largest input accepted. Image models return a few megapixels (4K is 8.3 MP); anything far
# beyond is a decompression bomb or a mistake, refused before its pixels are allocated.
MAX_PIXELS = 40_000_000

# Input formats worth opening; the rest of Pillow's plugins are attack surface we do not need.
_INPUT_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "GIF", "BMP", "TIFF", "AVIF")

# Qualities tried in turn for the lossy formats until the bytes fit the platform's cap.
_LOSSY_QUALITIES = (88, 82, 75, 68, 60, 50, 40, 30, 20, 10)
# Palette sizes tried for PNG once lossless encoding is over the cap.
_PNG_COLOURS = (256, 128, 64, 32, 16)
# zlib level of the first PNG attempt: level 3 is ~2.5× faster than the default 6 on photos
# for ~10 % more bytes; the caps leave room, and optimize (level 9) is the next attempt.
_PNG_FIRST_LEVEL = 3
# WebP effort: 4 is libwebp's default and a fair size/speed trade on the hot path.
_WEBP_METHOD = 4

_WHITE = (255, 255, 255)
_FOCUS_SIDE = 64        # focal point is computed on a copy this many pixels on its long side
_BLURHASH_SIDE = 20     # blurhash of 4×3 components needs no more than this to be exact enough
_BLURHASH_COMPONENTS = (4, 3)

# Errors Pillow raises for bytes it cannot make an image of.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError,
                  TypeError, KeyError, ZeroDivisionError, Image.DecompressionBombError)


@dataclass(frozen=True)
class RenderedImage:
    platform_id: str
    width: int
    height: int
    format: str           # "jpeg" | "png" | "webp"
    content_type: str
    extension: str        # without the dot: "jpg", "png", "webp"
    data: bytes
    blurhash: str
    quality: int | None = None   # encoder quality used (JPEG/WebP); None for PNG

    @property
    def size(self) -> int:
        return len(self.data)


def _format(fmt: str) -> str:
    name = _FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if name not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return name


# --------------------------------------------------------------------------- decoding

def decode(data: bytes) -> Image.Image:
    """Open encoded image bytes as a loaded RGB (or RGBA, when transparency is used) image,
    upright as its EXIF orientation says, in sRGB when it carried another ICC profile, and
    with no metadata left to leak into outputs. Raises InvalidImage for anything else."""
    if not data:
        raise InvalidImage("The image is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=_allowed_input_formats())
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise InvalidImage(f"The image is too large to process ({width}×{height} pixels, "
                               f"at most {MAX_PIXELS:,} allowed)")
        img.load()
    except InvalidImage:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"The image is too large to process: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"The image could not be decoded: {exc}") from exc
    if img.width < 1 or img.height < 1:
        raise InvalidImage("The image has no pixels")
    ImageOps.exif_transpose(img, in_place=True)
    img = _to_srgb(img)
    img = _normalise_mode(img)
    img.info = {}  # EXIF, ICC (already applied), text chunks: none of it goes out again
    return img


def _allowed_input_formats() -> list[str]:
    Image.init()
    return [f for f in _INPUT_FORMATS if f in Image.OPEN]


def _to_srgb(img: Image.Image) -> Image.Image:
    """Convert an image that carries an ICC profile to sRGB; best effort, as browsers do."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return img
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow built without LittleCMS
        return img
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in (ImageCms.getProfileDescription(src) or "").lower().replace(" ", ""):
            return img
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"),
                                              outputMode=out_mode)
        return converted if converted is not None else img
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return img


def _normalise_mode(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_to_rgb(img)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in img.info)
    if has_alpha:
        rgba = img if mode == "RGBA" else img.convert("RGBA")
        low, _high = rgba.getchannel("A").getextrema()
        return rgba if low < 255 else rgba.convert("RGB")
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale: Pillow's own conversion clips at 255, so scale instead."""
    low, high = img.getextrema()
    if img.mode == "F" and high <= 1.0:
        scaled = img.point(lambda v: v * 255.0)
    elif high > 255:
        scaled = img.convert("I").point(lambda v: v * (255.0 / 65535.0))
    else:
        scaled = img
    return scaled.convert("L").convert("RGB") if scaled.mode != "L" else scaled.convert("RGB")


# --------------------------------------------------------------------------- focus and crop

def focal_point(img: Image.Image) -> tuple[float, float]:
    """Where the interesting part of the image is, as fractions (fx, fy) of its width and height.

    Detail energy (a pixel's difference from its blurred neighbourhood) is smoothed into a
    local density map; the centroid of the density that stands above the image's average
    is the focus. Flat backgrounds, smooth skies and evenly textured areas weigh nothing;
    the densest cluster of detail wins. Costs a few milliseconds on a 64-pixel copy.
    """
    return _focus_of_small(_small_copy(img))


def _small_copy(img: Image.Image) -> Image.Image:
    """An RGB copy about _FOCUS_SIDE pixels on its long side (box-averaged, so cheap)."""
    factor = max(1, max(img.size) // _FOCUS_SIDE)
    small = img.reduce(factor) if factor > 1 else img
    if small.mode != "RGB":
        small = _flatten(small) if "A" in small.mode else small.convert("RGB")
    return small


def _focus_of_small(small: Image.Image) -> tuple[float, float]:
    gray = small.convert("L")
    sw, sh = gray.size
    detail = ImageChops.difference(gray, gray.filter(ImageFilter.GaussianBlur(1)))
    detail = detail.point(_GAIN_LUT)
    density = detail.filter(ImageFilter.GaussianBlur(max(1.0, max(sw, sh) / 16)))
    values = density.tobytes()
    mean = sum(values) / len(values)
    total = sx = sy = 0.0
    for y in range(sh):
        row = values[y * sw:(y + 1) * sw]
        for x, v in enumerate(row):
            excess = v - mean
            if excess > 0:
                weight = excess * excess
                total += weight
                sx += weight * x
                sy += weight * y
    if total <= 0:
        return 0.5, 0.5
    return (sx / total + 0.5) / sw, (sy / total + 0.5) / sh


_GAIN_LUT = [min(255, v * 4) for v in range(256)]


def crop_box(size: tuple[int, int], target_w: int, target_h: int,
             focus: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int, int, int]:
    """The largest box of the target's aspect ratio inside an image of ``size``, placed so
    the focus is as central as the image's edges allow. Returns (left, top, right, bottom)."""
    width, height = size
    target = target_w / target_h
    if width / height > target:
        box_h = height
        box_w = max(1, min(width, round(height * target)))
    else:
        box_w = width
        box_h = max(1, min(height, round(width / target)))
    fx, fy = focus
    left = _clamp(round(fx * width - box_w / 2), 0, width - box_w)
    top = _clamp(round(fy * height - box_h / 2), 0, height - box_h)
    return left, top, left + box_w, top + box_h


def _clamp(value, low, high):
    return max(low, min(high, value))


# --------------------------------------------------------------------------- rendering

def render(img: Image.Image, platform: Platform, fmt: str, *,
           focus: tuple[float, float] | None = None) -> RenderedImage:
    """Crop ``img`` around its focus to the platform's aspect, resize it to exactly the
    platform's size and encode it in ``fmt`` under the platform's byte cap. ``img`` is best
    one returned by ``decode``; other modes are normalised the same way first."""
    if img.mode not in ("RGB", "RGBA"):
        img = _normalise_mode(img)
    return _render(img, platform, _format(fmt), focus, small=None)


def _render(img: Image.Image, platform: Platform, fmt: str, focus: tuple[float, float] | None,
            *, small: Image.Image | None) -> RenderedImage:
    if focus is None:
        focus = focal_point(img)
    box = crop_box(img.size, platform.width, platform.height, focus)
    size = (platform.width, platform.height)
    # reducing_gap lets Pillow box-reduce large downscales first: same look, a fraction of the time
    out = img.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    if out.mode not in ("RGB", "RGBA"):
        out = out.convert("RGBA" if "A" in out.mode else "RGB")
    if fmt == "jpeg" and out.mode == "RGBA":
        out = _flatten(out)
    data, quality = _encode_under(out, fmt, platform)
    if small is None:
        placeholder = blurhash_for(out)
    else:  # the same crop taken from the small copy: the hash needs no more pixels than that
        sx, sy = small.width / img.width, small.height / img.height
        left, top, right, bottom = box
        placeholder = blurhash_for(small.crop((
            math.floor(left * sx), math.floor(top * sy),
            max(math.floor(left * sx) + 1, math.ceil(right * sx)),
            max(math.floor(top * sy) + 1, math.ceil(bottom * sy)))))
    content_type, extension = FORMATS[fmt]
    return RenderedImage(platform_id=platform.id, width=out.width, height=out.height,
                         format=fmt, content_type=content_type, extension=extension,
                         data=data, blurhash=placeholder, quality=quality)


def _flatten(img: Image.Image, background=_WHITE) -> Image.Image:
    """Composite an image with alpha onto an opaque background (JPEG has no alpha)."""
    rgba = img if img.mode == "RGBA" else img.convert("RGBA")
    base = Image.new("RGB", rgba.size, background)
    base.paste(rgba, mask=rgba.getchannel("A"))
    return base


def _encode_under(img: Image.Image, fmt: str, platform: Platform) -> tuple[bytes, int | None]:
    cap = platform.max_bytes
    smallest = None
    if fmt == "png":
        for attempt in _png_attempts(img):
            data = attempt()
            if len(data) <= cap:
                return data, None
            smallest = min(smallest or len(data), len(data))
    else:
        for quality in _LOSSY_QUALITIES:
            data = _save(img, fmt, quality=quality)
            if len(data) <= cap:
                return data, quality
            smallest = min(smallest or len(data), len(data))
    raise InvalidImage(f"The image cannot be encoded as {fmt} for {platform.name} under "
                       f"{cap:,} bytes (smallest attempt was {smallest:,} bytes)")


def _png_attempts(img: Image.Image):
    # A quick zlib level first: it fits nearly always, at a fraction of optimize's cost.
    yield lambda: _save(img, "png")
    yield lambda: _save(img, "png", optimize=True)
    for colours in _PNG_COLOURS:
        yield lambda colours=colours: _save(
            img.quantize(colours, method=Image.Quantize.FASTOCTREE), "png", optimize=True)


def _save(img: Image.Image, fmt: str, *, quality: int | None = None, optimize: bool = False) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=quality)
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=quality, method=_WEBP_METHOD)
    elif optimize:
        img.save(buf, "PNG", optimize=True)
    else:
        img.save(buf, "PNG", compress_level=_PNG_FIRST_LEVEL)
    return buf.getvalue()


# --------------------------------------------------------------------------- placeholders

def blurhash_for(img: Image.Image) -> str:
    """The blurhash (4×3 components) of an image, computed on a tiny copy of it."""
    w, h = img.size
    scale = _BLURHASH_SIDE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    thumb = img.resize(size, Image.Resampling.BOX, reducing_gap=2.0) if scale < 1 else img
    if thumb.mode != "RGB":
        thumb = _flatten(thumb) if "A" in thumb.mode else thumb.convert("RGB")
    raw = thumb.tobytes()
    tw, th = thumb.size
    stride = tw * 3
    rows = [[raw[y * stride + x * 3:y * stride + x * 3 + 3] for x in range(tw)] for y in range(th)]
    return blurhash.encode(rows, *_BLURHASH_COMPONENTS)


def preview_data_url(data: bytes, *, max_side: int = 96) -> str:
    """A small JPEG ``data:`` URL of encoded image bytes, for SSE ``preview`` fields."""
    img = decode(data)
    img.thumbnail((max_side, max_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
    if img.mode != "RGB":
        img = _flatten(img)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- choosing a size

def _crop_loss(source: float, target: float) -> float:
    """The fraction of a source of aspect ``source`` cut away to fit aspect ``target``."""
    return 1.0 - min(source, target) / max(source, target)


def _total_loss(source: float, platforms: Sequence[Platform]) -> float:
    return sum(_crop_loss(source, p.aspect) for p in platforms)


def best_aspect(platforms: Sequence[Platform], *, min_ratio: float = 1 / 3,
                max_ratio: float = 3.0) -> float:
    """The source aspect ratio (width / height), within [min_ratio, max_ratio], losing the
    least total area when cropped to every platform; ties go to the one nearest square.

    The total loss is concave between consecutive target aspects, so its minimum is at one
    of them (clamped to the range); only those are tried.
    """
    if not platforms:
        raise ValueError("best_aspect needs at least one platform")
    candidates = sorted({_clamp(p.aspect, min_ratio, max_ratio) for p in platforms})
    return min(candidates, key=lambda a: (round(_total_loss(a, platforms), 9), abs(math.log(a))))


def best_size(platforms: Sequence[Platform],
              candidates: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Among the fixed sizes a model offers, the one losing least when cropped to every
    platform; ties go to the larger area."""
    if not candidates:
        raise ValueError("best_size needs at least one candidate size")
    if not platforms:
        raise ValueError("best_size needs at least one platform")
    return min(candidates,
               key=lambda wh: (round(_total_loss(wh[0] / wh[1], platforms), 9), -wh[0] * wh[1]))


def size_for_aspect(aspect: float, *, long_side: int = 1536, multiple: int = 16) -> tuple[int, int]:
    """A (width, height) of about ``aspect`` whose long side is ``long_side`` (rounded to
    ``multiple``) and whose sides are both multiples of ``multiple``."""
    if aspect <= 0:
        raise ValueError("aspect must be positive")
    long_px = max(multiple, round(long_side / multiple) * multiple)
    short_px = max(multiple, round(long_px / max(aspect, 1 / aspect) / multiple) * multiple)
    return (long_px, short_px) if aspect >= 1 else (short_px, long_px)
