"""snapasset.framing and the render path's fit modes: what a user would see in each output."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageStat

from snapasset import framing, imaging
from snapasset.platforms import PLATFORMS, Platform

# Four marker colours no scene uses elsewhere: one at each corner of the subject.
MARKERS = [(255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 0, 0)]


def detailed(draw: ImageDraw.ImageDraw, box, seed: int, markers: bool = False) -> None:
    """A detailed object filling ``box``: coloured tiles; with markers at its four corners."""
    left, top, right, bottom = box
    rnd = random.Random(seed)
    draw.rectangle(box, fill=(200, 90, 40))
    step = max(6, (right - left) // 12)
    for y in range(top, bottom, step):
        for x in range(left, right, step):
            draw.rectangle((x + 1, y + 1, x + step - 2, y + step - 2),
                           fill=(rnd.randint(120, 255), rnd.randint(60, 200), rnd.randint(0, 120)))
    if markers:
        side = max(10, (right - left) // 8)
        for colour, (x, y) in zip(MARKERS, [(left, top), (right - side, top), (left, bottom - side),
                                            (right - side, bottom - side)]):
            draw.rectangle((x, y, x + side - 1, y + side - 1), fill=colour)


def two_subject_scene(size=(1536, 1024), subject_at=0.22, seed=3) -> Image.Image:
    """A sky, a detailed horizon band, the subject on one side and a smaller detailed object
    (a 'sun') on the other: the scene where an average of all detail lands on empty sky."""
    width, height = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    img = Image.merge("RGB", [img.getchannel(0).point(lambda v: 110 + v // 3),
                              img.getchannel(0).point(lambda v: 150 + v // 4), Image.new("L", size, 235)])
    d = ImageDraw.Draw(img)
    horizon = int(height * 0.68)
    d.rectangle((0, horizon, width, height), fill=(70, 110, 60))
    rnd = random.Random(seed)
    for x in range(0, width, 12):   # a detailed band of trees across the whole width
        d.polygon([(x, horizon), (x + 6, horizon - rnd.randint(15, 40)), (x + 12, horizon)], fill=(30, 70, 35))
    unit = min(width, height)
    # as large as still fits whole in the narrowest frame of every platform
    sub_w = int(0.6 * min(framing.cover_box(size, p.width, p.height)[0] for p in PLATFORMS.values()))
    sub_h = int(0.75 * min(framing.cover_box(size, p.width, p.height)[1] for p in PLATFORMS.values()))
    cx = int(width * subject_at)
    detailed(d, (cx - sub_w // 2, horizon - sub_h, cx + sub_w // 2, horizon), seed, markers=True)
    other = int(unit * 0.14)
    ox = int(width * (1 - subject_at))
    detailed(d, (ox - other // 2, int(height * 0.12), ox + other // 2, int(height * 0.12) + other), seed + 1)
    return img


def markers_in(img: Image.Image) -> list[bool]:
    """Which of the four corner markers the (losslessly encoded) output still shows."""
    arr = np.asarray(img.convert("RGB"), dtype=np.int16)
    return [bool((np.abs(arr - colour).sum(axis=2) < 30).sum() >= 16) for colour in MARKERS]


def opened(rendered: imaging.RenderedImage) -> Image.Image:
    img = Image.open(io.BytesIO(rendered.data))
    img.load()
    return img


@pytest.mark.parametrize("size, subject_at", [((1536, 1024), 0.22), ((1536, 1024), 0.8),
                                              ((1024, 1536), 0.25), ((1536, 864), 0.75)])
def test_a_two_subject_scene_keeps_the_bigger_subject_whole_on_every_platform(size, subject_at):
    source = two_subject_scene(size, subject_at)
    analysis = framing.analyse(source)
    for platform in PLATFORMS.values():
        out = opened(imaging.render(source, platform, "png", analysis=analysis))
        assert out.size == (platform.width, platform.height)
        assert markers_in(out) == [True] * 4, f"{platform.id} cut the subject"


def test_the_centre_of_all_detail_would_have_lost_it():
    """The scene is a real test: a centre crop of it keeps no corner of the subject on a story."""
    source = two_subject_scene((1536, 1024), 0.15)
    story = PLATFORMS["instagram-story"]
    centre = source.crop(imaging.crop_box(source.size, story.width, story.height))
    assert not any(markers_in(centre))


def test_fit_contain_keeps_all_four_corners_of_the_picture_on_a_soft_surround():
    source = Image.new("RGB", (1536, 1024), (90, 140, 200))
    ImageDraw.Draw(source).ellipse((500, 300, 1000, 800), fill=(240, 200, 60))
    corners = {(0, 0): (255, 0, 0), (1, 0): (0, 255, 0), (0, 1): (0, 0, 255), (1, 1): (255, 255, 255)}
    for (cx, cy), colour in corners.items():
        x, y = cx * (1536 - 120), cy * (1024 - 120)
        source.paste(colour, (x, y, x + 120, y + 120))
    analysis = framing.analyse(source)
    for platform in PLATFORMS.values():
        out = opened(imaging.render(source, platform, "png", analysis=analysis, fit="contain")).convert("RGB")
        assert out.size == (platform.width, platform.height)
        left, top, right, bottom = imaging.contain_layout(analysis, platform)
        inset = 4   # inside each corner patch, clear of resampling at its edge
        for (cx, cy), colour in corners.items():
            x = left + inset if cx == 0 else right - 1 - inset
            y = top + inset if cy == 0 else bottom - 1 - inset
            assert all(abs(a - b) < 40 for a, b in zip(out.getpixel((x, y)), colour)), (platform.id, (cx, cy))
        surround = [out.crop(box) for box in ((0, 0, platform.width, top), (0, bottom, platform.width, platform.height),
                                              (0, 0, left, platform.height), (right, 0, platform.width, platform.height))
                    if box[2] - box[0] > 8 and box[3] - box[1] > 8]
        for band in surround:   # never a flat bar: the band varies, continuing the picture's colours
            assert len(band.getcolors(1 << 20)) > 20, platform.id


def test_fit_contain_continues_the_pictures_edge_into_the_surround():
    source = Image.new("RGB", (1000, 1000), (30, 30, 200))
    source.paste((230, 40, 40), (0, 0, 1000, 500))   # red top half, blue bottom half
    out = opened(imaging.render(source, PLATFORMS["twitter-post"], "png", fit="contain")).convert("RGB")
    left, top, right, bottom = imaging.contain_layout(framing.analyse(source), PLATFORMS["twitter-post"])
    beside_top = out.getpixel((left // 2, top + (bottom - top) // 5))
    beside_bottom = out.getpixel((left // 2, bottom - (bottom - top) // 5))
    assert beside_top[0] > beside_top[2] and beside_bottom[2] > beside_bottom[0]


def tall_scene_with_subject_at(top: int, size=(1080, 2400)) -> Image.Image:
    width, height = size
    img = Image.new("RGB", size, (120, 170, 230))
    ImageDraw.Draw(img).rectangle((0, int(height * 0.75), width, height), fill=(80, 120, 70))
    detailed(ImageDraw.Draw(img), (340, top, 740, top + 360), 5, markers=True)
    return img


# 250: centred on the subject, the frame would leave its top under the app's status bar; the
# frame zooms in a little (keeping 75 % of the largest one) so it clears it. 700 and 1480:
# room enough without zooming.
@pytest.mark.parametrize("top", [250, 700, 1480])
def test_a_storys_subject_stays_out_of_the_apps_controls_when_the_picture_allows(top):
    story = PLATFORMS["instagram-story"]
    out = opened(imaging.render(tall_scene_with_subject_at(top), story, "png")).convert("RGB")
    arr = np.asarray(out, dtype=np.int16)
    rows = np.nonzero((np.abs(arr - MARKERS[0]).sum(axis=2) < 30).any(axis=1)
                      | (np.abs(arr - MARKERS[3]).sum(axis=2) < 30).any(axis=1))[0]
    assert markers_in(out) == [True] * 4
    assert rows.min() >= story.safe_top * story.height
    assert rows.max() <= (1 - story.safe_bottom) * story.height


def test_a_story_from_a_picture_of_its_own_shape_zooms_a_little_to_clear_the_controls():
    story = PLATFORMS["instagram-story"]
    source = Image.new("RGB", (1080, 1920), (120, 170, 230))
    detailed(ImageDraw.Draw(source), (400, 240, 680, 520), 9, markers=True)   # just inside the top 14 %
    box = framing.frame_box(framing.analyse(source), story.width, story.height,
                            safe_top=story.safe_top, safe_bottom=story.safe_bottom)
    kept = (box[2] - box[0]) * (box[3] - box[1]) / (1080 * 1920)
    assert framing.MIN_KEPT_AREA - 0.01 <= kept < 1
    band_top = box[1] + story.safe_top * (box[3] - box[1])
    assert band_top <= 240 and box[0] <= 400 and box[2] >= 680


def test_without_a_subject_the_frame_is_centred():
    flat = Image.new("RGB", (1536, 1024), (40, 50, 60))
    analysis = framing.analyse(flat)
    assert analysis.subject is None and analysis.focus == (0.5, 0.5)
    assert framing.frame_box(analysis, 1080, 1080) == (256, 0, 1280, 1024)


# --------------------------------------------------------------------------- pictures per shape

def sizes_like_gpt_image_2(platforms):
    """The provider's size choice for a group: its best aspect at a 1536-px long side."""
    return imaging.size_for_aspect(imaging.best_aspect(platforms))


