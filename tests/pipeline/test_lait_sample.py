"""The LAIT job on the embedded sample corpus, scored filter by filter against its ground truth.

The sample's cases cover every filter (non-English pages, site chrome, broken and tiny images,
missing, boilerplate, short/long, spam, adult and made-up texts, alt texts in another language
on English pages, text images and a screenshot, a description on seven images, re-posted
images); each filter must reach precision and recall >= 0.95 on them. The adult-image filter
has no case: the sample ships no such image (``test_lait_filters`` checks its path).

The sample's scenes are flat-colour drawings, which the non-natural filter's default rejects
(as it should: ``test_lait_filters``); the sample's ground truth keeps them, so this run, like
the demo, turns off the two cues that see drawings (``--max-graphic 1 --max-nonphoto 1``).
The text-area cue, the adult-image filter and the relevance scorer run as by default.
"""

from __future__ import annotations

import json
import logging

import pytest

from pipeline import lait
from pipeline.lait_eval import evaluate_against_ground_truth, format_table

sample = pytest.importorskip("corpora.sample")
logger = logging.getLogger(__name__)
HOST = "http://sample.msp.invalid/"
DRAWINGS_OK = ["--max-graphic", "1", "--max-nonphoto", "1"]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lait-sample")
    sample.generate(root / "sample", seed=0, num_scenes=50)  # the smallest corpus (~1 s)
    out = root / "lait"
    argv = ["--input", str(root / "sample" / "web"), "--out", str(out),
            "--url-map", f"{HOST}={root / 'sample' / 'web'}/",
            *DRAWINGS_OK]  # fmt: skip
    assert lait.run(argv) == 0
    return root / "sample", out


def test_every_filter_against_ground_truth(sample_run):
    sample_dir, out = sample_run
    result = evaluate_against_ground_truth(out, sample_dir)
    logger.info("LAIT on the sample corpus:\n%s", format_table(result))
    assert result["missing"] == [] and result["extra"] == []
    truth = [json.loads(x) for x in (sample_dir / "ground_truth" / "lait.jsonl").open()]
    assert result["candidates"] == len(truth)
    expected_filters = {t["reason"] for t in truth if t["expected"] == "rejected"}
    assert len(expected_filters) >= 10  # the sample exercises (nearly) every filter
    for name in expected_filters:
        f = result["filters"][name]
        assert f["precision"] >= 0.95 and f["recall"] >= 0.95, (name, f)
    assert set(result["filters"]) == expected_filters  # no filter fired where none was meant
    overall = result["overall"]
    assert overall["precision"] >= 0.95 and overall["recall"] >= 0.95, overall


def test_sample_accounting(sample_run):
    sample_dir, out = sample_run
    manifest = json.loads((out / "manifest.json").read_text())
    filters = json.loads((sample_dir / "ground_truth" / "filters.json").read_text())
    n_candidates = sum(1 for _ in (sample_dir / "ground_truth" / "lait.jsonl").open())
    # every candidate, plus each page without images, is one input; nothing is lost
    assert manifest["inputs"] == n_candidates + len(filters["pages_without_images"])
    assert manifest["inputs"] == manifest["kept"] + manifest["rejected"]
    assert manifest["kept"] == len(filters["kept"])
    assert manifest["steps"]["write"]["images"] == manifest["kept"]
    assert manifest["models"]["text_embedder"].startswith("all-MiniLM-L6-v2")


def test_sample_pairs_carry_every_filter_score(sample_run):
    import pyarrow.parquet as pq

    _, out = sample_run
    rows = [r for f in sorted(out.glob("pairs-*.parquet")) for r in pq.read_table(f).to_pylist()]
    for row in rows:
        assert row["scorer"] == "labels" and row["text_en"] >= 0.5
        assert row["score"] == pytest.approx(row["relevance"] + 0.5 * row["text_prior"], abs=1e-5)
        assert row["adult_image"] < 0.2 and row["text_area"] <= 0.08
        assert len(json.loads(row["imagenet_top"])) == 5
    photos = [r for r in rows if r["graphic"] < 0.6]  # the packaged photos among the drawings
    assert 6 <= len(photos) <= 8 and len(rows) - len(photos) >= 30
