"""MLM: masked language modelling over the WordPiece vocab (decoder tied to word embeddings)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.batch import Batch
from train.model import EncoderOutput
from train.tasks.base import Positions, Task, TaskSetup, Transform, wide_head, zero_loss


def mlm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the scored tokens: logits float [M,V], targets int64 [M]."""
    if targets.numel() == 0:
        return zero_loss(logits)
    return F.cross_entropy(logits.float(), targets)


def scored_tokens(labels: torch.Tensor, matched: torch.Tensor) -> torch.Tensor:
    """bool [B,L]: masked tokens (labels int64 [B,L], -100 = not masked) of matched pairs."""
    return (labels != -100) & matched[:, None]


class Mlm(Task):
    """BERT head: Transform -> Linear(H,V) whose weight is the backbone's word embedding."""

    corruptions = frozenset({"tokens"})

    def __init__(self, name: str, setup: TaskSetup) -> None:
        super().__init__(name)
        hidden = setup.model.hidden
        self.transform = Transform(hidden)
        self.decoder = nn.Linear(hidden, setup.model.vocab_size)
        self.decoder.weight = setup.backbone.word_embeddings.weight  # tied
        nn.init.zeros_(self.decoder.bias)

    def forward(self, out: EncoderOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if batch.mlm_labels is None:
            raise ValueError("MLM needs token masking: run train.tasks.corrupt first")
        # decode only the scored positions: [M,H] -> [M,V], not [B,L,V]
        picked = scored_tokens(batch.mlm_labels, batch.matched)
        if not picked.any():
            return {}
        h, precision = wide_head(self.transform(out.lang[picked]))
        with precision:
            logits = self.decode(h)
        return {self.name: mlm_loss(logits, batch.mlm_labels[picked])}

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """h [M,H] -> logits [M,V] = h W^T + b, computed as (W h^T)^T.

        Same product; but this way the gradient of the tied weight comes out as a fresh
        contiguous [V,H] tensor, into which autograd adds the word embedding's gradient in
        place. Through ``nn.Linear`` it comes out as a transposed view and the sum is a new
        94 MB tensor at every step (measured 25 ms of a 150 ms head on 2 cores, more when the
        allocator returns the memory to the system in between).
        """
        return torch.mm(self.decoder.weight, h.t()).t() + self.decoder.bias

    def positions(self, batch: Batch) -> Positions:
        if batch.mlm_labels is None:
            return None, None  # forward raises the explanatory error
        return scored_tokens(batch.mlm_labels, batch.matched), torch.zeros_like(batch.visual_mask)
