"""Region phrases and captions generated from a scene's annotations.

Region phrases follow Visual Genome's style (lower case, no final full stop) and mix attribute
phrases ("small red ball"), relation phrases ("red ball next to blue car") and verb phrases,
so the phrase job has verbs to strip: finite verbs with auxiliaries ("the dog is standing on the
grass"), participles ("bird flying in the sky"), participles used as adjectives ("parked car")
and gerund nouns ("dining table"). Captions are five sentences per image from varied templates
that name colours, sizes and relations, so a model can tell scenes apart from their text.
"""

from __future__ import annotations

import random
import re

from corpora.sample.records import AnnObject, ImageRecord, pad, union
from corpora.sample.scenes import spatial
from corpora.sample.vocab import CLASSES, SCENE_KINDS

KINDS = {k.name: k for k in SCENE_KINDS}
SIZE_WORDS = {"small": ("small", "little", "small"), "large": ("large", "big", "large")}
PRED_WORDS = {
    "left of": ("to the left of", "left of"),
    "right of": ("to the right of", "right of"),
    "above": ("above", "over"),
    "below": ("below", "under"),
    "behind": ("behind",),
    "in front of": ("in front of",),
    "next to": ("next to", "beside"),
    "near": ("near", "close to"),
    "on": ("on", "on top of"),
}
# Verb phrases per class. {d}: colour + name, {c}: colour, {g}: the ground ("grass", "road" ...),
# {s}: what it stands on, {o}: the nearest other object's name.
VERBS: dict[str, tuple[str, ...]] = {
    "dog": (
        "{d} standing on the {g}",
        "the {d} is standing on the {g}",
        "{c} dog walking on {g}",
        "{d} standing near the {o}",
    ),
    "cat": (
        "{d} sitting on the {g}",
        "a {c} cat is sitting on the {g}",
        "sitting {c} cat",
        "{d} that is sitting near the {o}",
    ),
    "bird": (
        "{d} flying in the sky",
        "a {c} bird is flying in the sky",
        "flying {c} bird",
        "{d} flying above the {o}",
    ),
    "kite": ("{d} flying in the sky", "a {c} kite is flying above the {g}", "flying {c} kite"),
    "car": (
        "{d} parked on the road",
        "parked {c} car",
        "the {c} car is parked on the street",
        "{c} car parked near the {o}",
    ),
    "bus": ("{d} driving on the road", "parked {c} bus", "a {c} bus is driving down the street"),
    "cloud": (
        "{d} floating in the sky",
        "a {c} cloud is floating in the sky",
        "{d} drifting across the sky",
    ),
    "sun": ("{d} shining in the sky", "the {c} sun is shining brightly", "shining {c} sun"),
    "tree": ("{d} growing on the {g}", "a tree is growing near the {o}", "{d} standing on the {g}"),
    "house": (
        "{d} standing on the {g}",
        "a {c} house is standing behind the {o}",
        "{d} with windows",
    ),
    "flower": ("{d} growing in the {g}", "{c} flower blooming on the {g}", "blooming {c} flower"),
    "umbrella": (
        "open {c} umbrella",
        "{d} standing in the {g}",
        "a {c} umbrella is open on the {g}",
    ),
    "boat": ("{d} floating on the water", "a {c} boat is sailing on the lake", "sailing {c} boat"),
    "clock": ("{d} hanging on the wall", "a {c} clock is hanging on the wall", "round {c} clock"),
    "lamp": (
        "{d} standing on the {s}",
        "a {c} lamp is standing on the {s}",
        "{d} standing near the {o}",
    ),
    "table": (
        "{c} dining table",
        "dining table standing on the floor",
        "a {c} dining table in the room",
    ),
    "chair": (
        "{d} standing on the floor",
        "empty {c} chair near the {o}",
        "a {c} chair is standing on the floor",
    ),
    "ball": ("{d} lying on the {s}", "a {c} ball is lying on the {s}", "{d} resting on the {s}"),
    "box": ("{d} sitting on the {g}", "closed {c} box", "a {c} box is sitting on the {g}"),
    "cup": ("{d} sitting on the {s}", "a {c} cup is sitting on the {s}", "{d} standing on the {s}"),
    "bottle": ("{d} standing on the {s}", "a {c} bottle is standing on the {s}"),
    "apple": ("{d} lying on the {s}", "a {c} apple is lying on the {s}"),
}
PART_PHRASES = {
    "wheel": ("{c} wheel of the {p}", "the {p} has a {c} wheel"),
    "roof": ("{c} roof on the {p}", "the {p} has a {c} roof"),
    "door": ("{c} door of the {p}", "door on a {p}"),
    "window": ("window of the {p}", "glass window on the {p}"),
    "trunk": ("{c} trunk of the {p}", "tree trunk"),
    "sail": ("{c} sail of the {p}", "the {p} has a {c} sail"),
}


def text_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"msp-sample:{seed}:text:{index}")


def article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def desc(o: AnnObject, rng: random.Random, size: bool | None = None) -> str:
    """ "small red ball", "red ball" or "big red ball" (size words vary)."""
    if size is None:
        size = rng.random() < 0.6
    words = [rng.choice(SIZE_WORDS[o.size])] if size and o.size else []
    return " ".join(words + [o.colour or "", o.name]).strip()


def _support_name(rec: ImageRecord, o: AnnObject) -> str:
    if o.support is None:
        return KINDS[rec.kind].lower
    name = rec.objects[o.support].name
    return "dining table" if name == "table" else name


