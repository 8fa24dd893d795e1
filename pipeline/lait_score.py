"""Score step: an image-text relevance score per pair, through a pluggable ``Scorer``.

Interface (models and their scores in ``pipeline.lait_relevance``)::

    class Scorer:
        name: str
        needs_pixels: bool             # True: ImageView.data holds the stored image bytes
        needs_labels: bool             # True: ImageView.labels holds the top ImageNet labels
        def setup(self) -> None        # load weights; called once per worker (DoFn.setup)
        def score(self, image: ImageView, text: TextView) -> float
        def score_batch(self, items: list[tuple[ImageView, TextView]]) -> list[float]

``--scorer`` selects one: ``labels`` (the default: ImageNet labels of the image vs the caption,
both embedded with a sentence model; ``lait_relevance``), ``clip:FOLDER`` (a local CLIP
checkpoint), ``heuristic`` (below), or ``package.module:Class`` (constructed without arguments).
Pairs are grouped by image (with its stored bytes, joined only when the scorer
``needs_pixels``), so an image is decoded and embedded once for all its texts, and images are
batched (``BatchElements``) for ``score_batch``. A non-finite score rejects the pair.

**Score.** A relevance model's output is the pair's ``relevance``; the pair's ``score`` adds the
text-quality prior below, ``score = relevance + text_weight * text_prior`` (``--text-weight``,
default 0.5), for scorers that set ``blends_text_prior`` (the model scorers). ImageBERT's weak
model also used text-only features beside cross-modal ones; without the prior, the relevance
model prefers a short text naming the one object it recognised ("astronaut portrait with a
white helmet") to a full description of the same image. ``relevance``, ``text_prior`` and
``score`` are all kept in the pairs table. The heuristic scorer's score is its prior alone.

``HeuristicScorer`` is honest about what it is: **a text-quality prior, not an image-text
relevance model** (it never looks at pixels). Its score is the description's clean word count,
scaled to [0, 1]::

    score = min(word_count * (1 - oov_ratio), 50) / 50

More in-vocabulary words describe more (LAIT's texts average 13 words; the text step already
bounded the length to ``[min_words, max_words]``). Where two pairs of one image score the same,
aggregation prefers the better text source (figcaption/caption, then alt, title, surrounding).
The score ranks an image's several descriptions (aggregation keeps the best); ``--min-score``
(default: keep all) can cut the weakest pairs.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from pipeline.common import REJECTS, Counters, reject
from pipeline.lait_config import JOB, LaitConfig

STEP = "score"


@dataclass(frozen=True)
class ImageView:
    """What a scorer sees of an image; ``data`` is None unless the scorer needs pixels."""

    image_id: str
    width: int
    height: int
    ext: str
    data: bytes | None = None
    labels: tuple[tuple[str, float], ...] = ()  # top ImageNet labels and probabilities


@dataclass(frozen=True)
class TextView:
    """What a scorer sees of a description."""

    text: str
    source: str
    word_count: int
    oov_ratio: float


class Scorer(ABC):
    """Image-text relevance scorer; higher is more relevant. See the module docstring."""

    name: str = "scorer"
    needs_pixels: bool = False
    needs_labels: bool = False
    blends_text_prior: bool = False  # True: score = output + text_weight * heuristic prior

    def setup(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Load models; called once per worker."""

    @abstractmethod
    def score(self, image: ImageView, text: TextView) -> float:
        """The relevance of ``text`` to ``image``."""

    def score_batch(self, items: list[tuple[ImageView, TextView]]) -> list[float]:
        return [self.score(image, text) for image, text in items]


class HeuristicScorer(Scorer):
    """Clean word count prior (module docstring); ignores the image."""

    name = "heuristic"
    cap = 50  # words

    def score(self, image: ImageView, text: TextView) -> float:
        clean = text.word_count * (1.0 - min(max(text.oov_ratio, 0.0), 1.0))
        return round(min(clean, self.cap) / self.cap, 6)


SCORERS: dict[str, type[Scorer]] = {"heuristic": HeuristicScorer}


