"""Reading the Parquet tables the trainer consumes: stage texts and hard negatives.

A table is one Parquet file or a job's output folder of ``*.parquet`` shards. Text tables:
``image_id`` (string, the feature shard key), ``text`` (string), optional ``split``
("train"/"val"/"test"; null = decided elsewhere) and ``source``. Hard negatives: ``image_id``,
``neighbours`` (list<string>, most similar first), ``similarities`` (list<float>, not needed
here), optional ``duplicates`` (list<string>).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow.parquet as pq

log = logging.getLogger(__name__)


def parquet_files(path: str | os.PathLike) -> list[Path]:
    """A Parquet file, or the ``*.parquet`` files of a job's output folder (sorted; the folder's
    manifest, config and rejects files are not tables)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"table not found: {path}")
    files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"no *.parquet files in {path}")
    return files


def _read(path: str | os.PathLike, columns: list[str], optional: tuple[str, ...] = ()) -> dict:
    """Columns of one table (a file or the files of a folder) as a dict of lists."""
    out: dict[str, list] = {}
    for file in parquet_files(path):
        names = pq.read_schema(file).names
        lacking = [c for c in columns if c not in names]
        if lacking:
            raise ValueError(f"{file}: missing column(s) {lacking}; has {names}")
        wanted = columns + [c for c in optional if c in names]
        data = pq.read_table(file, columns=wanted).to_pydict()
        for column in columns + list(optional):
            values = data.get(column, [None] * len(data[columns[0]]))
            out.setdefault(column, []).extend(values)
    return out


def read_text_table(
    path: str | os.PathLike, split: str | None = None
) -> tuple[dict[str, list[str]], int]:
    """image key -> its texts (table order), and the number of rows kept.

    With ``split`` given, rows of other splits are left out; rows whose split is null (tables
    whose split "comes from elsewhere", such as stage-T labels) are kept. Rows with an empty or
    null text are counted and left out with a warning.
    """
    data = _read(path, ["image_id", "text"], optional=("split",))
    splits = data.get("split")
    texts: dict[str, list[str]] = {}
    rows = empty = 0
    for i, (key, text) in enumerate(zip(data["image_id"], data["text"], strict=True)):
        if split is not None and splits[i] is not None and splits[i] != split:
            continue
        if key is None or text is None or not str(text).strip():
            empty += 1
            continue
        texts.setdefault(str(key), []).append(str(text))
        rows += 1
    if empty:
        log.warning("%s: %d rows with an empty text or image_id left out", path, empty)
    if not texts:
        raise ValueError(f"{path}: no rows" + (f" in split {split!r}" if split else ""))
    return texts, rows


def read_hard_negatives(
    path: str | os.PathLike,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(image key -> neighbour keys, most similar first; image key -> its duplicates).

    Neighbours are as stored (a ViLBERT-style file lists the image itself first); the optional
    ``duplicates`` column names other keys of the same picture, never valid negatives.
    """
    data = _read(path, ["image_id", "neighbours"], optional=("duplicates",))
    neighbours, duplicates = {}, {}
    for key, ns, dups in zip(data["image_id"], data["neighbours"], data["duplicates"], strict=True):
        neighbours[str(key)] = [str(n) for n in (ns or [])]
        if dups:
            duplicates[str(key)] = [str(d) for d in dups]
    return neighbours, duplicates


def split_keys(path: str | os.PathLike, split: str) -> set[str]:
    """Image keys with at least one row whose ``split`` is exactly ``split``."""
    data = _read(path, ["image_id"], optional=("split",))
    return {str(k) for k, s in zip(data["image_id"], data["split"], strict=True) if s == split}


def read_region_labels(path: str | os.PathLike) -> dict[str, list[str]]:
    """image key -> its label names (``image_id``, ``labels`` list<string>; e.g. the token-labels
    job's output, whose labels are the names of the image's boxes)."""
    data = _read(path, ["image_id", "labels"])
    out: dict[str, list[str]] = {}
    for key, labels in zip(data["image_id"], data["labels"], strict=True):
        out.setdefault(str(key), []).extend(str(x) for x in labels or [])
    return out
