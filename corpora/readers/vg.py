"""Visual Genome JSON files, streamed one image (one top-level array element) at a time.

=========================  ===========================================================  ============
file                       element                                                      yields
=========================  ===========================================================  ============
image_data.json            {image_id | id, url, width, height, coco_id?, flickr_id?}    VGImage
region_descriptions.json   {id | image_id, regions: [{region_id, image_id, phrase,      VGImageRegions
                           x, y, width, height}]}
objects.json               {image_id, objects: [{object_id | id, x, y, w, h,            VGImageObjects
                           names: [..] | name, synsets: [..]}]}
attributes.json            like objects.json (list under "attributes" or "objects"),    VGImageObjects
                           each object with "attributes": [..]
relationships.json         {image_id, relationships: [{relationship_id, predicate,      VGImageRelationships
                           synsets, subject: {object}, object: {object}}]}
=========================  ===========================================================  ============

Files may be gzip-compressed. Coordinates are pixels of the original image, as in the files.
An empty item list is a valid element (an image without regions). A malformed element (null or
missing image id, list missing) is rejected whole; a malformed item (a region without a phrase) is
rejected alone and the image is yielded with the remaining items. In ``on_error="yield"`` mode
the rejections come as :class:`~corpora.readers.common.Malformed` before the image's record.
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
    """An object box (x, y, w, h in pixels) with its names, synsets and (attributes.json) attributes."""

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
    image_id: int
    regions: tuple[VGRegion, ...]

    @property
    def key(self) -> str:
        return str(self.image_id)


@dataclass(frozen=True, slots=True)
class VGImageObjects:
    image_id: int
    objects: tuple[VGObject, ...]

    @property
    def key(self) -> str:
        return str(self.image_id)


@dataclass(frozen=True, slots=True)
class VGImageRelationships:
    image_id: int
    relationships: tuple[VGRelationship, ...]

    @property
    def key(self) -> str:
        return str(self.image_id)


class _Bad(Exception):
    """A field problem inside an element: ``field`` names the field (dotted path)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field {field!r}: {reason}")
        self.field = field


