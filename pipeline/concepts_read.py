"""Captions for the concepts job: text tables (Parquet) and COCO caption files, one row each.

:class:`ReadCaptionRows` yields one dict per caption::

    {"image_id": str, "text": str, "split": str | None, "source": str | None,
     "caption_id": str}

* Parquet (``*.parquet``; a folder means its ``*.parquet`` files): a text table as the captions
  job writes it. ``image_id`` and ``text`` are required columns, ``split``, ``source`` and
  ``caption_id`` optional (``caption_id`` defaults to ``<file>:row<n>``).
* COCO caption JSON (any other file): ``image_id`` is the image's file stem, ``split`` comes
  from the file name (``captions_val2014.json`` -> "val"; None when the name gives none),
  ``source`` "coco".

Accounting: one input per caption row or annotation and per malformed record. Rejected at
``read``: a record the COCO reader refuses, a row without ``image_id`` or with a null or blank
``text``. Whitespace runs in the text become one space (the text is otherwise kept as written:
the WordPiece positions of its concepts refer to it).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import apache_beam as beam

from corpora.readers.coco import iter_coco_captions
from corpora.readers.common import Malformed
from pipeline import common
from pipeline.text_io import iter_parquet_rows, table_files
from pipeline.text_splits import split_from_name

logger = logging.getLogger(__name__)

COLUMNS = ("image_id", "text", "split", "source", "caption_id")
REQUIRED = ("image_id", "text")
_SPACE = re.compile(r"\s+")


def _clean(text: Any) -> str:
    return _SPACE.sub(" ", text).strip() if isinstance(text, str) else ""


class _ReadFile(beam.DoFn):
    """One caption file -> caption dicts; malformed records go to the dead letters."""

    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, path: str):
        if path.endswith(".parquet"):
            yield from self._parquet(path)
        else:
            yield from self._coco(path)

    def _parquet(self, path: str):
        name = os.path.basename(path)
        for n, row in enumerate(iter_parquet_rows(path, COLUMNS, REQUIRED)):
            self.counters.inc("inputs")
            caption_id = row["caption_id"] if row["caption_id"] is not None else f"{name}:row{n}"
            text = _clean(row["text"])
            if row["image_id"] in (None, ""):
                yield common.reject(caption_id, "read", f"{name} row {n}: image_id is null")
            elif not text:
                yield common.reject(caption_id, "read", f"{name} row {n}: text is null or blank")
            else:
                yield {
                    "image_id": str(row["image_id"]),
                    "text": text,
                    "split": row["split"],
                    "source": row["source"],
                    "caption_id": str(caption_id),
                }

    def _coco(self, path: str):
        split = split_from_name(path)
        for item in iter_coco_captions(path, on_error="yield", split=split):
            self.counters.inc("inputs")
            if isinstance(item, Malformed):
                yield common.reject(item.input_id, "read", item.describe())
                continue
            yield {
                "image_id": item.image_key,
                "text": _clean(item.caption),
                "split": split,
                "source": "coco",
                "caption_id": str(item.caption_id),
            }


class ReadCaptionRows(beam.PTransform):
    """Caption files -> ``(captions, rejects)``; the captions are spread over workers."""

    def __init__(self, paths: list[str], namespace: str) -> None:
        super().__init__()
        self.paths = table_files(paths)  # folders -> their Parquet files
        self.namespace = namespace

    def expand(self, pbegin):
        read = (
            pbegin
            | "CaptionFiles" >> beam.Create(self.paths)
            | "ReadFiles"
            >> beam.ParDo(_ReadFile(self.namespace)).with_outputs(common.REJECTS, main="rows")
        )
        # a file is read by one worker: spread its captions before the costly parse
        rows = read.rows | "Spread" >> beam.Reshuffle()
        return rows, read.rejects
