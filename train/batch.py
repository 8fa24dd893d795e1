"""The batch the trainer and the evaluation feed the model: decoding and collation.

A feature sample is decoded to arrays padded/truncated to ``num_boxes`` regions; a batch is
then cut to its own longest image and text (``trim``), so images with a few annotated boxes (the
given-boxes mode) or short phrases do not pay for 36 regions and 20 tokens of padding. Attention
masks make the result the same as with full padding; only the cost changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from corpora.schema import FeatureSample
from train.text import TextEncoder


@dataclass
class Batch:
    """A training or evaluation batch. B pairs, L text length, N regions, D feature size.

    Inputs: ``input_ids``/``position_ids`` int64 [B,L], ``attention_mask`` bool [B,L];
    ``feats`` float32 [B,N,D] (detector features), ``boxes`` float32 [B,N,4] (x1,y1,x2,y2 divided
    by image width/height, in [0,1]), ``visual_mask`` bool [B,N] (False on padding);
    ``obj_ids``/``attr_ids`` int64 [B,N], ``obj_conf``/``attr_conf`` float32 [B,N];
    ``matched`` bool [B] (False where ITM replaced the image). ``text_keys``/``image_keys``: the
    image the text belongs to and the image shown. ``label_pieces`` int64 [B,P] (-1 padded), when
    the stream has per-image label names: the WordPiece ids of the shown image's labels (the
    topic tasks' set L). The corruption step (``train.tasks.corrupt``) fills the rest:
    ``input_ids_orig`` [B,L]; ``mlm_labels`` int64 [B,L] (-100 = ignore); ``feats_orig``
    [B,N,D]; ``region_mask`` bool [B,N]; ``shuffled`` bool [B,N].
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    feats: torch.Tensor
    boxes: torch.Tensor
    visual_mask: torch.Tensor
    obj_ids: torch.Tensor
    obj_conf: torch.Tensor
    attr_ids: torch.Tensor
    attr_conf: torch.Tensor
    matched: torch.Tensor
    text_keys: list[str]
    image_keys: list[str]
    label_pieces: torch.Tensor | None = None
    input_ids_orig: torch.Tensor | None = None
    mlm_labels: torch.Tensor | None = None
    feats_orig: torch.Tensor | None = None
    region_mask: torch.Tensor | None = None
    shuffled: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Batch(**{k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in values.items()})

    def to(self, device: torch.device | str) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=True))

    def pin_memory(self) -> Batch:
        """Called by the DataLoader's pin-memory thread (CUDA runs)."""
        return self._map(lambda t: t.pin_memory())


TEXT_FIELDS = ("input_ids", "position_ids", "attention_mask")
REGION_FIELDS = ("feats", "boxes", "visual_mask", "obj_ids", "obj_conf", "attr_ids", "attr_conf")


def trim(arrays: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut text fields to the longest text and region fields to the image with most regions.

    ``arrays`` holds any of :data:`TEXT_FIELDS` [B,L] and :data:`REGION_FIELDS` [B,N,...]; at
    least two tokens and one region are kept.
    """
    out = dict(arrays)
    if "attention_mask" in out:
        length = max(2, int(out["attention_mask"].sum(dim=1).max()))
        for name in TEXT_FIELDS:
            out[name] = out[name][:, :length]
    if "visual_mask" in out:
        count = max(1, int(out["visual_mask"].sum(dim=1).max()))
        for name in REGION_FIELDS:
            out[name] = out[name][:, :count]
    return out


def decode_image(raw: dict[str, Any], num_boxes: int, feat_dim: int) -> dict[str, np.ndarray]:
    """A raw feature sample -> arrays padded/truncated to ``num_boxes`` regions.

    Returns feats float32 [N,D], boxes float32 [N,4] normalised, visual_mask bool [N], obj_ids,
    attr_ids int64 [N], obj_conf, attr_conf float32 [N]. Regions past ``num_boxes`` are dropped
    (the extractor stores them in detector order).
    """
    s = FeatureSample.from_wds(raw)
    if s.features.shape[1] != feat_dim:
        raise ValueError(
            f"sample {s.key!r}: features are {s.features.shape[1]}-d but "
            f"model.visual_feat_dim={feat_dim}"
        )
    n = min(s.num_boxes, num_boxes)
    w, h = float(s.info["image_w"]), float(s.info["image_h"])
    if w <= 0 or h <= 0:
        raise ValueError(f"sample {s.key!r}: image size {w}x{h} is not positive")
    out = {
        "feats": np.zeros((num_boxes, feat_dim), np.float32),
        "boxes": np.zeros((num_boxes, 4), np.float32),
        "visual_mask": np.zeros(num_boxes, bool),
        "obj_ids": np.zeros(num_boxes, np.int64),
        "obj_conf": np.zeros(num_boxes, np.float32),
        "attr_ids": np.zeros(num_boxes, np.int64),
        "attr_conf": np.zeros(num_boxes, np.float32),
    }
    out["feats"][:n] = s.features[:n]
    out["boxes"][:n] = np.clip(s.boxes[:n] / np.array([w, h, w, h], np.float32), 0.0, 1.0)
    out["visual_mask"][:n] = True
    for name in ("obj_ids", "obj_conf", "attr_ids", "attr_conf"):
        out[name][:n] = getattr(s, name)[:n]
    return out


def pad_pieces(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """Lists of WordPiece ids -> int64 [B, max(1, longest)], -1 padded."""
    width = max([1, *(len(r) for r in rows)])
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
    return out


def collate(
    images: list[dict[str, np.ndarray]],
    texts: list[str],
    encoder: TextEncoder,
    matched: list[bool],
    text_keys: list[str],
    image_keys: list[str],
    label_pieces: Sequence[Sequence[int]] | None = None,
) -> Batch:
    """Stack decoded images (``decode_image``), tokenise texts, trim padding: a :class:`Batch`.

    ``label_pieces``: per pair, the WordPiece ids of the shown image's label names (optional).
    """
    arrays = {k: torch.from_numpy(np.stack([im[k] for im in images])) for k in images[0]}
    return Batch(
        **trim({**encoder.batch(texts), **arrays}),
        matched=torch.tensor(matched, dtype=torch.bool),
        text_keys=list(text_keys),
        image_keys=list(image_keys),
        label_pieces=None if label_pieces is None else pad_pieces(label_pieces),
    )
