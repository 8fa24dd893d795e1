"""End to end: a tiny two-stage run through the CLI, evaluation of its checkpoint, and resume
from the latest checkpoint equal to an uninterrupted run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from train.checkpoint import load_checkpoint
from train.cli import eval_main, train_main
from train.config import TrainConfig
from train.run import train


def test_cli_run_writes_checkpoints_metrics_plots_and_eval(tiny_data, make_config, tmp_path):
    cfg = make_config(tiny_data, tmp_path / "run")
    path = tmp_path / "tiny.yaml"
    path.write_text(cfg.to_yaml())
    rc = train_main(["--config", str(path), "--no-progress", "stages.1.steps=3", "log_every=1"])
    assert rc == 0
    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["T", "S"]
    assert summary["stages"][1]["steps"] == 3  # the override took effect
    assert summary["stages"][0]["data"]["rows_missing_features"] == 1
    assert set(summary["stages"][1]["final_losses"]) >= {"mlm", "mrfr", "moc", "tits", "itm_hs"}

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["stages"][1]["steps"] == 3 and saved["log_every"] == 1

    ckpts = sorted(p.name for p in (out / "checkpoints").glob("*.pt"))
    assert "stage00-T-final.pt" in ckpts and "stage01-S-final.pt" in ckpts
    state = load_checkpoint(out / "checkpoints" / "stage01-S-final.pt")
    assert TrainConfig.from_dict(state["config"]).stages[1].steps == 3
    assert state["step"] == 3 and state["final"] and {"optimizer", "scheduler", "rng"} <= set(state)

    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["stage", "step", "task", "loss"]
    tasks = {(r["stage"], r["task"]) for r in rows}
    assert {("T", "ifrs"), ("T", "mlm"), ("S", "itm_hs"), ("S", "tits"), ("S", "total")} <= tasks
    assert len([r for r in rows if r["stage"] == "S" and r["task"] == "total"]) == 3
    assert all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in rows)

    for name in ("stage_T.png", "stage_S.png", "all_stages.png"):
        assert (out / "plots" / name).stat().st_size > 1000
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))

    for stage in ("T", "S"):
        result = json.loads((out / f"eval_{stage}.json").read_text())
        assert (result["images"], result["captions"], result["pairs"]) == (4, 8, 32)
        assert 0 <= result["rsum"] <= 600 and result["itm_trained"] == (stage == "S")
    assert set(json.loads((out / "eval_summary.json").read_text())) == {"T", "S"}

    ckpt = out / "checkpoints" / "stage01-S-final.pt"
    assert (
        eval_main(
            [
                "retrieval",
                "--checkpoint",
                str(ckpt),
                "--split",
                "test",
                "--out",
                str(tmp_path / "ev"),
                "--no-progress",
            ]
        )
        == 0
    )
    again = json.loads((tmp_path / "ev" / "retrieval_test.json").read_text())
    final = json.loads((out / "eval_S.json").read_text())
    assert again["rsum"] == pytest.approx(final["rsum"])  # same weights, same scores


def test_bad_config_exits_with_message(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("stages: []\n")
    assert train_main(["--config", str(path)]) == 2
    assert "at least one stage" in capsys.readouterr().err


class Interrupt(Exception):
    pass


def test_resume_latest_equals_uninterrupted(tiny_data, make_config, tmp_path: Path):
    def config(name: str) -> TrainConfig:
        cfg = make_config(tiny_data, tmp_path / name, steps=(5, 4))
        cfg.eval.captions = None
        return cfg

    train(config("straight"), progress=False)

    def crash(stage: str, step: int) -> None:
        if (stage, step) == ("T", 3):  # after the step-2 checkpoint, before the next one
            raise Interrupt

    with pytest.raises(Interrupt):
        train(config("resumed"), progress=False, on_step=crash)
    latest = json.loads((tmp_path / "resumed/checkpoints/latest.json").read_text())
    assert (latest["stage_index"], latest["step"]) == (0, 2)
    summary = train(config("resumed"), progress=False, resume="latest")
    assert summary["stages"][0]["steps_this_run"] == 3

    a = load_checkpoint(tmp_path / "straight/checkpoints/stage01-S-final.pt")
    b = load_checkpoint(tmp_path / "resumed/checkpoints/stage01-S-final.pt")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    straight = (tmp_path / "straight/metrics.csv").read_text()
    assert (tmp_path / "resumed/metrics.csv").read_text() == straight
