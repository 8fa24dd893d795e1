"""In-memory records of the sample corpus's images, shared by the scene, photo and writer modules.

Boxes follow Visual Genome: ``(x, y, w, h)`` in pixels of the original image, top-left corner
plus width and height, so the box covers columns ``x .. x + w - 1`` and rows ``y .. y + h - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

XYWH = tuple[int, int, int, int]

JPEG_QUALITY = 90  # every image under images/ is saved with this quality (fixed: determinism)


@dataclass
class AnnObject:
    """One annotated object. ``role``: ``thing`` (a drawn object), ``part`` (wheel, roof ...,
    with ``parent`` the index of its object) or ``stuff`` (sky, grass, wall ...)."""

    name: str
    box: XYWH
    attributes: list[str]
    role: str = "thing"
    colour: str | None = None
    size: str | None = None
    state: str | None = None
    parent: int | None = None
    support: int | None = None  # index of the object it stands on (cup on table)


@dataclass
class Relation:
    """``objects[subject]`` <predicate> ``objects[object]``."""

    subject: int
    predicate: str
    object: int


@dataclass
class ImageRecord:
    """One image with everything the annotation writers need."""

    image_id: int
    source: str  # "scene" or "photo"
    kind: str  # scene kind (park, street ...) or the photo's name
    width: int
    height: int
    jpeg: bytes
    objects: list[AnnObject] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    regions: list[tuple[str, XYWH]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    credit: str = ""  # where a photo comes from

    @property
    def key(self) -> str:
        """The image key used everywhere: the file stem of ``images/<key>.jpg``."""
        return str(self.image_id)


def union(a: XYWH, b: XYWH) -> XYWH:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return x0, y0, x1 - x0, y1 - y0


def pad(box: XYWH, margin: int, width: int, height: int) -> XYWH:
    """``box`` grown by ``margin`` pixels on every side, clipped to the image."""
    x0, y0 = max(0, box[0] - margin), max(0, box[1] - margin)
    x1, y1 = min(width, box[0] + box[2] + margin), min(height, box[1] + box[3] + margin)
    return x0, y0, x1 - x0, y1 - y0
