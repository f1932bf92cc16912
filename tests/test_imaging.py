"""snapasset.imaging: what a user of the rendered images would notice."""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib

import blurhash
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from snapasset import framing, imaging
from snapasset.errors import InvalidImage
from snapasset.platforms import PLATFORMS, Platform
from workers.rendering import InlineRenderer


def render_all(data, platforms, fmt):
    """Every platform's image through the worker's inline render path."""
    with InlineRenderer().render_each(data, imaging.probe(data), platforms, fmt) as images:
        return list(images)


PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}
GPT_IMAGE_SIZES = [(1024, 1024), (1536, 1024), (1024, 1536)]


def encode(img: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def noise(size: tuple[int, int], seed: int = 1) -> Image.Image:
    rnd = random.Random(seed)
    return Image.frombytes("RGB", size, rnd.randbytes(size[0] * size[1] * 3))


def scene(size=(900, 600)) -> Image.Image:
    """A smooth gradient with some shapes: compresses like a picture, not like noise."""
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    d = ImageDraw.Draw(img)
    for i in range(12):
        d.ellipse((50 + i * 60, 200, 110 + i * 60, 260 + i * 10), fill=(200, 40 + i * 15, 90))
    return img


def subject_image(size, subject_box) -> Image.Image:
    """A flat grey background with a bright, detailed checkered subject inside subject_box."""
    img = Image.new("RGB", size, (90, 90, 90))
    d = ImageDraw.Draw(img)
    left, top, right, bottom = subject_box
    rnd = random.Random(7)
    for y in range(top, bottom, 10):
        for x in range(left, right, 10):
            d.rectangle((x, y, x + 9, y + 9), fill=(255, rnd.randint(150, 255), rnd.randint(0, 255)))
    return img


def opened(rendered: imaging.RenderedImage) -> Image.Image:
    img = Image.open(io.BytesIO(rendered.data))
    img.load()
    return img


@pytest.fixture(scope="module")
def scene_png() -> bytes:
    return encode(scene())


# --------------------------------------------------------------------------- sizes, formats, caps

@pytest.mark.parametrize("fmt", sorted(imaging.FORMATS))
def test_every_platform_gets_its_exact_size_format_and_cap(scene_png, fmt):
    rendered = render_all(scene_png, list(PLATFORMS.values()), fmt)
    assert [r.platform_id for r in rendered] == list(PLATFORMS)
    for platform, r in zip(PLATFORMS.values(), rendered):
        img = opened(r)
        assert img.size == (platform.width, platform.height) == (r.width, r.height)
        assert img.format == PIL_FORMAT[fmt]
        assert (r.content_type, r.extension) == imaging.FORMATS[fmt]
        assert r.size == len(r.data) <= platform.max_bytes
        assert r.blurhash


def test_lossy_formats_step_quality_down_to_fit_a_small_cap():
    source = noise((320, 320))
    for fmt in ("jpeg", "webp"):
        roomy = imaging.render(source, Platform("roomy", "Roomy", 320, 320, 10**8), fmt)
        assert roomy.quality == 88
        cap = (roomy.size + len(encode(source, PIL_FORMAT[fmt], quality=10))) // 2
        tight = imaging.render(source, Platform("tight", "Tight", 320, 320, cap), fmt)
        assert tight.size <= cap
        assert tight.quality < roomy.quality
        assert opened(tight).size == (320, 320)


def test_png_falls_back_to_a_palette_when_lossless_is_over_the_cap():
    source = noise((200, 200))
    lossless = imaging.render(source, Platform("roomy", "Roomy", 200, 200, 10**8), "png")
    assert opened(lossless).mode == "RGB"
    cap = lossless.size * 2 // 3
    fitted = imaging.render(source, Platform("tight", "Tight", 200, 200, cap), "png")
    assert fitted.size <= cap
    img = opened(fitted)
    assert img.format == "PNG" and img.mode == "P" and img.size == (200, 200)


@pytest.mark.parametrize("fmt", sorted(imaging.FORMATS))
def test_an_impossible_cap_raises_invalid_image(fmt):
    with pytest.raises(InvalidImage, match="cannot be encoded"):
        imaging.render(noise((160, 160)), Platform("tiny", "Tiny", 160, 160, 200), fmt)


# --------------------------------------------------------------------------- focal crop

@pytest.mark.parametrize("size, subject, platform_id", [
    ((1500, 500), (1300, 150, 1460, 350), "instagram-story"),   # subject at the right edge
    ((1500, 500), (40, 150, 200, 350), "instagram-post"),       # at the left edge
    ((500, 1500), (150, 40, 350, 200), "twitter-header"),       # at the top of a tall image
])
def test_focal_crop_keeps_a_subject_near_the_edge_in_frame(size, subject, platform_id):
    img = subject_image(size, subject)
    platform = PLATFORMS[platform_id]

    centre_cut = img.crop(imaging.crop_box(img.size, platform.width, platform.height, (0.5, 0.5)))
    assert ImageStat.Stat(centre_cut.convert("L")).stddev[0] < 1  # the centre has nothing in it

    out = opened(render_all(encode(img), [platform], "jpeg")[0])
    bright = out.convert("L").point(lambda v: 255 if v > 160 else 0)
    share = ImageStat.Stat(bright).mean[0] / 255
    assert share > 0.1, "the subject was cropped away"


def test_focal_point_finds_the_subject():
    fx, fy = framing.analyse(subject_image((1200, 800), (950, 500, 1150, 750))).focus
    assert 0.75 < fx < 0.98 and 0.6 < fy < 0.97
    assert framing.analyse(Image.new("RGB", (300, 200), (10, 20, 30))).focus == (0.5, 0.5)


def test_crop_box_is_the_largest_box_of_the_aspect_kept_inside_the_image():
    assert imaging.crop_box((1536, 1024), 1080, 1080, (0.5, 0.5)) == (256, 0, 1280, 1024)
    assert imaging.crop_box((1536, 1024), 1080, 1080, (0.0, 0.5)) == (0, 0, 1024, 1024)
    assert imaging.crop_box((1536, 1024), 1080, 1080, (1.0, 0.5)) == (512, 0, 1536, 1024)
    left, top, right, bottom = imaging.crop_box((1000, 1000), 1500, 500, (0.5, 0.9))
    assert (right - left, bottom - top) == (1000, 333) and bottom == 1000


# --------------------------------------------------------------------------- inputs of every kind

def halves(size, left_colour, right_colour, mode="RGB") -> Image.Image:
    img = Image.new(mode, size, left_colour)
    img.paste(right_colour, (size[0] // 2, 0, size[0], size[1]))
    return img


def test_exif_orientation_is_honoured_and_not_passed_on():
    stored = halves((300, 200), (220, 20, 20), (20, 20, 220))  # red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: red on top, blue below
    data = encode(stored, "JPEG", exif=exif.tobytes(), quality=95)

    assert imaging.decode(data).size == (200, 300)
    out = opened(render_all(data, [PLATFORMS["instagram-story"]], "jpeg")[0])
    top = out.getpixel((540, 200))
    bottom = out.getpixel((540, 1700))
    assert top[0] > 150 and top[2] < 100, top
    assert bottom[2] > 150 and bottom[0] < 100, bottom
    assert 0x0112 not in out.getexif()


@pytest.mark.parametrize("make", [
    pytest.param(lambda: encode(Image.new("CMYK", (120, 80), (0, 255, 255, 0)), "JPEG"), id="cmyk-jpeg"),
    pytest.param(lambda: encode(scene((120, 80)).convert("P"), "PNG"), id="palette-png"),
    pytest.param(lambda: encode(scene((120, 80)).convert("P"), "GIF"), id="gif"),
    pytest.param(lambda: encode(Image.new("LA", (120, 80), (128, 200))), id="gray-alpha"),
    pytest.param(lambda: encode(Image.new("L", (120, 80), 128), "TIFF"), id="gray-tiff"),
    pytest.param(lambda: encode(Image.new("I;16", (120, 80), 32768)), id="16-bit"),
])
@pytest.mark.parametrize("fmt", sorted(imaging.FORMATS))
def test_inputs_of_every_colour_mode_render(make, fmt):
    r = render_all(make(), [PLATFORMS["twitter-post"]], fmt)[0]
    assert opened(r).size == (1200, 675)


def test_cmyk_and_16_bit_keep_their_colours():
    cmyk_red = imaging.decode(encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG"))
    r, g, b = cmyk_red.getpixel((20, 20))
    assert r > 200 and g < 60 and b < 60
    mid_grey = imaging.decode(encode(Image.new("I;16", (40, 40), 32768)))
    assert mid_grey.mode == "RGB"
    assert 110 < mid_grey.getpixel((20, 20))[0] < 145  # scaled, not clipped to white


def test_transparency_becomes_white_in_jpeg_and_stays_in_png_and_webp():
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))  # transparent black
    ImageDraw.Draw(img).rectangle((80, 80, 120, 120), fill=(200, 0, 0, 255))
    data = encode(img)

    jpeg = opened(render_all(data, [PLATFORMS["instagram-post"]], "jpeg")[0])
    assert jpeg.mode == "RGB"
    assert min(jpeg.getpixel((20, 20))) > 245  # white, not black, where alpha was 0

    for fmt in ("png", "webp"):
        out = opened(render_all(data, [PLATFORMS["instagram-post"]], fmt)[0])
        assert out.mode == "RGBA"
        assert out.getpixel((20, 20))[3] == 0
        assert out.getpixel((540, 540))[3] == 255


def test_opaque_alpha_channel_is_dropped_on_decode():
    assert imaging.decode(encode(Image.new("RGBA", (10, 10), (1, 2, 3, 255)))).mode == "RGB"


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("data", [
    b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    pytest.param(encode(scene((200, 200)))[:600], id="truncated-png"),
    pytest.param(encode(scene((200, 200)), "JPEG")[:300], id="truncated-jpeg"),
])
def test_undecodable_bytes_raise_invalid_image(data):
    with pytest.raises(InvalidImage):
        imaging.decode(data)
    with pytest.raises(InvalidImage):
        render_all(data, [PLATFORMS["instagram-post"]], "jpeg")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims width × height pixels."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.parametrize("width, height", [(8000, 8000), (60000, 60000)])
def test_decompression_bombs_are_refused(width, height):
    with pytest.raises(InvalidImage, match="too large"):
        imaging.decode(png_claiming(width, height))


# --------------------------------------------------------------------------- blurhash and previews

def test_blurhash_decodes_to_the_images_colours_and_differs_between_images():
    red_blue = halves((300, 200), (230, 20, 20), (20, 20, 230))
    green = Image.new("RGB", (300, 200), (30, 200, 40))
    hash_rb, hash_green = imaging.blurhash_for(red_blue), imaging.blurhash_for(green)
    assert hash_rb != hash_green
    assert len(hash_rb) == 6 + 2 * (4 * 3 - 1)  # 4×3 components

    pixels = blurhash.decode(hash_rb, 30, 20)
    left, right = pixels[10][2], pixels[10][27]
    assert left[0] > left[2] + 80 and right[2] > right[0] + 80
    flat = blurhash.decode(hash_green, 8, 8)[4][4]
    assert flat[1] > 150 and flat[0] < 80 and flat[2] < 80


@pytest.mark.parametrize("size", [(1080, 1080), (1080, 1920), (1500, 500), (37, 91), (5, 5)])
def test_blurhash_is_the_reference_encoders_to_the_character(size):
    """blurhash_for sums with numpy; the `blurhash` package's own encoder, on the same tiny copy,
    must give the very same string (grain, gradients and flat colour)."""
    grain = Image.effect_noise(size, 60).convert("RGB")
    gradient = Image.merge("RGB", [grain.getchannel(0), Image.linear_gradient("L").resize(size),
                                   grain.getchannel(0).point(lambda v: 255 - v)])
    for picture in (grain, gradient, Image.new("RGB", size, (12, 200, 99))):
        scale = 20 / max(size)
        thumb = picture.resize((max(1, round(size[0] * scale)), max(1, round(size[1] * scale))),
                               Image.Resampling.BOX, reducing_gap=2.0) if scale < 1 else picture
        rows = [[thumb.getpixel((x, y)) for x in range(thumb.width)] for y in range(thumb.height)]
        assert imaging.blurhash_for(picture) == blurhash.encode(rows, 4, 3)


def test_each_rendered_image_has_the_blurhash_of_its_own_crop():
    def red_and_blue_with_subject_at(x: int) -> Image.Image:
        img = halves((1600, 400), (230, 20, 20), (20, 20, 230))
        img.paste(subject_image((120, 120), (0, 0, 120, 120)), (x, 140))
        return img

    post = PLATFORMS["instagram-post"]
    on_the_left = imaging.render(red_and_blue_with_subject_at(100), post, "jpeg")
    on_the_right = imaging.render(red_and_blue_with_subject_at(1380), post, "jpeg")
    red = blurhash.decode(on_the_left.blurhash, 4, 4)[0][0]
    blue = blurhash.decode(on_the_right.blurhash, 4, 4)[0][0]
    assert red[0] > red[2] and blue[2] > blue[0]


def colour_field(size) -> Image.Image:
    """Red rising left to right, blue top to bottom, green in rings, a few objects, some grain:
    every cut of it has a blurhash of its own."""
    width, height = size
    red = Image.linear_gradient("L").rotate(90).resize(size).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    blue = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    img = ImageChops.add(Image.merge("RGB", (red, green, blue)),
                         Image.merge("RGB", [Image.effect_noise(size, 12) for _ in range(3)]), offset=-128)
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.6, height * 0.3, width * 0.8, height * 0.6), fill=(250, 240, 30))
    draw.rectangle((width * 0.1, height * 0.7, width * 0.25, height * 0.95), fill=(20, 10, 60))
    return img


