"""Config: YAML loading, dotted key=value overrides, validation, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from train.config import ConfigError, TrainConfig, apply_override

CONFIGS = Path(__file__).resolve().parents[2] / "train" / "configs"

YAML = """
features: feats
out: runs/x
model: {hidden: 64, heads: 4}
stages:
  - {name: T, text: t.parquet, tasks: [mlm, moc], steps: 5, lr: 1.0e-4}
  - {name: S, text: s.parquet, tasks: [mlm, itm_hs], loss_weights: {itm_hs: 2}}
eval: {captions: s.parquet, split: test}
"""


def write(tmp_path: Path, text: str = YAML) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides(tmp_path: Path) -> None:
    cfg = TrainConfig.load(
        write(tmp_path),
        [
            "model.hidden=128",
            "stages.0.steps=10",
            "stages.S.tasks=[mlm, tits, itm_hs]",  # a stage by name
            "stages.1.lr=3e-4",  # YAML 1.1 reads this as a string; floats accept it
            "eval.max_images=7",
            "hard_negatives=null",
            "seed=3",
        ],
    )
    assert cfg.model.hidden == 128 and cfg.model.heads == 4 and cfg.model.cross_layers == 5
    assert cfg.stages[0].steps == 10 and cfg.stages[0].lr == 1e-4
    assert cfg.stages[1].tasks == ["mlm", "tits", "itm_hs"] and cfg.stages[1].lr == 3e-4
    assert cfg.stages[1].loss_weights == {"itm_hs": 2.0}
    assert cfg.eval.max_images == 7 and cfg.hard_negatives is None and cfg.seed == 3
    # the resolved config round-trips through its dict and YAML forms
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.hiden=3", "did you mean 'hidden'"),
        ("stages.5.steps=3", "neither an index of a 2-list"),
        ("stages.X.steps=3", "nor the name"),
        ("model.hidden=abc", "expected an integer"),
        ("model.heads=5", "not divisible"),
        ("stages.1.name=T", "more than one stage"),
        ("stages.0.loss_weights={itm: 1}", "not in tasks"),
        ("precision=fp8", "precision"),
        ("stages.0.steps", "expected key=value"),
    ],
)
def test_bad_overrides_are_named(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.load(write(tmp_path), [override])


def test_apply_override_creates_nested_keys() -> None:
    data: dict = {}
    apply_override(data, "eval.split=val")
    assert data == {"eval": {"split": "val"}}


def test_shipped_configs() -> None:
    full = TrainConfig.load(CONFIGS / "msp.yaml")
    assert [s.name for s in full.stages] == ["T", "P", "S"]
    assert [s.tasks for s in full.stages] == [
        ["mlm", "mrfr", "moc", "ifrs"],
        ["mlm", "mrfr", "moc", "titp"],
        ["mlm", "mrfr", "moc", "tits", "itm_hs"],
    ]
    m = full.model
    assert (m.hidden, m.heads, m.cross_layers, m.intermediate) == (768, 12, 5, 3072)
    assert (m.max_text_len, m.visual_feat_dim, m.num_boxes) == (20, 2048, 36)
    demo = TrainConfig.load(CONFIGS / "demo.yaml")
    assert [s.tasks for s in demo.stages] == [s.tasks for s in full.stages]
    assert demo.model.hidden < m.hidden and demo.model.cross_layers < m.cross_layers
