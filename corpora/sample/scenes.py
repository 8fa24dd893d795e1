"""Synthetic scenes: a background, 2-5 objects laid out without overlap, relationships from geometry.

A scene is drawn from its own ``random.Random`` (seeded by the corpus seed and the scene's
index), so scene *i* is the same whatever the number of scenes asked for. Objects stand on the
ground band, float in the sky band, hang on the wall or stand on a table or box; the annotated
box of each object is the tight box of the pixels drawn for it (see :mod:`corpora.sample.draw`).
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

from corpora.sample.draw import ACCENTS, Part, render_object
from corpora.sample.records import JPEG_QUALITY, XYWH, AnnObject, ImageRecord, Relation
from corpora.sample.vocab import (
    BACKGROUND_RGB,
    CLASSES,
    LARGE_SCALE,
    SCENE_KINDS,
    SIZES,
    WALL_COLOURS,
    WALL_RGB,
    SceneKind,
)

WIDTH, HEIGHT = 480, 360
MIRRORED = {"car", "bus", "dog", "cat", "bird", "boat"}  # classes drawn facing either way
SUPPORTS = {"table", "box"}  # things other objects may stand on
STATE = {
    "car": "parked",
    "bus": "parked",
    "bird": "flying",
    "kite": "flying",
    "cat": "sitting",
    "dog": "standing",
    "umbrella": "open",
}
# Drawing order: far and big things first, so small things end up in front.
_ORDER = {"sky": 0, "wall": 0, "water": 1, "ground": 1, "support": 2}


def scene_rng(seed: int, index: int) -> random.Random:
    """The random stream of scene ``index`` (string seeds hash stably across runs)."""
    return random.Random(f"msp-sample:{seed}:scene:{index}")


def _pick_classes(rng: random.Random, kind: SceneKind) -> list[str]:
    n = rng.randint(2, 5)
    picked: list[str] = []
    while len(picked) < n:
        name = rng.choice(kind.classes)
        limit = 1 if name in ("sun", "table", "bus", "clock", "lamp") else 2
        if picked.count(name) < limit:
            picked.append(name)
    return sorted(picked, key=lambda c: (_ORDER[CLASSES[c].zone], -CLASSES[c].width))


def _overlaps(a: XYWH, b: XYWH, margin: int) -> bool:
    return not (
        a[0] + a[2] + margin <= b[0]
        or b[0] + b[2] + margin <= a[0]
        or a[1] + a[3] + margin <= b[1]
        or b[1] + b[3] + margin <= a[1]
    )


Slot = tuple[XYWH, str | None]  # a placed rectangle and "busy" once something stands on it


def _place(
    rng: random.Random,
    name: str,
    w: int,
    h: int,
    horizon: int,
    placed: list[Slot],
    supports: list[int],
) -> tuple[int, int, int | None] | None:
    """A free (x, y) for a w x h rectangle in the class's zone, and the support index if any."""
    zone = CLASSES[name].zone
    if zone == "support":
        free = [i for i in supports if placed[i][1] is None]
        if free and rng.random() < 0.8:
            i = rng.choice(free)
            sx, sy, sw, _ = placed[i][0]
            if sw - 8 > w and sy - h >= 2:
                x = rng.randint(sx + 4, sx + sw - w - 4)
                others = [p[0] for k, p in enumerate(placed) if k != i]
                if not any(_overlaps((x, sy - h, w, h), o, 4) for o in others):
                    placed[i] = (placed[i][0], "busy")
                    return x, sy - h, i
        zone = "ground"
    for _ in range(60):
        x = rng.randint(4, WIDTH - w - 4)
        if zone in ("sky", "wall"):
            top_max = horizon - h - 8
            if top_max < 4:
                return None
            y = rng.randint(4, top_max)
        else:
            low = horizon + (24 if zone == "water" else 8)
            if low > HEIGHT - 4:
                return None
            y = rng.randint(low, HEIGHT - 4) - h
            if y < 2:
                continue
        if not any(_overlaps((x, y, w, h), p[0], 6) for p in placed):
            return x, y, None
    return None