def placeholder_error(hash_: str, frame: Image.Image) -> float:
    """How far a blurhash, decoded, is from the frame it stands for (mean |difference| of a
    24-px thumbnail's channels, 0..255)."""
    scale = 24 / max(frame.size)
    size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
    thumb = frame.resize(size, Image.Resampling.BOX).tobytes()
    shown = bytes(value for row in blurhash.decode(hash_, *size) for pixel in row for value in pixel)
    return sum(abs(a - b) for a, b in zip(thumb, shown)) / len(thumb)


@pytest.mark.parametrize("size", GPT_IMAGE_SIZES)
def test_a_cover_frames_blurhash_stands_for_the_frame_as_well_as_the_frames_own(size):
    """render() takes a cover frame's blurhash thumbnail from the picture's miniature, not from
    the full-size frame: decoded, it is as close to the frame as blurhash_for(the frame) is,
    within a few levels (4×3 components are 17-35 levels from a grainy frame either way; a
    thumbnail of the wrong part of the picture is 6-40 levels further), for every platform:
    wide bands, tall cuts and the zoomed-in cuts of the safe zones."""
    picture = colour_field(size)
    analysis = framing.analyse(picture)
    small = imaging.miniature_of(picture)
    for platform in PLATFORMS.values():
        rendered = imaging.render(picture, platform, "jpeg", analysis=analysis, miniature=small)
        assert rendered.blurhash == imaging.render(picture, platform, "jpeg", analysis=analysis).blurhash
        frame = imaging.frame(picture, platform, analysis)
        own = placeholder_error(imaging.blurhash_for(frame), frame)
        assert placeholder_error(rendered.blurhash, frame) <= own + 3, platform.id


