"""Splits: from file names, from a Karpathy split file, and the held-out images they imply.

* :func:`split_from_name`: ``captions_train2014.json`` -> "train", ``captions_val2017.json`` ->
  "val", ``Validation_GCC-1.1.0-Validation.tsv`` -> "val"; None when the name tells nothing.
* :class:`ReadKarpathySplits`: a Karpathy file (``dataset_coco.json``, ``dataset_flickr30k.json``)
  as ``(image key, split)`` pairs; "restval" is training data (Karpathy's own use of it) and
  becomes "train".
* Held-out keys: an image of a "val" or "test" split is named across datasets by a string
  ``"coco:<COCO image id>"`` or ``"flickr:<Flickr photo id>"``, the ids Visual Genome's
  image_data.json gives as ``coco_id`` / ``flickr_id``. Jobs that emit VG rows reject VG images
  whose COCO or Flickr twin is held out, so an evaluation image never reaches training text.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import apache_beam as beam

from corpora.readers.coco import iter_karpathy_captions
from corpora.readers.common import Malformed

logger = logging.getLogger(__name__)

HELD_OUT = ("val", "test")
# When one image turns up in several splits, the most held-out one wins: its rows in a split of
# lower rank are rejected, so a test image can never reach the train rows.
SPLIT_RANK = {"train": 0, "val": 1, "test": 2}
_NAME_SPLIT = (
    ("test", re.compile(r"(?:^|[_\-.])test")),
    ("val", re.compile(r"(?:^|[_\-.])val")),
    ("train", re.compile(r"(?:^|[_\-.])train")),
)


def split_from_name(path: str | Path) -> str | None:
    """The split a file name states (``captions_val2014.json`` -> "val"), or None."""
    name = Path(path).name.lower()
    for split, pattern in _NAME_SPLIT:
        if pattern.search(name):
            return split
    return None


def karpathy_split(split: str) -> str:
    """Karpathy's split label in this project's terms ("restval" is training data)."""
    return "train" if split == "restval" else split


def karpathy_namespace(path: str | Path) -> str:
    """ "flickr" for a Flickr30k split file (keys are Flickr photo ids), else "coco"."""
    return "flickr" if "flickr" in Path(path).name.lower() else "coco"


class _KarpathyImages(beam.DoFn):
    """One ``(image key, (split, held-out key))`` per image of a Karpathy file."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def process(self, path: str):
        flavour = karpathy_namespace(path)
        seen: set[str] = set()
        bad = 0
        for item in iter_karpathy_captions(path, on_error="yield"):
            if isinstance(item, Malformed):
                bad += 1
                logger.warning("karpathy file: %s", item.describe())
                continue
            if item.image_key in seen:
                continue
            seen.add(item.image_key)
            ident = item.image_key if flavour == "flickr" else item.image_id
            yield item.image_key, (karpathy_split(item.split), f"{flavour}:{ident}")
        beam.metrics.Metrics.counter(self.namespace, "karpathy_images").inc(len(seen))
        if bad:  # metadata, not inputs of the job: counted and logged, not rejected
            beam.metrics.Metrics.counter(self.namespace, "karpathy_malformed").inc(bad)


class ReadKarpathySplits(beam.PTransform):
    """``(image key, (split, held-out key))`` for every image of a Karpathy split file."""

    def __init__(self, path: str, namespace: str) -> None:
        super().__init__()
        self.path = path
        self.namespace = namespace

    def expand(self, pbegin):
        return (
            pbegin
            | "KarpathyPath" >> beam.Create([self.path])
            | "KarpathyImages" >> beam.ParDo(_KarpathyImages(self.namespace))
        )


class HeldOutKeys(beam.PTransform):
    """From ``(image key, (split, held-out key))``: ``(held-out key, split)`` of val/test images."""

    def expand(self, splits):
        return (
            splits
            | "OnlyHeldOut" >> beam.Filter(lambda kv: kv[1][0] in HELD_OUT)
            | "ByHeldOutKey" >> beam.Map(lambda kv: (kv[1][1], kv[1][0]))
            | "OneSplitPerKey" >> beam.CombinePerKey(max_split)
        )


def max_split(splits) -> str:
    """The most held-out of several split labels ("test" over "val" over "train")."""
    return max(splits, key=lambda s: SPLIT_RANK.get(s, -1))
