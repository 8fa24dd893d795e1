"""An independent plain-torch re-implementation of the bottom-up-attention detector's test path.

Written from the architecture facts of the Caffe model and its detectron2 port (no detectron2,
no code shared with ``extract/``), to check that the extractor computes the same function:

* backbone: ResNet (bottleneck blocks, FrozenBN as ``(x - mean) / sqrt(var + eps) * w + b``),
  the stride of res3/res4 block 0 in its 1x1 conv, stem conv 7x7/2 then max pool 3x3/2 with no
  padding and ceil mode; output res4 at stride 16.
* RPN: 3x3 conv -> ReLU -> 1x1 objectness (A) and 1x1 deltas (4A); anchors = cell anchors
  shifted by 16 px per cell (cell-major, then anchor); deltas decoded without ``+1``, dw/dh
  clamped at log(1000/16); top ``pre_nms`` by logit; clipped to the image; empty boxes dropped;
  greedy NMS (IoU > 0.7 suppresses); first ``post_nms`` kept.
* RoIPool (Caffe's kernel, float32 arithmetic): cells ``round(x / 16)`` half away from zero,
  size ``max(end - start + 1, 1)``, bin ``[floor(p * size / P), ceil((p + 1) * size / P))``
  offset and clipped to the map, max per bin, 0 for an empty bin.
* res5 at stride 1 with every 3x3 conv dilated by 2; 2048-d feature = mean over the PxP map.
* heads: 1601-way softmax (background last); attribute head: argmax over all 1601 logits ->
  embedding -> concat with the feature -> fc 512 -> ReLU -> 401 logits; softmax over the first
  400 ("no attribute", the last, dropped before the softmax).

Weights come as a ``{name: tensor}`` dict with the converted checkpoint's key names.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

BN_EPS = 1e-5
STRIDE = 16
SCALE_CLAMP = math.log(1000.0 / 16)


def frozen_bn(x: torch.Tensor, w: dict, prefix: str) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    mean = w[f"{prefix}.running_mean"].view(shape)
    std = torch.sqrt(w[f"{prefix}.running_var"].view(shape) + BN_EPS)
    return (x - mean) / std * w[f"{prefix}.weight"].view(shape) + w[f"{prefix}.bias"].view(shape)


def conv_bn(x: torch.Tensor, w: dict, prefix: str, stride=1, padding=0, dilation=1):
    y = F.conv2d(x, w[f"{prefix}.weight"], None, stride, padding, dilation)
    return frozen_bn(y, w, f"{prefix}.norm")


def bottleneck(x: torch.Tensor, w: dict, prefix: str, stride: int, dilation: int) -> torch.Tensor:
    if f"{prefix}.shortcut.weight" in w:
        shortcut = conv_bn(x, w, f"{prefix}.shortcut", stride=stride)
    else:
        shortcut = x
    out = torch.relu(conv_bn(x, w, f"{prefix}.conv1", stride=stride))  # stride in the 1x1
    out = torch.relu(conv_bn(out, w, f"{prefix}.conv2", padding=dilation, dilation=dilation))
    out = conv_bn(out, w, f"{prefix}.conv3")
    return torch.relu(out + shortcut)


def _num_blocks(w: dict, stage: str) -> int:
    return len({k.split(".")[2] for k in w if k.startswith(f"{stage}.")})


def backbone(x: torch.Tensor, w: dict) -> torch.Tensor:
    """x [N,3,H,W] float32 BGR minus mean -> res4 [N,1024,h,w]."""
    x = torch.relu(conv_bn(x, w, "backbone.stem.conv1", stride=2, padding=3))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=0, ceil_mode=True)
    for stage, stride in (("res2", 1), ("res3", 2), ("res4", 2)):
        for i in range(_num_blocks(w, f"backbone.{stage}")):
            x = bottleneck(x, w, f"backbone.{stage}.{i}", stride if i == 0 else 1, 1)
    return x


def res5_features(pooled: torch.Tensor, w: dict) -> torch.Tensor:
    """RoIPool output [R,1024,P,P] -> dilated stride-1 res5 -> mean -> [R,2048]."""
    x = pooled
    for i in range(_num_blocks(w, "roi_heads.res5")):
        x = bottleneck(x, w, f"roi_heads.res5.{i}", 1, 2)
    return x.mean(dim=(2, 3))


def _round_half_away(v: np.float32) -> int:
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def roi_pool(fmap: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Caffe RoIPool of fmap [C,H,W] at 1/16 for boxes [R,4] (input pixels) -> [R,C,size,size]."""
    channels, height, width = fmap.shape
    out = torch.zeros(len(boxes), channels, size, size)
    f32 = np.float32
    for r, box in enumerate(boxes.tolist()):
        x1, y1, x2, y2 = (_round_half_away(f32(v) * f32(1 / STRIDE)) for v in box)
        roi_w, roi_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        bin_w, bin_h = f32(roi_w) / f32(size), f32(roi_h) / f32(size)
        for ph in range(size):
            hs = min(max(int(math.floor(f32(ph) * bin_h)) + y1, 0), height)
            he = min(max(int(math.ceil(f32(ph + 1) * bin_h)) + y1, 0), height)
            if he <= hs:
                continue
            rows = fmap[:, hs:he, :].amax(dim=1)  # [C,W]
            for pw in range(size):
                ws = min(max(int(math.floor(f32(pw) * bin_w)) + x1, 0), width)
                we = min(max(int(math.ceil(f32(pw + 1) * bin_w)) + x1, 0), width)
                if we > ws:
                    out[r, :, ph, pw] = rows[:, ws:we].amax(dim=1)
    return out