def test_a_contain_frames_blurhash_is_taken_from_the_whole_frame():
    picture = colour_field((1536, 1024))
    story = PLATFORMS["instagram-story"]
    analysis = framing.analyse(picture)
    rendered = imaging.render(picture, story, "jpeg", analysis=analysis, fit="contain")
    assert rendered.blurhash == imaging.blurhash_for(imaging.frame(picture, story, analysis, "contain"))


def test_preview_data_url_is_a_small_jpeg():
    url = imaging.preview_data_url(encode(noise((1536, 1024))))
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    img = Image.open(io.BytesIO(base64.b64decode(url[len(prefix):])))
    # big enough to be worth watching on the page (shown 320+ px wide), small enough for a stream
    assert img.format == "JPEG" and max(img.size) == imaging.PREVIEW_SIDE and img.size == (384, 256)
    assert len(url) < 60_000


# --------------------------------------------------------------------------- choosing a size

def platforms(*ids):
    return [PLATFORMS[i] for i in ids]


def test_best_aspect():
    assert imaging.best_aspect(platforms("instagram-story")) == pytest.approx(1080 / 1920)
    assert imaging.best_aspect(platforms("twitter-header")) == pytest.approx(3.0)
    # square and 16:9 lose the same; the tie goes to the one nearer square
    assert imaging.best_aspect(platforms("instagram-post", "twitter-post")) == pytest.approx(1.0)
    assert imaging.best_aspect(platforms("twitter-post", "facebook-post", "og-image")) == pytest.approx(1200 / 630)
    very_wide = Platform("banner", "Banner", 2000, 100, 10**6)
    assert imaging.best_aspect([very_wide]) == pytest.approx(3.0)
    assert imaging.best_aspect([very_wide], max_ratio=2.0) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        imaging.best_aspect([])


