"""Steps of the concepts job: parse captions, count tuples, build the vocabulary, attach concepts.

* :class:`ParseSceneGraphs`: spaCy in batches (``BatchElements`` + ``nlp.pipe``; the model loads
  once per worker in ``setup()``), each caption gets its tuples (:mod:`pipeline.sg_parse`).
* :class:`BuildVocabulary`: every caption of a counted split emits each distinct tuple once;
  a ``CombinePerKey(sum)`` counts the sentences per tuple across workers (combiner lifting sums
  partial counts before the shuffle, so no worker and not the driver holds the full table);
  tuples seen in ``min_count`` sentences or more are kept. Only the kept vocabulary, a few
  ten thousand entries where the corpus has millions of captions, is gathered into one element
  to number it: ids from 30522 (after the BERT WordPiece ids) by decreasing sentence count,
  ties by kind and words, so the numbering is deterministic.
* :class:`AttachConcepts`: the vocabulary is a side input (``AsDict``: key -> id); each caption
  keeps its tuples that are concepts, each with the WordPiece positions it covers.

WordPiece positions: indices into the caption's bert-base-uncased WordPieces without [CLS]
(the trainer's position = ours + 1), every piece that overlaps a character of a covered word.
Chain masking masks a concept whenever one of its positions is masked.
"""

from __future__ import annotations

import logging
from typing import Any

import apache_beam as beam
import pyarrow as pa

from pipeline import common
from pipeline.sg_parse import SceneGraphParser, phrase

logger = logging.getLogger(__name__)

FIRST_CONCEPT_ID = 30522  # after the bert-base-uncased WordPiece ids (MVPTR)
VOCAB_SCHEMA = pa.schema(
    [
        pa.field("concept_id", pa.int64(), nullable=False),
        pa.field("concept", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("words", pa.list_(pa.string())),
        pa.field("wordpiece_ids", pa.list_(pa.int32())),
        pa.field("sentences", pa.int64()),
    ]
)


def _tokenizer(vocab_file: str):
    from tokenizers import BertWordPieceTokenizer

    return BertWordPieceTokenizer(vocab_file, lowercase=True)


class _Parse(beam.DoFn):
    def __init__(self, namespace: str, model: str) -> None:
        self.counters = common.Counters(namespace)
        self.model = model

    def setup(self) -> None:
        self.parser = SceneGraphParser(self.model)

    def process(self, rows: list[dict[str, Any]]):
        for row, tuples in zip(rows, self.parser.parse(r["text"] for r in rows), strict=True):
            self.counters.inc("tuples", len(tuples))
            yield {**row, "tuples": [(t.key, t.spans) for t in tuples]}


class ParseSceneGraphs(beam.PTransform):
    """Caption dicts -> the same with ``tuples``: ``[(key, char spans), ...]``."""

    def __init__(self, namespace: str, model: str, max_batch: int = 256) -> None:
        super().__init__()
        self.namespace = namespace
        self.model = model
        self.max_batch = max_batch

    def expand(self, rows):
        return (
            rows
            | "Batch" >> beam.BatchElements(min_batch_size=8, max_batch_size=self.max_batch)
            | "Parse" >> beam.ParDo(_Parse(self.namespace, self.model))
        )


class _AssignIds(beam.DoFn):
    """The kept ``(key, sentences)`` pairs, gathered -> numbered vocabulary rows."""

    def __init__(self, namespace: str, vocab_file: str) -> None:
        self.counters = common.Counters(namespace)
        self.vocab_file = vocab_file

    def setup(self) -> None:
        self.tok = _tokenizer(self.vocab_file)

    def process(self, kept: list[tuple[tuple[str, ...], int]]):
        ordered = sorted(kept, key=lambda kv: (-kv[1], kv[0]))
        self.counters.inc("vocab", len(ordered))
        for n, (key, sentences) in enumerate(ordered):
            kind, words = key[0], list(key[1:])
            text = phrase(kind, words)
            yield {
                "concept_id": FIRST_CONCEPT_ID + n,
                "concept": text,
                "kind": kind,
                "words": words,
                "wordpiece_ids": self.tok.encode(text, add_special_tokens=False).ids,
                "sentences": sentences,
            }


def _counted(split: str | None, splits: tuple[str, ...]) -> bool:
    return split is None or split in splits


class BuildVocabulary(beam.PTransform):
    """Parsed captions -> vocabulary rows (``VOCAB_SCHEMA``).

    ``splits``: the splits whose captions are counted (captions without a split count too);
    held-out captions get concepts but never shape the vocabulary.
    """

    def __init__(
        self, namespace: str, min_count: int, splits: tuple[str, ...], vocab_file: str
    ) -> None:
        super().__init__()
        self.namespace = namespace
        self.min_count = min_count
        self.splits = tuple(splits)
        self.vocab_file = vocab_file

    def expand(self, parsed):
        splits, min_count = self.splits, self.min_count
        return (
            parsed
            | "CountedSplits" >> beam.Filter(lambda r: _counted(r["split"], splits))
            | "OncePerSentence" >> beam.FlatMap(lambda r: sorted({(k, 1) for k, _ in r["tuples"]}))
            | "CountSentences" >> beam.CombinePerKey(sum)
            | "MinCount" >> beam.Filter(lambda kv: kv[1] >= min_count)
            | "Gather" >> beam.combiners.ToList()
            | "AssignIds" >> beam.ParDo(_AssignIds(self.namespace, self.vocab_file))
        )


def wordpiece_positions(offsets: list[tuple[int, int]], spans) -> list[int]:
    """Indices of the WordPieces (char ``offsets``) overlapping any of the char ``spans``."""
    return [
        j
        for j, (start, end) in enumerate(offsets)
        if end > start and any(start < b and end > a for a, b in spans)
    ]


class _Attach(beam.DoFn):
    def __init__(self, namespace: str, vocab_file: str) -> None:
        self.counters = common.Counters(namespace)
        self.vocab_file = vocab_file

    def setup(self) -> None:
        self.tok = _tokenizer(self.vocab_file)

    def process(self, row: dict[str, Any], vocab: dict[tuple[str, ...], tuple[int, str]]):
        offsets = self.tok.encode(row["text"], add_special_tokens=False).offsets
        found = []
        for key, spans in row["tuples"]:
            if key in vocab:
                positions = wordpiece_positions(offsets, spans)
                concept_id, text = vocab[key]
                found.append((positions[:1] or [len(offsets)], concept_id, text, positions))
        found.sort()
        self.counters.inc("kept")
        self.counters.inc("concepts", len(found))
        self.counters.inc("with_concepts", bool(found))
        yield {
            **{k: v for k, v in row.items() if k != "tuples"},
            "concept_ids": [f[1] for f in found],
            "concepts": [f[2] for f in found],
            "concept_tokens": [f[3] for f in found],
        }


class AttachConcepts(beam.PTransform):
    """``(parsed captions, vocabulary rows)`` -> output rows with their concepts."""

    def __init__(self, namespace: str, vocab_file: str) -> None:
        super().__init__()
        self.namespace = namespace
        self.vocab_file = vocab_file

    def expand(self, inputs):
        parsed, vocab = inputs
        by_key = vocab | "ByKey" >> beam.Map(
            lambda v: ((v["kind"], *v["words"]), (v["concept_id"], v["concept"]))
        )
        return parsed | "Attach" >> beam.ParDo(
            _Attach(self.namespace, self.vocab_file), vocab=beam.pvalue.AsDict(by_key)
        )
