"""Region tasks: MRFR (masked region feature regression), MOC (masked object classification)
and IFRS (image features random shuffle, MSP stage T).

All three read the visual outputs [B,N,H] and score regions of matched pairs only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.batch import Batch
from train.model import EncoderOutput, init_weights
from train.tasks.base import Positions, Task, TaskSetup, Transform, regression, zero_loss


def weighted_ce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over M regions of weight * cross-entropy (LXMERT weights by detector confidence).

    logits float [M,C]; targets int64 [M]; weights float [M].
    """
    if targets.numel() == 0:
        return zero_loss(logits)
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    return (ce * weights.float()).mean()


def region_positions(batch: Batch, regions: torch.Tensor | None) -> Positions:
    """No text state; the given regions (bool [B,N]) of matched pairs (None: unknown, all)."""
    if regions is None:
        return None, None
    return torch.zeros_like(batch.attention_mask), regions & batch.matched[:, None]


def _regression_head(hidden: int, out_dim: int) -> nn.Sequential:
    head = nn.Sequential(Transform(hidden), nn.Linear(hidden, out_dim))
    head.apply(init_weights)
    return head


class Mrfr(Task):
    """Regress the clean detector feature of each masked region: Transform -> Linear(H,D).

    SmoothL1 as LXMERT (``kind="l2"`` for UNITER's squared error), mean over masked regions and
    feature dims.
    """

    corruptions = frozenset({"regions"})

    def __init__(self, name: str, setup: TaskSetup, kind: str = "smooth_l1") -> None:
        super().__init__(name)
        self.kind = kind
        self.head = _regression_head(setup.model.hidden, setup.model.visual_feat_dim)

    def forward(self, out: EncoderOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if batch.region_mask is None or batch.feats_orig is None:
            raise ValueError("MRFR needs region masking: run train.tasks.corrupt first")
        scored = batch.region_mask & batch.matched[:, None]
        if not scored.any():
            return {}
        pred = self.head(out.vis[scored])  # only the scored regions: [M,H] -> [M,D]
        return {self.name: regression(pred, batch.feats_orig[scored], self.kind)}

    def positions(self, batch: Batch) -> Positions:
        return region_positions(batch, batch.region_mask)


class Moc(Task):
    """Classify each masked region's detector object (and attribute) label, weighted by the
    detector's confidence: shared Transform -> Linear(H,objects), Linear(H,attributes)."""

    corruptions = frozenset({"regions"})

    def __init__(self, name: str, setup: TaskSetup, attributes: bool = True) -> None:
        super().__init__(name)
        hidden = setup.model.hidden
        self.num_objects, self.num_attributes = setup.model.num_objects, setup.model.num_attributes
        self.transform = Transform(hidden)
        self.obj = nn.Linear(hidden, self.num_objects)
        self.attr = nn.Linear(hidden, self.num_attributes) if attributes else None
        self.apply(init_weights)

    def forward(self, out: EncoderOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if batch.region_mask is None:
            raise ValueError("MOC needs region masking: run train.tasks.corrupt first")
        scored = batch.region_mask & batch.matched[:, None]
        if not scored.any():
            return {}
        h = self.transform(out.vis[scored])  # [M,H]
        obj_ids = batch.obj_ids[scored]
        if obj_ids.numel() and int(obj_ids.max()) >= self.num_objects:
            raise ValueError(f"object id {int(obj_ids.max())} >= model.num_objects")
        losses = {f"{self.name}.obj": weighted_ce(self.obj(h), obj_ids, batch.obj_conf[scored])}
        if self.attr is not None:
            attr_ids = batch.attr_ids[scored]
            if attr_ids.numel() and int(attr_ids.max()) >= self.num_attributes:
                raise ValueError(f"attribute id {int(attr_ids.max())} >= model.num_attributes")
            losses[f"{self.name}.attr"] = weighted_ce(
                self.attr(h), attr_ids, batch.attr_conf[scored]
            )
        return losses

    def positions(self, batch: Batch) -> Positions:
        return region_positions(batch, batch.region_mask)


class Ifrs(Task):
    """MSP's IFRS: regions of shuffled triplets regress the clean feature of their position
    (what belongs there in the original order): Transform -> Linear(H,D), squared error.

    The paper's Eq. 1 sums squared L2 norms over shuffled positions; here the mean over shuffled
    positions and feature dims is used (the same up to the constant D, kept out of the scale of
    the other losses).
    """

    corruptions = frozenset({"shuffle"})

    def __init__(self, name: str, setup: TaskSetup) -> None:
        super().__init__(name)
        self.head = _regression_head(setup.model.hidden, setup.model.visual_feat_dim)

    def forward(self, out: EncoderOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if batch.shuffled is None or batch.feats_orig is None:
            raise ValueError("IFRS needs the triplet shuffle: run train.tasks.corrupt first")
        scored = batch.shuffled & batch.matched[:, None]
        if not scored.any():
            return {}
        pred = self.head(out.vis[scored])
        return {self.name: regression(pred, batch.feats_orig[scored], "l2")}

    def positions(self, batch: Batch) -> Positions:
        return region_positions(batch, batch.shuffled)