def _colour(rng: random.Random, kind: SceneKind, name: str, used: list[tuple[str, str]]) -> str:
    zone = CLASSES[name].zone
    avoid = {kind.upper_colour} if zone in ("sky", "wall") else {kind.lower_colour}
    if name == "tree":
        avoid = set()
    options = [c for c in CLASSES[name].colours if c not in avoid and (name, c) not in used]
    return rng.choice(options or list(CLASSES[name].colours))


def _background(
    draw: ImageDraw.ImageDraw, rng: random.Random, kind: SceneKind, horizon: int, wall: str
) -> None:
    if kind.upper == "sky":
        top, bottom = (70, 130, 215), BACKGROUND_RGB["sky"]
        for yy in range(horizon):
            t = yy / max(1, horizon - 1)
            draw.line(
                [(0, yy), (WIDTH, yy)],
                fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
            )
    else:
        draw.rectangle([0, 0, WIDTH, horizon], fill=WALL_RGB[wall])
    lower = BACKGROUND_RGB[kind.lower]
    draw.rectangle([0, horizon, WIDTH, HEIGHT], fill=lower)
    dark = tuple(int(c * 0.8) for c in lower)
    if kind.lower == "grass":
        for _ in range(90):
            x, y = rng.randint(0, WIDTH), rng.randint(horizon + 3, HEIGHT)
            draw.line([(x, y), (x + rng.randint(-2, 2), y - 5)], fill=dark, width=1)
    elif kind.lower == "road":
        mid = (horizon + HEIGHT) // 2
        for x in range(0, WIDTH, 60):
            draw.rectangle([x + 10, mid - 2, x + 40, mid + 2], fill=(235, 235, 235))
    elif kind.lower == "water":
        for _ in range(40):
            x, y = rng.randint(0, WIDTH), rng.randint(horizon + 4, HEIGHT)
            draw.arc([x, y, x + 18, y + 6], 200, 340, fill=(170, 210, 240), width=1)
    elif kind.lower == "floor":
        for y in range(horizon + 14, HEIGHT, 18):
            draw.line([(0, y), (WIDTH, y)], fill=dark, width=1)
    elif kind.lower == "sand":
        for _ in range(120):
            x, y = rng.randint(0, WIDTH), rng.randint(horizon + 2, HEIGHT)
            draw.point((x, y), fill=dark)


def direction(a: XYWH, b: XYWH) -> str:
    """Where box ``a`` lies from box ``b``: "left of", "right of", "above" or "below"."""
    dx = (a[0] + a[2] / 2) - (b[0] + b[2] / 2)
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    if abs(dy) > 1.2 * abs(dx) and (a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]):
        return "above" if dy < 0 else "below"
    return "left of" if dx < 0 else "right of"


def spatial(a: AnnObject, b: AnnObject) -> str:
    """The spatial predicate of thing ``a`` relative to thing ``b``.

    Between two things standing on the ground, "higher in the picture" means farther away, so
    a vertical offset reads "behind" / "in front of" rather than "above" / "below".
    """
    where = direction(a.box, b.box)
    grounded = {CLASSES[a.name].zone, CLASSES[b.name].zone} <= {"ground", "support", "water"}
    if grounded and a.support is None and b.support is None and where in ("above", "below"):
        return "behind" if where == "above" else "in front of"
    return where


def gap(a: XYWH, b: XYWH) -> int:
    """Pixels between the edges of two boxes (0 when they touch or overlap)."""
    gx = max(0, max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2]))
    gy = max(0, max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3]))
    return max(gx, gy)


