"""MSP stage T text: an image's object names, deduplicated in order and joined with ", ".

    msp pipeline token-labels --objects objects.json --out OUT [--objects-vocab objects_vocab.txt]
    msp pipeline token-labels --features SHARDS_DIR [--prefix P] --objects-vocab FILE --out OUT

Two sources of labels:

* ``--objects``: annotated boxes of Visual Genome ``objects.json`` (the demo's source, where no
  real detector weights exist). Each object gives its first name, normalised (lower case, single
  spaces). With ``--objects-vocab`` a name must be one of the detector classes (any synonym of a
  line; the line's first name is used), so the text speaks the detector's vocabulary; other
  objects are rejected (``vocab``). Accounting unit: one object; kept = objects whose label is in
  the text (a repeated label is kept: the text names it once).
* ``--features``: the detector labels stored in feature shards (``obj_ids``, 0-based lines of the
  objects vocab file that comes with the checkpoint), in RoI order. Without a vocab file the
  names are placeholders ``object_<id>`` that match no word (a warning in the log and manifest).
  Accounting unit: one shard sample (image); a sample with no boxes or an id outside the vocab is
  rejected. Samples from a randomly initialised detector are counted and warned about.

Output ``token_labels-SSSSS-of-NNNNN.parquet``: ``image_id``, ``text``, ``split`` (null: the
trainer's split comes from elsewhere), ``source`` ("vg_objects" / "detector"), ``labels``
(list<string>, the names in text order) and ``num_boxes`` (int32).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa

from corpora.readers.common import Malformed
from corpora.readers.vg import iter_vg_objects
from corpora.schema import FeatureSample
from corpora.vocab import label_names, normalise_label, synonym_map
from pipeline import common
from pipeline.hn_shards import ReadFeatureSamples, feature_shard_paths
from pipeline.text_io import WriteTable, end_job, start_job, table_schema
from pipeline.text_norm import JOINER

logger = logging.getLogger(__name__)

JOB = "token_labels"
TABLE = "token_labels"
SCHEMA = table_schema(pa.field("labels", pa.list_(pa.string())), pa.field("num_boxes", pa.int32()))


@dataclasses.dataclass
class TokenLabelsConfig:
    """Resolved configuration of one token-labels run (written as config.json)."""

    out: str
    objects: str | None = None
    features: str | None = None
    prefix: str | None = None
    objects_vocab: str | None = None


def _text_row(image_id: str, labels: list[str], source: str, num_boxes: int) -> dict[str, Any]:
    unique = list(dict.fromkeys(labels))
    return {"image_id": image_id, "text": JOINER.join(unique), "split": None, "source": source,
            "labels": unique, "num_boxes": num_boxes}  # fmt: skip


class _ObjectLabels(beam.DoFn):
    """Stream objects.json; one text row per image with at least one usable object."""

    def __init__(self, namespace: str, synonyms: dict[str, str] | None) -> None:
        self.counters = common.Counters(namespace)
        self.synonyms = synonyms

    def process(self, path: str):
        bad_items = 0  # objects of the coming image record rejected alone by the reader
        for item in iter_vg_objects(path, on_error="yield"):
            if isinstance(item, Malformed):
                self.counters.inc("inputs")
                bad_items += item.sub_index is not None
                yield common.reject(item.input_id, "read", item.describe())
                continue
            if not item.objects and not bad_items:
                self.counters.inc("inputs")
                yield common.reject(item.key, "read", "image has an empty object list")
            bad_items = 0
            labels = []
            for obj in item.objects:
                self.counters.inc("inputs")
                name = normalise_label(obj.names[0])
                label = name if self.synonyms is None else self.synonyms.get(name)
                if not label:
                    reason = (
                        f"object name {obj.names[0]!r} is not a detector class"
                        if name
                        else "object has an empty name"
                    )
                    yield common.reject(f"{item.key}/{obj.object_id}", "vocab", reason)
                    continue
                labels.append(label)
            if labels:
                self.counters.inc("kept", len(labels))
                yield _text_row(item.key, labels, "vg_objects", len(item.objects))


class _DetectorLabels(beam.DoFn):
    """A feature sample -> its detector labels as a text row."""

    def __init__(self, namespace: str, names: list[str] | None) -> None:
        self.counters = common.Counters(namespace)
        self.names = names

    def process(self, sample: FeatureSample):
        if sample.info.get("random_init"):
            self.counters.inc("random_init")
        if sample.num_boxes == 0:
            yield common.reject(sample.key, "labels", "sample has no boxes")
            return
        ids = [int(i) for i in sample.obj_ids]
        if self.names is not None:
            outside = sorted({i for i in ids if not 0 <= i < len(self.names)})
            if outside:
                reason = f"object ids {outside[:5]} outside the vocab of {len(self.names)} classes"
                yield common.reject(sample.key, "labels", reason)
                return
            labels = [self.names[i] for i in ids]
        else:
            labels = [f"object_{i}" for i in ids]
        self.counters.inc("kept")
        yield _text_row(sample.key, labels, "detector", sample.num_boxes)


def build(p: beam.Pipeline, cfg: TokenLabelsConfig) -> None:
    """Add the token-labels job to ``p``."""
    if cfg.objects:
        synonyms = synonym_map(cfg.objects_vocab) if cfg.objects_vocab else None
        labelled = (
            p
            | "ObjectsPath" >> beam.Create([cfg.objects])
            | "ObjectLabels"
            >> beam.ParDo(_ObjectLabels(JOB, synonyms)).with_outputs(common.REJECTS, main="rows")
        )
        rejects = [labelled.rejects]
    else:
        names = label_names(cfg.objects_vocab) if cfg.objects_vocab else None
        paths = feature_shard_paths(cfg.features, cfg.prefix)
        read = p | "ReadShards" >> ReadFeatureSamples(paths, JOB)
        labelled = read.samples | "DetectorLabels" >> beam.ParDo(
            _DetectorLabels(JOB, names)
        ).with_outputs(common.REJECTS, main="rows")
        rejects = [read.rejects, labelled.rejects]
    _ = labelled.rows | "Write" >> WriteTable(cfg.out, TABLE, SCHEMA)
    _ = (
        rejects
        | "AllRejects" >> beam.Flatten()
        | "WriteRejects" >> common.WriteRejects(cfg.out, JOB)
    )


def run(argv: list[str] | None = None) -> int:
    """Entry point of ``msp pipeline token-labels``; returns a process exit code."""
    parser = argparse.ArgumentParser(
        prog="msp pipeline token-labels", description=__doc__.split("\n")[0]
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--objects", help="Visual Genome objects.json (annotated boxes)")
    source.add_argument("--features", help="folder of feature shards (detector labels)")
    parser.add_argument("--prefix", help="feature shard prefix (default: every complete shard)")
    parser.add_argument("--objects-vocab", help="objects_vocab.txt of the detector checkpoint")
    parser.add_argument("--out", required=True, help="output folder")
    args, options = common.parse_args(parser, argv)
    cfg = TokenLabelsConfig(
        out=args.out, objects=args.objects, features=args.features, prefix=args.prefix,
        objects_vocab=args.objects_vocab,
    )  # fmt: skip
    try:  # fail before touching the output folder
        if cfg.features:
            feature_shard_paths(cfg.features, cfg.prefix)
        for path in (cfg.objects, cfg.objects_vocab):
            if path and not Path(path).is_file():
                raise FileNotFoundError(f"not found: {path}")
    except FileNotFoundError as exc:
        parser.error(str(exc))
    warnings = []
    if cfg.features and not cfg.objects_vocab:
        warnings.append("no --objects-vocab: detector labels are placeholders object_<id>")
        logger.warning("%s", warnings[-1])
    job = start_job(cfg.out, JOB, cfg, args.force, (TABLE,))
    if job is None:
        return 0
    p = beam.Pipeline(options=options)
    build(p, cfg)
    result = p.run()
    result.wait_until_finish()
    random_init = common.read_counters(result, JOB).get("random_init", 0)
    if random_init:
        warnings.append(
            f"{random_init} samples come from a randomly initialised detector: "
            "their labels are noise"
        )
        logger.warning("%s", warnings[-1])
    end_job(job, result, (TABLE,), extra={"warnings": warnings})
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run())
