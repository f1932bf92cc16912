"""Pillow work of a job: decode the model's image, frame it for each platform (``fit``: cut
around its subject, or the whole picture on a soft extension of its own edges), encode under
the platform's byte cap, and a blurhash placeholder for each. Where the subject is and where
each frame goes is snapasset.framing's work.

Also the geometry used to choose what size to ask a model for (``best_aspect``,
``best_size``, ``size_for_aspect``) and the small previews streamed while a model draws.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from blurhash.blurhash import base83_encode as _base83, linear_to_srgb as _linear_to_srgb
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from snapasset import framing
from snapasset.errors import InvalidImage
from snapasset.platforms import Platform
from snapasset.schema import FITS

__all__ = [
    "FORMATS", "MAX_PIXELS", "RenderedImage", "probe", "decode", "crop_box", "frame", "render",
    "contain_layout", "extension_canvas", "blurhash_for", "Miniature", "miniature_of", "blurhash_of_cut",
    "best_aspect", "best_size", "size_for_aspect", "preview_data_url",
    "allowed_input_formats",
]

# Output format name → (content type, file extension without the dot).
FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": ("image/jpeg", "jpg"),
    "png": ("image/png", "png"),
    "webp": ("image/webp", "webp"),
    "avif": ("image/avif", "avif"),
}
# How a picture fills a platform's frame (schema.FITS, SPEC §5): cut around the subject
# (cover), the whole picture on a soft extension of its edges (contain), or the model painting
# the rest (extend: done by the provider before rendering; rendered as contain otherwise).
_FORMAT_ALIASES = {"jpg": "jpeg"}

# Largest input accepted. Image models return a few megapixels (4K is 8.3 MP); anything far
# beyond is a decompression bomb or a mistake, refused before its pixels are allocated.
MAX_PIXELS = 40_000_000

# Input formats worth opening; the rest of Pillow's plugins are attack surface we do not need.
_INPUT_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "GIF", "BMP", "TIFF", "AVIF")

# Qualities tried in turn for the lossy formats until the bytes fit the platform's cap.
_LOSSY_QUALITIES = (88, 82, 75, 68, 60, 50, 40, 30, 20, 10)
# Palette sizes tried for PNG once lossless encoding is over the cap; the palette's colours
# are spread over the picture by Floyd–Steinberg dithering, so skies do not band.
_PNG_COLOURS = (256, 128, 64, 32, 16)
# zlib level of the first PNG attempt: level 3 is ~2.5× faster than the default 6 on photos
# for ~10 % more bytes; the caps leave room, and optimize (level 9) is the next attempt.
_PNG_FIRST_LEVEL = 3
# WebP effort: 4 is libwebp's default and a fair size/speed trade on the hot path.
_WEBP_METHOD = 4
# AVIF effort: libavif's speed 8 encodes a 1080-px frame ~3× faster than its default 6 for
# a few per cent more bytes (bench/encoding.py).
_AVIF_SPEED = 8

_WHITE = (255, 255, 255)
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
    format: str           # "jpeg" | "png" | "webp" | "avif"
    content_type: str
    extension: str        # without the dot: "jpg", "png", "webp", "avif"
    data: bytes
    blurhash: str
    quality: int | None = None   # encoder quality used (JPEG/WebP/AVIF); None for PNG

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
        img = Image.open(io.BytesIO(data), formats=allowed_input_formats())
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise InvalidImage(f"The image is too large to process ({width}×{height} pixels, "
                               f"at most {MAX_PIXELS:,} allowed)")
        img.load()
    except InvalidImage:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"The image is too large to process (at most {MAX_PIXELS:,} pixels allowed)") from exc
    except _DECODE_ERRORS as exc:   # Pillow's text names the buffer's repr, never worth a client's eyes
        raise InvalidImage("The image could not be decoded: it is not a complete picture in a format we read") from exc
    if img.width < 1 or img.height < 1:
        raise InvalidImage("The image has no pixels")
    ImageOps.exif_transpose(img, in_place=True)
    img = _to_srgb(img)
    img = _normalise_mode(img)
    img.info = {}  # EXIF, ICC (already applied), text chunks: none of it goes out again
    return img


def probe(data: bytes, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """The (width, height) encoded image bytes say they have, read from the header alone (no
    pixel is decoded). Raises InvalidImage for bytes that are not an image, or for more pixels
    than ``max_pixels`` — what the source can legitimately send — before any memory is spent."""
    try:
        with Image.open(io.BytesIO(data), formats=allowed_input_formats()) as img:
            width, height = img.size
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"The image could not be decoded: {exc}") from exc
    if width * height > max_pixels:
        raise InvalidImage(f"The image is larger than its source can send ({width}×{height} pixels, "
                           f"at most {max_pixels:,} expected)")
    return width, height


def allowed_input_formats() -> list[str]:
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


# --------------------------------------------------------------------------- framing

def crop_box(size: tuple[int, int], target_w: int, target_h: int,
             focus: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int, int, int]:
    """The largest box of the target's aspect ratio inside an image of ``size``, placed so
    the focus is as central as the image's edges allow. Returns (left, top, right, bottom)."""
    width, height = size
    box_w, box_h = framing.cover_box(size, target_w, target_h)
    box_w, box_h = max(1, min(width, round(box_w))), max(1, min(height, round(box_h)))
    fx, fy = focus
    left = _clamp(round(fx * width - box_w / 2), 0, width - box_w)
    top = _clamp(round(fy * height - box_h / 2), 0, height - box_h)
    return left, top, left + box_w, top + box_h


