"""The LAIT job on the embedded sample corpus, scored filter by filter against its ground truth.

The sample's cases cover every filter (non-English pages, site chrome, broken and tiny images,
missing, boilerplate, short/long, spam, adult and made-up texts, a description on seven images,
re-posted images); each filter must reach precision and recall >= 0.95 on them.
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


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lait-sample")
    sample.generate(root / "sample", seed=0, num_scenes=50)  # the smallest corpus (~1 s)
    out = root / "lait"
    argv = ["--input", str(root / "sample" / "web"), "--out", str(out),
            "--url-map", f"{HOST}={root / 'sample' / 'web'}/"]  # fmt: skip
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
