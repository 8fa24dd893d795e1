"""Compute precision of the detector (fp32, bf16, fp16) and how far low precision strays from fp32.

The reference is fp32. ``bf16`` runs the convolutions (backbone and res5, about 99% of the
FLOPs) in bfloat16; the RPN head, the box and attribute heads, softmaxes and box arithmetic stay
fp32. On a CPU, bf16 is fast only with native bf16 dot products (AVX512-BF16 or AMX); without
them oneDNN emulates it, slower than fp32, and we warn. ``fp16`` is for CUDA only (CPU fp16
convolutions are not faster than fp32 here). Low precision moves the pooled features a little
and, through the RPN's input, can move proposals: :func:`feature_cosine` and
:func:`box_agreement` measure both, and runs record them (``precision_check``).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MATCH_IOU = 0.7  # a low-precision box "agrees" with an fp32 box at this IoU or more


@functools.lru_cache(maxsize=1)
def cpu_bf16_native() -> bool:
    """True when this CPU has native bf16 dot products (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def compute_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The convolution dtype for ``precision`` on ``device``; raises ValueError where it does
    not apply (fp16 on CPU, bf16 on a GPU without it) and warns when CPU bf16 is emulated."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("--precision fp16 needs a CUDA device; on a CPU use bf16")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU has no bf16 support; use --precision fp16")
    if precision == "bf16" and device.type == "cpu" and not cpu_bf16_native():
        logger.warning(
            "this CPU has no native bf16 (AVX512-BF16/AMX): bf16 is emulated and slower than fp32"
        )
    return DTYPES[precision]


def feature_cosine(low: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-row cosine similarity of features low [N,D] and ref [N,D] -> [N] float32."""
    low, ref = low.float(), ref.float()
    if low.shape[0] == 0:
        return torch.zeros(0)
    return torch.nn.functional.cosine_similarity(low, ref, dim=1, eps=1e-12)


def box_agreement(low: torch.Tensor, ref: torch.Tensor, iou: float = MATCH_IOU) -> dict[str, float]:
    """How well boxes low [M,4] reproduce boxes ref [N,4] (x1,y1,x2,y2).

    Returns ``agreement``: fraction of ref boxes matched one-to-one (greedy by IoU) by a low box
    with IoU >= ``iou``; ``exact``: fraction of ref boxes found in low within 0.01 px;
    ``mean_best_iou``: mean over ref boxes of the best IoU with any low box.
    """
    from extract.boxes import pairwise_iou

    n = int(ref.shape[0])
    if n == 0:
        return {"agreement": 1.0, "exact": 1.0, "mean_best_iou": 1.0}
    if low.shape[0] == 0:
        return {"agreement": 0.0, "exact": 0.0, "mean_best_iou": 0.0}
    ious = pairwise_iou(ref, low)
    exact = (ref[:, None, :] - low[None, :, :]).abs().amax(dim=2).amin(dim=1) <= 0.01
    pairs = torch.nonzero(ious >= iou)
    order = torch.argsort(ious[pairs[:, 0], pairs[:, 1]], descending=True)
    used_ref, used_low, matched = set(), set(), 0
    for i, j in pairs[order].tolist():
        if i not in used_ref and j not in used_low:
            used_ref.add(i)
            used_low.add(j)
            matched += 1
    return {
        "agreement": matched / n,
        "exact": float(exact.float().mean()),
        "mean_best_iou": float(ious.amax(dim=1).mean()),
    }


def precision_check(
    detector: Any, item: Any, low_roi: Any, *, selection: str, spec: Any
) -> dict[str, Any]:
    """Measure one image's low-precision outputs against fp32 (for the manifest).

    ``detector``: a ``VGDetector`` at bf16/fp16; ``item``: the :class:`extract.sources.Ready`
    image; ``low_roi``: its :class:`extract.boxes.RoIOutputs` at the detector's precision;
    ``spec``: the :class:`extract.boxes.BoxSpec` (None for given boxes). Runs fp32 twice: the whole detection (which boxes fp32 would keep:
    ``agreement``, ``exact``, ``mean_best_iou`` of :func:`box_agreement`) and the kept RoIs of
    the low-precision run pooled in fp32 (``feature_cosine_min``/``_mean`` over those RoIs and
    ``object_label_agreement``: the same best class).
    """
    from extract.boxes import select, to_original

    image = item.image
    scale = (image.scale_x, image.scale_y)
    given = None if item.boxes is None else [item.boxes]
    regressed = selection == "maxnms"
    low = select(low_roi, selection=selection, spec=spec, scale_xy=scale)
    full = detector.run([image], given, regressed=regressed, precision="fp32")[0]
    ref = select(full, selection=selection, spec=spec, scale_xy=scale)
    if given is None:
        rois = to_original(low_roi.boxes[low.index], scale).numpy()
        same = detector.run([image], [rois], precision="fp32")[0]
        ref_feats, ref_probs = same.features, same.cls_probs
    else:
        ref_feats, ref_probs = full.features[low.index], full.cls_probs[low.index]
    cos = feature_cosine(low_roi.features[low.index], ref_feats)
    low_labels = low_roi.cls_probs[low.index, :-1].argmax(dim=1)
    labels = (low_labels == ref_probs[:, :-1].argmax(dim=1)).float()
    report = {
        "images": 1,
        "precision": detector.precision,
        "feature_cosine_min": float(cos.min()) if len(cos) else 1.0,
        "feature_cosine_mean": float(cos.mean()) if len(cos) else 1.0,
        "object_label_agreement": float(labels.mean()) if len(labels) else 1.0,
    }
    report.update({f"box_{k}": round(v, 6) for k, v in box_agreement(low.boxes, ref.boxes).items()})
    return report
