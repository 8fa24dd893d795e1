"""Detector label names (VG 1600 objects / 400 attributes) for summaries and checks.

The label files come with a detector checkpoint: line i (0-based) names class i of the
detectron2 checkpoint's heads (background is the *last* class there, so ids need no shift).
Lines may list synonyms separated by commas; the first is the display name. Without files the
names are placeholders (``object_17``) and the summary says so.
"""

from __future__ import annotations

import os
from collections import Counter

from corpora.vocab import NUM_ATTRIBUTES, NUM_OBJECTS, label_names

__all__ = ["NUM_ATTRIBUTES", "NUM_OBJECTS", "load_vocab", "placeholder_vocab", "top_labels"]


def load_vocab(path: str | os.PathLike, expected: int) -> list[str]:
    """Display names from a label file; raise ValueError unless it has ``expected`` lines."""
    return label_names(path, expected)


def placeholder_vocab(prefix: str, size: int) -> list[str]:
    return [f"{prefix}_{i}" for i in range(size)]


def top_labels(counts: Counter, names: list[str], k: int = 10) -> list[dict[str, int | str]]:
    """The ``k`` most frequent ids with their names and counts."""
    return [{"id": int(i), "name": names[i], "count": int(c)} for i, c in counts.most_common(k)]