# ---------------------------------------------------------------------------- field accessors
def _get(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> tuple[str, Any]:
    for key in keys:
        if key in obj:
            return key, obj[key]
    raise _Bad(f"{where}{keys[0]}", "missing" + (f" (also looked for {keys[1:]})" * (len(keys) > 1)))


def _int(obj: dict[str, Any], *keys: str, where: str = "", optional: bool = False) -> int | None:
    try:
        key, value = _get(obj, keys, where)
    except _Bad:
        if optional:
            return None
        raise
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{where}{key}", f"expected an integer, got {value!r}")
    return value


def _num(obj: dict[str, Any], key: str, where: str) -> float:
    _, value = _get(obj, (key,), where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"{where}{key}", f"expected a number, got {value!r}")
    return value


def _str(obj: dict[str, Any], key: str, where: str, *, nonempty: bool = False) -> str:
    _, value = _get(obj, (key,), where)
    if not isinstance(value, str):
        raise _Bad(f"{where}{key}", f"expected a string, got {value!r}")
    if nonempty and not value.strip():
        raise _Bad(f"{where}{key}", "empty")
    return value


def _strings(obj: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _Bad(f"{where}{key}", f"expected a list of strings, got {value!r}")
    return tuple(s.strip() for s in value)


def _list(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, list[Any]]:
    key, value = _get(obj, keys, "")
    if not isinstance(value, list):
        raise _Bad(key, f"expected a list, got {type(value).__name__}")
    return key, value


def _object(obj: Any, where: str) -> VGObject:
    if not isinstance(obj, dict):
        raise _Bad(where.rstrip("."), f"expected an object, got {type(obj).__name__}")
    if "names" in obj:
        names = _strings(obj, "names", where)
    elif "name" in obj:
        names = (_str(obj, "name", where).strip(),)
    else:
        raise _Bad(f"{where}names", "missing (also looked for 'name')")
    return VGObject(
        object_id=_int(obj, "object_id", "id", where=where),
        x=_num(obj, "x", where),
        y=_num(obj, "y", where),
        w=_num(obj, "w", where),
        h=_num(obj, "h", where),
        names=names,
        synsets=_strings(obj, "synsets", where),
        attributes=_strings(obj, "attributes", where),
    )


# ---------------------------------------------------------------------------- element parsers
def _region(item: Any, image_id: int) -> VGRegion:
    if not isinstance(item, dict):
        raise _Bad("regions[]", f"expected an object, got {type(item).__name__}")
    inner = _int(item, "image_id", optional=True)
    if inner is not None and inner != image_id:
        raise _Bad("image_id", f"{inner} differs from the element's image id {image_id}")
    return VGRegion(
        region_id=_int(item, "region_id", "id"),
        image_id=image_id,
        phrase=_str(item, "phrase", "", nonempty=True).strip(),
        x=_num(item, "x", ""),
        y=_num(item, "y", ""),
        width=_num(item, "width", ""),
        height=_num(item, "height", ""),
    )


def _relationship(item: Any, image_id: int) -> VGRelationship:
    if not isinstance(item, dict):
        raise _Bad("relationships[]", f"expected an object, got {type(item).__name__}")
    if "subject" not in item or "object" not in item:
        raise _Bad("subject" if "subject" not in item else "object", "missing")
    return VGRelationship(
        relationship_id=_int(item, "relationship_id", "id"),
        predicate=_str(item, "predicate", "").strip(),
        synsets=_strings(item, "synsets", ""),
        subject=_object(item["subject"], "subject."),
        object=_object(item["object"], "object."),
    )


def _items(
    source: str,
    index: int,
    image_id: int,
    items: list[Any],
    parse: Callable[[Any, int], T],
    id_keys: tuple[str, ...],
    on_error: OnError,
) -> tuple[list[T], list[Malformed]]:
    good: list[T] = []
    bad: list[Malformed] = []
    for pos, item in enumerate(items):
        try:
            good.append(parse(item, image_id))
        except _Bad as exc:
            item_id = next((item[k] for k in id_keys if isinstance(item, dict) and k in item), None)
            what = f"item {pos}" + (f" ({id_keys[0]} {item_id})" if item_id is not None else "")
            bad.append(
                reject(
                    Malformed(source, index, image_id, f"{what}: {exc}", sub_index=pos, field=exc.field),
                    on_error,
                )
            )
    return good, bad


# ---------------------------------------------------------------------------- the stream driver
def _stream(
    path: Source,
    on_error: str,
    parse: Callable[[str, int, dict[str, Any], OnError], tuple[Any, list[Malformed]]],
    name: str | None,
    chunk_chars: int,
) -> Iterator[Any]:
    mode = check_on_error(on_error)
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
            yield Malformed(label, exc.index, None, str(exc).split(": ", 2)[-1])
            break
        count += 1
        element_id = element.get("image_id", element.get("id")) if isinstance(element, dict) else None
        try:
            if not isinstance(element, dict):
                raise _Bad("<element>", f"expected an object, got {type(element).__name__}")
            record, item_rejects = parse(label, index, element, mode)
        except _Bad as exc:
            rejected += 1
            yield reject(Malformed(label, index, element_id, str(exc), field=exc.field), mode)
            continue
        rejected += len(item_rejects)
        yield from item_rejects
        yield record
    logger.info("%s: %d elements read, %d rejections", label, count, rejected)


def _image_id(element: dict[str, Any]) -> int:
    return _int(element, "image_id", "id")


def _parse_image(label: str, index: int, el: dict[str, Any], mode: OnError):
    url = _str(el, "url", "", nonempty=True)
    try:
        image_key(url)
    except ValueError as exc:
        raise _Bad("url", str(exc)) from None
    record = VGImage(
        image_id=_image_id(el),
        url=url,
        width=_int(el, "width"),
        height=_int(el, "height"),
        coco_id=_int(el, "coco_id", optional=True),
        flickr_id=_int(el, "flickr_id", optional=True),
    )
    return record, []


def _parse_regions(label: str, index: int, el: dict[str, Any], mode: OnError):
    image_id = _image_id(el)
    _, items = _list(el, ("regions",))
    good, bad = _items(label, index, image_id, items, _region, ("region_id", "id"), mode)
    return VGImageRegions(image_id, tuple(good)), bad


def _parse_objects(label: str, index: int, el: dict[str, Any], mode: OnError):
    image_id = _image_id(el)
    _, items = _list(el, ("objects", "attributes"))
    parse = _object_item
    good, bad = _items(label, index, image_id, items, parse, ("object_id", "id"), mode)
    return VGImageObjects(image_id, tuple(good)), bad


def _parse_attributes(label: str, index: int, el: dict[str, Any], mode: OnError):
    image_id = _image_id(el)
    _, items = _list(el, ("attributes", "objects"))
    good, bad = _items(label, index, image_id, items, _object_item, ("object_id", "id"), mode)
    return VGImageObjects(image_id, tuple(good)), bad


def _parse_relationships(label: str, index: int, el: dict[str, Any], mode: OnError):
    image_id = _image_id(el)
    _, items = _list(el, ("relationships",))
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
    return _stream(path, on_error, _parse_image, name, chunk_chars)


def iter_vg_regions(
    path: Source, *, on_error: OnError = "raise", name: str | None = None, chunk_chars: int = _CHUNK
) -> Iterator[VGImageRegions | Malformed]:
    """Stream region_descriptions.json: one :class:`VGImageRegions` per image."""
    return _stream(path, on_error, _parse_regions, name, chunk_chars)


def iter_vg_objects(
    path: Source, *, on_error: OnError = "raise", name: str | None = None, chunk_chars: int = _CHUNK
) -> Iterator[VGImageObjects | Malformed]:
    """Stream objects.json: one :class:`VGImageObjects` per image (attributes empty if absent)."""
    return _stream(path, on_error, _parse_objects, name, chunk_chars)


def iter_vg_attributes(
    path: Source, *, on_error: OnError = "raise", name: str | None = None, chunk_chars: int = _CHUNK
) -> Iterator[VGImageObjects | Malformed]:
    """Stream attributes.json: one :class:`VGImageObjects` per image, objects with attributes."""
    return _stream(path, on_error, _parse_attributes, name, chunk_chars)


def iter_vg_relationships(
    path: Source, *, on_error: OnError = "raise", name: str | None = None, chunk_chars: int = _CHUNK
) -> Iterator[VGImageRelationships | Malformed]:
    """Stream relationships.json: one :class:`VGImageRelationships` per image."""
    return _stream(path, on_error, _parse_relationships, name, chunk_chars)
