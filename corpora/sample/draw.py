"""Pillow silhouettes of the sample classes, each drawn on its own transparent layer.

Every class is a few primitives laid out in unit coordinates (0..1 across the object's drawing
rectangle), mirrored for left-facing animals and vehicles. The object's annotated box is the
bounding box of the layer's opaque pixels, so it is tight around what was drawn; parts (wheels,
roof, door, windows, trunk, sail) get the box of their primitive, clipped to the object's box.
Drawing is deterministic: no randomness here beyond the flags the caller passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw

from corpora.sample.vocab import COLOURS, RGB

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive
Fill = tuple[int, int, int, int] | None  # RGBA


@dataclass
class Part:
    """A part drawn with its object: VG name, box (x0, y0, x1, y1) and colour attribute."""

    name: str
    box: Box
    colour: str | None = None


def shade(rgb: RGB, factor: float) -> tuple[int, int, int, int]:
    """``rgb`` darkened (factor < 1) or lightened towards white (factor > 1), opaque RGBA."""
    if factor <= 1:
        return (int(rgb[0] * factor), int(rgb[1] * factor), int(rgb[2] * factor), 255)
    t = min(factor - 1, 1.0)
    return tuple(int(c + (255 - c) * t) for c in rgb) + (255,)  # type: ignore[return-value]


def opaque(rgb: RGB) -> tuple[int, int, int, int]:
    return (rgb[0], rgb[1], rgb[2], 255)


class Painter:
    """Draws in unit coordinates on a layer of ``w`` x ``h`` pixels (optionally mirrored)."""

    def __init__(self, w: int, h: int, mirror: bool = False) -> None:
        self.w, self.h, self.mirror = w, h, mirror
        self.layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.layer)
        self.parts: list[Part] = []

    def pt(self, tx: float, ty: float) -> tuple[int, int]:
        if self.mirror:
            tx = 1.0 - tx
        return round(tx * (self.w - 1)), round(ty * (self.h - 1))

    def rect(self, tx0: float, ty0: float, tx1: float, ty1: float) -> Box:
        (ax, ay), (bx, by) = self.pt(tx0, ty0), self.pt(tx1, ty1)
        return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)

    def box(
        self,
        tx0: float,
        ty0: float,
        tx1: float,
        ty1: float,
        fill: Fill,
        outline: Fill = None,
        width: int = 1,
        radius: int = 0,
    ) -> Box:
        r = self.rect(tx0, ty0, tx1, ty1)
        if radius:
            self.draw.rounded_rectangle(r, radius=radius, fill=fill, outline=outline, width=width)
        else:
            self.draw.rectangle(r, fill=fill, outline=outline, width=width)
        return r

    def oval(
        self,
        tx0: float,
        ty0: float,
        tx1: float,
        ty1: float,
        fill: Fill,
        outline: Fill = None,
        width: int = 1,
    ) -> Box:
        r = self.rect(tx0, ty0, tx1, ty1)
        self.draw.ellipse(r, fill=fill, outline=outline, width=width)
        return r

    def poly(self, points: list[tuple[float, float]], fill: Fill, outline: Fill = None) -> Box:
        pts = [self.pt(x, y) for x, y in points]
        self.draw.polygon(pts, fill=fill, outline=outline)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs), max(ys)

    def line(self, points: list[tuple[float, float]], fill: Fill, width: int) -> None:
        self.draw.line([self.pt(x, y) for x, y in points], fill=fill, width=max(1, width))

    def part(self, name: str, r: Box, colour: str | None = None) -> None:
        self.parts.append(Part(name, (r[0], r[1], r[2] + 1, r[3] + 1), colour))

    def px(self, t: float) -> int:
        """A stroke width of ``t`` times the smaller side, at least one pixel."""
        return max(1, round(t * min(self.w, self.h)))


GLASS = (190, 225, 245, 255)
BLACK = opaque(COLOURS["black"])
WHITE = opaque(COLOURS["white"])
BROWN = opaque(COLOURS["brown"])
LEAF = opaque(COLOURS["green"])


def _ball(p: Painter, rgb: RGB, accent: str) -> None:
    p.oval(0, 0, 1, 1, opaque(rgb), shade(rgb, 0.6), p.px(0.05))
    p.oval(0.2, 0.16, 0.42, 0.36, shade(rgb, 1.55))
    p.line([(0.08, 0.62), (0.5, 0.5), (0.92, 0.62)], shade(rgb, 0.7), p.px(0.05))


def _box(p: Painter, rgb: RGB, accent: str) -> None:
    p.poly([(0, 0.25), (0.2, 0), (1, 0), (0.8, 0.25)], shade(rgb, 1.35), shade(rgb, 0.6))
    p.poly([(0.8, 0.25), (1, 0), (1, 0.75), (0.8, 1)], shade(rgb, 0.7), shade(rgb, 0.5))
    p.box(0, 0.25, 0.8, 1, opaque(rgb), shade(rgb, 0.6), p.px(0.03))
    p.line([(0.4, 0.25), (0.4, 1)], shade(rgb, 0.6), p.px(0.04))


def _car(p: Painter, rgb: RGB, accent: str) -> None:
    p.poly([(0.2, 0.44), (0.31, 0.02), (0.69, 0.02), (0.82, 0.44)], opaque(rgb), shade(rgb, 0.6))
    p.poly([(0.28, 0.42), (0.35, 0.1), (0.48, 0.1), (0.48, 0.42)], GLASS)
    p.poly([(0.52, 0.42), (0.52, 0.1), (0.65, 0.1), (0.74, 0.42)], GLASS)
    p.box(0, 0.4, 1, 0.8, opaque(rgb), shade(rgb, 0.6), p.px(0.03), radius=p.px(0.1))
    p.box(0.93, 0.5, 1, 0.6, (250, 240, 150, 255))
    for cx in (0.24, 0.78):
        r = p.oval(cx - 0.12, 0.58, cx + 0.12, 1, BLACK)
        p.oval(cx - 0.05, 0.72, cx + 0.05, 0.86, (170, 170, 170, 255))
        p.part("wheel", r, "black")


def _bus(p: Painter, rgb: RGB, accent: str) -> None:
    p.box(0, 0, 1, 0.84, opaque(rgb), shade(rgb, 0.6), p.px(0.03), radius=p.px(0.08))
    for i in range(5):
        x0 = 0.06 + i * 0.15
        p.box(x0, 0.12, x0 + 0.11, 0.42, GLASS)
    p.box(0.84, 0.12, 0.95, 0.78, GLASS, shade(rgb, 0.6))
    p.line([(0.02, 0.55), (0.82, 0.55)], shade(rgb, 0.65), p.px(0.04))
    for cx in (0.18, 0.68):
        r = p.oval(cx - 0.09, 0.66, cx + 0.09, 1, BLACK)
        p.oval(cx - 0.04, 0.77, cx + 0.04, 0.89, (170, 170, 170, 255))
        p.part("wheel", r, "black")


def _tree(p: Painter, rgb: RGB, accent: str) -> None:
    trunk = p.box(0.42, 0.5, 0.58, 1, BROWN, shade(COLOURS["brown"], 0.7))
    p.part("trunk", trunk, "brown")
    for oval in ((0, 0.2, 0.62, 0.62), (0.38, 0.2, 1, 0.62), (0.14, 0, 0.86, 0.48)):
        p.oval(*oval, opaque(rgb))
    p.oval(0.3, 0.12, 0.5, 0.28, shade(rgb, 1.3))


def _house(p: Painter, rgb: RGB, accent: str) -> None:
    p.box(0.04, 0.44, 0.96, 1, opaque(rgb), shade(rgb, 0.6), p.px(0.02))
    roof = p.poly(
        [(0, 0.46), (0.5, 0), (1, 0.46)], opaque(COLOURS[accent]), shade(COLOURS[accent], 0.6)
    )
    p.part("roof", roof, accent)
    door = p.box(0.42, 0.68, 0.58, 1, BROWN, shade(COLOURS["brown"], 0.6))
    p.part("door", door, "brown")
    for x0 in (0.13, 0.69):
        r = p.box(x0, 0.56, x0 + 0.18, 0.74, GLASS, shade(rgb, 0.5), p.px(0.015))
        p.line([(x0 + 0.09, 0.56), (x0 + 0.09, 0.74)], shade(rgb, 0.5), p.px(0.015))
        p.part("window", r)


def _sun(p: Painter, rgb: RGB, accent: str) -> None:
    for k in range(12):
        a = k * math.pi / 6
        p.line(
            [(0.5, 0.5), (0.5 + 0.5 * math.cos(a), 0.5 + 0.5 * math.sin(a))],
            opaque(rgb),
            p.px(0.06),
        )
    p.oval(0.2, 0.2, 0.8, 0.8, opaque(rgb), shade(rgb, 0.8), p.px(0.03))


def _cloud(p: Painter, rgb: RGB, accent: str) -> None:
    for oval in ((0, 0.35, 0.45, 1), (0.22, 0, 0.68, 0.8), (0.5, 0.2, 1, 1), (0.15, 0.45, 0.85, 1)):
        p.oval(*oval, opaque(rgb))


def _flower(p: Painter, rgb: RGB, accent: str) -> None:
    p.line([(0.5, 0.45), (0.5, 1)], LEAF, p.px(0.14))
    p.oval(0.5, 0.66, 0.95, 0.8, LEAF)
    for k in range(6):
        a = k * math.pi / 3
        cx, cy = 0.5 + 0.28 * math.cos(a), 0.25 + 0.14 * math.sin(a)
        p.oval(cx - 0.22, cy - 0.11, cx + 0.22, cy + 0.11, opaque(rgb), shade(rgb, 0.7))
    centre = "orange" if accent == "yellow" else "yellow"
    p.oval(0.32, 0.16, 0.68, 0.34, opaque(COLOURS[centre]))


def _cup(p: Painter, rgb: RGB, accent: str) -> None:
    p.oval(0.58, 0.2, 1, 0.7, None, shade(rgb, 0.8), p.px(0.1))
    p.poly([(0, 0), (0.76, 0), (0.68, 1), (0.08, 1)], opaque(rgb), shade(rgb, 0.6))
    p.oval(0, 0, 0.76, 0.14, shade(rgb, 0.55))


def _dog(p: Painter, rgb: RGB, accent: str) -> None:
    dark = shade(rgb, 0.6) if sum(rgb) > 150 else shade(rgb, 1.6)
    p.line([(0.17, 0.42), (0.02, 0.12)], opaque(rgb), p.px(0.08))
    for x0 in (0.2, 0.32, 0.6, 0.7):
        p.box(x0, 0.6, x0 + 0.08, 1, opaque(rgb), dark)
    p.oval(0.14, 0.3, 0.82, 0.7, opaque(rgb), dark)
    p.oval(0.66, 0.04, 0.98, 0.42, opaque(rgb), dark)
    p.oval(0.85, 0.2, 1, 0.36, opaque(rgb), dark)
    p.oval(0.68, 0.06, 0.78, 0.36, dark)
    p.oval(0.84, 0.13, 0.89, 0.2, BLACK if dark[0] > 60 else WHITE)


def _cat(p: Painter, rgb: RGB, accent: str) -> None:
    dark = shade(rgb, 0.6) if sum(rgb) > 150 else shade(rgb, 1.6)
    p.line([(0.12, 0.92), (0.02, 0.7), (0.06, 0.48)], opaque(rgb), p.px(0.09))
    p.oval(0.08, 0.4, 0.74, 1, opaque(rgb), dark)
    p.poly([(0.44, 0.2), (0.5, 0), (0.62, 0.14)], opaque(rgb), dark)
    p.poly([(0.76, 0.14), (0.88, 0), (0.92, 0.2)], opaque(rgb), dark)
    p.oval(0.4, 0.06, 0.96, 0.5, opaque(rgb), dark)
    for cx in (0.58, 0.8):
        p.oval(cx - 0.04, 0.2, cx + 0.04, 0.28, (120, 200, 60, 255))
    p.poly([(0.66, 0.32), (0.72, 0.32), (0.69, 0.36)], (230, 120, 140, 255))


def _bird(p: Painter, rgb: RGB, accent: str) -> None:
    p.poly([(0.28, 0.5), (0, 0.36), (0.04, 0.72)], shade(rgb, 0.7))
    p.oval(0.22, 0.34, 0.8, 0.72, opaque(rgb), shade(rgb, 0.6))
    p.oval(0.66, 0.24, 0.92, 0.58, opaque(rgb), shade(rgb, 0.6))
    p.poly([(0.9, 0.34), (1, 0.42), (0.9, 0.48)], opaque(COLOURS["orange"]))
    p.poly([(0.34, 0.48), (0.46, 0), (0.62, 0.46)], shade(rgb, 0.75), shade(rgb, 0.5))
    p.oval(0.78, 0.33, 0.83, 0.4, BLACK if sum(rgb) > 150 else WHITE)


def _kite(p: Painter, rgb: RGB, accent: str) -> None:
    p.line([(0.5, 0.62), (0.42, 0.8), (0.3, 1)], (60, 60, 60, 255), p.px(0.04))
    for ty in (0.76, 0.9):
        tx = 0.42 - (ty - 0.8) * 0.6
        p.poly(
            [(tx - 0.1, ty - 0.03), (tx + 0.1, ty + 0.03), (tx + 0.1, ty - 0.03)],
            opaque(COLOURS[accent]),
        )
    p.poly([(0.5, 0), (1, 0.28), (0.5, 0.62), (0, 0.28)], opaque(rgb), shade(rgb, 0.6))
    p.line([(0.5, 0), (0.5, 0.62)], shade(rgb, 0.6), p.px(0.03))
    p.line([(0, 0.28), (1, 0.28)], shade(rgb, 0.6), p.px(0.03))


def _umbrella(p: Painter, rgb: RGB, accent: str) -> None:
    p.line([(0.5, 0.4), (0.5, 0.95)], (80, 80, 80, 255), p.px(0.04))
    p.line([(0.5, 0.95), (0.44, 1), (0.4, 0.95)], (80, 80, 80, 255), p.px(0.04))
    r = p.rect(0, 0, 1, 0.9)
    p.draw.pieslice(r, 180, 360, fill=opaque(rgb), outline=shade(rgb, 0.6))
    for tx in (0.25, 0.5, 0.75):
        p.line([(0.5, 0.02), (tx, 0.45)], shade(rgb, 0.7), p.px(0.02))


def _chair(p: Painter, rgb: RGB, accent: str) -> None:
    dark = shade(rgb, 0.6)
    p.box(0.08, 0, 0.26, 0.58, opaque(rgb), dark)
    p.box(0.08, 0.52, 0.96, 0.62, opaque(rgb), dark)
    p.box(0.1, 0.6, 0.2, 1, dark)
    p.box(0.84, 0.6, 0.94, 1, dark)


def _table(p: Painter, rgb: RGB, accent: str) -> None:
    dark = shade(rgb, 0.6) if sum(rgb) > 150 else shade(rgb, 1.8)
    p.box(0.06, 0.12, 0.14, 1, dark)
    p.box(0.86, 0.12, 0.94, 1, dark)
    p.box(0.1, 0.12, 0.9, 0.26, dark)
    p.box(0, 0, 1, 0.14, opaque(rgb), dark)


def _lamp(p: Painter, rgb: RGB, accent: str) -> None:
    p.box(0.44, 0.26, 0.56, 0.94, (90, 90, 90, 255))
    p.oval(0.14, 0.9, 0.86, 1, (60, 60, 60, 255))
    p.poly([(0.28, 0), (0.72, 0), (1, 0.28), (0, 0.28)], opaque(rgb), shade(rgb, 0.6))


def _clock(p: Painter, rgb: RGB, accent: str) -> None:
    p.oval(0, 0, 1, 1, opaque(rgb), shade(rgb, 0.6), p.px(0.03))
    face = (250, 250, 245, 255) if rgb != COLOURS["white"] else (225, 225, 215, 255)
    p.oval(0.13, 0.13, 0.87, 0.87, face)
    for k in range(12):
        a = k * math.pi / 6
        p.line(
            [
                (0.5 + 0.3 * math.cos(a), 0.5 + 0.3 * math.sin(a)),
                (0.5 + 0.34 * math.cos(a), 0.5 + 0.34 * math.sin(a)),
            ],
            BLACK,
            p.px(0.03),
        )
    p.line([(0.5, 0.5), (0.5, 0.24)], BLACK, p.px(0.05))
    p.line([(0.5, 0.5), (0.7, 0.56)], BLACK, p.px(0.05))


def _bottle(p: Painter, rgb: RGB, accent: str) -> None:
    p.box(0.36, 0.06, 0.64, 0.4, opaque(rgb), shade(rgb, 0.6))
    p.box(0.32, 0, 0.68, 0.09, (40, 40, 40, 255))
    p.box(0.06, 0.34, 0.94, 1, opaque(rgb), shade(rgb, 0.6), radius=p.px(0.25))
    p.box(0.1, 0.55, 0.9, 0.75, (240, 235, 215, 255))


def _apple(p: Painter, rgb: RGB, accent: str) -> None:
    p.line([(0.5, 0.2), (0.56, 0)], BROWN, p.px(0.07))
    p.oval(0.56, 0, 0.88, 0.16, shade(COLOURS["green"], 0.75))
    p.oval(0, 0.14, 0.56, 1, opaque(rgb), shade(rgb, 0.7))
    p.oval(0.44, 0.14, 1, 1, opaque(rgb), shade(rgb, 0.7))
    p.oval(0.2, 0.3, 0.8, 0.95, opaque(rgb))
    p.oval(0.22, 0.3, 0.36, 0.46, shade(rgb, 1.5))


def _boat(p: Painter, rgb: RGB, accent: str) -> None:
    p.box(0.48, 0.04, 0.52, 0.72, BROWN)
    sail = p.poly([(0.54, 0.04), (0.54, 0.68), (0.92, 0.68)], opaque(COLOURS[accent]))
    p.part("sail", sail, accent)
    p.poly([(0.46, 0.12), (0.46, 0.68), (0.14, 0.68)], opaque(COLOURS[accent]))
    p.poly([(0, 0.72), (1, 0.72), (0.85, 1), (0.15, 1)], opaque(rgb), shade(rgb, 0.6))


DRAWERS: dict[str, Callable[[Painter, RGB, str], None]] = {
    "ball": _ball, "box": _box, "car": _car, "bus": _bus, "tree": _tree, "house": _house,
    "sun": _sun, "cloud": _cloud, "flower": _flower, "cup": _cup, "dog": _dog, "cat": _cat,
    "bird": _bird, "kite": _kite, "umbrella": _umbrella, "chair": _chair, "table": _table,
    "lamp": _lamp, "clock": _clock, "bottle": _bottle, "apple": _apple, "boat": _boat,
}  # fmt: skip
# Accent colours (roof, sail, kite tail, flower centre) the caller picks from.
ACCENTS: dict[str, tuple[str, ...]] = {
    "house": ("red", "brown", "gray", "black"),
    "boat": ("white", "yellow", "red"),
    "kite": ("red", "blue", "yellow", "white"),
}


def render_object(
    canvas: Image.Image,
    name: str,
    colour: str,
    x: int,
    y: int,
    w: int,
    h: int,
    *,
    mirror: bool = False,
    accent: str = "white",
) -> tuple[Box, list[Part]]:
    """Draw one object into ``canvas`` (RGBA) inside the rectangle at (x, y) of w x h pixels.

    Returns the tight box (x0, y0, x1, y1, exclusive ends) of the pixels actually drawn and the
    parts with boxes in canvas coordinates.
    """
    painter = Painter(w, h, mirror)
    DRAWERS[name](painter, COLOURS[colour], accent if name in ACCENTS else colour)
    local = painter.layer.getchannel("A").getbbox()
    if local is None:  # pragma: no cover - every drawer paints something
        raise ValueError(f"nothing drawn for {name}")
    canvas.alpha_composite(painter.layer, dest=(x, y))
    box = (x + local[0], y + local[1], x + local[2], y + local[3])
    parts = []
    for part in painter.parts:
        x0, y0, x1, y1 = part.box
        clipped = (
            max(x + x0, box[0]),
            max(y + y0, box[1]),
            min(x + x1, box[2]),
            min(y + y1, box[3]),
        )
        if clipped[2] > clipped[0] and clipped[3] > clipped[1]:
            parts.append(Part(part.name, clipped, part.colour))
    return box, parts
