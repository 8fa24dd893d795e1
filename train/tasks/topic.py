"""TITP / TITS (MSP): predict the topic of an image-text pair, the words of the text that are
also labels of the image's regions (W ∩ L), as a multi-label target over the vocab.

Head (LXMERT-S public code): Linear(H,V) -> GELU -> LayerNorm(V) -> BCE with logits, averaged
over the V classes (the paper's 1/v) and the batch. W and L are compared as WordPiece ids: the
text's own tokens (before masking) against the WordPieces of the label names of its image, taken
from the batch's ``label_pieces`` when the stream has per-image label names, else from the
detector classes of its regions. The target is taken on the pair as shown, matched or not (the
shown image's labels).

Initialisation: the LayerNorm's bias starts at the log-odds of the expected share of positive
classes (about 1e-4 of the vocab), as RetinaNet initialises its rare-class logits. At a zero bias
every one of the V logits starts near 0 and the head spends its first thousands of steps pushing
30k biases down (the loss sits near ln 2 ~ 0.69 meanwhile) before any topic is learned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from train.batch import Batch
from train.model import EncoderOutput, init_weights
from train.tasks.base import Positions, Task, TaskSetup, pooled_only, wide_head

PRIOR_POSITIVES = 3.0  # expected topic words per pair, for the bias initialisation


def detector_pieces(
    obj_ids: torch.Tensor, visual_mask: torch.Tensor, label_pieces: torch.Tensor
) -> torch.Tensor:
    """WordPieces of the regions' class names: int64 [B, N*P], -1 on padding.

    obj_ids int64 [B,N], visual_mask bool [B,N], label_pieces int64 [C,P] (-1 padded).
    """
    pieces = label_pieces[obj_ids]  # [B,N,P]
    return pieces.masked_fill(~visual_mask[..., None], -1).reshape(obj_ids.shape[0], -1)


def topic_targets(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    pieces: torch.Tensor,
    vocab_size: int,
    special_ids: list[int],
) -> torch.Tensor:
    """Multi-hot W ∩ L: float [B,V].

    input_ids int64 [B,L] (clean), attention_mask bool [B,L], pieces int64 [B,M]: the
    WordPiece ids of the image's labels (-1 = none).
    """
    b = input_ids.shape[0]
    words = torch.zeros((b, vocab_size + 1), dtype=torch.bool, device=input_ids.device)
    words.scatter_(1, input_ids.masked_fill(~attention_mask, vocab_size), True)
    labels = torch.zeros_like(words)
    labels.scatter_(1, pieces.masked_fill(pieces < 0, vocab_size), True)
    topic = (words & labels)[:, :vocab_size]
    topic[:, special_ids] = False
    return topic.float()


def topic_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE with logits, mean over classes and pairs: logits, targets float [B,V]."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


class Topic(Task):
    """TITP (stage P, phrases) and TITS (stage S, sentences): same head, separate weights."""

    def __init__(self, name: str, setup: TaskSetup) -> None:
        super().__init__(name)
        vocab = setup.model.vocab_size
        self.head = nn.Sequential(
            nn.Linear(setup.model.hidden, vocab), nn.GELU(), nn.LayerNorm(vocab, eps=1e-12)
        )
        self.head.apply(init_weights)
        prior = PRIOR_POSITIVES / vocab
        nn.init.constant_(self.head[2].bias, math.log(prior / (1.0 - prior)))
        self.vocab_size, self.special_ids = vocab, list(setup.special_ids)
        self.register_buffer("label_pieces", setup.label_pieces.clone(), persistent=False)

    def targets(self, batch: Batch) -> torch.Tensor:
        """Multi-hot W ∩ L for the batch: float [B,V]."""
        clean = batch.input_ids if batch.input_ids_orig is None else batch.input_ids_orig
        pieces = batch.label_pieces
        if pieces is None:
            pieces = detector_pieces(batch.obj_ids, batch.visual_mask, self.label_pieces)
        return topic_targets(clean, batch.attention_mask, pieces, self.vocab_size, self.special_ids)

    def forward(self, out: EncoderOutput, batch: Batch) -> dict[str, torch.Tensor]:
        h, precision = wide_head(out.pooled)
        with precision:
            logits = self.head(h)
        return {self.name: topic_loss(logits, self.targets(batch))}

    def positions(self, batch: Batch) -> Positions:
        return pooled_only(batch)