def test_the_readme_job_takes_three_pictures_and_enlarges_nothing_past_the_limit():
    platforms = [PLATFORMS[p] for p in ("instagram-post", "instagram-story", "twitter-post", "facebook-post")]
    plans = framing.plan_sources(platforms, sizes_like_gpt_image_2, max_sources=3)
    assert len(plans) <= 3
    assert sorted(p.id for plan in plans for p in plan.platforms) == sorted(p.id for p in platforms)
    for plan in plans:
        for platform in plan.platforms:
            box_w, box_h = framing.cover_box(plan.size, platform.width, platform.height)
            assert platform.width / box_w <= framing.MAX_ENLARGEMENT + 1e-9
            assert box_w * box_h / (plan.size[0] * plan.size[1]) >= framing.MIN_KEPT_AREA


def test_one_source_keeps_one_picture_per_job():
    platforms = [PLATFORMS[p] for p in ("instagram-post", "instagram-story", "twitter-post")]
    plans = framing.plan_sources(platforms, sizes_like_gpt_image_2, max_sources=1)
    assert len(plans) == 1 and plans[0].platforms == tuple(platforms)


def test_platforms_of_one_shape_share_a_picture():
    platforms = [PLATFORMS[p] for p in ("twitter-post", "facebook-post", "og-image", "linkedin-post")]
    assert len(framing.plan_sources(platforms, sizes_like_gpt_image_2, max_sources=3)) == 1


