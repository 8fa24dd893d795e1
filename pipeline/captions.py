"""MSP stage S text: caption tables with provenance (``source``) and ``split``.

    msp pipeline captions --out OUT [--coco captions_train2014.json ...] [--karpathy FILE]
                          [--karpathy-captions dataset_flickr30k.json ...] [--vg VG_DIR]
                          [--tsv FILE ...] [--lait LAIT_OUT ...] [--force] [Beam options]

Sources (at least one; formats in :mod:`pipeline.text_sources`): ``--coco`` COCO caption files,
``--karpathy-captions`` the sentences of Karpathy split files (Flickr30k has no other caption
file), ``--tsv`` Conceptual-Captions TSV, ``--lait`` the LAIT job's output folder or
``pairs-*.parquet`` files, ``--vg`` Visual Genome region descriptions (as LXMERT uses them).

Split rules, in order:

1. Each row starts with its file's split: COCO and TSV from the file name (a COCO file whose
   name states none needs ``--karpathy``), Karpathy rows their own ("restval" is train), LAIT
   and VG rows "train".
2. ``--karpathy FILE``: the split of every ``--coco`` row comes from it; a ``--coco`` image the
   file does not list is rejected (``split``).
3. Held-out twins: a VG image whose COCO or Flickr twin (``image_data.json``'s ``coco_id`` /
   ``flickr_id``) is a val/test image is rejected (``heldout``): the twin is the same picture
   under another key. Val/test images come from ``--karpathy``, the Karpathy caption files and,
   without ``--karpathy``, the COCO files.
4. Per image key, over all sources together (the key is what the trainer joins features by):
   within one source, a key that names two images (two COCO ids, two URLs) rejects that
   source's rows of the key (``key``); the most held-out split wins (test > val > train) and
   rows of any other split are rejected (``split``), so a test image never reaches the train
   rows whichever source names it; a caption repeating another caption of the image (compared
   after :func:`pipeline.text_norm.normalise_phrase`: case, spacing, end punctuation; e.g. the
   same COCO caption from ``--coco`` and ``--karpathy-captions``) is rejected (``duplicate``);
   the first of :data:`READERS` keeps it.

Output ``captions-SSSSS-of-NNNNN.parquet``: ``image_id``, ``text``, ``split``, ``source``
("coco", "flickr30k", "cc", "lait", "vg"), ``coco_id`` (int64), ``url``, ``caption_id``.
Accounting: one input per caption, sentence, region, TSV line or pair (and per malformed
record); kept = rows written (``kept.<source>`` per source).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections import defaultdict
from typing import Any

import apache_beam as beam
import pyarrow as pa

from pipeline import common
from pipeline.text_io import WriteTable, end_job, start_job, table_files, table_schema
from pipeline.text_norm import normalise_phrase
from pipeline.text_sources import ReadCaptionSource, VGCaptions, identity
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
READERS = ("coco", "karpathy", "tsv", "lait", "vg")  # also the order a duplicate is kept in


@dataclasses.dataclass
class CaptionsConfig:
    """Resolved configuration of one captions run (written as config.json)."""

    out: str
    coco: list[str] = dataclasses.field(default_factory=list)
    coco_splits: dict[str, str | None] = dataclasses.field(default_factory=dict)
    karpathy: str | None = None
    karpathy_captions: list[str] = dataclasses.field(default_factory=list)
    vg: str | None = None
    tsv: list[str] = dataclasses.field(default_factory=list)
    lait: list[str] = dataclasses.field(default_factory=list)


class _Settle(beam.DoFn):
    """Rule 2 and rule 4 for one image key."""

    def __init__(self, namespace: str, use_karpathy: bool) -> None:
        self.counters = common.Counters(namespace)
        self.use_karpathy = use_karpathy

    def process(self, element):
        key, grouped = element
        rows = sorted(
            grouped["rows"], key=lambda r: (READERS.index(r["reader"]), r["input_id"], r["text"])
        )
        if self.use_karpathy:
            karpathy = sorted(grouped["karpathy"])
            settled = []
            for r in rows:
                if r["reader"] != "coco":
                    settled.append(r)
                elif karpathy:
                    settled.append({**r, "split": karpathy[0][0]})
                else:
                    yield common.reject(r["input_id"], "split", "image not in the karpathy file")
            rows = settled
        by_reader: dict[str, set[str]] = defaultdict(set)
        for r in rows:
            by_reader[r["reader"]].add(identity(r))
        top = max_split({r["split"] for r in rows}) if rows else None
        seen: dict[str, str] = {}
        for r in rows:
            names = sorted(by_reader[r["reader"]])
            text_key = normalise_phrase(r["text"])
            if len(names) > 1:
                reason = f"image key {key!r} names {len(names)} images: {names[:3]}"
                yield common.reject(r["input_id"], "key", reason)
            elif r["split"] != top:
                yield common.reject(
                    r["input_id"], "split", f"image {key} is also in the {top} split"
                )
            elif text_key in seen:
                reason = f"caption repeats {seen[text_key]} of image {key}"
                yield common.reject(r["input_id"], "duplicate", reason)
            else:
                seen[text_key] = r["input_id"]
                self.counters.inc("kept")
                self.counters.inc(f"kept.{r['source']}")
                yield r


class SettleSplits(beam.PTransform):
    """``(image key, row)`` of every source (+ Karpathy splits) -> ``(rows, rejects)``."""

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
                common.REJECTS, main="rows"
            )
        )
        return settled.rows, settled.rejects


def _twins(row: dict[str, Any], coco_files_count: bool):
    """``(held-out key, split)`` of a val/test row whose image VG may show under its own id."""
    if row["split"] not in HELD_OUT or (row["reader"] == "coco" and not coco_files_count):
        return
    if row["coco_id"] is not None:
        yield f"coco:{row['coco_id']}", row["split"]
    elif row["source"] == "flickr30k":
        yield f"flickr:{row['image_id']}", row["split"]


def build(p: beam.Pipeline, cfg: CaptionsConfig) -> None:
    """Add the captions job to ``p``."""
    keyed, rejects, twins = [], [], []
    karpathy = None
    if cfg.karpathy:
        karpathy = p | "Karpathy" >> ReadKarpathySplits(cfg.karpathy, JOB)
        twins.append(karpathy | "KarpathyHeldOut" >> HeldOutKeys())
    sources = (
        ("coco", cfg.coco, "Coco"),
        ("karpathy", cfg.karpathy_captions, "KarpathyCaptions"),
        ("tsv", cfg.tsv, "Tsv"),
        ("lait", cfg.lait, "Lait"),
    )
    for reader, paths, label in sources:
        if not paths:
            continue
        rows, bad = p | f"Read{label}" >> ReadCaptionSource(reader, paths, JOB, cfg.coco_splits)
        keyed.append(rows)
        rejects.append(bad)
        if reader in ("coco", "karpathy"):
            count = not cfg.karpathy
            twins.append(
                rows | f"{label}HeldOut" >> beam.FlatMap(lambda kv, c=count: _twins(kv[1], c))
            )
    if cfg.vg:
        held = None  # without COCO or Karpathy splits nothing is held out
        if twins:
            held = (
                twins
                | "HeldOutTwins" >> beam.Flatten()
                | "OneSplitPerTwin" >> beam.CombinePerKey(max_split)
            )
        images, vg_rejects = p | "ReadVG" >> ReadVGImages(cfg.vg, JOB, held)
        vg_rows, vg_bad = images | "VGCaptions" >> VGCaptions(JOB)
        keyed.append(vg_rows)
        rejects += [vg_rejects, vg_bad]
    rows, settle_rejects = (
        keyed | "AllRows" >> beam.Flatten() | "Settle" >> SettleSplits(JOB, karpathy)
    )
    _ = rows | "Write" >> WriteTable(cfg.out, TABLE, SCHEMA)
    _ = (
        [*rejects, settle_rejects]
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
    parser.add_argument(
        "--karpathy-captions", nargs="+", default=[],
        help="Karpathy split files whose sentences are captions (dataset_flickr30k.json ...)",
    )  # fmt: skip
    parser.add_argument("--vg", help="Visual Genome folder (region descriptions as captions)")
    parser.add_argument("--tsv", nargs="+", default=[], help="caption TSV files (caption, url)")
    parser.add_argument("--lait", nargs="+", default=[], help="LAIT output folders / pairs files")
    args, options = common.parse_args(parser, argv)
    if not (args.coco or args.karpathy_captions or args.vg or args.tsv or args.lait):
        parser.error("give at least one of --coco, --karpathy-captions, --vg, --tsv, --lait")
    splits = {path: split_from_name(path) for path in args.coco}
    unknown = [path for path, split in splits.items() if split is None]
    if unknown and not args.karpathy:
        parser.error(f"no split in the name of {unknown}: name them captions_<split>*.json "
                     "or pass --karpathy")  # fmt: skip
    try:  # fail before touching the output folder
        lait = table_files(args.lait, "pairs-*.parquet")
        if args.vg:
            vg_file(args.vg, REGIONS_FILE)
            if args.coco or args.karpathy or args.karpathy_captions:  # twins need image_data
                vg_file(args.vg, IMAGES_FILE)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    cfg = CaptionsConfig(
        out=args.out, coco=args.coco, coco_splits=splits, karpathy=args.karpathy,
        karpathy_captions=args.karpathy_captions, vg=args.vg, tsv=args.tsv, lait=lait,
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
