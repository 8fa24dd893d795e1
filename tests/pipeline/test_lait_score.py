"""Score step: the heuristic's order, scorer loading, the LaitScore transform with two scorers."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import lait_score
from pipeline.lait_config import LaitConfig
from pipeline.lait_score import HeuristicScorer, ImageView, LaitScore, Scorer, TextView, load_scorer

IMAGE = ImageView("abc", 400, 320, "jpg")


def score(source: str, words: int = 10, oov: float = 0.0) -> float:
    return HeuristicScorer().score(IMAGE, TextView("x", source, words, oov))


def test_heuristic_clean_word_count():
    assert score("alt", words=10) == score("figcaption", words=10) == 0.2
    assert score("alt", words=12) > score("figcaption", words=11)
    assert score("alt", words=10, oov=0.5) == score("alt", words=5)
    assert score("alt", words=60) == score("alt", words=50) == 1.0
    items = [(IMAGE, TextView("x", "alt", 8, 0.1)), (IMAGE, TextView("y", "title", 3, 0.0))]
    assert HeuristicScorer().score_batch(items) == [HeuristicScorer().score(*i) for i in items]


def test_load_scorer():
    assert isinstance(load_scorer("heuristic"), HeuristicScorer)
    assert isinstance(load_scorer("pipeline.lait_score:HeuristicScorer"), HeuristicScorer)
    with pytest.raises(ValueError, match="unknown scorer"):
        load_scorer("clip")
    with pytest.raises(TypeError, match="not a"):
        load_scorer("collections:OrderedDict")


class BytesScorer(Scorer):
    """Needs pixels: scores by the stored byte count, so the bytes must reach it."""

    name = "bytes"
    needs_pixels = True

    def setup(self) -> None:
        self.ready = True

    def score(self, image: ImageView, text: TextView) -> float:
        assert self.ready and image.data is not None
        return float(len(image.data))


def _pair(input_id: str, image_id: str, source: str, words: int) -> dict:
    return {"input_id": input_id, "image_id": image_id, "width": 400, "height": 320,
            "image_ext": "jpg", "caption": "c", "text_source": source, "word_count": words,
            "oov_ratio": 0.0}  # fmt: skip


PAIRS = [_pair("1", "a", "figcaption", 8), _pair("2", "a", "surrounding", 2),
         _pair("3", "b", "alt", 10)]  # fmt: skip
PAYLOADS = [("a", {"data": b"12345", "ext": "jpg"}), ("b", {"data": b"1", "ext": "jpg"})]


def _run(config: LaitConfig):
    p = BeamTestPipeline(runner="FnApiRunner")
    scored, rejects = (
        p | "P" >> beam.Create(PAIRS),
        p | "Y" >> beam.Create(PAYLOADS),
    ) | LaitScore(config)
    return p, scored, rejects


def test_lait_score_heuristic_with_threshold():
    p, scored, rejects = _run(LaitConfig(inputs=[], out="", min_score=0.1))
    assert_that(
        scored | beam.Map(lambda s: (s["input_id"], s["scorer"], s["score"])),
        equal_to([("1", "heuristic", 0.16), ("3", "heuristic", 0.2)]),
        label="scored",
    )
    assert_that(
        rejects | beam.Map(lambda r: (r["input_id"], r["step"], r["reason"].split(":")[0])),
        equal_to([("2", "score", "low score")]),
        label="rejects",
    )
    p.run().wait_until_finish()


def test_lait_score_pixel_scorer(monkeypatch):
    monkeypatch.setitem(lait_score.SCORERS, "bytes", BytesScorer)
    p, scored, rejects = _run(LaitConfig(inputs=[], out="", scorer="bytes"))
    assert_that(
        scored | beam.Map(lambda s: (s["input_id"], s["scorer"], s["score"])),
        equal_to([("1", "bytes", 5.0), ("2", "bytes", 5.0), ("3", "bytes", 1.0)]),
        label="scored",
    )
    assert_that(rejects, equal_to([]), label="rejects")
    p.run().wait_until_finish()
