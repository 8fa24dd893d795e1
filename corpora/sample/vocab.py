"""The sample corpus's closed vocabulary: object classes, colours, attributes, predicates, scenes.

Every object name, attribute word and relationship predicate below is an entry of the Visual
Genome detector label files (1600 objects, 400 attributes, 20 relation groups), so detector
labels, VG phrases and captions of the sample corpus speak the same words. A test checks them
against the label files; the files themselves are not part of the project.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]

# Colour names (VG attributes) and the RGB used to paint them.
COLOURS: dict[str, RGB] = {
    "red": (214, 39, 40),
    "blue": (31, 90, 200),
    "green": (44, 160, 44),
    "yellow": (245, 205, 30),
    "orange": (255, 127, 14),
    "purple": (128, 60, 170),
    "pink": (240, 120, 180),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
    "brown": (140, 86, 45),
    "gray": (128, 128, 128),
}
SIZES = ("small", "large")
LARGE_SCALE = 1.7  # a large object is this many times the width of a small one
# State attributes given to objects by their pose or scene role (VG attributes too).
STATES = ("parked", "flying", "sitting", "standing", "open")
ATTRIBUTES: tuple[str, ...] = tuple(COLOURS) + SIZES + STATES

# Relationship predicates used in relationships.json (each is a VG relation synonym).
PREDICATES = (
    "on",
    "in",
    "has",
    "left of",
    "right of",
    "above",
    "below",
    "behind",
    "in front of",
    "next to",
    "near",
)


@dataclass(frozen=True)
class ObjectClass:
    """A drawable object class.

    ``zone`` says where it goes: ``ground`` (stands on the ground band), ``sky`` (floats in the
    sky band), ``wall`` (hangs on an indoor wall), ``water`` (floats on water) or ``support``
    (small things that stand on a table or box when one is present, else on the ground).
    ``width`` is the drawing width in pixels of a small one; ``aspect`` is height / width.
    """

    name: str
    zone: str
    width: int
    aspect: float
    colours: tuple[str, ...]


_ALL = tuple(COLOURS)
CLASSES: dict[str, ObjectClass] = {
    c.name: c
    for c in (
        ObjectClass(
            "ball", "support", 30, 1.0, ("red", "blue", "yellow", "orange", "purple", "pink")
        ),
        ObjectClass("box", "ground", 44, 0.85, ("brown", "red", "blue", "yellow", "orange")),
        ObjectClass(
            "car", "ground", 92, 0.56, ("red", "blue", "yellow", "white", "black", "orange")
        ),
        ObjectClass("bus", "ground", 140, 0.52, ("yellow", "red", "blue", "white", "orange")),
        ObjectClass("tree", "ground", 64, 1.55, ("green", "orange", "yellow")),
        ObjectClass(
            "house", "ground", 96, 1.0, ("white", "yellow", "red", "blue", "pink", "brown")
        ),
        ObjectClass("sun", "sky", 46, 1.0, ("yellow", "orange")),
        ObjectClass("cloud", "sky", 84, 0.55, ("white", "gray")),
        ObjectClass("flower", "ground", 28, 2.0, ("red", "pink", "purple", "yellow", "white")),
        ObjectClass("cup", "support", 26, 0.95, ("red", "blue", "white", "yellow", "pink")),
        ObjectClass("dog", "ground", 66, 0.78, ("brown", "black", "white", "gray", "yellow")),
        ObjectClass("cat", "ground", 50, 0.86, ("orange", "black", "white", "gray", "brown")),
        ObjectClass("bird", "sky", 40, 0.62, ("red", "yellow", "black", "white", "orange")),
        ObjectClass(
            "kite", "sky", 40, 1.55, ("red", "yellow", "orange", "purple", "pink", "green")
        ),
        ObjectClass("umbrella", "ground", 84, 1.0, ("red", "blue", "orange", "purple", "pink")),
        ObjectClass("chair", "ground", 46, 1.6, ("brown", "red", "blue", "black", "white")),
        ObjectClass("table", "ground", 116, 0.58, ("brown", "white", "black")),
        ObjectClass("lamp", "ground", 34, 3.0, ("yellow", "white", "red", "blue", "green")),
        ObjectClass("clock", "wall", 40, 1.0, ("red", "blue", "black", "white", "green")),
        ObjectClass("bottle", "support", 16, 2.6, ("green", "blue", "brown", "white")),
        ObjectClass("apple", "support", 22, 1.0, ("red", "green", "yellow")),
        ObjectClass("boat", "water", 104, 0.9, ("red", "white", "yellow", "orange", "black")),
    )
}
# Parts drawn with their parent, annotated as objects of their own ("car has wheel").
PART_NAMES = ("wheel", "roof", "door", "window", "trunk", "sail")
# Background stuff: scene kind -> (upper region, lower region); each is annotated as an object.
BACKGROUND_NAMES = ("sky", "grass", "road", "sand", "water", "wall", "floor")


@dataclass(frozen=True)
class SceneKind:
    """A background and the classes that may appear on it (repeats raise their odds)."""

    name: str
    upper: str  # "sky" or "wall"
    lower: str  # "grass", "road", "sand", "water", "floor"
    upper_colour: str
    lower_colour: str
    classes: tuple[str, ...]
    weight: float
    place: tuple[str, ...]  # caption phrases naming the place
    where: str  # "on the grass", "in the room" ...


SCENE_KINDS: tuple[SceneKind, ...] = (
    SceneKind(
        "park",
        "sky",
        "grass",
        "blue",
        "green",
        (
            "tree",
            "house",
            "dog",
            "cat",
            "ball",
            "flower",
            "kite",
            "bird",
            "sun",
            "cloud",
            "umbrella",
            "box",
            "tree",
            "dog",
        ),
        0.3,
        ("a grassy park", "a green field", "a sunny meadow"),
        "on the grass",
    ),
    SceneKind(
        "street",
        "sky",
        "road",
        "blue",
        "gray",
        ("car", "bus", "house", "tree", "dog", "bird", "sun", "cloud", "ball", "car", "house"),
        0.25,
        ("a street", "a quiet road", "a town street"),
        "on the road",
    ),
    SceneKind(
        "beach",
        "sky",
        "sand",
        "blue",
        "tan",
        ("umbrella", "ball", "kite", "bird", "sun", "cloud", "dog", "box", "bottle", "umbrella"),
        0.15,
        ("a sandy beach", "the beach", "a beach on a sunny day"),
        "on the sand",
    ),
    SceneKind(
        "lake",
        "sky",
        "water",
        "blue",
        "blue",
        ("boat", "boat", "bird", "sun", "cloud", "kite", "boat"),
        0.1,
        ("a lake", "a calm lake", "a harbour"),
        "on the water",
    ),
    SceneKind(
        "room",
        "wall",
        "floor",
        "white",
        "brown",
        (
            "table",
            "chair",
            "lamp",
            "clock",
            "cat",
            "dog",
            "ball",
            "box",
            "cup",
            "bottle",
            "apple",
            "table",
            "cup",
        ),
        0.2,
        ("a room", "a living room", "a kitchen"),
        "in the room",
    ),
)
WALL_COLOURS = ("white", "yellow", "pink", "gray")
# Light shades used to paint walls (the name above is the annotated attribute).
WALL_RGB: dict[str, RGB] = {
    "white": (236, 232, 222),
    "yellow": (246, 228, 160),
    "pink": (242, 200, 205),
    "gray": (190, 190, 196),
}
BACKGROUND_RGB: dict[str, RGB] = {
    "sky": (120, 180, 235),
    "grass": (90, 170, 70),
    "road": (105, 105, 110),
    "sand": (222, 198, 140),
    "water": (50, 110, 180),
    "floor": (150, 100, 60),
}


def vocabulary() -> dict[str, set[str]]:
    """Every object name, attribute and predicate the scene generator can emit."""
    names = set(CLASSES) | set(PART_NAMES) | set(BACKGROUND_NAMES)
    attributes = set(ATTRIBUTES) | set(WALL_COLOURS)
    for kind in SCENE_KINDS:
        attributes |= {kind.upper_colour, kind.lower_colour}
    return {"objects": names, "attributes": attributes, "predicates": set(PREDICATES)}
