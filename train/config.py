"""Trainer configuration: dataclasses loadable from YAML, overridable with ``key=value``.

One ``TrainConfig`` describes a whole multi-stage run: the model, the stages in the order they
run (each starts from the previous stage's weights), evaluation and run-level settings.
Overrides use dotted keys, list items by index or, for stages, by name; values parse as YAML::

    model.hidden=256  stages.0.steps=10  stages.S.tasks=[mlm,moc]  eval.max_images=100

The resolved config (after overrides) is written beside every run and inside each checkpoint;
``TrainConfig.from_dict(ckpt["config"])`` rebuilds it. This module stays free of torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key."""


@dataclass
class ModelConfig:
    """Backbone size. Defaults are LXMERT-S: 5 cross-modality layers at BERT-base width."""

    backbone: str = "lxmert_s"
    hidden: int = 768
    heads: int = 12
    cross_layers: int = 5
    intermediate: int = 3072
    vocab_size: int = 30522
    max_text_len: int = 20  # WordPieces including [CLS] and [SEP]
    visual_feat_dim: int = 2048
    num_boxes: int = 36  # regions per image after padding/truncation
    dropout: float = 0.1
    num_objects: int = 1600  # detector object classes (MOC)
    num_attributes: int = 400  # detector attribute classes (MOC)


@dataclass
class StageConfig:
    """One pre-training stage: a text table joined with the feature shards, tasks, schedule.

    A stage with ``parts`` mixes several datasets in one schedule (the MSP paper's "T+P+S"):
    step ``s`` draws a batch of part ``s % len(parts)`` and scores that part's tasks with that
    part's loss weights; each part has its own text, tasks, batch size and corruption settings,
    while ``steps``, ``lr``, ``warmup_fraction`` and ``weight_decay`` come from the stage.
    """

    name: str = "stage"
    text: str = ""  # Parquet file or folder: image_id, text [, split, source]
    split: str | None = "train"  # rows kept when the table has a split column; None keeps all
    tasks: list[str] = field(default_factory=lambda: ["mlm"])
    loss_weights: dict[str, float] = field(default_factory=dict)  # task -> weight (default 1)
    steps: int = 100
    batch_size: int = 32
    lr: float = 1e-4
    warmup_fraction: float = 0.05
    weight_decay: float = 0.01
    token_mask_prob: float = 0.15  # MLM
    region_mask_prob: float = 0.15  # MRFR / MOC
    shuffle_prob: float = 0.05  # IFRS: probability that a triplet of regions is shuffled
    negative_prob: float = 0.5  # ITM: probability that the image is replaced
    hard_negatives_top: int = 100  # ITM-HS: draw the negative from the top M neighbours
    parts: list[StageConfig] = field(default_factory=list)  # datasets mixed in this stage

    def units(self) -> list[StageConfig]:
        """The datasets this stage draws from: its parts, or the stage itself."""
        return list(self.parts) or [self]

    def all_tasks(self) -> list[str]:
        """Every task of the stage (of all its parts), in first-seen order."""
        return list(dict.fromkeys(t for unit in self.units() for t in unit.tasks))


@dataclass
class EvalConfig:
    """Zero-shot image-text retrieval with ITM scores over every (image, caption) pair."""

    captions: str | None = None  # Parquet: image_id, text [, split]
    split: str = "test"
    every_stage: bool = True
    batch_size: int = 256  # pairs per forward pass
    max_images: int | None = None  # first K images of the split (sorted keys); None = all
    hold_out: bool = True  # images of this split never enter training (texts or negatives)


