"""What every task shares: the ``Task`` interface, the set-up it is built from, head parts."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from train.batch import Batch
from train.config import ModelConfig
from train.model import EncoderOutput, init_weights

# (text rows bool [B,L] | None, region rows bool [B,N] | None); None = every position
Positions = tuple[torch.Tensor | None, torch.Tensor | None]


@dataclass
class TaskSetup:
    """Everything a task head may need at construction.

    ``label_pieces`` int64 [num_objects, P]: WordPiece ids of each detector class name, -1
    padded (TITP/TITS topic sets); ``special_ids``: vocab ids never counted as topic words.
    """

    model: ModelConfig
    backbone: nn.Module
    label_pieces: torch.Tensor
    special_ids: list[int]


class Task(nn.Module):
    """A pre-training task: a head on the encoder output and its loss.

    ``forward(out, batch)`` returns named loss components (scalars); the task's loss is their
    sum. A task with nothing to score in a batch (no masked token of a matched pair, say) returns
    ``{}``: it adds nothing to the step's loss and nothing to the logged averages. ``corruptions`` names the input corruptions the task needs (``"tokens"``, ``"regions"``,
    ``"shuffle"``, applied by :func:`train.tasks.corrupt.corrupt` before the forward pass);
    ``negatives`` says whether the data stream must replace images (``"hard"``/``"random"``).
    Reconstruction losses are computed on matched pairs only (conditional masking).

    ``positions(batch)`` names the final encoder states the task reads, so that the encoder
    can skip the last layer's work everywhere else (:mod:`train.model`); the default, every
    position, is always safe. A task must not read a state it did not name (it holds NaN).
    """

    corruptions: ClassVar[frozenset[str]] = frozenset()
    negatives: ClassVar[str | None] = None

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def forward(self, out: EncoderOutput, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def positions(self, batch: Batch) -> Positions:
        """(text rows bool [B,L], region rows bool [B,N]) of ``out.lang``/``out.vis`` that
        ``forward`` reads, None = all. ``out.pooled`` is always available."""
        return None, None


def pooled_only(batch: Batch) -> Positions:
    """Positions of a task that reads only the pooled output: no text or region state."""
    return torch.zeros_like(batch.attention_mask), torch.zeros_like(batch.visual_mask)


class Transform(nn.Sequential):
    """BERT's prediction-head transform: Linear(H,H) -> GELU -> LayerNorm. [*,H] -> [*,H]."""

    def __init__(self, hidden: int) -> None:
        super().__init__(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=1e-12))
        self.apply(init_weights)


def wide_head(x: torch.Tensor) -> tuple[torch.Tensor, contextlib.AbstractContextManager]:
    """(input, context) for a head whose weight spans the vocabulary ([V,H], 94 MB at V=30522).

    Under bf16 autocast on a CPU such a head runs in float32: autocast would cast the whole
    weight to bf16 at every step and its gradient back to float32 (two passes over 94 MB each,
    measured at 40-70 ms apiece on 2 cores), more than the float32 product costs for the few
    dozen to few hundred rows a head scores per batch. On GPUs casts are cheap and autocast
    stays. x [*,H] -> (x as float32 or as is, the context to run the head in).
    """
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return x.float(), torch.autocast("cpu", enabled=False)
    return x, contextlib.nullcontext()


def zero_loss(like: torch.Tensor) -> torch.Tensor:
    """A zero that keeps the graph (a batch with nothing to score)."""
    return like.sum() * 0.0


def regression(pred: torch.Tensor, target: torch.Tensor, kind: str = "smooth_l1") -> torch.Tensor:
    """Mean over M regions and D feature dims of SmoothL1 (beta 1) or squared error.

    pred, target float [M,D] (the scored regions only).
    """
    if pred.shape[0] == 0:
        return zero_loss(pred)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred.float(), target.float())
    if kind == "l2":
        return F.mse_loss(pred.float(), target.float())
    raise ValueError(f"regression loss {kind!r}: smooth_l1 or l2")
