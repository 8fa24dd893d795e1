"""Zero-shot image-text retrieval with ITM scores over every (image, caption) pair.

As for UNITER and LXMERT-S, the fusion encoder scores all I x C pairs of the split; text
retrieval (TR) ranks captions per image, image retrieval (IR) ranks images per caption.
R@K = share of queries whose ground truth is in the top K (TR: any of the image's captions);
RSUM = the sum of the six recalls in percent.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from corpora.shards import ShardIndex
from train.batch import Batch, decode_image, trim
from train.config import EvalConfig, ModelConfig
from train.data import FEATURE_PREFIX
from train.runtime import autocast
from train.tables import read_text_table
from train.tasks import PretrainModel
from train.text import TextEncoder

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    """I images and C captions; ``caption_image`` int64 [C] indexes the caption's image."""

    image_keys: list[str]
    images: dict[str, torch.Tensor]  # feats [I,N,D], boxes [I,N,4], visual_mask [I,N], ...
    texts: dict[str, torch.Tensor]  # input_ids, position_ids, attention_mask [C,L]
    caption_image: torch.Tensor
    missing_images: int


def load_eval_set(
    captions: str | os.PathLike,
    split: str,
    features_dir: str | os.PathLike,
    encoder: TextEncoder,
    model_cfg: ModelConfig,
    max_images: int | None = None,
) -> EvalSet:
    """Captions of ``split`` whose image has features (others counted, warned, skipped)."""
    table, _ = read_text_table(captions, split)
    index = ShardIndex(features_dir, FEATURE_PREFIX)
    keys = sorted(table)
    missing = [k for k in keys if k not in index]
    if missing:
        log.warning(
            "eval: %d images of split %r have no features and are skipped (e.g. %s)",
            len(missing),
            split,
            ", ".join(missing[:5]),
        )
    keys = [k for k in keys if k in index][:max_images]
    if not keys:
        raise ValueError(f"eval: no image of split {split!r} in {captions} has features")
    decoded = [
        decode_image(index.get(k), model_cfg.num_boxes, model_cfg.visual_feat_dim) for k in keys
    ]
    images = {
        name: torch.stack([torch.from_numpy(d[name]) for d in decoded]) for name in decoded[0]
    }
    pairs = [(i, text) for i, k in enumerate(keys) for text in table[k]]
    return EvalSet(
        image_keys=keys,
        images=images,
        texts=encoder.batch([text for _, text in pairs]),
        caption_image=torch.tensor([i for i, _ in pairs], dtype=torch.long),
        missing_images=len(missing),
    )


@torch.no_grad()
def score_matrix(
    model: PretrainModel,
    data: EvalSet,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    progress: bool = True,
) -> torch.Tensor:
    """ITM logits float32 [I,C] for every image x caption pair."""
    n_img, n_cap = len(data.image_keys), data.caption_image.numel()
    scores = torch.empty(n_img * n_cap)
    was_training = model.training
    model.eval()
    chunks = range(0, n_img * n_cap, batch_size)
    for start in tqdm(chunks, desc="retrieval pairs", disable=not progress, leave=False):
        pair = torch.arange(start, min(start + batch_size, n_img * n_cap))
        img, cap = pair // n_cap, pair % n_cap
        fields = {k: v[cap] for k, v in data.texts.items()}
        fields.update({k: v[img] for k, v in data.images.items()})
        batch = Batch(
            **trim(fields),  # this chunk's longest text and image, not the set's padding
            matched=torch.ones(len(pair), dtype=torch.bool),
            text_keys=[],
            image_keys=[],
        ).to(device)
        with autocast(device, precision):
            scores[pair] = model.itm_scores(batch).float().cpu()
    model.train(was_training)
    return scores.view(n_img, n_cap)


def recall_metrics(scores: torch.Tensor, caption_image: torch.Tensor) -> dict[str, float]:
    """R@1/5/10 for TR and IR and RSUM (percent) from scores [I,C] and caption_image [C]."""
    n_img, n_cap = scores.shape
    gt = scores[caption_image, torch.arange(n_cap)]  # [C] score of each caption's own pair
    # IR: rank of the caption's image among all images (0 = best)
    ir_rank = (scores > gt[None, :]).sum(dim=0)
    # TR: rank of each caption within its image's row; an image's rank is its best caption's
    cap_rank = (scores[caption_image] > gt[:, None]).sum(dim=1)
    tr_rank = torch.full((n_img,), n_cap, dtype=torch.long)
    tr_rank.scatter_reduce_(0, caption_image, cap_rank, reduce="amin")
    out: dict[str, float] = {}
    for k in (1, 5, 10):
        out[f"tr_r{k}"] = 100.0 * (tr_rank < k).float().mean().item()
        out[f"ir_r{k}"] = 100.0 * (ir_rank < k).float().mean().item()
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("tr", "ir") for k in (1, 5, 10))
    return out


def evaluate_retrieval(
    model: PretrainModel,
    encoder: TextEncoder,
    features_dir: str | os.PathLike,
    eval_cfg: EvalConfig,
    model_cfg: ModelConfig,
    device: torch.device,
    precision: str = "fp32",
    progress: bool = True,
) -> dict[str, Any]:
    """Run the retrieval evaluation; returns the metrics with counts and timing."""
    if eval_cfg.captions is None:
        raise ValueError("eval.captions is not set")
    head = model.itm_head()
    if head is None:
        raise ValueError("retrieval needs an ITM head: add itm or itm_hs to a stage")
    start = time.perf_counter()
    data = load_eval_set(
        eval_cfg.captions, eval_cfg.split, features_dir, encoder, model_cfg, eval_cfg.max_images
    )
    scores = score_matrix(model, data, eval_cfg.batch_size, device, precision, progress)
    result: dict[str, Any] = recall_metrics(scores, data.caption_image)
    result.update(
        split=eval_cfg.split,
        images=len(data.image_keys),
        captions=int(data.caption_image.numel()),
        pairs=int(scores.numel()),
        images_missing_features=data.missing_images,
        itm_head=head.name,
        seconds=round(time.perf_counter() - start, 3),
    )
    log.info(
        "retrieval on %s (%d images x %d captions): TR R@1/5/10 %.1f/%.1f/%.1f  "
        "IR R@1/5/10 %.1f/%.1f/%.1f  RSUM %.1f",
        eval_cfg.split,
        result["images"],
        result["captions"],
        result["tr_r1"],
        result["tr_r5"],
        result["tr_r10"],
        result["ir_r1"],
        result["ir_r5"],
        result["ir_r10"],
        result["rsum"],
    )
    return result