def _clamp(value, low, high):
    return max(low, min(high, value))


def contain_layout(analysis: framing.Analysis, platform: Platform) -> tuple[int, int, int, int]:
    """Where the whole picture sits in the platform's frame under ``contain``: scaled to fit,
    centred, but moved (where there is room) to bring its subject out of the platform's safe
    zones. Returns (left, top, right, bottom) in the frame's pixels."""
    width, height = analysis.size
    scale = min(platform.width / width, platform.height / height)
    inner_w = min(platform.width, max(1, round(width * scale)))
    inner_h = min(platform.height, max(1, round(height * scale)))
    left, top = (platform.width - inner_w) // 2, (platform.height - inner_h) // 2
    subject = analysis.subject
    if subject is not None and (platform.safe_top or platform.safe_bottom) and inner_h < platform.height:
        band_top = platform.safe_top * platform.height
        band_bottom = (1 - platform.safe_bottom) * platform.height
        centre = top + subject.centre[1] * inner_h
        wanted = top + (band_top + band_bottom) / 2 - centre
        top = _clamp(round(wanted), 0, platform.height - inner_h)
    return left, top, left + inner_w, top + inner_h


def extension_canvas(img: Image.Image, analysis: framing.Analysis, platform: Platform,
                     size: tuple[int, int]) -> bytes:
    """For ``fit=extend``: the picture laid out as ``contain`` lays it out in the platform's
    frame, on a canvas of ``size`` (a size the model paints at, of about the platform's aspect),
    the rest transparent — a PNG that is both the image and the mask of an image edit."""
    canvas_frame = dataclasses.replace(platform, width=size[0], height=size[1])
    left, top, right, bottom = contain_layout(analysis, canvas_frame)
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    inner = img.convert("RGBA").resize((right - left, bottom - top), Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas.paste(inner, (left, top))
    buf = io.BytesIO()
    canvas.save(buf, "PNG", compress_level=_PNG_FIRST_LEVEL)
    return buf.getvalue()


def frame(img: Image.Image, platform: Platform, analysis: framing.Analysis, fit: str = "cover") -> Image.Image:
    """The picture as the platform shows it, exactly its size: under ``cover`` the frame
    framing.frame_box places around the subject (safe zones honoured), under ``contain``
    (and ``extend``, once the model has painted or could not) the whole picture on a soft
    extension of its own edges."""
    return _frame(img, platform, analysis, fit)[0]


def _frame(img: Image.Image, platform: Platform, analysis: framing.Analysis,
           fit: str) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
    """frame(), and under ``cover`` the box of the picture it shows (None under contain)."""
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}; expected one of {', '.join(FITS)}")
    size = (platform.width, platform.height)
    if fit == "cover":
        box = framing.frame_box(analysis, platform.width, platform.height,
                                safe_top=platform.safe_top, safe_bottom=platform.safe_bottom)
        # reducing_gap lets Pillow box-reduce large downscales first: same look, a fraction of the time
        return img.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0), box
    left, top, right, bottom = contain_layout(analysis, platform)
    inner = img.resize((right - left, bottom - top), Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = _soft_surround(img, inner, size, (left, top))
    canvas.paste(inner, (left, top))
    return canvas, None


# The surround is built on a copy this many times smaller than the frame: it is all blur.
_SURROUND_REDUCTION = 8


def _soft_surround(img: Image.Image, inner: Image.Image, size: tuple[int, int],
                   at: tuple[int, int]) -> Image.Image:
    """A frame-sized background continuing the picture past its edges: the picture's border
    rows (or columns) stretched outwards and blurred, fading into a blurred, dimmed copy of
    the whole picture scaled to cover the frame. Never flat bars; no hard seam."""
    width, height = size
    small = (max(1, width // _SURROUND_REDUCTION), max(1, height // _SURROUND_REDUCTION))
    cover = img.resize(small, Image.Resampling.BOX,
                       box=crop_box(img.size, width, height), reducing_gap=2.0)
    radius = max(small) / 12
    cover = ImageEnhance.Brightness(cover.filter(ImageFilter.GaussianBlur(radius))).enhance(0.85)
    # the picture's edge, stretched outwards: rows above and below, columns left and right
    left, top = at
    k = _SURROUND_REDUCTION
    edge = Image.new(inner.mode, small)
    edge.paste(inner.resize((max(1, inner.width // k), max(1, inner.height // k)), Image.Resampling.BOX),
               (left // k, top // k))
    inner_box = (left // k, top // k, left // k + max(1, inner.width // k), top // k + max(1, inner.height // k))
    stretched = _stretch_edges(edge, inner_box)
    fade = _fade_mask(small, inner_box)
    blended = Image.composite(stretched, cover.convert(inner.mode), fade)
    return blended.resize(size, Image.Resampling.BICUBIC)


def _stretch_edges(canvas: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """Repeat the outermost row/column of ``box`` across the canvas beyond each side, each
    softened along its length first (so the band is smooth, and nothing of the picture's
    inside bleeds into it)."""
    left, top, right, bottom = box
    out = canvas.copy()
    width, height = canvas.size

    def soft(strip: Image.Image, size: tuple[int, int]) -> Image.Image:
        long_side = max(strip.size)
        small = (max(1, strip.width * 6 // long_side), max(1, strip.height * 6 // long_side))
        return strip.resize(small, Image.Resampling.BOX).resize(size, Image.Resampling.BICUBIC)

    if top > 0:
        out.paste(soft(canvas.crop((left, top, right, top + 1)), (right - left, top)), (left, 0))
    if bottom < height:
        out.paste(soft(canvas.crop((left, bottom - 1, right, bottom)), (right - left, height - bottom)),
                  (left, bottom))
    if left > 0:
        out.paste(soft(out.crop((left, 0, left + 1, height)), (left, height)), (0, 0))
    if right < width:
        out.paste(soft(out.crop((right - 1, 0, right, height)), (width - right, height)), (right, 0))
    return out


def _fade_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """255 at the picture's edge fading to 0 the frame's short side away from it: the
    stretched edge near the seam (all of a narrow band), the blurred whole picture further out."""
    width, height = size
    left, top, right, bottom = box
    reach = max(1.0, float(min(width, height)))
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    away_x = np.maximum(np.maximum(left - xs, xs - (right - 1)), 0)
    away_y = np.maximum(np.maximum(top - ys, ys - (bottom - 1)), 0)
    away = np.maximum.outer(away_y, away_x)
    return Image.fromarray(np.uint8(np.clip(1 - away / reach, 0, 1) * 255))


# --------------------------------------------------------------------------- rendering

def render(img: Image.Image, platform: Platform, fmt: str, *, analysis: framing.Analysis | None = None,
           fit: str = "cover", miniature: Miniature | None = None) -> RenderedImage:
    """Frame ``img`` for the platform (see ``frame``) and encode it in ``fmt`` under the
    platform's byte cap. ``img`` is best one returned by ``decode`` (other modes are
    normalised the same way first); ``analysis`` is framing.analyse(img) and ``miniature``
    miniature_of(img), both found once per picture and shared by its platforms (found here when
    not given)."""
    fmt = _format(fmt)
    if img.mode not in ("RGB", "RGBA"):
        img = _normalise_mode(img)
    if analysis is None:
        miniature = miniature or miniature_of(img)
        analysis = framing.analyse(img, reduced=miniature.image)
    out, box = _frame(img, platform, analysis, fit)
    if out.mode not in ("RGB", "RGBA"):
        out = out.convert("RGBA" if "A" in out.mode else "RGB")
    if fmt == "jpeg" and out.mode == "RGBA":
        out = _flatten(out)
    data, quality = _encode_under(out, fmt, platform)
    if box is None:          # contain: the frame is more than a cut of the picture
        placeholder = blurhash_for(out)
    else:                    # cover: the same cut of the picture's miniature, not of the full-size frame
        placeholder = blurhash_of_cut(miniature or miniature_of(img), box, out.size)
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
        yield lambda colours=colours: _save(_dithered_palette(img, colours), "png", optimize=True)


def _dithered_palette(img: Image.Image, colours: int) -> Image.Image:
    """``img`` in a palette of ``colours``, error-diffused (Pillow only dithers when it is given
    the palette, so the palette is found first, then applied)."""
    if img.mode == "RGBA":   # Pillow's dithering works on RGB; octree keeps alpha in the palette
        return img.quantize(colours, method=Image.Quantize.FASTOCTREE)
    palette = img.quantize(colours, method=Image.Quantize.MEDIANCUT)
    return img.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)


def _save(img: Image.Image, fmt: str, *, quality: int | None = None, optimize: bool = False) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        # optimised Huffman tables: the same pixels in 14-27 % fewer bytes for twice the
        # encode time (bench/encoding.py). Not progressive: progressive scans took twice that
        # again (18.6 against 9.1 ms a 1080×1080 frame) for 0-3 % fewer bytes, a sixth of a
        # job's render time, while what a page shows before an image arrives is its blurhash.
        img.save(buf, "JPEG", quality=quality, optimize=True)
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=quality, method=_WEBP_METHOD)
    elif fmt == "avif":
        img.save(buf, "AVIF", quality=quality, speed=_AVIF_SPEED)
    elif optimize:
        img.save(buf, "PNG", optimize=True)
    else:
        img.save(buf, "PNG", compress_level=_PNG_FIRST_LEVEL)
    return buf.getvalue()

# --------------------------------------------------------------------------- placeholders

@dataclass(frozen=True)
class Miniature:
    """A picture box-reduced ``factor`` times: the copy framing.analyse looks at (96 px on its
    long side), from which each cover frame's blurhash is taken too. A 20-px blurhash thumbnail
    box-averaged from it stands for the frame as well as one box-averaged from the full-size
    frame (which cost 2-2.5 ms a platform to read again); the reduce is done once a picture."""
    image: Image.Image
    factor: int


def miniature_of(img: Image.Image) -> Miniature:
    """The picture's Miniature (once per picture: framing.analyse(img, reduced=its image) uses it)."""
    factor = framing.analysis_factor(img.size)
    return Miniature(img.reduce(factor) if factor > 1 else img.copy(), factor)


def blurhash_of_cut(small: Miniature, box: tuple[int, int, int, int], size: tuple[int, int]) -> str:
    """The blurhash of the picture's ``box`` (in full-size pixels) shown at ``size``: the
    blurhash_for() of that frame, its thumbnail box-averaged from the miniature instead."""
    w, h = size
    scale = _BLURHASH_SIDE / max(w, h)
    thumb_size = (max(1, round(w * scale)), max(1, round(h * scale))) if scale < 1 else size
    left, top, right, bottom = (edge / small.factor for edge in box)
    # (a reduce rounds its size up, so the box is inside the miniature; min() guards the rounding)
    right, bottom = min(right, small.image.width), min(bottom, small.image.height)
    return blurhash_for(small.image.resize(thumb_size, Image.Resampling.BOX, box=(left, top, right, bottom)))


def blurhash_for(img: Image.Image) -> str:
    """The blurhash (4×3 components) of an image, computed on a tiny copy of it.

    The same sums as the `blurhash` package's encoder, over the pixels at once with numpy
    instead of one Python loop step per pixel and component (2.2 ms a platform, most of a
    job's per-platform overhead on the render process); its scalar helpers do the rest."""
    w, h = img.size
    scale = _BLURHASH_SIDE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    thumb = img.resize(size, Image.Resampling.BOX, reducing_gap=2.0) if scale < 1 else img
    if thumb.mode != "RGB":
        thumb = _flatten(thumb) if "A" in thumb.mode else thumb.convert("RGB")
    srgb = np.asarray(thumb, dtype=np.float64) / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    th, tw = linear.shape[:2]
    cx, cy = _BLURHASH_COMPONENTS
    across = np.cos(np.pi * np.outer(np.arange(cx), np.arange(tw)) / tw)     # (cx, tw)
    down = np.cos(np.pi * np.outer(np.arange(cy), np.arange(th)) / th)       # (cy, th)
    factors = np.einsum("jy,ix,yxc->jic", down, across, linear).reshape(cx * cy, 3) * (2.0 / (tw * th))
    factors[0] /= 2.0                                   # the DC factor has weight 1, the others 2
    dc, ac = factors[0], factors[1:]
    max_ac = float(np.abs(ac).max()) if len(ac) else 0.0
    quant_max = int(max(0, min(82, math.floor(max_ac * 166 - 0.5))))
    norm = (quant_max + 1) / 166.0
    quantised = np.clip(np.floor(np.sign(ac) * np.sqrt(np.abs(ac / norm)) * 9.0 + 9.5), 0, 18).astype(int)
    dc_value = (_linear_to_srgb(dc[0]) << 16) + (_linear_to_srgb(dc[1]) << 8) + _linear_to_srgb(dc[2])
    return "".join([_base83((cx - 1) + (cy - 1) * 9, 1), _base83(quant_max, 1), _base83(dc_value, 4),
                    *(_base83(int(r) * 361 + int(g) * 19 + int(b), 2) for r, g, b in quantised)])


PREVIEW_SIDE = 384   # the page shows the live preview 320-480 px wide; larger costs stream bytes


def preview_data_url(data: bytes, *, max_side: int = PREVIEW_SIDE, max_pixels: int = MAX_PIXELS) -> str:
    """A small JPEG ``data:`` URL of encoded image bytes, for SSE ``preview`` fields.

    Decoded small: the header is checked against ``max_pixels`` first, a JPEG is decoded at a
    fraction of its size (draft), and any other format is box-reduced as soon as it is loaded,
    so a large partial image never stays in memory at full size."""
    probe(data, max_pixels=max_pixels)
    try:
        img = Image.open(io.BytesIO(data), formats=allowed_input_formats())
        img.draft("RGB", (max_side, max_side))
        img.load()
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"The image could not be decoded: {exc}") from exc
    if img.mode in ("P", "PA", "1"):    # palette images have no box reduce of their own
        img = img.convert("RGBA")
    factor = max(1, min(img.size) // max_side // 2)
    small = img.reduce(factor) if factor > 1 else img
    small.info = img.info    # the reduced copy keeps the EXIF orientation and ICC profile to apply
    ImageOps.exif_transpose(small, in_place=True)
    img = _normalise_mode(_to_srgb(small))
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
