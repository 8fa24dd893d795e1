"""Aggregate step: drop over-shared descriptions, then keep the best pair of each image.

ImageBERT (section 3): "one image is downloaded from multiple web-pages and thus has different
text descriptions. In this case we only select the best scored <text, image> pair. If too many
images have the same description, we will directly drop all these pairs."

1. ``SharedDescriptions``: pairs grouped (``GroupByKey``) by their description key (lower case,
   alphanumeric words only); a description used by more than ``max_shared`` distinct images is
   dropped for all of them. This runs first, so an image whose best text is stock text can
   still keep one of its other pairs.
2. ``BestPairPerImage``: pairs grouped by ``image_id``; the best by :func:`rank_key` is kept,
   the others are rejected. Ties are broken deterministically: higher score, then better text
   source, then page URL, image URL, caption and input id in lexicographic order.

Both run on the workers; the driver holds nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from pipeline.common import REJECTS, Counters, reject
from pipeline.lait_config import JOB, LaitConfig
from pipeline.lait_text import SOURCE_RANK

STEP = "aggregate"
_WORD_RE = re.compile(r"[a-z0-9]+")


def description_key(caption: str) -> str:
    """The key under which two descriptions count as the same text."""
    return " ".join(_WORD_RE.findall(caption.lower()))


def rank_key(pair: dict[str, Any]) -> tuple:
    """Sort key: the best pair sorts first (see the module docstring)."""
    return (
        -float(pair["score"]),
        SOURCE_RANK.get(pair.get("text_source", ""), 9),
        pair.get("page_url", ""),
        pair.get("image_url", ""),
        pair.get("caption", ""),
        pair.get("input_id", ""),
    )


class SharedDescriptionsFn(beam.DoFn):
    """(description key, pairs) -> the pairs with ``shared_count``, or rejects for all."""

    def __init__(self, max_shared: int) -> None:
        self.max_shared = max_shared
        self.counters = Counters(JOB)

    def process(self, item: tuple[str, Iterable[dict[str, Any]]]) -> Iterator[Any]:
        _, pairs = item
        images: set[str] = set()
        for pair in pairs:  # distinct images, counted only up to the limit
            images.add(pair["image_id"])
            if len(images) > self.max_shared:
                break
        n = len(images)
        for pair in pairs:
            self.counters.inc("in.aggregate")
            if n > self.max_shared:
                self.counters.inc("reason_shared_description.aggregate")
                yield reject(
                    pair["input_id"],
                    STEP,
                    f"shared description: used by more than {self.max_shared} images",
                )
            else:
                yield {**pair, "shared_count": n}


class BestPairFn(beam.DoFn):
    """(image_id, pairs) -> the best pair (kept, with ``n_pairs``) and rejects for the rest."""

    def __init__(self) -> None:
        self.counters = Counters(JOB)

    def process(self, item: tuple[str, Iterable[dict[str, Any]]]) -> Iterator[Any]:
        _, pairs = item
        best = min(pairs, key=rank_key)
        best_key = rank_key(best)
        n = sum(1 for _ in pairs)
        kept = False
        for pair in pairs:
            if not kept and rank_key(pair) == best_key:
                kept = True
                self.counters.inc("kept")
                self.counters.inc("out.aggregate")
                yield {**pair, "n_pairs": n}
            else:
                self.counters.inc("reason_duplicate_image.aggregate")
                yield reject(pair["input_id"], STEP, "duplicate image: a better pair was kept")


class LaitAggregate(beam.PTransform):
    """scored pairs -> (one kept pair per image, rejects)."""

    def __init__(self, config: LaitConfig) -> None:
        super().__init__()
        self.max_shared = config.max_shared

    def expand(self, pairs):
        shared = (
            pairs
            | "KeyByDescription" >> beam.Map(lambda p: (description_key(p["caption"]), p))
            | "GroupByDescription" >> beam.GroupByKey()
            | "DropShared"
            >> beam.ParDo(SharedDescriptionsFn(self.max_shared)).with_outputs(REJECTS, main="pairs")
        )
        best = (
            shared.pairs
            | "KeyByImage" >> beam.Map(lambda p: (p["image_id"], p))
            | "GroupByImage" >> beam.GroupByKey()
            | "BestPair" >> beam.ParDo(BestPairFn()).with_outputs(REJECTS, main="kept")
        )
        rejects = (shared[REJECTS], best[REJECTS]) | "AggregateRejects" >> beam.Flatten()
        return best.kept, rejects
