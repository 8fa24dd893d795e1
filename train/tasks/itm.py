"""ITM / ITM-HS: is the image the one the text belongs to? A score on the pooled output.

ITM-HS (MSP) replaces the image with probability 0.5 by one of its top-M most similar images
from the hard-negatives file (a random image where the file has none); plain ITM always draws a
random image. The data stream does the replacing (``negatives``); the head scores the pair with
one logit, the matching score s(W,R) = sigmoid(logit) of the MSP paper's Eq. 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.batch import Batch
from train.model import EncoderOutput, init_weights
from train.tasks.base import Positions, Task, TaskSetup, pooled_only


def itm_loss(logits: torch.Tensor, matched: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits float [B] against matched bool [B], averaged over B."""
    return F.binary_cross_entropy_with_logits(logits.float(), matched.float())


class Itm(Task):
    """Linear(H,1) on the pooled [CLS] output."""

    negatives = "random"

    def __init__(self, name: str, setup: TaskSetup) -> None:
        super().__init__(name)
        self.head = nn.Linear(setup.model.hidden, 1)
        self.head.apply(init_weights)

    def score(self, out: EncoderOutput) -> torch.Tensor:
        """Matching logits float [B] (higher = more likely matched)."""
        return self.head(out.pooled).squeeze(-1)

    def forward(self, out: EncoderOutput, batch: Batch) -> dict[str, torch.Tensor]:
        return {self.name: itm_loss(self.score(out), batch.matched)}

    def positions(self, batch: Batch) -> Positions:
        return pooled_only(batch)


class ItmHs(Itm):
    """ITM with hard negatives (MSP stage S)."""

    negatives = "hard"