def test_plans_follow_the_jobs_platform_order():
    platforms = [PLATFORMS[p] for p in ("twitter-post", "instagram-story", "instagram-post")]
    plans = framing.plan_sources(platforms, sizes_like_gpt_image_2, max_sources=3)
    assert [plan.platforms[0].id for plan in plans] == ["twitter-post", "instagram-story", "instagram-post"]


def test_every_platform_within_the_limits_with_a_fourth_picture_for_all_eleven():
    platforms = list(PLATFORMS.values())
    plans = framing.plan_sources(platforms, sizes_like_gpt_image_2, max_sources=4)
    for plan in plans:
        for platform in plan.platforms:
            box_w, box_h = framing.cover_box(plan.size, platform.width, platform.height)
            assert box_w * box_h / (plan.size[0] * plan.size[1]) >= framing.MIN_KEPT_AREA


def test_a_custom_platform_is_framed_like_a_built_in_one():
    banner = Platform("shop-banner", "Shop banner", 1600, 400, 5_000_000)
    out = opened(imaging.render(two_subject_scene((1536, 1024), 0.8), banner, "png"))
    assert out.size == (1600, 400) and markers_in(out) == [True] * 4
    assert ImageStat.Stat(out.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0] > 1


# --------------------------------------------------------------------------- the map's cells, done fast

def test_a_dilated_map_is_pillows_max_filter_of_it():
    """framing._dilated (two passes of shifted maxima) gives the cells Pillow's MaxFilter gives
    (a sort per window, 30× slower on a 96-cell map), the window cut off at the map's edges."""
    rnd = np.random.default_rng(1)
    for _ in range(300):
        height, width = rnd.integers(1, 100, 2)
        cells = rnd.random((height, width)) < rnd.random() * 0.3
        for window in (3, 7):
            pillow = np.asarray(Image.fromarray(np.uint8(cells) * 255).filter(ImageFilter.MaxFilter(window))) > 0
            assert np.array_equal(framing._dilated(cells, window), pillow), (height, width, window)


def labels_cell_by_cell(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The plain breadth-first fill framing._label_cells replaced: numbers the 8-connected areas
    of mask holding a seed, in the order of their first seed row by row."""
    height, width = mask.shape
    labels = np.zeros((height, width), dtype=np.int32)
    label = 0
    for y, x in zip(*np.nonzero(seeds & mask)):
        if labels[y, x]:
            continue
        label += 1
        labels[y, x] = label
        queue = [(y, x)]
        while queue:
            cy, cx = queue.pop()
            for ny in range(max(0, cy - 1), min(height, cy + 2)):
                for nx in range(max(0, cx - 1), min(width, cx + 2)):
                    if mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = label
                        queue.append((ny, nx))
    return labels


def test_the_labelled_regions_are_the_seeded_8_connected_areas_in_seed_order():
    rnd = np.random.default_rng(2)
    for _ in range(1500):
        height, width = rnd.integers(1, 60, 2)
        mask = rnd.random((height, width)) < rnd.random()
        seeds = rnd.random((height, width)) < rnd.random() * 0.2
        assert np.array_equal(framing._label_cells(mask, seeds), labels_cell_by_cell(mask, seeds)), (height, width)


@pytest.mark.parametrize("size", [(1536, 1024), (1024, 1536), (1000, 1000), (150, 90)])
def test_analysing_the_pictures_miniature_is_analysing_the_picture(size):
    """The render processes reduce a picture once (imaging.miniature_of) for both its analysis and
    its blurhashes: the analysis is the one analyse() finds by itself."""
    picture = two_subject_scene(size, 0.8)
    alone = framing.analyse(picture)
    shared = framing.analyse(picture, reduced=imaging.miniature_of(picture).image)
    assert alone.regions == shared.regions and alone.regions
    assert np.array_equal(alone.integral, shared.integral)
    assert np.array_equal(alone.subject_integral, shared.subject_integral)
