"""MSP stage P text: Visual Genome region phrases without verbs, joined with ", " per image.

    msp pipeline phrases --vg VG_DIR --out OUT [--max-tokens 20] [--karpathy dataset_coco.json]
                         [--vocab vocab.txt] [--force] [Beam options]

Reads ``region_descriptions.json`` (and ``image_data.json`` for ``coco_id``) from ``VG_DIR``.
Steps, each a composite transform:

1. ``ReadVG``: regions per image (:mod:`pipeline.text_vg`); malformed regions, images with an
   empty region list and (with ``--karpathy``) images whose COCO/Flickr twin is held out for
   evaluation are rejected.
2. ``Normalise``: case, whitespace and punctuation (:func:`pipeline.text_norm.normalise_phrase`);
   a phrase empty after it is rejected (``normalise``); a repeat of an earlier phrase of the same
   image (ignoring a leading article) is rejected (``duplicate``).
3. ``DropVerbPhrases``: spaCy POS/dependency policy of :mod:`pipeline.text_verbs` (``verb``),
   batched with ``nlp.pipe``; the model loads once per worker in ``setup()``.
4. ``Pack``: phrases of an image, in file order, joined with ", " into as many samples as needed
   so that each fits ``--max-tokens`` WordPieces including [CLS] and [SEP] (the trainer's text
   length, 20 for LXMERT-S); a phrase that alone does not fit is rejected (``length``).
5. ``Write``: ``phrases-SSSSS-of-NNNNN.parquet``: ``image_id``, ``text``, ``split`` ("train"),
   ``source`` ("vg"), ``coco_id`` (int64, null when VG gives none), ``part``/``num_parts`` (the
   sample's place among the image's samples) and ``region_ids`` (list<int64>, the regions whose
   phrases make up the text, in text order).

Accounting: one input per region (see :mod:`pipeline.text_vg`); kept = regions whose phrase is
in the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

import apache_beam as beam
import pyarrow as pa

from pipeline import common
from pipeline.text_io import WriteTable, end_job, start_job, table_schema
from pipeline.text_norm import (
    JOINER,
    SPECIAL_TOKENS,
    TokenCounter,
    dedupe_key,
    normalise_phrase,
    resolve_tokenizer,
)
from pipeline.text_norm import pack as pack_lengths
from pipeline.text_splits import HeldOutKeys, ReadKarpathySplits
from pipeline.text_verbs import SPACY_MODEL, VerbTagger
from pipeline.text_vg import IMAGES_FILE, REGIONS_FILE, ReadVGImages, vg_file

logger = logging.getLogger(__name__)

JOB = "phrases"
TABLE = "phrases"
SCHEMA = table_schema(
    pa.field("coco_id", pa.int64()),
    pa.field("part", pa.int32()),
    pa.field("num_parts", pa.int32()),
    pa.field("region_ids", pa.list_(pa.int64())),
)


@dataclasses.dataclass
class PhrasesConfig:
    """Resolved configuration of one phrases run (written as config.json)."""

    vg: str
    out: str
    max_tokens: int = 20
    tokenizer: str = "words"
    karpathy: str | None = None
    spacy_model: str = SPACY_MODEL
    carrier: str = "this is a picture of <phrase> ."


class _Normalise(beam.DoFn):
    """Normalise each phrase; reject empty results and per-image repeats."""

    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, image: dict[str, Any]):
        seen: dict[str, int] = {}
        phrases: list[tuple[int, str]] = []
        for region_id, phrase in image["regions"]:
            input_id = f"{image['image_id']}/{region_id}"
            text = normalise_phrase(phrase)
            if not text:
                yield common.reject(input_id, "normalise", f"phrase {phrase!r} is empty")
                continue
            key = dedupe_key(text)
            if key in seen:
                reason = f"phrase {text!r} repeats region {seen[key]} of the image"
                yield common.reject(input_id, "duplicate", reason)
                continue
            seen[key] = region_id
            phrases.append((region_id, text))
        if phrases:
            yield {**_meta(image), "phrases": phrases}


def _meta(image: dict[str, Any]) -> dict[str, Any]:
    return {"image_id": image["image_id"], "coco_id": image["coco_id"]}


class _DropVerbs(beam.DoFn):
    """Tag a batch of images' phrases with spaCy; reject those with a verb (policy: text_verbs)."""

    CACHE_SIZE = 200_000  # VG repeats phrases a lot ("white clouds in blue sky")

    def __init__(self, namespace: str, model: str) -> None:
        self.counters = common.Counters(namespace)
        self.model = model

    def setup(self) -> None:
        self.tagger = VerbTagger(self.model)
        self.cache: dict[str, str | None] = {}

    def process(self, images: list[dict[str, Any]]):
        todo = sorted({t for im in images for _, t in im["phrases"] if t not in self.cache})
        if len(self.cache) + len(todo) > self.CACHE_SIZE:
            self.cache.clear()
        self.cache.update(zip(todo, self.tagger.reasons(todo), strict=True))
        self.counters.inc("tagged.verb", len(todo))
        for image in images:
            kept = []
            for region_id, text in image["phrases"]:
                reason = self.cache[text]
                if reason is None:
                    kept.append((region_id, text))
                else:
                    yield common.reject(f"{image['image_id']}/{region_id}", "verb", reason)
            if kept:
                yield {**_meta(image), "phrases": kept}


