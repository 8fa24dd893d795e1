"""Visual Genome JSON files, streamed one image (one top-level array element) at a time.

========================  ==================================================  ====================
file                      element of the top-level array                      yields
========================  ==================================================  ====================
image_data.json           {image_id | id, url, width, height, coco_id?,       VGImage
                          flickr_id?}
region_descriptions.json  {id | image_id, regions: [{region_id, image_id,     VGImageRegions
                          phrase, x, y, width, height}]}
objects.json              {image_id, objects: [{object_id | id, x, y, w, h,   VGImageObjects
                          names: [..] | name, synsets: [..]}]}
attributes.json           like objects.json (list under "attributes" or       VGImageObjects
                          "objects"), objects with "attributes": [..]
relationships.json        {image_id, relationships: [{relationship_id,        VGImageRelationships
                          predicate, synsets, subject: {..}, object: {..}}]}
========================  ==================================================  ====================

Files may be gzip-compressed. Coordinates are pixels of the original image, as in the files.
An empty item list is a valid element (an image without regions). A malformed element (null or
missing image id, list missing) is rejected whole; a malformed item (a region without a phrase) is
rejected alone and the image is yielded with the remaining items. In ``on_error="yield"`` mode
the rejections come as :class:`~corpora.readers.common.Malformed` before the image's record.
A file cut short or holding invalid JSON ends the stream at the element where reading stopped:
a last ``Malformed`` (``record_id`` None) in yield mode, a ``JsonStreamError`` in strict mode. A
file that is not a JSON array at all raises in both modes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from corpora.readers.common import (
    Malformed,
    OnError,
    Source,
    check_on_error,
    image_key,
    reject,
    source_name,
)
from corpora.readers.fields import (
    FieldError,
    get_field,
    get_int,
    get_list,
    get_num,
    get_str,
    get_strings,
)
from corpora.readers.jsonstream import JsonStreamError, iter_json_array

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VGImage:
    """One line of image_data.json."""

    image_id: int
    url: str
    width: int
    height: int
    coco_id: int | None
    flickr_id: int | None

    @property
    def key(self) -> str:
        """The image key: the stem of the image URL (equals the image id in VG)."""
        return image_key(self.url)


@dataclass(frozen=True, slots=True)
class VGRegion:
    """A region description: a phrase and its box (x, y, width, height in pixels)."""

    region_id: int
    image_id: int
    phrase: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class VGObject:
    """An object box (x, y, w, h in pixels), its names, synsets and attributes (if listed)."""

    object_id: int
    x: float
    y: float
    w: float
    h: float
    names: tuple[str, ...]
    synsets: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VGRelationship:
    """A (subject, predicate, object) triple between two object boxes."""

    relationship_id: int
    predicate: str
    synsets: tuple[str, ...]
    subject: VGObject
    object: VGObject


@dataclass(frozen=True, slots=True)
class VGImageRegions:
    """The regions of one image (possibly none).

    ``key`` is the image key (VG image files are named ``<image_id>.jpg``).
    """

    image_id: int
    regions: tuple[VGRegion, ...]

    @property
    def key(self) -> str:
        return str(self.image_id)


@dataclass(frozen=True, slots=True)
class VGImageObjects:
    """The objects of one image (possibly none); ``attributes`` filled from attributes.json.

    ``key`` is the image key (VG image files are named ``<image_id>.jpg``).
    """

    image_id: int
    objects: tuple[VGObject, ...]

    @property
    def key(self) -> str:
        return str(self.image_id)


@dataclass(frozen=True, slots=True)
class VGImageRelationships:
    """The relationships of one image (possibly none).

    ``key`` is the image key (VG image files are named ``<image_id>.jpg``).
    """

    image_id: int
    relationships: tuple[VGRelationship, ...]

    @property
    def key(self) -> str:
        return str(self.image_id)


# ---------------------------------------------------------------------------- item parsers
def _object(obj: Any, where: str = "") -> VGObject:
    if not isinstance(obj, dict):
        raise FieldError(where.rstrip(".") or "objects[]", f"expected an object, got {obj!r}")
    if "names" in obj or "name" not in obj:
        names = get_strings(obj, "names", where=where)
        if not names:
            raise FieldError(f"{where}names", "missing or empty (nor 'name')")
    else:
        names = (get_str(obj, "name", where=where, nonempty=True),)
    return VGObject(
        object_id=get_int(obj, "object_id", "id", where=where),
        x=get_num(obj, "x", where=where),
        y=get_num(obj, "y", where=where),
        w=get_num(obj, "w", where=where),
        h=get_num(obj, "h", where=where),
        names=names,
        synsets=get_strings(obj, "synsets", where=where),
        attributes=get_strings(obj, "attributes", where=where),
    )


def _region(item: Any, image_id: int) -> VGRegion:
    if not isinstance(item, dict):
        raise FieldError("regions[]", f"expected an object, got {item!r}")
    inner = get_int(item, "image_id", optional=True)
    if inner is not None and inner != image_id:
        raise FieldError("image_id", f"{inner} differs from the element's image id {image_id}")
    return VGRegion(
        region_id=get_int(item, "region_id", "id"),
        image_id=image_id,
        phrase=get_str(item, "phrase", nonempty=True),
        x=get_num(item, "x"),
        y=get_num(item, "y"),
        width=get_num(item, "width"),
        height=get_num(item, "height"),
    )


def _relationship(item: Any, image_id: int) -> VGRelationship:
    if not isinstance(item, dict):
        raise FieldError("relationships[]", f"expected an object, got {item!r}")
    get_field(item, ("subject",))
    get_field(item, ("object",))
    return VGRelationship(
        relationship_id=get_int(item, "relationship_id", "id"),
        predicate=get_str(item, "predicate"),
        synsets=get_strings(item, "synsets"),
        subject=_object(item["subject"], "subject."),
        object=_object(item["object"], "object."),
    )


def _items(
    label: str,
    index: int,
    image_id: int,
    items: list[Any],
    parse: Callable[[Any, int], T],
    id_keys: tuple[str, ...],
    mode: OnError,
) -> tuple[list[T], list[Malformed]]:
    """Parse the items of one element; a bad item is rejected alone (raised in strict mode)."""
    good: list[T] = []
    bad: list[Malformed] = []
    for pos, item in enumerate(items):
        try:
            good.append(parse(item, image_id))
        except FieldError as exc:
            item_id = next((item[k] for k in id_keys if isinstance(item, dict) and k in item), None)
            what = f"item {pos}" + (f" ({id_keys[0]} {item_id})" if item_id is not None else "")
            bad_item = Malformed(
                label, index, image_id, f"{what}: {exc}", sub_index=pos, field=exc.field
            )
            bad.append(reject(bad_item, mode))
    return good, bad


# ---------------------------------------------------------------------------- the stream driver
def _stream(
    path: Source,
    mode: OnError,
    parse: Callable[[str, int, dict[str, Any], OnError], tuple[Any, list[Malformed]]],
    name: str | None,
    chunk_chars: int,
) -> Iterator[Any]:
    label = source_name(path, name)
    count = rejected = 0
    elements = iter_json_array(path, name=label, chunk_chars=chunk_chars)
    while True:
        try:
            index, element = next(elements)
        except StopIteration:
            break
        except JsonStreamError as exc:
            if exc.index is None or mode == "raise":
                raise
            rejected += 1
            yield Malformed(label, exc.index, None, f"{exc.reason} (offset {exc.offset})")
            break
        count += 1
        element_id = (
            element.get("image_id", element.get("id")) if isinstance(element, dict) else None
        )
        try:
            if not isinstance(element, dict):
                raise FieldError("<element>", f"expected an object, got {type(element).__name__}")
            record, item_rejects = parse(label, index, element, mode)
        except FieldError as exc:
            rejected += 1
            yield reject(Malformed(label, index, element_id, str(exc), field=exc.field), mode)
            continue
        rejected += len(item_rejects)
        yield from item_rejects
        yield record
    logger.info("%s: %d elements read, %d rejections", label, count, rejected)


def _image_id(element: dict[str, Any]) -> int:
    return get_int(element, "image_id", "id")  # region_descriptions.json and old files use "id"


_Parsed = tuple[Any, list[Malformed]]


def _parse_image(label: str, index: int, el: dict[str, Any], mode: OnError) -> _Parsed:
    image_id = _image_id(el)
    url = get_str(el, "url", nonempty=True)
    try:
        image_key(url)
    except ValueError as exc:
        raise FieldError("url", str(exc)) from None
    record = VGImage(
        image_id=image_id,
        url=url,
        width=get_int(el, "width"),
        height=get_int(el, "height"),
        coco_id=get_int(el, "coco_id", optional=True),
        flickr_id=get_int(el, "flickr_id", optional=True),
    )
    return record, []


def _parse_regions(label: str, index: int, el: dict[str, Any], mode: OnError) -> _Parsed:
    image_id = _image_id(el)
    items = get_list(el, "regions")
    good, bad = _items(label, index, image_id, items, _region, ("region_id", "id"), mode)
    return VGImageRegions(image_id, tuple(good)), bad


def _objects_parser(list_keys: tuple[str, ...]) -> Callable[..., _Parsed]:
    def parse(label: str, index: int, el: dict[str, Any], mode: OnError) -> _Parsed:
        image_id = _image_id(el)
        items = get_list(el, *list_keys)
        good, bad = _items(label, index, image_id, items, _object_item, ("object_id", "id"), mode)
        return VGImageObjects(image_id, tuple(good)), bad

    return parse


# objects.json lists objects under "objects"; attributes.json under "attributes" (some copies
# of it keep "objects"): each reader accepts both, preferring its own.
_parse_objects = _objects_parser(("objects", "attributes"))
_parse_attributes = _objects_parser(("attributes", "objects"))


def _parse_relationships(label: str, index: int, el: dict[str, Any], mode: OnError) -> _Parsed:
    image_id = _image_id(el)
    items = get_list(el, "relationships")
    id_keys = ("relationship_id", "id")
    good, bad = _items(label, index, image_id, items, _relationship, id_keys, mode)
    return VGImageRelationships(image_id, tuple(good)), bad


def _object_item(item: Any, image_id: int) -> VGObject:
    return _object(item, "")


# ---------------------------------------------------------------------------- public readers
_CHUNK = 1 << 20


def iter_vg_images(
    path: Source, *, on_error: OnError = "raise", name: str | None = None, chunk_chars: int = _CHUNK
) -> Iterator[VGImage | Malformed]:
    """Stream image_data.json: one :class:`VGImage` per image (``Malformed`` in yield mode)."""
    return _stream(path, check_on_error(on_error), _parse_image, name, chunk_chars)


def iter_vg_regions(
    path: Source, *, on_error: OnError = "raise", name: str | None = None, chunk_chars: int = _CHUNK
) -> Iterator[VGImageRegions | Malformed]:
    """Stream region_descriptions.json: one :class:`VGImageRegions` per image."""
    return _stream(path, check_on_error(on_error), _parse_regions, name, chunk_chars)


def iter_vg_objects(
    path: Source, *, on_error: OnError = "raise", name: str | None = None, chunk_chars: int = _CHUNK
) -> Iterator[VGImageObjects | Malformed]:
    """Stream objects.json: one :class:`VGImageObjects` per image (attributes empty if absent)."""
    return _stream(path, check_on_error(on_error), _parse_objects, name, chunk_chars)


def iter_vg_attributes(
    path: Source, *, on_error: OnError = "raise", name: str | None = None, chunk_chars: int = _CHUNK
) -> Iterator[VGImageObjects | Malformed]:
    """Stream attributes.json: one :class:`VGImageObjects` per image, objects with attributes."""
    return _stream(path, check_on_error(on_error), _parse_attributes, name, chunk_chars)


def iter_vg_relationships(
    path: Source, *, on_error: OnError = "raise", name: str | None = None, chunk_chars: int = _CHUNK
) -> Iterator[VGImageRelationships | Malformed]:
    """Stream relationships.json: one :class:`VGImageRelationships` per image."""
    return _stream(path, check_on_error(on_error), _parse_relationships, name, chunk_chars)