@dataclass
class TrainConfig:
    """A multi-stage pre-training run."""

    features: str = ""  # folder with features-000000.tar ... (corpora.shards)
    stages: list[StageConfig] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    hard_negatives: str | None = None  # Parquet: image_id, neighbours, similarities
    objects_vocab: str | None = None  # detector object names, one class per line (TITP/TITS)
    # Parquet image_id, labels (list of names per image, e.g. the token-labels job): the topic
    # tasks' label set L; None takes L from the detector classes (obj_ids + objects_vocab)
    region_labels: str | None = None
    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA only) | auto (train.runtime)
    num_workers: int = 2
    threads: int = 0  # torch intra-op threads of the main process; 0 = torch's default
    shuffle_buffer: int = 1000  # examples per DataLoader worker
    log_every: int = 10
    checkpoint_every: int = 500  # steps; every stage's last step is always saved
    keep_checkpoints: int = 2  # most recent mid-stage checkpoints kept (stage ends are kept)
    grad_clip: float = 1.0

    # ---------------------------------------------------------------- building
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        cfg = _build(cls, data, "")
        cfg.validate()
        return cfg

    @classmethod
    def load(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
        """Read a YAML file, apply ``key=value`` overrides, validate."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        for item in overrides or []:
            apply_override(data, item)
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def validate(self) -> TrainConfig:
        if not self.stages:
            raise ConfigError("stages: at least one stage is needed")
        names = [s.name for s in self.stages]
        for i, stage in enumerate(self.stages):
            where = f"stages.{i}"
            if not _NAME_RE.match(stage.name):
                raise ConfigError(f"{where}.name={stage.name!r}: use letters, digits, _ or -")
            if names.count(stage.name) > 1:
                raise ConfigError(f"{where}.name={stage.name!r} is used by more than one stage")
            if stage.steps <= 0:
                raise ConfigError(f"{where}.steps must be positive")
            if not 0.0 <= stage.warmup_fraction <= 1.0:
                raise ConfigError(f"{where}.warmup_fraction must be in [0, 1]")
            part_names = [p.name for p in stage.parts]
            for j, unit in enumerate(stage.units()):
                at = f"{where}.parts.{j}" if stage.parts else where
                if unit.parts and stage.parts:
                    raise ConfigError(f"{at}.parts: parts cannot have parts")
                if stage.parts and part_names.count(unit.name) > 1:
                    raise ConfigError(f"{at}.name={unit.name!r} is used by more than one part")
                if not unit.tasks:
                    raise ConfigError(f"{at}.tasks is empty")
                if unit.batch_size <= 0:
                    raise ConfigError(f"{at}.batch_size must be positive")
                unknown = set(unit.loss_weights) - set(unit.tasks)
                if unknown:
                    raise ConfigError(
                        f"{at}.loss_weights names tasks not in tasks: {sorted(unknown)}"
                    )
        m = self.model
        if m.hidden % m.heads:
            raise ConfigError(f"model.hidden={m.hidden} is not divisible by model.heads={m.heads}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r}: one of {PRECISIONS}")
        if self.threads < 0 or self.num_workers < 0:
            raise ConfigError("threads and num_workers must be >= 0")
        if self.log_every <= 0 or self.checkpoint_every <= 0:
            raise ConfigError("log_every and checkpoint_every must be positive")
        return self


# -------------------------------------------------------------------- overrides
def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=value`` to a nested dict/list (value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value")
    key, _, raw = item.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {item!r}: empty key component")
    value = yaml.safe_load(raw) if raw.strip() else None
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            index = _list_index(node, part)
            if index is None:
                raise ConfigError(
                    f"override {item!r}: {where} is neither an index of a {len(node)}-list "
                    f"nor the name of one of its items"
                )
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"override {item!r}: {where} is not a mapping or list")


def _list_index(items: list[Any], part: str) -> int | None:
    if part.isdigit():
        return int(part) if int(part) < len(items) else None
    named = [i for i, x in enumerate(items) if isinstance(x, dict) and x.get("name") == part]
    return named[0] if len(named) == 1 else None


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """``TrainConfig.load``: a YAML file plus ``key=value`` overrides, validated."""
    return TrainConfig.load(path, overrides)


# -------------------------------------------------------------- dict -> dataclass
def _build(cls: type, data: Any, where: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown key {_join(where, key)!r}{hint}")
    kwargs = {k: _coerce(v, hints[k], _join(where, k)) for k, v in data.items()}
    return cls(**kwargs)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None or isinstance(value, (list, dict)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value