class _Pack(beam.DoFn):
    """Join an image's phrases into samples within the token budget; count kept regions."""

    def __init__(self, namespace: str, tokenizer: str, max_tokens: int) -> None:
        self.counters = common.Counters(namespace)
        self.tokenizer = tokenizer
        self.budget = max_tokens - SPECIAL_TOKENS

    def setup(self) -> None:
        self.counter = TokenCounter(self.tokenizer)

    def process(self, image: dict[str, Any]):
        phrases, lengths = [], []
        counts = self.counter.count([t for _, t in image["phrases"]])
        for (region_id, text), n in zip(image["phrases"], counts, strict=True):
            if n > self.budget:
                reason = f"phrase {text!r} has {n} tokens, over the {self.budget} available"
                yield common.reject(f"{image['image_id']}/{region_id}", "length", reason)
                continue
            phrases.append((region_id, text))
            lengths.append(n)
        if not phrases:
            return
        self.counters.inc("kept", len(phrases))
        groups = pack_lengths(lengths, self.budget)
        self.counters.inc("samples", len(groups))
        for part, group in enumerate(groups):
            yield {
                "image_id": image["image_id"],
                "text": JOINER.join(phrases[i][1] for i in group),
                "split": "train",
                "source": "vg",
                "coco_id": image["coco_id"],
                "part": part,
                "num_parts": len(groups),
                "region_ids": [phrases[i][0] for i in group],
            }


class PhrasesFromRegions(beam.PTransform):
    """VG images (``ReadVGImages`` output) -> phrase-table rows; returns ``(rows, rejects)``."""

    def __init__(self, namespace: str, tokenizer: str, max_tokens: int, model: str) -> None:
        super().__init__()
        self.namespace = namespace
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.model = model

    def expand(self, images):
        ns = self.namespace
        normal = images | "Normalise" >> beam.ParDo(_Normalise(ns)).with_outputs(
            common.REJECTS, main="images"
        )
        verbless = (
            normal.images
            | "BatchImages" >> beam.BatchElements(min_batch_size=8, max_batch_size=512)
            | "DropVerbPhrases"
            >> beam.ParDo(_DropVerbs(ns, self.model)).with_outputs(common.REJECTS, main="images")
        )
        packed = verbless.images | "Pack" >> beam.ParDo(
            _Pack(ns, self.tokenizer, self.max_tokens)
        ).with_outputs(common.REJECTS, main="rows")
        rejects = (
            normal.rejects,
            verbless.rejects,
            packed.rejects,
        ) | "StepRejects" >> beam.Flatten()
        return packed.rows, rejects


def build(p: beam.Pipeline, cfg: PhrasesConfig) -> None:
    """Add the phrases job to ``p``."""
    heldout = None
    if cfg.karpathy:
        heldout = p | "Karpathy" >> ReadKarpathySplits(cfg.karpathy, JOB) | HeldOutKeys()
    images, read_rejects = p | "ReadVG" >> ReadVGImages(cfg.vg, JOB, heldout)
    rows, step_rejects = images | "Phrases" >> PhrasesFromRegions(
        JOB, cfg.tokenizer, cfg.max_tokens, cfg.spacy_model
    )
    _ = rows | "Write" >> WriteTable(cfg.out, TABLE, SCHEMA)
    _ = (
        (read_rejects, step_rejects)
        | "AllRejects" >> beam.Flatten()
        | "WriteRejects" >> common.WriteRejects(cfg.out, JOB)
    )


def run(argv: list[str] | None = None) -> int:
    """Entry point of ``msp pipeline phrases``; returns a process exit code."""
    parser = argparse.ArgumentParser(
        prog="msp pipeline phrases", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--vg", required=True, help="folder with region_descriptions.json")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--max-tokens", type=int, default=20, help="text length incl. [CLS]/[SEP] (WordPieces)"
    )
    parser.add_argument("--vocab", help="BERT vocab.txt for counting WordPieces")
    parser.add_argument("--karpathy", help="Karpathy split file: exclude held-out twins")
    args, options = common.parse_args(parser, argv)
    if args.max_tokens < SPECIAL_TOKENS + 1:
        parser.error(f"--max-tokens must be at least {SPECIAL_TOKENS + 1}")
    try:  # fail before touching the output folder
        vg_file(args.vg, REGIONS_FILE)
        if args.karpathy:
            vg_file(args.vg, IMAGES_FILE)
    except FileNotFoundError as exc:
        parser.error(f"{exc} (needed with --karpathy)" if args.karpathy else str(exc))
    cfg = PhrasesConfig(
        vg=args.vg,
        out=args.out,
        max_tokens=args.max_tokens,
        tokenizer=resolve_tokenizer(args.vocab),
        karpathy=args.karpathy,
    )
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