def _relations(
    objects: list[AnnObject], things: list[int], upper: int, lower: int
) -> list[Relation]:
    rels: list[Relation] = []
    for n, i in enumerate(things):
        for j in things[n + 1 :]:
            a, b = objects[i], objects[j]
            if a.support == j or b.support == i:
                top, base = (i, j) if a.support == j else (j, i)
                rels.append(Relation(top, "on", base))
                continue
            near = {CLASSES[a.name].zone, CLASSES[b.name].zone} <= {"ground", "support"}
            d = gap(a.box, b.box)
            if near and d < 24:
                pred = "next to"
            elif near and d < 60 and direction(a.box, b.box) in ("left of", "right of"):
                pred = "near"
            else:
                pred = spatial(a, b)
            rels.append(Relation(i, pred, j))
    for i in things:
        o = objects[i]
        zone = CLASSES[o.name].zone
        if o.support is not None:
            continue
        if zone == "sky":
            rels.append(Relation(i, "in", upper))
        elif zone == "wall":
            rels.append(Relation(i, "on", upper))
        else:
            rels.append(Relation(i, "on", lower))
    for i, o in enumerate(objects):
        if o.role == "part" and o.parent is not None:
            rels.append(Relation(o.parent, "has", i))
    return rels


def _xywh(box: tuple[int, int, int, int]) -> XYWH:
    return box[0], box[1], box[2] - box[0], box[3] - box[1]


def make_scene(seed: int, index: int, image_id: int) -> ImageRecord:
    """Lay out, draw and annotate scene ``index``; the JPEG is encoded at :data:`JPEG_QUALITY`."""
    rng = scene_rng(seed, index)
    kind = rng.choices(SCENE_KINDS, weights=[k.weight for k in SCENE_KINDS])[0]
    while True:
        horizon = rng.randint(int(HEIGHT * 0.42), int(HEIGHT * 0.58))
        layout: list[Slot] = []
        specs = []
        for name in _pick_classes(rng, kind):
            cls, size = CLASSES[name], rng.choice(SIZES)
            scale = (LARGE_SCALE if size == "large" else 1.0) * rng.uniform(0.9, 1.1)
            w = round(cls.width * scale)
            h = round(w * cls.aspect)
            supports = [k for k, s in enumerate(specs) if s[0] in SUPPORTS]
            spot = _place(rng, name, w, h, horizon, layout, supports)
            if spot is None:
                continue
            layout.append(((spot[0], spot[1], w, h), None))
            specs.append((name, size, spot[2]))
        if len(specs) >= 2:
            break
    wall = rng.choice(WALL_COLOURS)
    canvas = Image.new("RGBA", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(canvas)
    _background(draw, rng, kind, horizon, wall)
    upper_colour = wall if kind.upper == "wall" else kind.upper_colour
    objects = [
        AnnObject(
            kind.upper, (0, 0, WIDTH, horizon), [upper_colour], role="stuff", colour=upper_colour
        ),
        AnnObject(
            kind.lower,
            (0, horizon, WIDTH, HEIGHT - horizon),
            [kind.lower_colour],
            role="stuff",
            colour=kind.lower_colour,
        ),
    ]
    used: list[tuple[str, str]] = []
    things: list[int] = []
    parts: list[tuple[int, Part]] = []
    for (rect, _), (name, size, support) in zip(layout, specs, strict=True):
        colour = _colour(rng, kind, name, used)
        used.append((name, colour))
        accent = (
            rng.choice([a for a in ACCENTS[name] if a != colour]) if name in ACCENTS else colour
        )
        mirror = name in MIRRORED and rng.random() < 0.5
        box, drawn_parts = render_object(canvas, name, colour, *rect, mirror=mirror, accent=accent)
        attrs = [colour, size] + ([STATE[name]] if name in STATE else [])
        idx = len(objects)
        objects.append(
            AnnObject(
                name,
                _xywh(box),
                attrs,
                colour=colour,
                size=size,
                state=STATE.get(name),
                support=None if support is None else things[support],
            )
        )
        things.append(idx)
        parts.extend((idx, p) for p in drawn_parts)
    for parent, p in parts:
        objects.append(
            AnnObject(
                p.name,
                _xywh(p.box),
                [p.colour] if p.colour else [],
                role="part",
                colour=p.colour,
                parent=parent,
            )
        )
    buf = io.BytesIO()
    canvas.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY)
    return ImageRecord(
        image_id=image_id,
        source="scene",
        kind=kind.name,
        width=WIDTH,
        height=HEIGHT,
        jpeg=buf.getvalue(),
        objects=objects,
        relations=_relations(objects, things, 0, 1),
    )
