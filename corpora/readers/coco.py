"""Caption files in the COCO layout and in the Karpathy split layout, one caption at a time.

COCO (``captions_train2014.json``)::

    {"images": [{"id", "file_name", "width", "height", ...}],
     "annotations": [{"id", "image_id", "caption"}]}

Karpathy splits (``dataset_coco.json``, ``dataset_flickr30k.json``)::

    {"images": [{"filename", "filepath"?, "split", "imgid", "cocoid"?,
                 "sentences": [{"raw", "tokens", "sentid"}]}], "dataset": ...}

These files are at most a few hundred MB, so each is parsed whole; only the image table is kept
while the captions are yielded. The image key is the stem of the image's file name.

Rejections (``on_error="yield"``): a bad image entry is one :class:`Malformed` with
``unit="image"``; a bad COCO annotation one with ``unit="annotation"`` (an annotation whose
image is missing or was rejected included); a bad Karpathy sentence one with ``unit="image"``
and ``sub_index`` = the sentence's position. Positions are 0-based list indexes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from corpora.readers.common import (
    GZIP_ERRORS,
    Malformed,
    OnError,
    ReaderError,
    Source,
    check_on_error,
    image_key,
    open_text,
    reject,
    source_name,
)
from corpora.readers.fields import FieldError, get_id, get_int, get_list, get_str

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caption:
    """One caption of one image.

    ``file_name`` is the image path as the file gives it (Karpathy: ``filepath/filename``);
    ``image_key`` its stem; ``split`` the Karpathy split (or the caller's label for COCO files);
    ``tokens`` the file's own tokenisation when it has one; width/height in pixels when known.
    """

    caption_id: int | str | None
    image_id: int | str
    image_key: str
    file_name: str
    caption: str
    split: str | None = None
    tokens: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None


def _load(path: Source, label: str, *lists: str) -> dict[str, Any]:
    try:
        with open_text(path) as fh:
            data = json.load(fh)
    except (ValueError, *GZIP_ERRORS) as exc:  # bad JSON, UTF-8 or gzip
        raise ReaderError(f"{label}: not a readable JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise ReaderError(f"{label}: expected a JSON object, got {type(data).__name__}")
    for key in lists:
        if not isinstance(data.get(key), list):
            raise ReaderError(f"{label}: field {key!r}: missing or not a list")
    return data


def _key_of(file_name: str, field: str) -> str:
    try:
        return image_key(file_name)
    except ValueError as exc:
        raise FieldError(field, str(exc)) from None


def iter_coco_captions(
    path: Source,
    *,
    on_error: OnError = "raise",
    split: str | None = None,
    name: str | None = None,
) -> Iterator[Caption | Malformed]:
    """Yield one :class:`Caption` per COCO annotation, in file order, with its image's file name.

    ``split`` labels every caption (COCO files hold one split: "train2014", "val2017", ...).
    """
    mode = check_on_error(on_error)
    label = source_name(path, name)
    return _coco(path, mode, split, label)


def _coco(path: Source, mode: OnError, split: str | None, label: str) -> Iterator[Any]:
    data = _load(path, label, "images", "annotations")
    images: dict[int | str, tuple[str, str, int | None, int | None]] = {}
    bad_images: set[int | str] = set()
    for i, entry in enumerate(data.pop("images")):
        entry_id = entry.get("id") if isinstance(entry, dict) else None
        try:
            if not isinstance(entry, dict):
                raise FieldError("images[]", f"expected an object, got {entry!r}")
            image_id = get_id(entry, "id")
            file_name = get_str(entry, "file_name", nonempty=True)
            if image_id in images:
                raise FieldError("id", f"duplicate image id {image_id}")
            images[image_id] = (
                file_name,
                _key_of(file_name, "file_name"),
                get_int(entry, "width", optional=True),
                get_int(entry, "height", optional=True),
            )
        except FieldError as exc:
            if entry_id is not None and entry_id not in images:
                bad_images.add(entry_id)
            yield reject(
                Malformed(label, i, entry_id, str(exc), unit="image", field=exc.field), mode
            )
    annotations = data.pop("annotations")
    del data
    count = 0
    for j, ann in enumerate(annotations):
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        try:
            if not isinstance(ann, dict):
                raise FieldError("annotations[]", f"expected an object, got {ann!r}")
            caption_id = get_id(ann, "id")
            image_id = get_id(ann, "image_id")
            text = get_str(ann, "caption", nonempty=True)
            if image_id not in images:
                why = "was rejected" if image_id in bad_images else "is not in 'images'"
                raise FieldError("image_id", f"image {image_id} {why}")
        except FieldError as exc:
            yield reject(
                Malformed(label, j, ann_id, str(exc), unit="annotation", field=exc.field), mode
            )
            continue
        file_name, key, width, height = images[image_id]
        count += 1
        yield Caption(caption_id, image_id, key, file_name, text, split, (), width, height)
    logger.info("%s: %d captions of %d images", label, count, len(images))


def iter_karpathy_captions(
    path: Source,
    *,
    on_error: OnError = "raise",
    splits: Collection[str] | None = None,
    name: str | None = None,
) -> Iterator[Caption | Malformed]:
    """Yield one :class:`Caption` per sentence of a Karpathy split file, with its split.

    ``image_id`` is ``cocoid`` when present (COCO), else ``imgid``; ``caption_id`` is ``sentid``
    (None when absent). ``splits`` keeps only images of those splits ("train", "restval", "val",
    "test"); other images are passed over without a rejection.
    """
    mode = check_on_error(on_error)
    label = source_name(path, name)
    wanted = None if splits is None else frozenset(splits)
    return _karpathy(path, mode, wanted, label)


def _karpathy(
    path: Source, mode: OnError, wanted: frozenset[str] | None, label: str
) -> Iterator[Any]:
    data = _load(path, label, "images")
    images = data.pop("images")
    del data
    count = 0
    for i, entry in enumerate(images):
        entry_id = None
        try:
            if not isinstance(entry, dict):
                raise FieldError("images[]", f"expected an object, got {entry!r}")
            entry_id = entry.get("cocoid", entry.get("imgid"))
            image_id = get_id(entry, "cocoid", "imgid")
            split = get_str(entry, "split", nonempty=True)
            filename = get_str(entry, "filename", nonempty=True)
            folder = entry.get("filepath") or ""
            if not isinstance(folder, str):
                raise FieldError("filepath", f"expected a string, got {folder!r}")
            key = _key_of(filename, "filename")
            sentences = get_list(entry, "sentences")
        except FieldError as exc:
            yield reject(
                Malformed(label, i, entry_id, str(exc), unit="image", field=exc.field), mode
            )
            continue
        if wanted is not None and split not in wanted:
            continue
        file_name = f"{folder.rstrip('/')}/{filename}" if folder else filename
        for k, sent in enumerate(sentences):
            try:
                if not isinstance(sent, dict):
                    raise FieldError("sentences[]", f"expected an object, got {sent!r}")
                text = get_str(sent, "raw", nonempty=True)
                tokens = sent.get("tokens") or []
                if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                    raise FieldError("tokens", f"expected a list of strings, got {tokens!r}")
                sent_id = get_id(sent, "sentid") if "sentid" in sent else None
            except FieldError as exc:
                reason = f"sentence {k}: {exc}"
                bad = Malformed(label, i, image_id, reason, "image", sub_index=k, field=exc.field)
                yield reject(bad, mode)
                continue
            count += 1
            yield Caption(sent_id, image_id, key, file_name, text, split, tuple(tokens))
    logger.info("%s: %d captions of %d images", label, count, len(images))
