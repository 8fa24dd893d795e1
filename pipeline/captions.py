"""MSP stage S text: caption tables with provenance (``source``) and ``split``.

    msp pipeline captions --out OUT [--coco captions_train2014.json ...] [--karpathy FILE]
                          [--vg VG_DIR] [--tsv FILE ...] [--force] [Beam options]

Sources (at least one):

* ``--coco``: COCO caption files. ``image_id`` is the stem of the image's ``file_name``
  ("COCO_val2014_000000391895"), ``coco_id`` the COCO image id. The split comes from the file name
  (``captions_{train,val,test}*.json``) or, with ``--karpathy``, from the Karpathy file ("restval"
  counts as train); with ``--karpathy`` an image absent from it is rejected (``split``).
* ``--vg``: Visual Genome region descriptions as captions (as LXMERT uses them): split "train",
  one row per distinct phrase of an image; an image whose COCO or Flickr twin is in a val/test
  split (of the COCO files or the Karpathy file) is rejected (``heldout``).
* ``--tsv``: Conceptual-Captions TSV (caption, url). ``image_id`` is the URL's file stem, the key
  the downloaded image gets; a URL without a file name is rejected. Split from the file name
  (train when it names none).

Split isolation: rows are grouped by image; an image found in several splits keeps only the rows
of its most held-out split (test > val > train) and the others are rejected, so a test image
never reaches the train rows. An image key naming different images (two COCO ids, two URLs) is
rejected whole (``key``).

Output ``captions-SSSSS-of-NNNNN.parquet``: ``image_id``, ``text``, ``split``, ``source``
("coco", "vg", "cc"), ``coco_id`` (int64), ``url``, ``caption_id``. Accounting: one input per
caption, region or TSV line (and per malformed record); kept = rows written.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
from typing import Any

import apache_beam as beam
import pyarrow as pa

from corpora.readers.coco import iter_coco_captions
from corpora.readers.common import Malformed
from corpora.readers.tsv import iter_caption_tsv
from pipeline import common
from pipeline.text_io import WriteTable, end_job, start_job, table_schema
from pipeline.text_norm import dedupe_key, normalise_phrase
from pipeline.text_splits import (
    HELD_OUT,
    HeldOutKeys,
    ReadKarpathySplits,
    max_split,
    split_from_name,
)
from pipeline.text_vg import IMAGES_FILE, REGIONS_FILE, ReadVGImages, vg_file

logger = logging.getLogger(__name__)

JOB = "captions"
TABLE = "captions"
SCHEMA = table_schema(
    pa.field("coco_id", pa.int64()),
    pa.field("url", pa.string()),
    pa.field("caption_id", pa.string()),
)
_SPACE = re.compile(r"\s+")


@dataclasses.dataclass
class CaptionsConfig:
    """Resolved configuration of one captions run (written as config.json)."""

    out: str
    coco: list[str] = dataclasses.field(default_factory=list)
    coco_splits: dict[str, str | None] = dataclasses.field(default_factory=dict)
    karpathy: str | None = None
    vg: str | None = None
    tsv: list[str] = dataclasses.field(default_factory=list)


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _row(image_id: str, text: str, split: str | None, source: str, **extra: Any) -> dict:
    row = {"image_id": image_id, "text": text, "split": split, "source": source}
    row.update({"coco_id": None, "url": None, "caption_id": None, **extra})
    return row


class _ReadCoco(beam.DoFn):
    """One COCO caption file -> ``(image key, row)``; malformed records are rejected."""

    def __init__(self, namespace: str, splits: dict[str, str | None]) -> None:
        self.counters = common.Counters(namespace)
        self.splits = splits

    def process(self, path: str):
        for item in iter_coco_captions(path, on_error="yield", split=self.splits[path]):
            self.counters.inc("inputs")
            if isinstance(item, Malformed):
                yield common.reject(item.input_id, "read", item.describe())
                continue
            yield (
                item.image_key,
                _row(
                    item.image_key,
                    _clean(item.caption),
                    item.split,
                    "coco",
                    coco_id=int(item.image_id) if str(item.image_id).isdigit() else None,
                    caption_id=str(item.caption_id),
                ),
            )


class _ReadTsv(beam.DoFn):
    """One caption TSV -> ``(image key, row)``; malformed lines are rejected."""

    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, path: str):
        split = split_from_name(path) or "train"
        for item in iter_caption_tsv(path, on_error="yield"):
            self.counters.inc("inputs")
            if isinstance(item, Malformed):
                yield common.reject(item.input_id, "read", item.describe())
            elif item.image_key is None:
                reason = f"url {item.url!r} has no file name to key the image by"
                yield common.reject(f"{os.path.basename(path)}:line{item.line}", "key", reason)
            else:
                yield item.image_key, _row(
                    item.image_key, _clean(item.caption), split, "cc", url=item.url,
                    caption_id=f"{os.path.basename(path)}:line{item.line}",
                )  # fmt: skip


def _identity(row: dict) -> str:
    return f"coco:{row['coco_id']}" if row["source"] == "coco" else str(row["url"])


class _Settle(beam.DoFn):
    """Per image: the Karpathy split (if used), one image per key, the most held-out split.

    Emits rows, ``(held-out key, split)`` pairs of COCO rows on the ``heldout`` output, rejects.
    """

    def __init__(self, namespace: str, use_karpathy: bool) -> None:
        self.counters = common.Counters(namespace)
        self.use_karpathy = use_karpathy

    def process(self, element):
        key, grouped = element
        rows = sorted(grouped["rows"], key=lambda r: (str(r["caption_id"]), r["text"]))
        if not rows:
            return
        identities = sorted({_identity(r) for r in rows})
        if len(identities) > 1:
            reason = f"image key {key!r} names {len(identities)} images: {identities[:3]}"
            for r in rows:
                yield common.reject(r["caption_id"], "key", reason)
            return
        if self.use_karpathy:
            karpathy = sorted(grouped["karpathy"])
            if not karpathy:
                for r in rows:
                    yield common.reject(
                        r["caption_id"], "split", "image not in the karpathy split file"
                    )
                return
            rows = [{**r, "split": karpathy[0][0]} for r in rows]
        top = max_split({r["split"] for r in rows})
        for r in rows:
            if r["split"] != top:
                yield common.reject(
                    r["caption_id"], "split", f"image {key} is also in the {top} split"
                )
                continue
            yield r
        if top in HELD_OUT and rows[0]["coco_id"] is not None:
            yield beam.pvalue.TaggedOutput("heldout", (f"coco:{rows[0]['coco_id']}", top))


class SettleSplits(beam.PTransform):
    """``(image key, row)`` (+ Karpathy splits) -> ``(rows, rejects, heldout)``."""

    def __init__(self, namespace: str, karpathy=None) -> None:
        super().__init__()
        self.namespace = namespace
        self.karpathy = karpathy

    def expand(self, keyed_rows):
        groups = {"rows": keyed_rows}
        if self.karpathy is not None:
            groups["karpathy"] = self.karpathy
        settled = (
            groups
            | "GroupByImage" >> beam.CoGroupByKey()
            | "Settle"
            >> beam.ParDo(_Settle(self.namespace, self.karpathy is not None)).with_outputs(
                common.REJECTS, "heldout", main="rows"
            )
        )
        return settled.rows, settled.rejects, settled.heldout


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
                yield _row(
                    image["image_id"], _clean(phrase), "train", "vg",
                    coco_id=image["coco_id"], caption_id=str(region_id),
                )  # fmt: skip


class _CountKept(beam.DoFn):
    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, row: dict):
        self.counters.inc("kept")
        self.counters.inc(f"kept.{row['source']}")
        yield row


def build(p: beam.Pipeline, cfg: CaptionsConfig) -> None:
    """Add the captions job to ``p``."""
    rows, rejects, heldout = [], [], []
    karpathy = None
    if cfg.karpathy:
        karpathy = p | "Karpathy" >> ReadKarpathySplits(cfg.karpathy, JOB)
        heldout.append(karpathy | "KarpathyHeldOut" >> HeldOutKeys())
    if cfg.coco:
        coco = (
            p
            | "CocoPaths" >> beam.Create(cfg.coco)
            | "ReadCoco"
            >> beam.ParDo(_ReadCoco(JOB, cfg.coco_splits)).with_outputs(common.REJECTS, main="rows")
        )
        coco_rows, coco_rejects, coco_heldout = coco.rows | "CocoSplits" >> SettleSplits(
            JOB, karpathy
        )
        rows.append(coco_rows)
        rejects += [coco.rejects, coco_rejects]
        heldout.append(coco_heldout)
    if cfg.tsv:
        tsv = (
            p
            | "TsvPaths" >> beam.Create(cfg.tsv)
            | "ReadTsv" >> beam.ParDo(_ReadTsv(JOB)).with_outputs(common.REJECTS, main="rows")
        )
        tsv_rows, tsv_rejects, _ = tsv.rows | "TsvSplits" >> SettleSplits(JOB)
        rows.append(tsv_rows)
        rejects += [tsv.rejects, tsv_rejects]
    if cfg.vg:
        held = None  # without COCO or Karpathy splits nothing is held out
        if heldout:
            held = (
                heldout
                | "HeldOutKeys" >> beam.Flatten()
                | "OneSplitPerKey" >> beam.CombinePerKey(max_split)
            )
        images, vg_rejects = p | "ReadVG" >> ReadVGImages(cfg.vg, JOB, held)
        vg = images | "VGCaptions" >> beam.ParDo(_VGCaptions(JOB)).with_outputs(
            common.REJECTS, main="rows"
        )
        rows.append(vg.rows)
        rejects += [vg_rejects, vg.rejects]
    _ = (
        rows
        | "AllRows" >> beam.Flatten()
        | "CountKept" >> beam.ParDo(_CountKept(JOB))
        | "Write" >> WriteTable(cfg.out, TABLE, SCHEMA)
    )
    _ = (
        rejects
        | "AllRejects" >> beam.Flatten()
        | "WriteRejects" >> common.WriteRejects(cfg.out, JOB)
    )


def run(argv: list[str] | None = None) -> int:
    """Entry point of ``msp pipeline captions``; returns a process exit code."""
    parser = argparse.ArgumentParser(
        prog="msp pipeline captions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--coco", nargs="+", default=[], help="COCO caption JSON files")
    parser.add_argument("--karpathy", help="Karpathy split JSON (splits for the COCO files)")
    parser.add_argument("--vg", help="Visual Genome folder (region descriptions as captions)")
    parser.add_argument("--tsv", nargs="+", default=[], help="caption TSV files (caption, url)")
    args, options = common.parse_args(parser, argv)
    if not (args.coco or args.vg or args.tsv):
        parser.error("give at least one of --coco, --vg, --tsv")
    splits = {path: split_from_name(path) for path in args.coco}
    unknown = [path for path, split in splits.items() if split is None]
    if unknown and not args.karpathy:
        parser.error(f"no split in the name of {unknown}: name them captions_<split>*.json "
                     "or pass --karpathy")  # fmt: skip
    try:  # fail before touching the output folder
        if args.vg:
            vg_file(args.vg, REGIONS_FILE)
            if args.coco or args.karpathy:  # held-out twins are found through image_data.json
                vg_file(args.vg, IMAGES_FILE)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    cfg = CaptionsConfig(
        out=args.out, coco=args.coco, coco_splits=splits, karpathy=args.karpathy, vg=args.vg,
        tsv=args.tsv,
    )  # fmt: skip
    job = start_job(cfg.out, JOB, cfg, args.force, (TABLE,))
    if job is None:
        return 0
    p = beam.Pipeline(options=options)
    build(p, cfg)
    end_job(job, p.run(), (TABLE,))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run())