def load_scorer(spec: str, text_model: str = "", threads: int = 1) -> Scorer:
    """A scorer by name (``heuristic``, ``labels``), ``clip:FOLDER`` or ``package.module:Class``.

    ``text_model`` (a sentence-model folder, "" = the packaged MiniLM) and ``threads`` go to
    the model scorers."""
    from pipeline import lait_relevance

    if spec in SCORERS:
        return SCORERS[spec]()
    if spec == "labels":
        return lait_relevance.LabelEmbeddingScorer(text_model, threads)
    if spec.startswith("clip:"):
        return lait_relevance.ClipScorer(spec[len("clip:") :], threads)
    module, sep, cls = spec.partition(":")
    if not sep:
        raise ValueError(
            f"unknown scorer {spec!r}: one of {sorted([*SCORERS, 'labels'])}, clip:FOLDER "
            "or module:Class"
        )
    scorer = getattr(importlib.import_module(module), cls)()
    if not isinstance(scorer, Scorer):
        raise TypeError(f"{spec} is not a pipeline.lait_score.Scorer")
    return scorer


class ScoreFn(beam.DoFn):
    """A batch of (image_id, {"pairs", "payloads"}) groups -> scored pairs and rejects."""

    def __init__(self, config: LaitConfig) -> None:
        self.spec, self.min_score = config.scorer, config.min_score
        self.text_weight = config.text_weight
        self.text_model, self.threads = config.text_model, config.model_threads
        self.counters = Counters(JOB)
        self.scorer: Scorer | None = None

    def setup(self) -> None:
        self.scorer = load_scorer(self.spec, self.text_model, self.threads)
        self.scorer.setup()

    def process(self, batch: list[tuple[str, dict[str, Any]]]) -> Iterator[Any]:
        assert self.scorer is not None, "setup() not called"
        items, pairs = [], []
        for image_id, grouped in batch:
            group_pairs = list(grouped["pairs"])
            if not group_pairs:
                continue
            payload = next(iter(grouped["payloads"]), None)
            first = group_pairs[0]
            image = ImageView(
                image_id,
                first["width"],
                first["height"],
                first["image_ext"],
                payload["data"] if (payload and self.scorer.needs_pixels) else None,
                tuple((str(n), float(p)) for n, p in first.get("imagenet_top") or ()),
            )
            for pair in group_pairs:
                text = TextView(
                    pair["caption"], pair["text_source"], pair["word_count"], pair["oov_ratio"]
                )
                items.append((image, text))
                pairs.append(pair)
        if not items:
            return
        self.counters.inc("in.score", len(items))
        blend = self.scorer.blends_text_prior
        prior = HeuristicScorer()
        relevances = self.scorer.score_batch(items)
        for (image, text), pair, relevance in zip(items, pairs, relevances, strict=True):
            text_prior = prior.score(image, text)
            value = relevance + self.text_weight * text_prior if blend else relevance
            if not math.isfinite(value):
                yield reject(pair["input_id"], STEP, f"invalid score: {value}")
                continue
            if value < self.min_score:
                yield reject(pair["input_id"], STEP, f"low score: {value:.3f} < {self.min_score}")
                continue
            self.counters.inc("out.score")
            yield {**pair, "score": round(float(value), 6), "relevance": float(relevance),
                   "text_prior": text_prior, "scorer": self.scorer.name}  # fmt: skip


class LaitScore(beam.PTransform):
    """(pairs, payloads) -> (scored pairs, rejects)."""

    def __init__(self, config: LaitConfig, max_batch: int = 64) -> None:
        super().__init__()
        self.config, self.max_batch = config, max_batch

    def expand(self, inputs: tuple[Any, Any]):
        pairs, payloads = inputs
        keyed = pairs | "KeyByImage" >> beam.Map(lambda p: (p["image_id"], p))
        if load_scorer(self.config.scorer).needs_pixels:  # constructing one loads nothing
            grouped = {"pairs": keyed, "payloads": payloads} | "GroupByImage" >> beam.CoGroupByKey()
        else:  # the bytes need not travel to the scorer
            grouped = (
                keyed
                | "GroupByImage" >> beam.GroupByKey()
                | "NoPixels" >> beam.MapTuple(lambda k, ps: (k, {"pairs": ps, "payloads": []}))
            )
        out = (
            grouped
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.max_batch)
            | "Score" >> beam.ParDo(ScoreFn(self.config)).with_outputs(REJECTS, main="scored")
        )
        return out.scored, out[REJECTS]
