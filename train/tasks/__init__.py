"""Pre-training tasks, pluggable through ``TASKS``, and the model that joins them to a backbone.

Registry contract: ``TASKS[name](name: str, setup: TaskSetup) -> Task``; a ``Task`` returns
named scalar losses from ``forward(out: EncoderOutput, batch: Batch)`` and declares the input
corruptions and ITM negatives it needs (see :mod:`train.tasks.base`). One head per task name:
heads persist across stages (a stage trains the heads of its tasks), so the model of a run holds
the union of all its stages' tasks. The encoder computes only the final states that the step's
tasks read (the union of their ``positions``), which changes no loss and no gradient.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import torch
from torch import nn

from train.batch import Batch
from train.config import ModelConfig
from train.model import EncoderOutput, build_backbone
from train.tasks.base import Positions, Task, TaskSetup, pooled_only
from train.tasks.itm import Itm, ItmHs
from train.tasks.mlm import Mlm
from train.tasks.regions import Ifrs, Moc, Mrfr
from train.tasks.topic import Topic
from train.text import TextEncoder

TASKS: dict[str, Callable[[str, TaskSetup], Task]] = {
    "mlm": Mlm,
    "mrfr": Mrfr,
    "moc": Moc,
    "ifrs": Ifrs,
    "titp": Topic,
    "tits": Topic,
    "itm": Itm,
    "itm_hs": ItmHs,
}

__all__ = [
    "TASKS",
    "PretrainModel",
    "Task",
    "TaskSetup",
    "build_model",
    "check_task_names",
    "union_positions",
]


def check_task_names(names: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        raise KeyError(f"unknown task(s) {unknown}: known are {sorted(TASKS)}")


class PretrainModel(nn.Module):
    """A backbone plus task heads (``tasks``, a ModuleDict keyed by task name)."""

    def __init__(self, backbone: nn.Module, tasks: dict[str, Task]) -> None:
        super().__init__()
        self.backbone = backbone
        self.tasks = nn.ModuleDict(tasks)

    def encode(self, batch: Batch, positions: Positions = (None, None)) -> EncoderOutput:
        """The encoder's output; ``positions`` (text rows, region rows; None = all) are the
        final states that will be read, the others may hold NaN."""
        lang_rows, vis_rows = positions
        return self.backbone(
            batch.input_ids,
            batch.position_ids,
            batch.attention_mask,
            batch.feats,
            batch.boxes,
            batch.visual_mask,
            lang_rows=lang_rows,
            vis_rows=vis_rows,
        )

    def forward(self, batch: Batch, names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
        """One encoder pass, then each named task: task -> {component: scalar loss}."""
        out = self.encode(
            batch, union_positions(self.tasks[name].positions(batch) for name in names)
        )
        return {name: self.tasks[name](out, batch) for name in names}

    def itm_head(self) -> Itm | None:
        """The ITM head used for retrieval (ITM-HS preferred), or None."""
        heads = [t for t in self.tasks.values() if isinstance(t, Itm)]
        heads.sort(key=lambda t: not isinstance(t, ItmHs))
        return heads[0] if heads else None

    @torch.no_grad()
    def itm_scores(self, batch: Batch) -> torch.Tensor:
        """Matching logits float [B] for clean pairs."""
        head = self.itm_head()
        if head is None:
            raise ValueError("the model has no ITM head (add itm or itm_hs to a stage)")
        return head.score(self.encode(batch, pooled_only(batch)))


def union_positions(each: Iterable[Positions]) -> Positions:
    """The states that any of the tasks reads: element-wise OR, where None (all) wins."""
    pairs = list(each)
    if not pairs:
        return None, None
    texts, regions = zip(*pairs, strict=True)

    def union(masks: tuple[torch.Tensor | None, ...]) -> torch.Tensor | None:
        return None if any(m is None for m in masks) else functools.reduce(torch.logical_or, masks)

    return union(texts), union(regions)


def needed_corruptions(tasks: Iterable[Task]) -> set[str]:
    return set().union(*(t.corruptions for t in tasks))


def negatives_mode(tasks: Iterable[Task]) -> str | None:
    """The ITM negatives the stream must draw: "hard", "random" or None (no ITM task)."""
    modes = {t.negatives for t in tasks} - {None}
    return "hard" if "hard" in modes else ("random" if modes else None)


def build_model(
    cfg: ModelConfig, task_names: Iterable[str], encoder: TextEncoder, label_names: list[str]
) -> PretrainModel:
    """Backbone from ``cfg.backbone`` and one head per distinct task name (in first-seen order)."""
    names = list(dict.fromkeys(task_names))
    check_task_names(names)
    if encoder.vocab_size != cfg.vocab_size:
        raise ValueError(
            f"tokeniser has {encoder.vocab_size} ids but model.vocab_size={cfg.vocab_size}"
        )
    backbone = build_backbone(cfg)
    setup = TaskSetup(
        model=cfg,
        backbone=backbone,
        label_pieces=encoder.label_pieces(label_names),
        special_ids=encoder.special_ids,
    )
    return PretrainModel(backbone, {name: TASKS[name](name, setup) for name in names})