def test_best_size_among_a_models_fixed_sizes():
    assert imaging.best_size(platforms("twitter-post", "facebook-post"), GPT_IMAGE_SIZES) == (1536, 1024)
    assert imaging.best_size(platforms("instagram-story", "pinterest-pin"), GPT_IMAGE_SIZES) == (1024, 1536)
    assert imaging.best_size(platforms("instagram-post"), GPT_IMAGE_SIZES) == (1024, 1024)
    # a tie between equal aspects goes to the larger area
    assert imaging.best_size(platforms("instagram-post"), [(512, 512), (1024, 1024)]) == (1024, 1024)


@pytest.mark.parametrize("aspect", [1.0, 16 / 9, 1080 / 1920, 3.0, 1200 / 630, 0.8])
def test_size_for_aspect(aspect):
    w, h = imaging.size_for_aspect(aspect)
    assert w % 16 == 0 and h % 16 == 0
    assert max(w, h) == 1536
    assert w / h == pytest.approx(aspect, rel=0.03)


# --------------------------------------------------------------------------- encoding choices

def test_jpeg_is_optimised_and_sequential(scene_png):
    out = render_all(scene_png, [PLATFORMS["twitter-post"]], "jpeg")[0]
    img = opened(out)
    assert not (img.info.get("progressive") or img.info.get("progression"))   # twice the encode time
    source = imaging.decode(scene_png)
    plain = io.BytesIO()
    imaging.frame(source, PLATFORMS["twitter-post"], framing.analyse(source)).save(plain, "JPEG", quality=out.quality)
    assert out.size < len(plain.getvalue())   # the same pixels in fewer bytes