def heads(feat: torch.Tensor, w: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """feat [R,2048] -> (class probabilities [R,1601], attribute probabilities [R,400])."""
    p = "roi_heads.box_predictor"
    cls_logits = feat @ w[f"{p}.cls_score.weight"].T + w[f"{p}.cls_score.bias"]
    label = cls_logits.argmax(dim=1)  # background (last) included
    emb = w[f"{p}.cls_embedding.weight"][label]
    hidden = torch.relu(
        torch.cat([feat, emb], dim=1) @ w[f"{p}.fc_attr.weight"].T + w[f"{p}.fc_attr.bias"]
    )
    attr_logits = hidden @ w[f"{p}.attr_score.weight"].T + w[f"{p}.attr_score.bias"]
    return cls_logits.softmax(dim=1), attr_logits[:, :-1].softmax(dim=1)


def _iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area = (box[2:] - box[:2]).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    return inter / (area + areas - inter)


def greedy_nms(boxes: torch.Tensor, thresh: float) -> list[int]:
    """Indices kept by greedy NMS over boxes [K,4] already sorted by score, descending."""
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= _iou(boxes[i], boxes) > thresh
    return keep


def rpn_proposals(
    res4: torch.Tensor,
    w: dict,
    image_hw: tuple[int, int],
    *,
    pre_nms: int,
    post_nms: int,
    nms_thresh: float = 0.7,
) -> torch.Tensor:
    """res4 [1,1024,H,W] -> proposals [<=post_nms,4] in input pixels, best first."""
    p = "proposal_generator"
    hidden = torch.relu(
        F.conv2d(res4, w[f"{p}.rpn_head.conv.weight"], w[f"{p}.rpn_head.conv.bias"], padding=1)
    )
    logits = F.conv2d(
        hidden,
        w[f"{p}.rpn_head.objectness_logits.weight"],
        w[f"{p}.rpn_head.objectness_logits.bias"],
    )[0]
    deltas = F.conv2d(
        hidden, w[f"{p}.rpn_head.anchor_deltas.weight"], w[f"{p}.rpn_head.anchor_deltas.bias"]
    )[0]
    cell = w[f"{p}.anchor_generator.cell_anchors.0"]
    num_a, height, width = logits.shape
    ys, xs = torch.meshgrid(
        torch.arange(height) * float(STRIDE), torch.arange(width) * float(STRIDE), indexing="ij"
    )
    shifts = torch.stack([xs, ys, xs, ys], dim=-1).reshape(-1, 1, 4)
    anchors = (shifts + cell.view(1, num_a, 4)).reshape(-1, 4)  # (y, x, anchor)
    scores = logits.permute(1, 2, 0).reshape(-1)
    deltas = deltas.view(num_a, 4, height, width).permute(2, 3, 0, 1).reshape(-1, 4)

    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cx, cy = anchors[:, 0] + 0.5 * widths, anchors[:, 1] + 0.5 * heights
    dw, dh = deltas[:, 2].clamp(max=SCALE_CLAMP), deltas[:, 3].clamp(max=SCALE_CLAMP)
    px, py = deltas[:, 0] * widths + cx, deltas[:, 1] * heights + cy
    pw, ph = torch.exp(dw) * widths, torch.exp(dh) * heights
    boxes = torch.stack([px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph], dim=1)

    top = torch.topk(scores, min(pre_nms, len(scores))).indices
    boxes = boxes[top]
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image_hw[1])
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image_hw[0])
    nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes = boxes[nonempty]
    keep = greedy_nms(boxes, nms_thresh)[:post_nms]
    return boxes[keep]


def detect(
    image: torch.Tensor,
    w: dict,
    *,
    pool_size: int,
    boxes: torch.Tensor | None = None,
    pre_nms: int = 6000,
    post_nms: int = 300,
) -> dict[str, torch.Tensor]:
    """The whole test path for one image [3,H,W] (BGR minus mean, resized): RoIs (given boxes
    in input pixels, or RPN proposals), features [R,2048], class and attribute probabilities."""
    res4 = backbone(image[None], w)
    if boxes is None:
        boxes = rpn_proposals(res4, w, tuple(image.shape[-2:]), pre_nms=pre_nms, post_nms=post_nms)
    feats = res5_features(roi_pool(res4[0], boxes, pool_size), w)
    cls_probs, attr_probs = heads(feats, w)
    return {"boxes": boxes, "features": feats, "cls_probs": cls_probs, "attr_probs": attr_probs}


def rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """max |got - ref| / max |ref| (0 for two empty tensors)."""
    if ref.numel() == 0:
        return 0.0
    return float((got.float() - ref.float()).abs().max() / ref.float().abs().max().clamp(min=1e-30))
