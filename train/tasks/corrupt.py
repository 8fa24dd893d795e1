"""Input corruptions applied to a CPU batch before the forward pass, drawn from one generator.

Order: IFRS triplet shuffle, then region masking (MRFR/MOC share one mask, as in LXMERT; shuffled
regions are never masked), then token masking (MLM). Corruptions apply to every pair, matched or
not, so ITM cannot tell pairs apart by their masks; the reconstruction losses are taken on
matched pairs only. Every draw happens whether or not it is used, so the generator advances
the same way for every batch shape (deterministic resume).
"""

from __future__ import annotations

import torch

from train.batch import Batch
from train.config import StageConfig
from train.text import TextEncoder

# the five non-identity orders of a triplet
_PERMS = torch.tensor([[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prob: float,
    gen: torch.Generator,
    mask_id: int,
    random_low: int,
    vocab_size: int,
    special_ids: list[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: choose ``prob`` of the real, non-special tokens; of those 80% -> [MASK],
    10% -> a random word id in [random_low, vocab_size), 10% unchanged.

    input_ids int64 [B,L], attention_mask bool [B,L] -> (corrupted ids [B,L], labels [B,L] with
    the original id where chosen and -100 elsewhere).
    """
    shape = input_ids.shape
    candidates = attention_mask & ~torch.isin(input_ids, torch.tensor(special_ids))
    chosen = (torch.rand(shape, generator=gen) < prob) & candidates
    action = torch.rand(shape, generator=gen)
    random_ids = torch.randint(random_low, vocab_size, shape, generator=gen)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    ids = torch.where(chosen & (action < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    ids = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, ids)
    return ids, labels


def mask_regions(
    feats: torch.Tensor,
    visual_mask: torch.Tensor,
    prob: float,
    gen: torch.Generator,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """LXMERT region masking: choose ``prob`` of the real regions; of those 80% -> zero feature,
    10% -> the feature of a random real region of the batch, 10% unchanged.

    feats float [B,N,D], visual_mask bool [B,N], exclude bool [B,N] (never chosen)
    -> (corrupted feats [B,N,D], chosen bool [B,N]). Boxes are left as they are.
    """
    b, n, d = feats.shape
    allowed = visual_mask if exclude is None else visual_mask & ~exclude
    chosen = (torch.rand((b, n), generator=gen) < prob) & allowed
    action = torch.rand((b, n), generator=gen)
    real = visual_mask.reshape(-1).nonzero().squeeze(1)
    pick = torch.randint(0, max(1, real.numel()), (b, n), generator=gen)
    donors = feats.reshape(b * n, d)[real[pick]] if real.numel() else torch.zeros_like(feats)
    out = torch.where((chosen & (action < 0.8))[..., None], torch.zeros_like(feats), feats)
    out = torch.where((chosen & (action >= 0.8) & (action < 0.9))[..., None], donors, out)
    return out, chosen


def shuffle_triplets(
    feats: torch.Tensor,
    boxes: torch.Tensor,
    visual_mask: torch.Tensor,
    prob: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IFRS: regions (r0,r1,r2), (r3,r4,r5), ... each shuffled with probability ``prob`` into one
    of the five non-identity orders; a region moves with its box. Only triplets of three real
    regions take part; a trailing partial triplet never does.

    feats [B,N,D], boxes [B,N,4], visual_mask bool [B,N] -> (feats, boxes, shuffled bool [B,N]:
    True on every position of a shuffled triplet).
    """
    b, n, d = feats.shape
    t = n // 3
    whole = visual_mask[:, : 3 * t].reshape(b, t, 3).all(dim=-1)
    chosen = (torch.rand((b, t), generator=gen) < prob) & whole
    which = torch.randint(0, len(_PERMS), (b, t), generator=gen)
    order = torch.where(chosen[..., None], _PERMS[which], torch.arange(3).expand(b, t, 3))
    src = (torch.arange(t)[None, :, None] * 3 + order).reshape(b, 3 * t)
    src = torch.cat([src, torch.arange(3 * t, n).expand(b, n - 3 * t)], dim=1)
    feats = torch.gather(feats, 1, src[..., None].expand(b, n, d))
    boxes = torch.gather(boxes, 1, src[..., None].expand(b, n, 4))
    shuffled = torch.zeros((b, n), dtype=torch.bool)
    shuffled[:, : 3 * t] = chosen.repeat_interleave(3, dim=1)
    return feats, boxes, shuffled


def corrupt(
    batch: Batch,
    needed: set[str],
    stage: StageConfig,
    encoder: TextEncoder,
    gen: torch.Generator,
) -> Batch:
    """Apply the corruptions in ``needed`` (``shuffle``, ``regions``, ``tokens``) in place.

    Always sets ``input_ids_orig`` and ``feats_orig`` (the clean inputs, targets of MLM, MRFR,
    IFRS and the topic tasks).
    """
    batch.input_ids_orig = batch.input_ids.clone()
    batch.feats_orig = batch.feats.clone()
    shuffled = torch.zeros_like(batch.visual_mask)
    if "shuffle" in needed:
        batch.feats, batch.boxes, shuffled = shuffle_triplets(
            batch.feats, batch.boxes, batch.visual_mask, stage.shuffle_prob, gen
        )
        batch.shuffled = shuffled
    if "regions" in needed:
        batch.feats, batch.region_mask = mask_regions(
            batch.feats, batch.visual_mask, stage.region_mask_prob, gen, exclude=shuffled
        )
    if "tokens" in needed:
        batch.input_ids, batch.mlm_labels = mask_tokens(
            batch.input_ids,
            batch.attention_mask,
            stage.token_mask_prob,
            gen,
            mask_id=encoder.mask_id,
            random_low=encoder.first_word_id,
            vocab_size=encoder.vocab_size,
            special_ids=encoder.special_ids,
        )
    return batch