def test_avif_outputs_decode_with_alpha_kept():
    img = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((100, 100, 300, 300), fill=(30, 160, 90, 255))
    out = imaging.render(img, PLATFORMS["instagram-post"], "avif")
    decoded = opened(out)
    assert (decoded.format, decoded.size, out.content_type, out.extension) == ("AVIF", (1080, 1080), "image/avif", "avif")
    assert decoded.convert("RGBA").getpixel((20, 20))[3] == 0
    r, g, b, a = decoded.convert("RGBA").getpixel((540, 540))
    assert a == 255 and g > r + 60 and g > b + 40


def test_the_png_palette_fallback_is_dithered_so_a_sky_does_not_band():
    sky = Image.linear_gradient("L").resize((600, 600))
    sky = Image.merge("RGB", (sky.point(lambda v: 40 + v // 3), sky.point(lambda v: 90 + v // 2),
                              sky.point(lambda v: 160 + v // 3)))
    sky.paste(noise((600, 40)), (0, 560))   # enough detail that lossless PNG is over the cap
    lossless = imaging.render(sky, Platform("roomy", "Roomy", 600, 600, 10**8), "png")
    fitted = opened(imaging.render(sky, Platform("tight", "Tight", 600, 600, lossless.size * 2 // 3), "png"))
    assert fitted.mode == "P"
    seen = lambda img: img.convert("L").crop((0, 0, 600, 540)).filter(ImageFilter.GaussianBlur(2))  # noqa: E731
    banded = sky.quantize(len(fitted.getcolors()), method=Image.Quantize.FASTOCTREE)
    error = lambda img: ImageStat.Stat(ImageChops.difference(seen(img), seen(sky))).mean[0]  # noqa: E731
    assert error(fitted) < error(banded) / 2
