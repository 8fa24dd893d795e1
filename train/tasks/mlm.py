"""MLM: masked language modelling over the WordPiece vocab (decoder tied to word embeddings)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.batch import Batch
from train.model import EncoderOutput
from train.tasks.base import Task, TaskSetup, Transform, zero_loss


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
        logits = self.decoder(self.transform(out.lang[picked]))
        return {self.name: mlm_loss(logits, batch.mlm_labels[picked])}
