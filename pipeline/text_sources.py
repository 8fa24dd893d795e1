"""Caption sources of the captions job: one reader step per format, rows keyed by image.

Every reader yields ``(image key, row)`` where ``row`` has the captions table's columns
(``image_id``, ``text``, ``split``, ``source``, ``coco_id``, ``url``, ``caption_id``) plus two
working fields that are not written: ``reader`` (which source step made it) and ``input_id``
(the id its rejection would carry). One input is counted per caption, region, TSV line, pair or
malformed record.

=============  =============================================================================
reader         rows
=============  =============================================================================
``coco``       COCO caption JSON; key = file stem; split from the file name (or ``--karpathy``)
``karpathy``   a Karpathy split file's sentences (``dataset_coco.json``: source "coco",
               ``coco_id`` = cocoid; ``dataset_flickr30k.json``: source "flickr30k"); split
               from the file, "restval" counted as train; ``caption_id`` = ``sentid``
``tsv``        Conceptual-Captions TSV; key = the URL's file stem; source "cc"; split from the
               file name (train when it names none)
``lait``       the LAIT job's ``pairs-*.parquet``: key = ``image_id`` (the image's content
               hash), text = ``caption``, ``url`` = ``image_url``, ``caption_id`` =
               ``input_id``; source "lait", split "train" (web pairs are pre-training data)
``vg``         Visual Genome region descriptions, one row per distinct phrase of an image
               (see :class:`VGCaptions`); source "vg", split "train"
=============  =============================================================================
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import apache_beam as beam

from corpora.readers.coco import iter_coco_captions, iter_karpathy_captions
from corpora.readers.common import Malformed
from corpora.readers.tsv import iter_caption_tsv
from pipeline import common
from pipeline.text_io import iter_parquet_rows
from pipeline.text_norm import dedupe_key, normalise_phrase
from pipeline.text_splits import karpathy_namespace, karpathy_split, split_from_name

logger = logging.getLogger(__name__)

LAIT_COLUMNS = ("image_id", "caption", "image_url", "input_id")
LAIT_REQUIRED = ("image_id", "caption")
_SPACE = re.compile(r"\s+")


def clean(text: Any) -> str:
    """Whitespace runs become one space; a non-string becomes ""."""
    return _SPACE.sub(" ", text).strip() if isinstance(text, str) else ""


def caption_row(
    image_id: str, text: str, split: str | None, source: str, reader: str, input_id: str,
    **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """A captions-table row plus the working fields ``reader`` and ``input_id``."""
    row = {"image_id": image_id, "text": text, "split": split, "source": source}
    row.update({"coco_id": None, "url": None, "caption_id": None, **extra})
    row.update({"reader": reader, "input_id": str(input_id)})
    return row


def identity(row: dict[str, Any]) -> str:
    """What image a row names, to catch one key naming two images within a source."""
    if row["coco_id"] is not None:
        return f"coco:{row['coco_id']}"
    if row["source"] in ("cc",):
        return str(row["url"])
    return f"{row['source']}:{row['image_id']}"


class _ReadCoco(beam.DoFn):
    def __init__(self, namespace: str, splits: dict[str, str | None]) -> None:
        self.counters = common.Counters(namespace)
        self.splits = splits

    def process(self, path: str):
        for item in iter_coco_captions(path, on_error="yield", split=self.splits[path]):
            self.counters.inc("inputs")
            if isinstance(item, Malformed):
                yield common.reject(item.input_id, "read", item.describe())
                continue
            coco_id = int(item.image_id) if str(item.image_id).isdigit() else None
            yield item.image_key, caption_row(
                item.image_key, clean(item.caption), item.split, "coco", "coco",
                item.caption_id, coco_id=coco_id, caption_id=str(item.caption_id),
            )  # fmt: skip


class _ReadKarpathy(beam.DoFn):
    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, path: str):
        flickr = karpathy_namespace(path) == "flickr"
        name = os.path.basename(path)
        for item in iter_karpathy_captions(path, on_error="yield"):
            self.counters.inc("inputs")
            if isinstance(item, Malformed):  # ids are the file's own: name the file
                yield common.reject(f"{name}:{item.input_id}", "read", item.describe())
                continue
            sent = f"{name}:{item.caption_id}"
            coco_id = None if flickr or not str(item.image_id).isdigit() else int(item.image_id)
            yield item.image_key, caption_row(
                item.image_key, clean(item.caption), karpathy_split(item.split),
                "flickr30k" if flickr else "coco", "karpathy", sent, coco_id=coco_id,
                caption_id=None if item.caption_id is None else str(item.caption_id),
            )  # fmt: skip


class _ReadTsv(beam.DoFn):
    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, path: str):
        split = split_from_name(path) or "train"
        name = os.path.basename(path)
        for item in iter_caption_tsv(path, on_error="yield"):
            self.counters.inc("inputs")
            if isinstance(item, Malformed):
                yield common.reject(item.input_id, "read", item.describe())
                continue
            line = f"{name}:line{item.line}"
            if item.image_key is None:
                reason = f"url {item.url!r} has no file name to key the image by"
                yield common.reject(line, "key", reason)
                continue
            yield item.image_key, caption_row(
                item.image_key, clean(item.caption), split, "cc", "tsv", line, url=item.url,
                caption_id=line,
            )  # fmt: skip


class _ReadLait(beam.DoFn):
    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, path: str):
        name = os.path.basename(path)
        for n, pair in enumerate(iter_parquet_rows(path, LAIT_COLUMNS, LAIT_REQUIRED)):
            self.counters.inc("inputs")
            input_id = pair["input_id"] or f"{name}:row{n}"
            text = clean(pair["caption"])
            if not pair["image_id"]:
                yield common.reject(input_id, "read", f"{name} row {n}: image_id is null")
            elif not text:
                yield common.reject(input_id, "read", f"{name} row {n}: caption is null or blank")
            else:
                key = str(pair["image_id"])
                yield key, caption_row(
                    key, text, "train", "lait", "lait", input_id, url=pair["image_url"],
                    caption_id=str(input_id),
                )  # fmt: skip


class ReadCaptionSource(beam.PTransform):
    """Files of one source format -> ``(keyed rows, rejects)``.

    ``reader``: "coco" (then ``coco_splits`` maps each file to its split), "karpathy", "tsv"
    or "lait".
    """

    def __init__(self, reader: str, paths: list[str], namespace: str, coco_splits=None) -> None:
        super().__init__()
        self.reader = reader
        self.paths = list(paths)
        makers = {
            "coco": lambda: _ReadCoco(namespace, coco_splits or {}),
            "karpathy": lambda: _ReadKarpathy(namespace),
            "tsv": lambda: _ReadTsv(namespace),
            "lait": lambda: _ReadLait(namespace),
        }
        self.dofn = makers[reader]()

    def expand(self, pbegin):
        read = (
            pbegin
            | "Paths" >> beam.Create(self.paths)
            | "Read" >> beam.ParDo(self.dofn).with_outputs(common.REJECTS, main="rows")
        )
        return read.rows, read.rejects


class _VGCaptions(beam.DoFn):
    """VG regions of an image -> one caption row per distinct phrase."""

    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, image: dict[str, Any]):
        seen: dict[str, int] = {}
        for region_id, phrase in image["regions"]:
            input_id = f"{image['image_id']}/{region_id}"
            key = dedupe_key(normalise_phrase(phrase))
            if not key:
                yield common.reject(input_id, "normalise", f"phrase {phrase!r} is empty")
            elif key in seen:
                reason = f"phrase {phrase!r} repeats region {seen[key]} of the image"
                yield common.reject(input_id, "duplicate", reason)
            else:
                seen[key] = region_id
                yield image["image_id"], caption_row(
                    image["image_id"], clean(phrase), "train", "vg", "vg", input_id,
                    coco_id=image["coco_id"], caption_id=str(region_id),
                )  # fmt: skip


class VGCaptions(beam.PTransform):
    """``ReadVGImages`` images -> ``(keyed rows, rejects)``: region phrases as captions (as
    LXMERT uses them); a phrase empty after normalisation or repeating an earlier phrase of the
    image (:func:`pipeline.text_norm.dedupe_key`) is rejected."""

    def __init__(self, namespace: str) -> None:
        super().__init__()
        self.namespace = namespace

    def expand(self, images):
        out = images | "RegionCaptions" >> beam.ParDo(_VGCaptions(self.namespace)).with_outputs(
            common.REJECTS, main="rows"
        )
        return out.rows, out.rejects
