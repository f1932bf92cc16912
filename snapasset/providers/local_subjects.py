"""The subjects the offline provider can draw: each a few shapes in a unit square, drawn with a
``Pen`` that maps the square onto a (supersampled) layer. Shapes are chosen to read at a
glance — silhouettes first, then the one or two details that name the thing (a cat's ears and
whiskers, a cup's steam, a shoe's laces).

``SUBJECTS`` maps a subject's name to its ``Subject``: the words of a prompt that call for it,
where it lives (``outdoor`` on a landscape, ``studio`` on a backdrop, ``sky`` floating in a
landscape's sky) and the function that draws it.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import ImageDraw

__all__ = ["Pen", "Subject", "SUBJECTS", "hsv", "mix"]

RGB = tuple[int, int, int]
INK = (38, 34, 40)
WHITE = (250, 250, 248)


def hsv(h: float, s: float, v: float) -> RGB:
    """HSV (hue in degrees, s and v in 0..1) to an RGB triple."""
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb((h % 360) / 360, s, v))


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


class Pen:
    """Draws in a unit square (x right, y down, 0..1) mapped onto ``size`` pixels at ``origin``
    of an ImageDraw; widths are in units too, so a drawing looks the same at any size."""

    def __init__(self, draw: ImageDraw.ImageDraw, origin: tuple[float, float], size: float, hue: float):
        self.draw, self.size, self.hue = draw, size, hue
        self.x0, self.y0 = origin

    def _p(self, x: float, y: float) -> tuple[float, float]:
        return self.x0 + x * self.size, self.y0 + y * self.size

    def _w(self, width: float) -> int:
        return max(1, round(width * self.size))

    def ellipse(self, cx, cy, rx, ry, fill=None, outline=None, width=0.012):
        self.draw.ellipse((*self._p(cx - rx, cy - ry), *self._p(cx + rx, cy + ry)), fill=fill,
                          outline=outline, width=self._w(width) if outline else 0)

    def circle(self, cx, cy, r, fill=None, outline=None, width=0.012):
        self.ellipse(cx, cy, r, r, fill, outline, width)

    def rect(self, x0, y0, x1, y1, fill=None, outline=None, width=0.012, radius=0.0):
        self.draw.rounded_rectangle((*self._p(x0, y0), *self._p(x1, y1)), radius=radius * self.size,
                                    fill=fill, outline=outline, width=self._w(width) if outline else 0)

    def poly(self, points, fill=None, outline=None, width=0.012):
        self.draw.polygon([self._p(x, y) for x, y in points], fill=fill, outline=outline,
                          width=self._w(width) if outline else 0)

    def line(self, points, fill=INK, width=0.012):
        self.draw.line([self._p(x, y) for x, y in points], fill=fill, width=self._w(width), joint="curve")

    def arc(self, cx, cy, rx, ry, start, end, fill=INK, width=0.012):
        self.draw.arc((*self._p(cx - rx, cy - ry), *self._p(cx + rx, cy + ry)), start, end,
                      fill=fill, width=self._w(width))

    def pie(self, cx, cy, rx, ry, start, end, fill=None, outline=None, width=0.012):
        self.draw.pieslice((*self._p(cx - rx, cy - ry), *self._p(cx + rx, cy + ry)), start, end, fill=fill,
                           outline=outline, width=self._w(width) if outline else 0)

    def chord(self, cx, cy, rx, ry, start, end, fill=None, outline=None, width=0.012):
        self.draw.chord((*self._p(cx - rx, cy - ry), *self._p(cx + rx, cy + ry)), start, end, fill=fill,
                        outline=outline, width=self._w(width) if outline else 0)

    def star(self, cx, cy, r, points=5, fill=None, inner=0.45):
        pts = []
        for i in range(points * 2):
            a = -math.pi / 2 + i * math.pi / points
            rr = r if i % 2 == 0 else r * inner
            pts.append((cx + math.cos(a) * rr, cy + math.sin(a) * rr))
        self.poly(pts, fill=fill)

    # the prompt's colour (a blue when it names none), in a few strengths
    def main(self, s=0.75, v=0.9) -> RGB:
        return hsv(self.hue if self.hue is not None else 215, s, v)

    def dark(self) -> RGB:
        return self.main(0.7, 0.45)


@dataclass(frozen=True)
class Subject:
    words: tuple[str, ...]        # words (or two-word phrases) of a prompt that call for it
    place: str                    # "outdoor" (stands on the ground), "sky" (floats), "studio"
    category: str                 # animal, food, person, place, object, product
    draw: Callable[[Pen], None]


# --------------------------------------------------------------------------- animals

def _cat(p: Pen):
    fur = p.main(0.35, 0.55) if p.hue else (120, 110, 110)
    p.poly([(0.62, 0.9), (0.95, 0.78), (0.97, 0.7), (0.7, 0.82)], fill=fur)             # tail
    p.ellipse(0.5, 0.72, 0.26, 0.22, fill=fur)                                           # body
    p.ellipse(0.5, 0.4, 0.2, 0.18, fill=fur)                                             # head
    for side in (-1, 1):
        p.poly([(0.5 + side * 0.19, 0.36), (0.5 + side * 0.17, 0.14), (0.5 + side * 0.05, 0.26)], fill=fur)
        p.poly([(0.5 + side * 0.165, 0.32), (0.5 + side * 0.155, 0.2), (0.5 + side * 0.08, 0.27)],
               fill=(240, 170, 180))
        p.ellipse(0.5 + side * 0.08, 0.38, 0.04, 0.05, fill=(180, 220, 90))              # eyes
        p.ellipse(0.5 + side * 0.08, 0.38, 0.012, 0.04, fill=INK)
        for dy in (-0.015, 0.02):                                                        # whiskers
            p.line([(0.5 + side * 0.06, 0.46), (0.5 + side * 0.3, 0.44 + dy * 2)], fill=WHITE, width=0.006)
    p.poly([(0.47, 0.44), (0.53, 0.44), (0.5, 0.475)], fill=(230, 120, 140))            # nose
    p.arc(0.48, 0.48, 0.02, 0.02, 0, 180, width=0.007)
    p.arc(0.52, 0.48, 0.02, 0.02, 0, 180, width=0.007)
    p.ellipse(0.4, 0.92, 0.07, 0.04, fill=fur)
    p.ellipse(0.6, 0.92, 0.07, 0.04, fill=fur)


def _dog(p: Pen):
    fur, ear = (196, 140, 80), (120, 78, 40)
    p.line([(0.78, 0.62), (0.92, 0.45)], fill=fur, width=0.05)                          # tail
    p.ellipse(0.55, 0.68, 0.28, 0.17, fill=fur)                                          # body
    for x in (0.35, 0.45, 0.65, 0.75):
        p.rect(x - 0.035, 0.72, x + 0.035, 0.95, fill=fur, radius=0.03)
    p.ellipse(0.3, 0.4, 0.2, 0.18, fill=fur)                                             # head
    p.ellipse(0.18, 0.48, 0.1, 0.07, fill=(220, 180, 130))                               # muzzle
    p.ellipse(0.1, 0.45, 0.035, 0.03, fill=INK)                                          # nose
    p.ellipse(0.45, 0.42, 0.07, 0.16, fill=ear)                                          # ear
    p.circle(0.26, 0.36, 0.025, fill=INK)
    p.arc(0.17, 0.52, 0.05, 0.03, 10, 150, width=0.01)
    p.rect(0.36, 0.52, 0.5, 0.57, fill=p.main(0.8, 0.85), radius=0.02)                   # collar


def _bird(p: Pen):
    body = p.main(0.75, 0.85) if p.hue else (70, 130, 220)
    p.line([(0.05, 0.78), (0.95, 0.7)], fill=(110, 75, 45), width=0.035)                 # branch
    p.poly([(0.2, 0.55), (0.02, 0.5), (0.05, 0.62)], fill=mix(body, INK, 0.3))          # tail
    p.ellipse(0.48, 0.5, 0.28, 0.2, fill=body)
    p.ellipse(0.7, 0.35, 0.14, 0.13, fill=body)                                          # head
    p.ellipse(0.5, 0.58, 0.18, 0.1, fill=(250, 210, 150))                                # breast
    p.pie(0.42, 0.46, 0.2, 0.14, 160, 350, fill=mix(body, INK, 0.3))                     # wing
    p.poly([(0.82, 0.33), (0.95, 0.37), (0.82, 0.4)], fill=(250, 170, 40))               # beak
    p.circle(0.74, 0.32, 0.025, fill=INK)
    for x in (0.42, 0.52):
        p.line([(x, 0.68), (x, 0.76)], fill=(250, 170, 40), width=0.012)


def _fish(p: Pen):
    body = p.main(0.85, 0.95) if p.hue else (250, 140, 40)
    p.poly([(0.25, 0.5), (0.05, 0.3), (0.1, 0.5), (0.05, 0.7)], fill=mix(body, INK, 0.15))  # tail
    p.ellipse(0.52, 0.5, 0.33, 0.22, fill=body)
    p.poly([(0.45, 0.3), (0.6, 0.16), (0.65, 0.31)], fill=mix(body, INK, 0.15))          # fin
    for x in (0.45, 0.55):
        p.arc(x, 0.5, 0.07, 0.2, 300, 60, fill=WHITE, width=0.02)                       # stripes
    p.circle(0.72, 0.45, 0.05, fill=WHITE)
    p.circle(0.73, 0.45, 0.025, fill=INK)
    p.arc(0.8, 0.55, 0.04, 0.03, 90, 200, width=0.01)
    for i, (x, y) in enumerate(((0.9, 0.3), (0.94, 0.18), (0.88, 0.08))):             # bubbles
        p.circle(x, y, 0.02 + i * 0.008, outline=(200, 230, 255), width=0.008)


def _butterfly(p: Pen):
    wing = p.main(0.8, 0.95) if p.hue else (240, 120, 40)
    for side in (-1, 1):
        p.ellipse(0.5 + side * 0.22, 0.35, 0.2, 0.2, fill=wing, outline=INK, width=0.015)
        p.ellipse(0.5 + side * 0.16, 0.66, 0.13, 0.14, fill=mix(wing, (255, 220, 80), 0.4), outline=INK,
                  width=0.015)
        p.circle(0.5 + side * 0.26, 0.3, 0.05, fill=WHITE)
        p.circle(0.5 + side * 0.16, 0.68, 0.035, fill=INK)
        p.line([(0.5, 0.22), (0.5 + side * 0.1, 0.05)], width=0.01)
        p.circle(0.5 + side * 0.1, 0.05, 0.015, fill=INK)
    p.ellipse(0.5, 0.5, 0.03, 0.27, fill=INK)


def _rabbit(p: Pen):
    fur, pink = (235, 232, 228), (240, 170, 180)
    for x in (0.4, 0.56):
        p.ellipse(x, 0.2, 0.06, 0.18, fill=fur)
        p.ellipse(x, 0.22, 0.03, 0.13, fill=pink)
    p.ellipse(0.52, 0.72, 0.25, 0.22, fill=fur)
    p.circle(0.76, 0.8, 0.06, fill=WHITE)                                                # tail
    p.ellipse(0.48, 0.45, 0.16, 0.14, fill=fur)
    p.circle(0.42, 0.43, 0.022, fill=INK)
    p.circle(0.54, 0.43, 0.022, fill=INK)
    p.poly([(0.46, 0.5), (0.5, 0.5), (0.48, 0.525)], fill=pink)
    p.ellipse(0.38, 0.92, 0.08, 0.04, fill=fur)
    p.ellipse(0.6, 0.92, 0.08, 0.04, fill=fur)


def _owl(p: Pen):
    body = (140, 100, 70)
    p.line([(0.05, 0.93), (0.95, 0.93)], fill=(90, 60, 35), width=0.04)
    p.ellipse(0.5, 0.58, 0.3, 0.36, fill=body)
    p.poly([(0.22, 0.3), (0.28, 0.08), (0.4, 0.25)], fill=body)
    p.poly([(0.78, 0.3), (0.72, 0.08), (0.6, 0.25)], fill=body)
    p.ellipse(0.5, 0.7, 0.18, 0.2, fill=(215, 185, 140))
    for i in range(3):
        for x in (0.42, 0.5, 0.58):
            p.arc(x, 0.6 + i * 0.07, 0.035, 0.025, 20, 160, fill=(150, 110, 80), width=0.01)
    for side in (-1, 1):
        p.circle(0.5 + side * 0.12, 0.38, 0.11, fill=WHITE, outline=(215, 185, 140), width=0.02)
        p.circle(0.5 + side * 0.12, 0.38, 0.055, fill=(250, 180, 30))
        p.circle(0.5 + side * 0.12, 0.38, 0.03, fill=INK)
    p.poly([(0.46, 0.47), (0.54, 0.47), (0.5, 0.55)], fill=(250, 170, 40))
    for x in (0.42, 0.58):
        p.line([(x - 0.03, 0.93), (x, 0.9), (x + 0.03, 0.93)], fill=(250, 170, 40), width=0.015)


def _bee(p: Pen):
    for side in (-1, 1):
        p.ellipse(0.45 + side * 0.02, 0.28, 0.12, 0.18, fill=(215, 235, 250), outline=(150, 180, 200),
                  width=0.008)
    p.ellipse(0.5, 0.55, 0.3, 0.2, fill=(250, 200, 30))
    for x in (0.42, 0.58):                                                               # stripes
        p.rect(x - 0.035, 0.37, x + 0.035, 0.73, fill=INK)
    p.poly([(0.8, 0.52), (0.92, 0.55), (0.8, 0.58)], fill=INK)                          # sting
    p.circle(0.24, 0.52, 0.11, fill=INK)                                                 # head
    p.circle(0.2, 0.49, 0.025, fill=WHITE)
    for dx in (-0.05, 0.03):
        p.line([(0.22 + dx, 0.42), (0.18 + dx, 0.3)], width=0.01)
        p.circle(0.18 + dx, 0.3, 0.015, fill=INK)


def _turtle(p: Pen):
    skin, shell = (120, 170, 90), (90, 130, 60)
    for x in (0.3, 0.7):
        p.ellipse(x, 0.78, 0.07, 0.06, fill=skin)
    p.ellipse(0.86, 0.62, 0.1, 0.08, fill=skin)                                          # head
    p.circle(0.89, 0.6, 0.015, fill=INK)
    p.chord(0.5, 0.72, 0.34, 0.4, 180, 360, fill=shell)
    p.rect(0.16, 0.7, 0.84, 0.76, fill=(180, 150, 80), radius=0.03)
    for x, y in ((0.5, 0.48), (0.34, 0.58), (0.66, 0.58), (0.5, 0.64)):
        p.poly([(x + 0.07 * math.cos(a), y + 0.06 * math.sin(a)) for a in
                (i * math.pi / 3 for i in range(6))], fill=(150, 180, 90), outline=(60, 90, 40), width=0.008)


def _penguin(p: Pen):
    p.ellipse(0.5, 0.58, 0.24, 0.36, fill=INK)
    p.ellipse(0.5, 0.64, 0.16, 0.28, fill=WHITE)
    p.circle(0.5, 0.28, 0.16, fill=INK)
    p.ellipse(0.5, 0.33, 0.11, 0.09, fill=WHITE)
    p.circle(0.45, 0.27, 0.02, fill=INK)
    p.circle(0.55, 0.27, 0.02, fill=INK)
    p.poly([(0.46, 0.33), (0.54, 0.33), (0.5, 0.39)], fill=(250, 160, 30))
    p.ellipse(0.27, 0.6, 0.05, 0.18, fill=INK)
    p.ellipse(0.73, 0.6, 0.05, 0.18, fill=INK)
    p.ellipse(0.42, 0.95, 0.08, 0.03, fill=(250, 160, 30))
    p.ellipse(0.58, 0.95, 0.08, 0.03, fill=(250, 160, 30))


# --------------------------------------------------------------------------- food

def _coffee(p: Pen):
    cup = p.main(0.5, 0.9) if p.hue else (245, 245, 240)
    for x in (0.38, 0.5, 0.62):                                                          # steam
        p.line([(x, 0.32), (x - 0.03, 0.25), (x + 0.02, 0.18), (x - 0.02, 0.1)], fill=(230, 230, 230),
               width=0.02)
    p.ellipse(0.5, 0.86, 0.38, 0.08, fill=(240, 240, 236), outline=(190, 190, 185), width=0.008)  # saucer
    p.arc(0.76, 0.56, 0.1, 0.12, 270, 90, fill=cup, width=0.04)                          # handle
    p.poly([(0.24, 0.4), (0.76, 0.4), (0.7, 0.82), (0.3, 0.82)], fill=cup)
    p.ellipse(0.5, 0.4, 0.26, 0.06, fill=(110, 65, 35))                                 # coffee
    p.ellipse(0.5, 0.4, 0.1, 0.025, fill=(200, 160, 120))                               # latte art
    p.rect(0.3, 0.56, 0.7, 0.62, fill=p.dark() if p.hue else (150, 95, 60))


def _pizza(p: Pen):
    p.pie(0.5, 0.15, 0.7, 0.8, 60, 120, fill=(240, 190, 90))                             # slice
    p.pie(0.5, 0.15, 0.62, 0.72, 62, 118, fill=(250, 215, 90))                           # cheese
    p.ellipse(0.5, 0.86, 0.36, 0.07, fill=(210, 150, 70))                                # crust
    for x, y in ((0.5, 0.35), (0.42, 0.6), (0.58, 0.55), (0.5, 0.75)):
        p.circle(x, y, 0.05, fill=(200, 50, 40))                                         # pepperoni
    p.circle(0.55, 0.42, 0.02, fill=(60, 130, 50))
    p.circle(0.45, 0.47, 0.02, fill=(60, 130, 50))


def _burger(p: Pen):
    p.chord(0.5, 0.45, 0.38, 0.3, 180, 360, fill=(225, 150, 60))                         # top bun
    for x, y in ((0.4, 0.3), (0.5, 0.25), (0.6, 0.31), (0.45, 0.38), (0.57, 0.39)):
        p.ellipse(x, y, 0.015, 0.008, fill=(250, 235, 190))                              # sesame
    p.poly([(0.1, 0.46), (0.9, 0.46), (0.85, 0.52), (0.7, 0.5), (0.55, 0.54), (0.4, 0.5), (0.15, 0.53)],
           fill=(90, 170, 60))                                                            # lettuce
    p.poly([(0.14, 0.5), (0.86, 0.5), (0.75, 0.6), (0.25, 0.6)], fill=(250, 200, 40))    # cheese
    p.rect(0.12, 0.56, 0.88, 0.68, fill=(100, 55, 35), radius=0.05)                      # patty
    p.rect(0.12, 0.68, 0.88, 0.8, fill=(225, 150, 60), radius=0.05)                      # bottom bun


def _ice_cream(p: Pen):
    scoop = p.main(0.45, 0.98) if p.hue else (250, 190, 200)
    p.poly([(0.3, 0.48), (0.7, 0.48), (0.5, 0.97)], fill=(220, 170, 100))               # cone
    for i in range(5):
        p.line([(0.33 + i * 0.08, 0.48), (0.5 + (i - 2) * 0.02, 0.95)], fill=(180, 130, 70), width=0.008)
    p.circle(0.5, 0.36, 0.2, fill=scoop)
    p.circle(0.5, 0.17, 0.13, fill=mix(scoop, (120, 70, 40), 0.6))                       # second scoop
    p.circle(0.5, 0.02 + 0.03, 0.04, fill=(200, 30, 50))                                # cherry
    for x, y in ((0.4, 0.33), (0.56, 0.3), (0.48, 0.42), (0.62, 0.4)):
        p.rect(x, y, x + 0.03, y + 0.012, fill=hsv(x * 700, 0.7, 0.95))                  # sprinkles


def _cake(p: Pen):
    icing = p.main(0.4, 0.97) if p.hue else (250, 200, 215)
    p.ellipse(0.5, 0.9, 0.42, 0.06, fill=(235, 235, 235))                                # plate
    p.rect(0.16, 0.5, 0.84, 0.88, fill=(245, 225, 190), radius=0.03)
    p.rect(0.16, 0.64, 0.84, 0.7, fill=(200, 80, 100))                                   # filling
    p.rect(0.14, 0.44, 0.86, 0.54, fill=icing, radius=0.04)
    for x in (0.22, 0.36, 0.5, 0.64, 0.78):
        p.ellipse(x, 0.55, 0.035, 0.05, fill=icing)                                      # drips
    for x in (0.32, 0.5, 0.68):
        p.rect(x - 0.02, 0.24, x + 0.02, 0.44, fill=hsv(x * 500, 0.5, 0.95))              # candles
        p.ellipse(x, 0.2, 0.022, 0.04, fill=(255, 200, 50))


def _apple(p: Pen):
    skin = p.main(0.8, 0.85) if p.hue else (210, 40, 40)
    p.circle(0.38, 0.58, 0.28, fill=skin)
    p.circle(0.62, 0.58, 0.28, fill=skin)
    p.ellipse(0.5, 0.72, 0.3, 0.2, fill=skin)
    p.ellipse(0.36, 0.5, 0.06, 0.1, fill=mix(skin, WHITE, 0.45))                         # shine
    p.line([(0.5, 0.34), (0.53, 0.18)], fill=(100, 65, 35), width=0.025)
    p.ellipse(0.64, 0.22, 0.1, 0.05, fill=(80, 160, 60))                                 # leaf


def _donut(p: Pen):
    p.circle(0.5, 0.52, 0.4, fill=(215, 160, 90))
    glaze = p.main(0.45, 0.97) if p.hue else (245, 150, 190)
    p.poly([(0.5 + math.cos(a) * 0.35 * (1 + 0.05 * math.sin(a * 7)), 0.52 + math.sin(a) * 0.35 *
             (1 + 0.05 * math.sin(a * 7))) for a in (i * math.tau / 48 for i in range(48))], fill=glaze)
    p.circle(0.5, 0.52, 0.12, fill=(215, 160, 90))
    p.circle(0.5, 0.52, 0.09, fill=None)
    for i in range(14):
        a = i * math.tau / 14 + 0.3
        r = 0.22 + (i % 3) * 0.04
        x, y = 0.5 + math.cos(a) * r, 0.52 + math.sin(a) * r
        p.line([(x, y), (x + 0.03 * math.cos(a * 3), y + 0.03 * math.sin(a * 3))],
               fill=hsv(i * 50, 0.7, 0.95), width=0.014)


def _watermelon(p: Pen):
    p.chord(0.5, 0.3, 0.46, 0.46, 0, 180, fill=(60, 140, 60))
    p.chord(0.5, 0.3, 0.42, 0.42, 0, 180, fill=(240, 240, 200))
    p.chord(0.5, 0.3, 0.39, 0.39, 0, 180, fill=(235, 70, 80))
    for x, y in ((0.35, 0.42), (0.5, 0.5), (0.65, 0.42), (0.42, 0.58), (0.58, 0.58), (0.5, 0.38)):
        p.ellipse(x, y, 0.012, 0.022, fill=INK)


def _cherries(p: Pen):
    p.line([(0.35, 0.65), (0.5, 0.25), (0.55, 0.15)], fill=(90, 120, 40), width=0.015)
    p.line([(0.65, 0.68), (0.5, 0.25)], fill=(90, 120, 40), width=0.015)
    p.ellipse(0.62, 0.17, 0.12, 0.05, fill=(80, 160, 60))
    for x, y in ((0.33, 0.72), (0.66, 0.75)):
        p.circle(x, y, 0.17, fill=(180, 20, 40))
        p.circle(x - 0.06, y - 0.05, 0.04, fill=(240, 120, 130))


def _banana(p: Pen):
    yellow = (250, 215, 60)
    p.chord(0.5, 0.2, 0.42, 0.55, 20, 160, fill=yellow)
    p.chord(0.5, 0.12, 0.38, 0.52, 25, 155, fill=(0, 0, 0, 0))
    p.line([(0.14, 0.4), (0.09, 0.35)], fill=(100, 80, 40), width=0.03)
    p.line([(0.86, 0.4), (0.9, 0.36)], fill=(70, 50, 30), width=0.02)


# --------------------------------------------------------------------------- people

def _head(p: Pen, cx: float, cy: float, r: float, hair: RGB, skin: RGB = (240, 195, 160)):
    p.ellipse(cx, cy - r * 0.15, r * 1.08, r * 1.05, fill=hair)
    p.ellipse(cx, cy + r * 0.1, r * 0.85, r, fill=skin)
    p.chord(cx, cy - r * 0.25, r * 0.9, r * 0.7, 180, 360, fill=hair)
    p.circle(cx - r * 0.32, cy + r * 0.05, r * 0.09, fill=INK)
    p.circle(cx + r * 0.32, cy + r * 0.05, r * 0.09, fill=INK)
    p.arc(cx, cy + r * 0.35, r * 0.3, r * 0.2, 20, 160, width=r * 0.06)
    p.circle(cx - r * 0.5, cy + r * 0.35, r * 0.12, fill=(240, 160, 150))
    p.circle(cx + r * 0.5, cy + r * 0.35, r * 0.12, fill=(240, 160, 150))


def _person(p: Pen):
    top = p.main(0.6, 0.8) if p.hue else (60, 120, 200)
    p.chord(0.5, 1.05, 0.4, 0.42, 180, 360, fill=top)                                    # shoulders
    p.rect(0.44, 0.52, 0.56, 0.66, fill=(225, 180, 145))                                 # neck
    _head(p, 0.5, 0.38, 0.2, (90, 60, 40))


def _runner(p: Pen):
    skin, shirt = (225, 180, 145), p.main(0.8, 0.9) if p.hue else (230, 70, 60)
    p.line([(0.45, 0.55), (0.3, 0.72), (0.15, 0.7)], fill=(50, 50, 80), width=0.07)       # back leg
    p.line([(0.45, 0.55), (0.6, 0.75), (0.55, 0.95)], fill=(50, 50, 80), width=0.07)      # front leg
    p.ellipse(0.12, 0.71, 0.06, 0.03, fill=WHITE)
    p.ellipse(0.59, 0.96, 0.07, 0.03, fill=WHITE)
    p.line([(0.5, 0.3), (0.35, 0.42), (0.28, 0.3)], fill=skin, width=0.05)                # back arm
    p.poly([(0.42, 0.25), (0.6, 0.27), (0.5, 0.58), (0.4, 0.56)], fill=shirt)            # torso
    p.line([(0.56, 0.3), (0.7, 0.42), (0.8, 0.32)], fill=skin, width=0.05)                # front arm
    _head(p, 0.56, 0.14, 0.1, (60, 40, 30))


def _chef(p: Pen):
    p.chord(0.5, 1.05, 0.4, 0.42, 180, 360, fill=WHITE, outline=(200, 200, 200), width=0.01)
    for y in (0.75, 0.85):
        for x in (0.42, 0.58):
            p.circle(x, y, 0.015, fill=(150, 150, 150))
    p.poly([(0.42, 0.6), (0.58, 0.6), (0.5, 0.7)], fill=(220, 50, 50))                   # neckerchief
    _head(p, 0.5, 0.44, 0.16, (90, 60, 40))
    p.rect(0.36, 0.2, 0.64, 0.32, fill=WHITE, outline=(210, 210, 210), width=0.008)      # hat
    for x in (0.38, 0.5, 0.62):
        p.circle(x, 0.14, 0.1, fill=WHITE)


def _astronaut(p: Pen):
    suit = (238, 238, 240)
    p.rect(0.2, 0.5, 0.8, 0.98, fill=suit, radius=0.12)
    p.rect(0.38, 0.6, 0.62, 0.75, fill=(150, 160, 180), radius=0.02)                     # chest panel
    for i, c in enumerate(((220, 60, 60), (60, 180, 90), (60, 120, 220))):
        p.circle(0.43 + i * 0.07, 0.67, 0.018, fill=c)
    p.circle(0.5, 0.33, 0.26, fill=suit)
    p.ellipse(0.5, 0.34, 0.19, 0.16, fill=(40, 50, 90))                                  # visor
    p.ellipse(0.44, 0.29, 0.06, 0.04, fill=(150, 170, 230))
    p.rect(0.1, 0.55, 0.2, 0.85, fill=suit, radius=0.05)
    p.rect(0.8, 0.55, 0.9, 0.85, fill=suit, radius=0.05)


# --------------------------------------------------------------------------- places and nature

def _lighthouse(p: Pen):
    red = p.main(0.8, 0.85) if p.hue else (210, 40, 40)
    p.poly([(0.3, 0.92), (0.7, 0.92), (0.75, 1.0), (0.25, 1.0)], fill=(110, 100, 95))
    for i in range(5):
        y0, y1 = 0.92 - i * 0.13, 0.92 - (i + 1) * 0.13
        w0, w1 = 0.15 - i * 0.012, 0.15 - (i + 1) * 0.012
        p.poly([(0.5 - w0, y0), (0.5 + w0, y0), (0.5 + w1, y1), (0.5 - w1, y1)], fill=red if i % 2 == 0 else WHITE)
    p.rect(0.37, 0.2, 0.63, 0.27, fill=INK)
    p.rect(0.4, 0.1, 0.6, 0.2, fill=(255, 235, 140))
    p.poly([(0.36, 0.1), (0.5, 0.0), (0.64, 0.1)], fill=red)
    p.poly([(0.6, 0.13), (1.0, 0.02), (1.0, 0.24)], fill=(255, 245, 190, 110))           # beam


def _house(p: Pen):
    wall, roof = (240, 225, 200), p.main(0.7, 0.65) if p.hue else (180, 60, 50)
    p.rect(0.15, 0.5, 0.85, 0.98, fill=wall)
    p.rect(0.62, 0.18, 0.72, 0.4, fill=(130, 80, 60))                                    # chimney
    p.poly([(0.06, 0.52), (0.5, 0.14), (0.94, 0.52)], fill=roof)
    p.rect(0.42, 0.7, 0.58, 0.98, fill=(120, 75, 45))
    p.circle(0.55, 0.85, 0.012, fill=(250, 210, 80))
    for x in (0.2, 0.66):
        p.rect(x, 0.6, x + 0.14, 0.74, fill=(255, 225, 130), outline=(90, 70, 50), width=0.012)
        p.line([(x + 0.07, 0.6), (x + 0.07, 0.74)], fill=(90, 70, 50), width=0.01)


def _castle(p: Pen):
    stone, dark = (175, 170, 165), (120, 115, 110)
    for x in (0.1, 0.74):
        p.rect(x, 0.3, x + 0.16, 0.98, fill=stone)
        p.poly([(x - 0.03, 0.3), (x + 0.08, 0.1), (x + 0.19, 0.3)], fill=p.main(0.7, 0.6) if p.hue else (60, 80, 150))
    p.rect(0.26, 0.45, 0.74, 0.98, fill=stone)
    for i in range(6):
        p.rect(0.26 + i * 0.09, 0.39, 0.31 + i * 0.09, 0.45, fill=stone)                # battlements
    p.chord(0.5, 0.82, 0.1, 0.14, 180, 360, fill=dark)
    p.rect(0.4, 0.82, 0.6, 0.98, fill=dark)
    for x in (0.16, 0.8):
        p.rect(x, 0.45, x + 0.04, 0.55, fill=dark)
    p.line([(0.18, 0.1), (0.18, 0.0)], width=0.008)
    p.poly([(0.18, 0.0), (0.26, 0.03), (0.18, 0.06)], fill=(220, 50, 50))


def _tent(p: Pen):
    canvas = p.main(0.75, 0.85) if p.hue else (240, 130, 40)
    p.poly([(0.05, 0.95), (0.5, 0.2), (0.95, 0.95)], fill=canvas)
    p.poly([(0.5, 0.2), (0.38, 0.95), (0.62, 0.95)], fill=mix(canvas, INK, 0.55))
    p.line([(0.5, 0.2), (0.5, 0.1)], width=0.012)
    p.poly([(0.5, 0.1), (0.6, 0.13), (0.5, 0.16)], fill=(250, 200, 40))                  # pennant


def _pyramid(p: Pen):
    p.poly([(0.0, 0.95), (0.5, 0.2), (1.0, 0.95)], fill=(225, 185, 110))
    p.poly([(0.5, 0.2), (0.62, 0.95), (1.0, 0.95)], fill=(185, 145, 80))
    for i in range(1, 6):
        y = 0.2 + i * 0.125
        half = (y - 0.2) / 0.75 * 0.5
        p.line([(0.5 - half, y), (0.5 + half, y)], fill=(170, 130, 70), width=0.006)


def _windmill(p: Pen):
    p.poly([(0.36, 0.98), (0.44, 0.4), (0.56, 0.4), (0.64, 0.98)], fill=(235, 225, 205))
    p.chord(0.5, 0.42, 0.08, 0.08, 180, 360, fill=(170, 70, 50))
    p.rect(0.46, 0.82, 0.54, 0.98, fill=(120, 75, 45))
    for a in (20, 110, 200, 290):
        r = math.radians(a)
        tip = (0.5 + math.cos(r) * 0.42, 0.4 + math.sin(r) * 0.42)
        side = (math.cos(r + 0.3) * 0.3, math.sin(r + 0.3) * 0.3)
        p.poly([(0.5, 0.4), tip, (0.5 + side[0], 0.4 + side[1])], fill=(250, 250, 245), outline=(120, 100, 80),
               width=0.006)
    p.circle(0.5, 0.4, 0.03, fill=INK)


def _tree(p: Pen):
    leaf = p.main(0.65, 0.55) if p.hue else (60, 140, 60)
    p.poly([(0.44, 0.98), (0.47, 0.55), (0.53, 0.55), (0.56, 0.98)], fill=(110, 70, 40))
    for x, y, r in ((0.5, 0.3, 0.22), (0.3, 0.45, 0.18), (0.7, 0.45, 0.18), (0.4, 0.58, 0.15),
                    (0.6, 0.58, 0.15), (0.5, 0.45, 0.2)):
        p.circle(x, y, r, fill=leaf)
    for x, y in ((0.42, 0.28), (0.6, 0.36), (0.32, 0.48)):
        p.circle(x, y, 0.06, fill=mix(leaf, (255, 255, 200), 0.3))
    for x, y in ((0.38, 0.38), (0.64, 0.52), (0.52, 0.24)):
        p.circle(x, y, 0.025, fill=(220, 50, 50))


def _flower(p: Pen):
    petal = p.main(0.7, 0.95) if p.hue else (240, 90, 140)
    p.line([(0.5, 0.45), (0.48, 0.98)], fill=(70, 140, 60), width=0.03)
    p.ellipse(0.36, 0.78, 0.1, 0.04, fill=(80, 160, 60))
    p.ellipse(0.6, 0.68, 0.1, 0.04, fill=(80, 160, 60))
    for i in range(8):
        a = i * math.tau / 8
        p.ellipse(0.5 + math.cos(a) * 0.16, 0.32 + math.sin(a) * 0.16, 0.1, 0.1, fill=petal)
    p.circle(0.5, 0.32, 0.1, fill=(250, 200, 40))
    p.circle(0.5, 0.32, 0.05, fill=(200, 130, 30))


def _cactus(p: Pen):
    green = (70, 150, 80)
    p.rect(0.4, 0.12, 0.6, 0.82, fill=green, radius=0.1)
    p.rect(0.2, 0.35, 0.3, 0.6, fill=green, radius=0.05)
    p.rect(0.2, 0.52, 0.45, 0.62, fill=green, radius=0.04)
    p.rect(0.7, 0.25, 0.8, 0.5, fill=green, radius=0.05)
    p.rect(0.55, 0.42, 0.8, 0.52, fill=green, radius=0.04)
    for y in (0.2, 0.35, 0.5, 0.65):
        p.line([(0.47, y), (0.47, y + 0.05)], fill=(40, 100, 50), width=0.008)
        p.line([(0.53, y + 0.05), (0.53, y + 0.1)], fill=(40, 100, 50), width=0.008)
    p.circle(0.5, 0.12, 0.05, fill=(240, 100, 150))
    p.poly([(0.3, 0.78), (0.7, 0.78), (0.65, 0.98), (0.35, 0.98)], fill=(200, 110, 70))  # pot


# --------------------------------------------------------------------------- objects

def _rocket(p: Pen):
    body, fin = (238, 238, 242), p.main(0.8, 0.85) if p.hue else (220, 50, 50)
    for i, colour in enumerate(((255, 240, 120), (255, 170, 60), (240, 90, 40))):
        f = 1 - i * 0.25
        p.poly([(0.42 + (1 - f) * 0.04, 0.78), (0.58 - (1 - f) * 0.04, 0.78), (0.5, 0.78 + 0.22 * f)], fill=colour)
    for side in (-1, 1):
        p.poly([(0.5 + side * 0.1, 0.55), (0.5 + side * 0.24, 0.8), (0.5 + side * 0.1, 0.78)], fill=fin)
    p.rect(0.4, 0.25, 0.6, 0.8, fill=body, radius=0.04)
    p.chord(0.5, 0.3, 0.1, 0.28, 180, 360, fill=fin)
    p.circle(0.5, 0.42, 0.06, fill=(120, 190, 255), outline=(90, 90, 100), width=0.012)


def _balloon(p: Pen):
    base = p.hue if p.hue else 10
    p.poly([(0.3, 0.5), (0.7, 0.5), (0.56, 0.75), (0.44, 0.75)], fill=hsv(base, 0.75, 0.8))
    for i in range(6):
        half = 0.28 * (1 - i / 6)
        p.ellipse(0.5, 0.38, half, 0.3, fill=hsv(base + i * 60, 0.75, 0.95))
    for dx in (-0.05, 0.05):
        p.line([(0.5 + dx, 0.74), (0.5 + dx * 0.8, 0.84)], width=0.006)
    p.rect(0.44, 0.84, 0.56, 0.94, fill=(140, 95, 50), radius=0.01)


def _car(p: Pen):
    paint = p.main(0.8, 0.85) if p.hue else (210, 40, 40)
    p.poly([(0.25, 0.55), (0.35, 0.36), (0.68, 0.36), (0.8, 0.55)], fill=paint)          # cabin
    p.poly([(0.3, 0.54), (0.38, 0.4), (0.5, 0.4), (0.5, 0.54)], fill=(180, 215, 240))
    p.poly([(0.53, 0.54), (0.53, 0.4), (0.66, 0.4), (0.75, 0.54)], fill=(180, 215, 240))
    p.rect(0.05, 0.52, 0.95, 0.74, fill=paint, radius=0.06)
    p.rect(0.86, 0.56, 0.94, 0.62, fill=(255, 240, 170), radius=0.02)                    # headlight
    p.rect(0.05, 0.58, 0.1, 0.64, fill=(230, 60, 60), radius=0.01)
    for x in (0.25, 0.75):
        p.circle(x, 0.74, 0.1, fill=INK)
        p.circle(x, 0.74, 0.045, fill=(190, 190, 195))


def _bicycle(p: Pen):
    frame = p.main(0.8, 0.8) if p.hue else (40, 120, 200)
    for x in (0.22, 0.78):
        p.circle(x, 0.68, 0.19, outline=INK, width=0.025)
        p.circle(x, 0.68, 0.02, fill=INK)
    p.line([(0.22, 0.68), (0.45, 0.68), (0.62, 0.42), (0.36, 0.42), (0.22, 0.68)], fill=frame, width=0.025)
    p.line([(0.45, 0.68), (0.36, 0.42), (0.34, 0.34)], fill=frame, width=0.025)
    p.line([(0.78, 0.68), (0.62, 0.42), (0.6, 0.3), (0.68, 0.28)], fill=frame, width=0.025)
    p.rect(0.28, 0.31, 0.4, 0.35, fill=INK, radius=0.02)                                 # saddle
    p.circle(0.45, 0.68, 0.04, outline=INK, width=0.012)


def _sailboat(p: Pen):
    sail = p.main(0.4, 0.98) if p.hue else WHITE
    p.line([(0.5, 0.08), (0.5, 0.75)], fill=(110, 80, 50), width=0.015)
    p.poly([(0.52, 0.1), (0.52, 0.68), (0.85, 0.68)], fill=sail)
    p.poly([(0.48, 0.2), (0.48, 0.68), (0.2, 0.68)], fill=mix(sail, (220, 60, 60), 0.6))
    p.poly([(0.1, 0.74), (0.9, 0.74), (0.78, 0.88), (0.22, 0.88)], fill=(120, 70, 45))
    p.line([(0.16, 0.8), (0.84, 0.8)], fill=WHITE, width=0.01)
    p.poly([(0.5, 0.08), (0.62, 0.11), (0.5, 0.14)], fill=(220, 50, 50))


def _airplane(p: Pen):
    body = (240, 242, 246)
    p.poly([(0.42, 0.5), (0.7, 0.12), (0.78, 0.14), (0.6, 0.5)], fill=(200, 205, 215))   # far wing
    p.ellipse(0.5, 0.5, 0.42, 0.08, fill=body)
    p.poly([(0.08, 0.48), (0.06, 0.26), (0.16, 0.26), (0.24, 0.46)], fill=p.main(0.8, 0.8) if p.hue else (40, 90, 200))
    p.poly([(0.42, 0.5), (0.68, 0.86), (0.78, 0.86), (0.6, 0.5)], fill=(220, 224, 232))  # near wing
    for i in range(7):
        p.circle(0.4 + i * 0.05, 0.47, 0.012, fill=(60, 90, 140))
    p.chord(0.86, 0.5, 0.06, 0.06, 270, 90, fill=(60, 90, 140))


def _umbrella(p: Pen):
    base = p.hue if p.hue else 0
    p.line([(0.5, 0.2), (0.5, 0.85)], fill=INK, width=0.018)
    p.arc(0.58, 0.85, 0.08, 0.08, 0, 180, width=0.018)
    p.chord(0.5, 0.5, 0.45, 0.38, 180, 360, fill=hsv(base, 0.75, 0.9))
    for i in range(4):
        p.pie(0.5, 0.5, 0.45, 0.38, 180 + i * 45, 180 + i * 45 + 22, fill=hsv(base + 40, 0.6, 0.98))
    for i in range(5):
        p.chord(0.05 + 0.09 + i * 0.18, 0.5, 0.09, 0.04, 0, 180, fill=(0, 0, 0, 0))
    p.circle(0.5, 0.11, 0.02, fill=INK)


def _lightbulb(p: Pen):
    glow = (255, 230, 120)
    for i in range(8):
        a = i * math.tau / 8
        p.line([(0.5 + math.cos(a) * 0.36, 0.38 + math.sin(a) * 0.36),
                (0.5 + math.cos(a) * 0.46, 0.38 + math.sin(a) * 0.46)], fill=(255, 200, 60), width=0.02)
    p.circle(0.5, 0.38, 0.26, fill=glow)
    p.poly([(0.38, 0.58), (0.62, 0.58), (0.58, 0.72), (0.42, 0.72)], fill=glow)
    p.line([(0.44, 0.6), (0.47, 0.4), (0.5, 0.5), (0.53, 0.4), (0.56, 0.6)], fill=(220, 140, 40), width=0.01)
    for i in range(3):
        p.rect(0.41, 0.72 + i * 0.05, 0.59, 0.76 + i * 0.05, fill=(160, 160, 170), radius=0.015)
    p.chord(0.5, 0.87, 0.06, 0.05, 0, 180, fill=INK)


def _book(p: Pen):
    cover = p.main(0.7, 0.7) if p.hue else (40, 90, 160)
    p.poly([(0.1, 0.3), (0.5, 0.38), (0.5, 0.9), (0.1, 0.82)], fill=cover)
    p.poly([(0.9, 0.3), (0.5, 0.38), (0.5, 0.9), (0.9, 0.82)], fill=cover)
    p.poly([(0.13, 0.26), (0.5, 0.34), (0.5, 0.85), (0.13, 0.77)], fill=(250, 246, 235))
    p.poly([(0.87, 0.26), (0.5, 0.34), (0.5, 0.85), (0.87, 0.77)], fill=(245, 240, 228))
    for i in range(6):
        y = 0.4 + i * 0.06
        p.line([(0.18, y - 0.03), (0.45, y + 0.02)], fill=(150, 150, 150), width=0.006)
        p.line([(0.55, y + 0.02), (0.82, y - 0.03)], fill=(150, 150, 150), width=0.006)
    p.poly([(0.62, 0.33), (0.68, 0.32), (0.68, 0.5), (0.65, 0.47), (0.62, 0.5)], fill=(220, 50, 50))


def _guitar(p: Pen):
    wood = p.main(0.7, 0.8) if p.hue else (200, 120, 50)
    p.rect(0.46, 0.05, 0.54, 0.5, fill=(90, 55, 30))                                     # neck
    p.rect(0.44, 0.0, 0.56, 0.1, fill=(60, 40, 25), radius=0.02)
    p.circle(0.5, 0.62, 0.2, fill=wood)
    p.circle(0.5, 0.8, 0.24, fill=wood)
    p.circle(0.5, 0.64, 0.07, fill=INK)
    p.rect(0.42, 0.84, 0.58, 0.88, fill=(60, 40, 25))
    for dx in (-0.02, 0, 0.02):
        p.line([(0.5 + dx, 0.05), (0.5 + dx, 0.86)], fill=(230, 230, 230), width=0.004)


def _clock(p: Pen):
    rim = p.main(0.7, 0.75) if p.hue else (200, 60, 60)
    p.circle(0.5, 0.5, 0.42, fill=rim)
    p.circle(0.5, 0.5, 0.36, fill=WHITE)
    for i in range(12):
        a = i * math.tau / 12
        p.line([(0.5 + math.cos(a) * 0.3, 0.5 + math.sin(a) * 0.3),
                (0.5 + math.cos(a) * 0.34, 0.5 + math.sin(a) * 0.34)], width=0.015 if i % 3 == 0 else 0.008)
    p.line([(0.5, 0.5), (0.5, 0.26)], width=0.02)
    p.line([(0.5, 0.5), (0.66, 0.58)], width=0.025)
    p.circle(0.5, 0.5, 0.025, fill=INK)


def _gift(p: Pen):
    box, ribbon = p.main(0.75, 0.85) if p.hue else (220, 50, 60), (250, 210, 60)
    p.rect(0.15, 0.45, 0.85, 0.95, fill=box)
    p.rect(0.1, 0.32, 0.9, 0.47, fill=mix(box, WHITE, 0.15))
    p.rect(0.45, 0.32, 0.55, 0.95, fill=ribbon)
    p.ellipse(0.38, 0.24, 0.12, 0.08, outline=ribbon, width=0.03)
    p.ellipse(0.62, 0.24, 0.12, 0.08, outline=ribbon, width=0.03)
    p.circle(0.5, 0.3, 0.04, fill=ribbon)


# --------------------------------------------------------------------------- products

def _sneaker(p: Pen):
    upper = p.main(0.75, 0.9) if p.hue else (40, 110, 220)
    p.poly([(0.05, 0.72), (0.1, 0.42), (0.35, 0.4), (0.5, 0.5), (0.85, 0.58), (0.96, 0.7), (0.96, 0.78),
            (0.05, 0.78)], fill=upper)
    p.rect(0.04, 0.76, 0.97, 0.86, fill=WHITE, radius=0.04)                             # sole
    p.line([(0.06, 0.82), (0.95, 0.82)], fill=(200, 200, 200), width=0.008)
    p.poly([(0.1, 0.44), (0.2, 0.38), (0.32, 0.42), (0.22, 0.48)], fill=WHITE)          # collar
    for i in range(4):                                                                   # laces
        x = 0.36 + i * 0.07
        p.line([(x, 0.46 + i * 0.025), (x + 0.07, 0.52 + i * 0.025)], fill=WHITE, width=0.015)
    p.line([(0.2, 0.68), (0.45, 0.56), (0.75, 0.66)], fill=WHITE, width=0.025)         # swoosh-like stripe


def _watch(p: Pen):
    strap = (60, 50, 45)
    p.rect(0.38, 0.0, 0.62, 1.0, fill=strap, radius=0.05)
    for y in (0.1, 0.85):
        p.line([(0.42, y), (0.58, y)], fill=(90, 80, 75), width=0.01)
    p.circle(0.5, 0.5, 0.26, fill=(200, 200, 205))
    p.circle(0.5, 0.5, 0.22, fill=p.main(0.6, 0.35) if p.hue else (25, 35, 60))
    for i in range(12):
        a = i * math.tau / 12
        p.circle(0.5 + math.cos(a) * 0.18, 0.5 + math.sin(a) * 0.18, 0.01, fill=WHITE)
    p.line([(0.5, 0.5), (0.5, 0.36)], fill=WHITE, width=0.015)
    p.line([(0.5, 0.5), (0.6, 0.55)], fill=WHITE, width=0.02)
    p.rect(0.76, 0.46, 0.8, 0.54, fill=(180, 180, 185))                                  # crown


def _headphones(p: Pen):
    shell = p.main(0.7, 0.6) if p.hue else (40, 40, 48)
    p.arc(0.5, 0.5, 0.36, 0.38, 180, 360, fill=shell, width=0.06)
    for x in (0.14, 0.86):
        p.rect(x - 0.09, 0.45, x + 0.09, 0.8, fill=shell, radius=0.06)
        p.rect(x - 0.05, 0.5, x + 0.05, 0.75, fill=(90, 90, 100), radius=0.04)


def _bottle(p: Pen):
    glass = p.main(0.55, 0.85) if p.hue else (120, 190, 220)
    p.rect(0.42, 0.04, 0.58, 0.16, fill=(60, 60, 70), radius=0.02)                     # cap
    p.rect(0.44, 0.14, 0.56, 0.3, fill=glass)
    p.rect(0.28, 0.28, 0.72, 0.96, fill=glass, radius=0.1)
    p.rect(0.32, 0.48, 0.68, 0.78, fill=WHITE, radius=0.02)                              # label
    p.line([(0.38, 0.58), (0.62, 0.58)], fill=INK, width=0.02)
    p.line([(0.4, 0.66), (0.6, 0.66)], fill=(150, 150, 150), width=0.01)
    p.rect(0.33, 0.32, 0.38, 0.46, fill=mix(glass, WHITE, 0.5), radius=0.02)          # shine


def _handbag(p: Pen):
    leather = p.main(0.6, 0.65) if p.hue else (160, 80, 50)
    p.arc(0.5, 0.42, 0.22, 0.28, 180, 360, fill=mix(leather, INK, 0.3), width=0.035)
    p.poly([(0.18, 0.42), (0.82, 0.42), (0.92, 0.92), (0.08, 0.92)], fill=leather)
    p.poly([(0.18, 0.42), (0.82, 0.42), (0.78, 0.6), (0.22, 0.6)], fill=mix(leather, INK, 0.2))
    p.rect(0.45, 0.55, 0.55, 0.64, fill=(230, 190, 80), radius=0.015)                   # clasp


def _sunglasses(p: Pen):
    frame = p.main(0.7, 0.5) if p.hue else INK
    for x in (0.28, 0.72):
        p.ellipse(x, 0.52, 0.19, 0.15, fill=frame)
        p.ellipse(x, 0.52, 0.16, 0.12, fill=(40, 50, 70))
        p.ellipse(x - 0.06, 0.48, 0.04, 0.025, fill=(140, 160, 200))
    p.arc(0.5, 0.5, 0.06, 0.05, 200, 340, fill=frame, width=0.025)
    p.line([(0.09, 0.48), (0.02, 0.42)], fill=frame, width=0.025)
    p.line([(0.91, 0.48), (0.98, 0.42)], fill=frame, width=0.025)


def _tshirt(p: Pen):
    cloth = p.main(0.7, 0.85) if p.hue else (230, 230, 228)
    p.poly([(0.32, 0.12), (0.42, 0.1), (0.5, 0.16), (0.58, 0.1), (0.68, 0.12), (0.95, 0.3), (0.85, 0.45),
            (0.75, 0.38), (0.75, 0.92), (0.25, 0.92), (0.25, 0.38), (0.15, 0.45), (0.05, 0.3)], fill=cloth)
    p.chord(0.5, 0.1, 0.09, 0.08, 0, 180, fill=mix(cloth, INK, 0.25))
    p.star(0.5, 0.5, 0.12, fill=mix(cloth, (255, 255, 255), 0.6) if sum(cloth) < 600 else (220, 60, 60))


def _phone(p: Pen):
    p.rect(0.28, 0.04, 0.72, 0.96, fill=INK, radius=0.07)
    screen = hsv(p.hue or 210, 0.5, 0.95)
    p.rect(0.31, 0.1, 0.69, 0.9, fill=screen, radius=0.03)
    for i in range(3):
        for j in range(4):
            p.rect(0.34 + i * 0.12, 0.18 + j * 0.12, 0.42 + i * 0.12, 0.26 + j * 0.12,
                   fill=hsv((p.hue or 210) + i * 40 + j * 70, 0.6, 0.9), radius=0.02)
    p.rect(0.44, 0.06, 0.56, 0.08, fill=(60, 60, 66), radius=0.01)


def _laptop(p: Pen):
    p.rect(0.14, 0.18, 0.86, 0.68, fill=(60, 62, 70), radius=0.03)
    p.rect(0.17, 0.21, 0.83, 0.65, fill=hsv(p.hue or 205, 0.45, 0.9))
    for i in range(4):
        p.rect(0.22, 0.27 + i * 0.08, 0.22 + 0.3 + (i % 2) * 0.2, 0.31 + i * 0.08, fill=WHITE, radius=0.01)
    p.poly([(0.08, 0.7), (0.92, 0.7), (0.98, 0.8), (0.02, 0.8)], fill=(190, 192, 198))
    p.rect(0.42, 0.72, 0.58, 0.76, fill=(160, 162, 168), radius=0.01)


def _camera(p: Pen):
    body = p.main(0.3, 0.3) if p.hue else (45, 45, 50)
    p.rect(0.32, 0.22, 0.52, 0.34, fill=body, radius=0.02)
    p.rect(0.08, 0.3, 0.92, 0.82, fill=body, radius=0.06)
    p.rect(0.08, 0.42, 0.92, 0.7, fill=(130, 100, 70))
    p.circle(0.5, 0.56, 0.22, fill=(170, 170, 175))
    p.circle(0.5, 0.56, 0.16, fill=(30, 30, 40))
    p.circle(0.45, 0.51, 0.04, fill=(120, 140, 190))
    p.rect(0.74, 0.34, 0.86, 0.4, fill=(220, 60, 50), radius=0.01)


def _words(*groups: str) -> tuple[str, ...]:
    return tuple(word for group in groups for word in group.split(","))


SUBJECTS: dict[str, Subject] = {
    # animals
    "cat": Subject(_words("cat,cats,kitten,kittens,kitty"), "outdoor", "animal", _cat),
    "dog": Subject(_words("dog,dogs,puppy,puppies,pup,doggy"), "outdoor", "animal", _dog),
    "bird": Subject(_words("bird,birds,parrot,robin,sparrow,songbird"), "outdoor", "animal", _bird),
    "fish": Subject(_words("fish,goldfish,aquarium,fishes"), "studio", "animal", _fish),
    "butterfly": Subject(_words("butterfly,butterflies,moth"), "sky", "animal", _butterfly),
    "rabbit": Subject(_words("rabbit,rabbits,bunny,bunnies,hare,easter"), "outdoor", "animal", _rabbit),
    "owl": Subject(_words("owl,owls"), "outdoor", "animal", _owl),
    "bee": Subject(_words("bee,bees,honey,bumblebee"), "sky", "animal", _bee),
    "turtle": Subject(_words("turtle,turtles,tortoise"), "outdoor", "animal", _turtle),
    "penguin": Subject(_words("penguin,penguins"), "outdoor", "animal", _penguin),
    # food
    "coffee": Subject(_words("coffee,cup,latte,espresso,cappuccino,tea,mug,cafe"), "studio", "food", _coffee),
    "pizza": Subject(_words("pizza,pizzas,pizzeria"), "studio", "food", _pizza),
    "burger": Subject(_words("burger,burgers,hamburger,cheeseburger"), "studio", "food", _burger),
    "ice cream": Subject(_words("ice cream,icecream,gelato,cone,sundae"), "studio", "food", _ice_cream),
    "cake": Subject(_words("cake,cakes,birthday,cupcake,dessert"), "studio", "food", _cake),
    "apple": Subject(_words("apple,apples,fruit"), "studio", "food", _apple),
    "donut": Subject(_words("donut,donuts,doughnut,doughnuts"), "studio", "food", _donut),
    "watermelon": Subject(_words("watermelon,melon"), "studio", "food", _watermelon),
    "cherries": Subject(_words("cherry,cherries"), "studio", "food", _cherries),
    "banana": Subject(_words("banana,bananas"), "studio", "food", _banana),
    # people
    "person": Subject(_words("person,woman,man,portrait,face,girl,boy,people,selfie,lady,businessman,"
                             "businesswoman,student,teacher,doctor"), "outdoor", "person", _person),
    "runner": Subject(_words("runner,running,jogging,jogger,marathon,athlete,fitness,sprint"), "outdoor",
                      "person", _runner),
    "chef": Subject(_words("chef,cook,cooking,kitchen,restaurant,baker"), "studio", "person", _chef),
    "astronaut": Subject(_words("astronaut,astronauts,spaceman,cosmonaut"), "sky", "person", _astronaut),
    # places and nature
    "lighthouse": Subject(_words("lighthouse,beacon"), "outdoor", "place", _lighthouse),
    "house": Subject(_words("house,home,cabin,cottage,hut,village,barn,real estate"), "outdoor", "place", _house),
    "castle": Subject(_words("castle,castles,palace,fortress,kingdom"), "outdoor", "place", _castle),
    "tent": Subject(_words("tent,camping,campsite,camp"), "outdoor", "place", _tent),
    "pyramid": Subject(_words("pyramid,pyramids,egypt"), "outdoor", "place", _pyramid),
    "windmill": Subject(_words("windmill,windmills,farm"), "outdoor", "place", _windmill),
    "tree": Subject(_words("tree,trees,forest,oak,pine,woods,garden,park"), "outdoor", "place", _tree),
    "flower": Subject(_words("flower,flowers,rose,roses,tulip,tulips,daisy,bouquet,blossom,spring"),
                      "outdoor", "place", _flower),
    "cactus": Subject(_words("cactus,cacti,succulent"), "outdoor", "place", _cactus),
    # objects
    "rocket": Subject(_words("rocket,rockets,spaceship,launch,space,startup"), "sky", "object", _rocket),
    "hot-air balloon": Subject(_words("hot air balloon,balloon,balloons"), "sky", "object", _balloon),
    "car": Subject(_words("car,cars,vehicle,taxi,automobile,sports car,road trip"), "outdoor", "object", _car),
    "bicycle": Subject(_words("bicycle,bicycles,bike,bikes,cycling,cyclist"), "outdoor", "object", _bicycle),
    "sailboat": Subject(_words("sailboat,boat,boats,sailing,yacht,ship"), "outdoor", "object", _sailboat),
    "airplane": Subject(_words("airplane,aeroplane,plane,planes,jet,flight,airline,travel"), "sky", "object",
                        _airplane),
    "umbrella": Subject(_words("umbrella,umbrellas,rain,rainy"), "outdoor", "object", _umbrella),
    "light bulb": Subject(_words("light bulb,lightbulb,bulb,idea,ideas,innovation"), "studio", "object", _lightbulb),
    "book": Subject(_words("book,books,reading,library,novel,study"), "studio", "object", _book),
    "guitar": Subject(_words("guitar,guitars,music,concert,band,musician"), "studio", "object", _guitar),
    "clock": Subject(_words("clock,clocks,time,deadline,alarm"), "studio", "object", _clock),
    "gift": Subject(_words("gift,gifts,present,presents,christmas,holiday"), "studio", "object", _gift),
    # products
    "sneaker": Subject(_words("running shoes,running shoe,sneaker,sneakers,shoe,shoes,trainers,footwear"),
                       "studio", "product", _sneaker),
    "watch": Subject(_words("watch,watches,wristwatch,smartwatch"), "studio", "product", _watch),
    "headphones": Subject(_words("headphones,headphone,headset,earphones,podcast"), "studio", "product",
                          _headphones),
    "bottle": Subject(_words("bottle,bottles,perfume,fragrance,skincare,serum,shampoo,drink"), "studio",
                      "product", _bottle),
    "handbag": Subject(_words("handbag,handbags,bag,bags,purse,tote,backpack"), "studio", "product", _handbag),
    "sunglasses": Subject(_words("sunglasses,shades,glasses,eyewear"), "studio", "product", _sunglasses),
    "t-shirt": Subject(_words("t-shirt,tshirt,shirt,shirts,tee,hoodie,apparel,clothing,fashion"), "studio",
                       "product", _tshirt),
    "phone": Subject(_words("phone,phones,smartphone,iphone,mobile,app,android"), "studio", "product", _phone),
    "laptop": Subject(_words("laptop,laptops,computer,software,coding,saas,website"), "studio", "product",
                      _laptop),
    "camera": Subject(_words("camera,cameras,photography,photographer,photo"), "studio", "product", _camera),
}
