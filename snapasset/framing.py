"""Where a picture's subject is, where each platform's frame goes, and which pictures to ask a
model for (SPEC §5, Framing).

``analyse`` looks at a picture once (a few milliseconds on a 96-pixel copy): a saliency map
of detail and colour rarity, cut into connected salient regions, the most salient first —
regions[0] is the subject. ``frame_box`` then places each platform's frame: it searches the
positions (and, for safe zones, a few zooms) a frame can take and keeps the one that holds
the subject whole, then as much of the other regions whole as fits, cutting none in half if
it can help it, then the subject near the middle. ``plan_sources`` groups a job's platforms
by shape so that every platform is cut from a picture of nearly its own shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from snapasset.platforms import Platform

__all__ = ["Region", "Analysis", "analyse", "analysis_factor", "frame_box", "cover_box", "SourcePlan", "plan_sources",
           "MIN_KEPT_AREA", "MAX_ENLARGEMENT"]

# The map is computed on a copy this many pixels on its long side: one cell is 16 px of a
# 1536-px picture, finer than any frame needs, and the whole analysis stays a few ms.
ANALYSIS_SIDE = 96
# How much a detailed area of the commonest colour still counts (1 would ignore colour).
_RARITY_FLOOR = 0.3
# What a row (column) holds across 70 % of its length is scenery (see _saliency).
_BAND_QUANTILE = 0.3
# A region must hold at least this share of the picture's saliency to count as an object.
_MIN_REGION_MASS = 0.01
_MAX_REGIONS = 6
# A region is seeded where the map stands a standard deviation above its mean, and at least
# this share of its peak;
_SEED_LEVEL = 0.2
# it reaches out to cells above this share of the seeding level, or of a colour at least
# _RARE_COLOUR rare (0..1), within three cells (a 7-cell window) of its seeds.
_REACH = 0.5
_RARE_COLOUR = 0.5
_REACH_CELLS = 7
# A frame may keep no less than this share of its source, nor enlarge it more than this (§5).
MIN_KEPT_AREA = 0.75
MAX_ENLARGEMENT = 1.25

# What matters in a frame, most first. The weights are far apart so that each criterion
# decides only among frames equal on the ones before it (a soft lexicographic order); the
# scale (zooming in for a safe zone) costs more than centring, so a frame zooms only to clear
# the platform's controls.
_W_SAFE, _W_SUBJECT_WHOLE, _W_SUBJECT_KEPT, _W_OTHERS, _W_SCALE, _W_MASS, _W_CENTRED = (
    400, 200, 60, 30, 20, 8, 3)


@dataclass(frozen=True)
class Region:
    """A connected salient area, in fractions of the picture's width and height."""
    left: float
    top: float
    right: float
    bottom: float
    mass: float          # its share of the picture's whole saliency (0..1)

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def centre(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2


@dataclass(frozen=True)
class Analysis:
    """What ``analyse`` found in one picture; shared by every platform cut from it."""
    size: tuple[int, int]              # the picture's (width, height) in pixels
    regions: tuple[Region, ...]        # most salient first
    integral: np.ndarray               # summed-area table of the normalised map, (h + 1, w + 1)
    subject_integral: np.ndarray       # the same of the subject's own cells, normalised to its mass

    @property
    def subject(self) -> Region | None:
        return self.regions[0] if self.regions else None

    @property
    def focus(self) -> tuple[float, float]:
        """The subject's centre (the picture's centre when nothing stands out)."""
        return self.subject.centre if self.subject else (0.5, 0.5)


# --------------------------------------------------------------------------- the map

def analysis_factor(size: tuple[int, int]) -> int:
    """How many times smaller than the picture the copy ``analyse`` looks at is (a box reduce)."""
    return max(1, max(size) // ANALYSIS_SIDE)


def analyse(img: Image.Image, *, reduced: Image.Image | None = None) -> Analysis:
    """Find the salient regions of a picture (RGB or RGBA). ``reduced``: the picture's
    ``img.reduce(analysis_factor(img.size))``, when the caller has it already."""
    factor = analysis_factor(img.size)
    small = reduced if reduced is not None else img.reduce(factor) if factor > 1 else img
    if small.mode != "RGB":
        small = small.convert("RGB")
    saliency, rarity = _saliency(small)
    regions, subject_cells = _regions(saliency, rarity)
    return Analysis(size=img.size, regions=regions, integral=_summed_area(saliency),
                    subject_integral=_summed_area(np.where(subject_cells, saliency, 0)))


def _summed_area(values: np.ndarray) -> np.ndarray:
    """Summed-area table of ``values`` normalised to their total, one row and column of zeros first."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    total = float(values.sum())
    if total > 0:
        table[1:, 1:] = (values / total).cumsum(0).cumsum(1)
    return table


def _saliency(small: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Detail (luma against its blurred neighbourhood, smoothed into a density) weighted by
    colour rarity (each colour's distance to every other colour, weighted by how much of the
    picture has it: histogram contrast). A horizon is detailed but made of common colours; a
    sun or a cloud is rare but flat inside; a subject is usually both. Returns the map and the
    rarity map (with which a region takes in its plain-coloured parts)."""
    gray = small.convert("L")
    detail = ImageChops.difference(gray, gray.filter(ImageFilter.GaussianBlur(1)))
    radius = max(1.0, max(small.size) / 48)
    detail_map = _normalised(np.asarray(detail.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32))

    ycc = np.asarray(small.convert("YCbCr"), dtype=np.int32)
    bins = ((ycc[..., 0] >> 5) << 6 | (ycc[..., 1] >> 5) << 3 | (ycc[..., 2] >> 5)).ravel()
    counts = np.bincount(bins, minlength=512)
    present = np.nonzero(counts)[0]
    weights = counts[present] / bins.size
    # the bins' mean colours; luma counts half as much as chroma, as in the eye's sense of "another colour"
    means = np.stack([np.bincount(bins, weights=ycc[..., c].ravel(), minlength=512)[present] / counts[present]
                      for c in range(3)], axis=1) * np.array([0.5, 1.0, 1.0])
    distances = np.sqrt(((means[:, None, :] - means[None, :, :]) ** 2).sum(axis=2))
    rarity_of_bin = np.zeros(512, dtype=np.float32)
    rarity_of_bin[present] = distances @ weights
    rarity = rarity_of_bin[bins].reshape(ycc.shape[:2])
    rarity_img = Image.fromarray(np.uint8(_normalised(rarity) * 255))
    rarity_map = np.asarray(rarity_img.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255

    salient = detail_map * (_RARITY_FLOOR + rarity_map)
    # A band across the whole picture (a horizon, a ridge, a shoreline) is scenery: what every
    # row (column) holds across most of its length is taken off, so that an object standing on
    # the horizon is not joined to it. The low quantile ignores objects up to 70 % of a row wide.
    band = np.maximum(np.quantile(salient, _BAND_QUANTILE, axis=1, keepdims=True),
                      np.quantile(salient, _BAND_QUANTILE, axis=0, keepdims=True))
    return _normalised(np.clip(salient - band, 0, None)), rarity_map


def _normalised(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-6:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def _regions(saliency: np.ndarray, rarity: np.ndarray) -> tuple[tuple[Region, ...], np.ndarray]:
    """Connected areas of the map well above its typical level, the most salient first, and
    the cells of the first (the subject). A region that runs from one side of the picture to
    the opposite side (a horizon band, a ridge, a sky) is background, not an object: it is
    left out."""
    total = float(saliency.sum())
    if total <= 0:
        return (), np.zeros(saliency.shape, dtype=bool)
    height, width = saliency.shape
    # hysteresis: a region is seeded where the map stands well above its typical level, and
    # reaches out a little to where it is still clearly above it or of a rare colour, so that
    # an object's plainer parts (a flat body, a roof) stay with its detailed ones without
    # joining a cloud further off
    high = max(float(saliency.mean() + saliency.std()), _SEED_LEVEL)
    seeds = saliency > high
    near_seeds = _dilated(seeds, _REACH_CELLS)
    reach = (saliency > high * _REACH) | (rarity > _RARE_COLOUR)
    # close gaps of a cell, so that the parts of one object (a face's eyes and outline) join
    mask = _dilated(reach & near_seeds, 3)
    labels = _label_cells(mask, seeds)
    found = []
    for label in range(1, int(labels.max()) + 1):
        ys, xs = np.nonzero(labels == label)
        found.append((float(saliency[ys, xs].sum()) / total, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1,
                      label))
    regions, subject_label = [], 0
    for mass, left, top, right, bottom, label in sorted(found, reverse=True):
        spans_width = left == 0 and right == width
        spans_height = top == 0 and bottom == height
        if mass < _MIN_REGION_MASS or spans_width or spans_height:
            continue
        regions.append(Region(left / width, top / height, right / width, bottom / height, mass))
        subject_label = subject_label or label
        if len(regions) == _MAX_REGIONS:
            break
    return tuple(regions), labels == subject_label if subject_label else np.zeros(labels.shape, dtype=bool)


def _dilated(cells: np.ndarray, window: int) -> np.ndarray:
    """The cells within a window × window square (odd) of a true cell, the square cut off at the
    map's edges: Pillow's MaxFilter(window) of the map as 0/255, the same cells, ~30× faster on
    a 96-cell map (two passes of shifted maxima instead of a sort per window)."""
    reach = window // 2
    across = cells.copy()
    for step in range(1, reach + 1):
        np.maximum(across[:, step:], cells[:, :-step], out=across[:, step:])
        np.maximum(across[:, :-step], cells[:, step:], out=across[:, :-step])
    out = across.copy()
    for step in range(1, reach + 1):
        np.maximum(out[step:], across[:-step], out=out[step:])
        np.maximum(out[:-step], across[step:], out=out[:-step])
    return out


def _label_cells(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Number the 8-connected areas of ``mask`` that hold a seed (1, 2, ... in the order of their
    first seed, row by row; 0 elsewhere). The mask's runs of cells along each row are joined to
    the runs they touch in the row above (union-find), so the Python work is per run, not per
    cell: a quarter of a millisecond on a 96-cell map."""
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)            # runs, row by row: [start, end) of each
    ends = np.nonzero(edges == -1)[1].tolist()
    starts = starts.tolist()
    parent = list(range(len(starts)))

    def root(run: int) -> int:
        while parent[run] != run:
            parent[run] = parent[parent[run]]
            run = parent[run]
        return run

    first_run = np.searchsorted(rows, np.arange(height + 1)).tolist()   # of each row
    for y in range(1, height):
        above, above_end = first_run[y - 1], first_run[y]
        run, run_end = first_run[y], first_run[y + 1]
        while above < above_end and run < run_end:
            if starts[above] <= ends[run] and starts[run] <= ends[above]:   # overlap or a corner
                a, b = root(above), root(run)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            if ends[above] < ends[run]:
                above += 1
            else:
                run += 1
    labels = np.zeros((height, width), dtype=np.int32)
    if not starts:
        return labels
    run_of = np.full((height, width), -1, dtype=np.int64)
    for index, (y, start, end) in enumerate(zip(rows.tolist(), starts, ends)):
        run_of[y, start:end] = index
    label_of = {}
    for run in run_of[seeds & mask].tolist():        # seeds in row order: labels as they come
        label_of.setdefault(root(run), len(label_of) + 1)
    run_labels = np.array([label_of.get(root(index), 0) for index in range(len(starts))], dtype=np.int32)
    return np.where(run_of >= 0, run_labels[run_of], 0).astype(np.int32)


# --------------------------------------------------------------------------- frames

def cover_box(size: tuple[int, int], target_w: int, target_h: int) -> tuple[float, float]:
    """(width, height) of the largest box of the target's aspect inside a picture of ``size``."""
    width, height = size
    target = target_w / target_h
    if width / height > target:
        return min(width, height * target), height
    return width, min(height, width / target)


def frame_box(analysis: Analysis, target_w: int, target_h: int, *,
              safe_top: float = 0.0, safe_bottom: float = 0.0) -> tuple[int, int, int, int]:
    """The part of the picture (left, top, right, bottom in pixels) a platform of
    target_w × target_h shows: the target's aspect, as large as the picture allows, placed to
    keep the subject whole (see the module's docstring for the order of concerns).

    ``safe_top`` / ``safe_bottom``: fractions of the frame where the platform draws its own
    controls. The subject is kept out of them where the picture allows, zooming in a little
    if it must — never below MIN_KEPT_AREA of the largest frame, nor beyond MAX_ENLARGEMENT.
    """
    width, height = analysis.size
    full_w, full_h = cover_box(analysis.size, target_w, target_h)
    scales = [1.0]
    safe = safe_top > 0 or safe_bottom > 0
    if safe:
        smallest = max(math.sqrt(MIN_KEPT_AREA), target_w / (full_w * MAX_ENLARGEMENT))
        scales += [s for s in (0.95, 0.9, smallest) if smallest <= s < 1.0]
    boxes = np.concatenate([_candidates(analysis, full_w * s, full_h * s) for s in scales])
    scores = _scores(analysis, boxes, safe_top, safe_bottom, full_w)
    left, top, right, bottom = boxes[int(np.argmax(scores))]
    # whole pixels, of exactly the box's size, inside the picture
    box_w, box_h = max(1, round(right - left)), max(1, round(bottom - top))
    x = min(max(0, round(left)), width - box_w)
    y = min(max(0, round(top)), height - box_h)
    return x, y, x + box_w, y + box_h


def _candidates(analysis: Analysis, box_w: float, box_h: float) -> np.ndarray:
    """Boxes of one size: an even sweep of the free range, and the positions that line an edge
    up with a region's edge or centre a region."""
    width, height = analysis.size

    def positions(extent: float, box: float, spans: list[tuple[float, float]]) -> np.ndarray:
        room = extent - box
        if room < 0.5:
            return np.array([max(0.0, room / 2)])
        wanted = [start * extent for start, _ in spans] + [end * extent - box for _, end in spans]
        wanted += [(start + end) / 2 * extent - box / 2 for start, end in spans]
        return np.unique(np.clip(np.concatenate([np.linspace(0, room, 33), wanted]), 0, room))

    xs = positions(width, box_w, [(r.left, r.right) for r in analysis.regions])
    ys = positions(height, box_h, [(r.top, r.bottom) for r in analysis.regions])
    grid_x, grid_y = np.meshgrid(xs, ys)
    lefts, tops = grid_x.ravel(), grid_y.ravel()
    return np.stack([lefts, tops, lefts + box_w, tops + box_h], axis=1)


def _scores(analysis: Analysis, boxes: np.ndarray, safe_top: float, safe_bottom: float,
            full_w: float) -> np.ndarray:
    width, height = analysis.size
    left, top, right, bottom = (boxes[:, i] for i in range(4))
    box_w, box_h = right - left, bottom - top
    fractions = boxes / [width, height, width, height]
    score = _W_MASS * _mass_inside(analysis.integral, fractions)
    score += _W_SCALE * box_w / full_w
    if not analysis.regions:   # nothing stands out: the middle of the picture
        score -= _W_CENTRED * (np.abs((left + right) / 2 - width / 2) / box_w
                               + np.abs((top + bottom) / 2 - height / 2) / box_h)
    tolerance = 0.5   # a pixel's rounding is not a cut
    for index, region in enumerate(analysis.regions):
        r_left, r_right = region.left * width, region.right * width
        r_top, r_bottom = region.top * height, region.bottom * height
        whole = ((left <= r_left + tolerance) & (right >= r_right - tolerance)
                 & (top <= r_top + tolerance) & (bottom >= r_bottom - tolerance))
        kept = (np.clip(np.minimum(right, r_right) - np.maximum(left, r_left), 0, None)
                * np.clip(np.minimum(bottom, r_bottom) - np.maximum(top, r_top), 0, None)
                / max((r_right - r_left) * (r_bottom - r_top), 1e-9))
        if index == 0:
            # a subject too big for the frame: as much of its saliency as the frame holds
            score += _W_SUBJECT_WHOLE * whole + _W_SUBJECT_KEPT * _mass_inside(analysis.subject_integral, fractions)
            # centred, in the safe band when there is one (the band's middle otherwise)
            band_top, band_bottom = top + safe_top * box_h, bottom - safe_bottom * box_h
            off_x = np.abs((r_left + r_right) / 2 - (left + right) / 2) / box_w
            off_y = np.abs((r_top + r_bottom) / 2 - (band_top + band_bottom) / 2) / box_h
            score -= _W_CENTRED * (off_x + off_y)
            if safe_top > 0 or safe_bottom > 0:
                in_band = whole & (r_top >= band_top - tolerance) & (r_bottom <= band_bottom + tolerance)
                # in the band; or, when it cannot be, as near the band's middle as can be
                score += np.where(in_band, _W_SAFE, _W_SAFE / 4 * (1 - off_y))
        else:
            # another object: a bonus for keeping it whole, a penalty for cutting it near its middle
            score += _W_OTHERS * region.mass * np.where(whole, 1.0, -np.minimum(kept, 1 - kept))
    return score


def _mass_inside(integral: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Share of the saliency inside boxes given in fractions of the picture (summed-area table)."""
    cells_y, cells_x = integral.shape[0] - 1, integral.shape[1] - 1
    x0 = np.clip(np.rint(boxes[:, 0] * cells_x), 0, cells_x).astype(int)
    y0 = np.clip(np.rint(boxes[:, 1] * cells_y), 0, cells_y).astype(int)
    x1 = np.clip(np.rint(boxes[:, 2] * cells_x), 0, cells_x).astype(int)
    y1 = np.clip(np.rint(boxes[:, 3] * cells_y), 0, cells_y).astype(int)
    return integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]


# --------------------------------------------------------------------------- pictures to ask for

@dataclass(frozen=True)
class SourcePlan:
    """One picture to ask the model for, and the platforms cut from it."""
    size: tuple[int, int]
    platforms: tuple[Platform, ...]


def _strain(size: tuple[int, int], platform: Platform) -> float:
    """How far cutting ``platform`` from a picture of ``size`` goes past the limits of §5:
    0 within them, else the worse of the missing kept area and the excess enlargement."""
    box_w, box_h = cover_box(size, platform.width, platform.height)
    kept = box_w * box_h / (size[0] * size[1])
    enlargement = platform.width / box_w
    return max(0.0, MIN_KEPT_AREA - kept, enlargement / MAX_ENLARGEMENT - 1)


def plan_sources(platforms: Sequence[Platform], choose_size: Callable[[Sequence[Platform]], tuple[int, int]],
                 max_sources: int) -> list[SourcePlan]:
    """Group platforms by shape into at most ``max_sources`` pictures, each of the size
    ``choose_size`` (the provider's) picks for its group: the fewest pictures that keep every
    platform within §5's limits, or, when none does, the grouping that strays least from them.
    Groups are runs of the platforms sorted by aspect; plans keep the platforms' first order."""
    if not platforms:
        raise ValueError("plan_sources needs at least one platform")
    ordered = sorted(platforms, key=lambda p: p.aspect)
    best, best_key = None, None
    for count in range(1, min(max(1, max_sources), len(ordered)) + 1):
        for cuts in combinations(range(1, len(ordered)), count - 1):
            bounds = (0, *cuts, len(ordered))
            groups = [ordered[a:b] for a, b in zip(bounds, bounds[1:])]
            sizes = [tuple(choose_size(group)) for group in groups]
            strains = [_strain(size, p) for size, group in zip(sizes, groups) for p in group]
            key = (round(max(strains), 6), round(sum(strains), 6), count)
            if best_key is None or key < best_key:
                best, best_key = list(zip(sizes, groups)), key
        if best_key[0] == 0:
            break   # more pictures would only cost more
    position = {p.id: i for i, p in enumerate(platforms)}
    plans = [SourcePlan(size, tuple(sorted(group, key=lambda p: position[p.id]))) for size, group in best]
    return sorted(plans, key=lambda plan: position[plan.platforms[0].id])
