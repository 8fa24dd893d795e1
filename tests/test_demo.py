"""``msp demo`` end to end on a small sample: every stage runs, accounting holds, report written,
and a rerun resumes (complete stages are skipped)."""

from __future__ import annotations

import json
import time

import pytest

from train import demo

pytestmark = pytest.mark.slow


def test_demo_end_to_end_and_resume(tmp_path):
    out = tmp_path / "demo"
    argv = [
        "--out", str(out), "--num-scenes", "50", "--fixed-box-images", "1", "--top-k", "5",
        "stages.T.steps=4", "stages.P.steps=4", "stages.S.steps=4",
        "stages.T.batch_size=4", "stages.P.batch_size=4", "stages.S.batch_size=4",
        "eval.max_images=6", "checkpoint_every=2", "log_every=2",
    ]  # fmt: skip
    assert demo.main(argv) == 0

    record = json.loads((out / "demo.json").read_text())
    assert [s["name"] for s in record["stages"]] == [name for name, _ in demo.STAGES]
    assert record["random_init_detector"] is True
    for job in ("lait", "phrases", "captions", "token_labels", "hard_negatives", "features"):
        manifest = json.loads((out / job / "manifest.json").read_text())
        assert manifest["inputs"] == manifest["kept"] + manifest["rejected"], job
        assert manifest["kept"] > 0, job
    features = json.loads((out / "features" / "manifest.json").read_text())
    assert features["kept"] == 58  # 50 scenes + 8 photos, given boxes
    report = (out / "report.md").read_text()
    assert "RANDOMLY INITIALISED" in report
    assert "| lait |" in report and "TR@1" in report
    assert list((out / "train" / "plots").glob("*.png"))
    for stage in ("T", "P", "S"):
        assert (out / "train" / f"eval_{stage}.json").exists()

    shards = sorted((out / "features").glob("features-*.tar"))
    mtimes = [p.stat().st_mtime for p in shards]
    started = time.time()
    assert demo.main(argv) == 0
    assert time.time() - started < 60
    assert sorted((out / "features").glob("features-*.tar")) == shards  # no new shards
    assert [p.stat().st_mtime for p in shards] == mtimes  # nothing rewritten
    again = json.loads((out / "features" / "manifest.json").read_text())
    assert again["kept"] == 58 and again["inputs"] == again["kept"] + again["rejected"]