def _nearest(rec: ImageRecord, i: int, things: list[int]) -> int | None:
    """The closest thing of another class that a verb phrase may name: a ground thing for
    things in the sky ("bird flying above the house"), else another thing on the ground."""
    subject = rec.objects[i]
    aloft = CLASSES[subject.name].zone in ("sky", "wall")
    others = [
        j
        for j in things
        if rec.objects[j].name != subject.name
        and CLASSES[rec.objects[j].name].zone not in ("sky", "wall")
    ]
    if not others or (aloft and CLASSES[subject.name].zone == "wall"):
        return None
    x, y = subject.box[0], subject.box[1]
    return min(
        others, key=lambda j: abs(rec.objects[j].box[0] - x) + abs(rec.objects[j].box[1] - y)
    )


def verb_phrase(rec: ImageRecord, i: int, things: list[int], rng: random.Random) -> str:
    o = rec.objects[i]
    near = _nearest(rec, i, things)
    options = [t for t in VERBS[o.name] if near is not None or "{o}" not in t]
    return rng.choice(options).format(
        d=desc(o, rng),
        c=o.colour,
        g=KINDS[rec.kind].lower,
        s=_support_name(rec, o),
        o="" if near is None else rec.objects[near].name,
    )


def _things(rec: ImageRecord) -> list[int]:
    return [i for i, o in enumerate(rec.objects) if o.role == "thing"]


def add_regions(rec: ImageRecord, rng: random.Random) -> None:
    """Fill ``rec.regions`` with (phrase, box) pairs; boxes are padded objects or unions."""
    w, h = rec.width, rec.height
    things = _things(rec)
    regions: list[tuple[str, tuple[int, int, int, int]]] = []
    for i in things:
        o = rec.objects[i]
        attr = rng.choice(
            (
                f"{o.size} {o.colour} {o.name}",
                f"{o.colour} {o.name}",
                f"the {o.name} is {o.colour}",
                f"{o.size} {o.name}",
            )
        )
        regions.append((attr, o.box))
        regions.append((verb_phrase(rec, i, things, rng), pad(o.box, 8, w, h)))
    pairs = [r for r in rec.relations if r.subject in things and r.object in things]
    for r in rng.sample(pairs, min(4, len(pairs))):
        a, b = rec.objects[r.subject], rec.objects[r.object]
        words = rng.choice(PRED_WORDS[r.predicate])
        regions.append(
            (f"{desc(a, rng, False)} {words} {desc(b, rng, False)}", union(a.box, b.box))
        )
    for o in rec.objects:
        if o.role == "stuff":
            regions.append((f"{o.colour} {o.name}", o.box))
        elif o.role == "part" and o.parent is not None and rng.random() < 0.6:
            template = rng.choice(PART_PHRASES[o.name])
            regions.append((template.format(c=o.colour, p=rec.objects[o.parent].name), o.box))
    rec.regions = regions


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _listing(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def add_captions(rec: ImageRecord, rng: random.Random) -> None:
    """Fill ``rec.captions`` with five distinct sentences; the first names every object."""
    kind = KINDS[rec.kind]
    things = _things(rec)
    objs = [rec.objects[i] for i in things]
    place = rng.choice(kind.place)
    rels = [r for r in rec.relations if r.subject in things and r.object in things]
    out = [f"{place} with {_listing([article(desc(o, rng, True)) for o in objs])}"]
    pool = []
    for r in rels:
        a, b = rec.objects[r.subject], rec.objects[r.object]
        pred = r.predicate if r.predicate in ("on", "next to") else spatial(a, b)
        words = rng.choice(PRED_WORDS[pred])
        pool.append(f"{article(desc(a, rng))} {words} {article(desc(b, rng))} {kind.where}")
        pool.append(f"the {desc(a, rng)} is {rng.choice(PRED_WORDS[pred])} the {desc(b, rng)}")
    for i in things:
        vp = verb_phrase(rec, i, things, rng)
        vp = vp if vp.startswith(("a ", "an ", "the ")) else article(vp)
        subject = rec.objects[i]
        other = [o for k, o in zip(things, objs, strict=True) if k != i and k != subject.support]
        tail = f" with {article(desc(rng.choice(other), rng))} nearby" if other else ""
        pool.append(vp + tail)
    count = ("two", "three", "four", "five")[len(objs) - 2]
    pool.append(
        f"there are {count} things in {place}: "
        f"{_listing([article(desc(o, rng, True)) for o in objs])}"
    )
    pool.append(
        f"a picture of {_listing([article(desc(o, rng)) for o in rng.sample(objs, 2)])} "
        f"{kind.where}"
    )
    if len(objs) >= 3:
        a, b = rng.sample(objs, 2)
        pool.append(
            f"an image showing {article(desc(a, rng))} and {article(desc(b, rng))} among other things"
        )
    rng.shuffle(pool)
    seen = {out[0]}
    for s in pool:
        if s not in seen and len(out) < 5:
            out.append(s)
            seen.add(s)
    while len(out) < 5:  # tiny scenes with few templates: vary the first sentence
        out.append(f"{article(desc(objs[len(out) % len(objs)], rng, True))} {kind.where}")
    rec.captions = [_sentence(s) for s in out]


def tokens(sentence: str) -> list[str]:
    """Karpathy-style tokens: lower-case words and numbers, punctuation dropped."""
    return re.findall(r"[a-z0-9]+", sentence.lower())
