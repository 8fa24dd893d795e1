"""Which RoIs of an image to keep: the Caffe procedure, the detectron2 port's max-NMS, given boxes.

Input is :class:`RoIOutputs`, the detector's outputs for every RoI of one image (RPN proposals or
given boxes). Output is a :class:`Selection`: the kept rows and the boxes to save.

``caffe`` (default; the Caffe original's ``generate_tsv.py``, whose features LXMERT used)
    NMS at 0.3 **per class** over the raw proposals (in original pixels, with the legacy ``+1``
    in widths and heights); each proposal keeps its best class score among the classes in which
    it survives (``max_conf``). Keep ``max_conf >= 0.2``, but at least ``lo`` and at most ``hi``
    (the top ones by ``max_conf``); ``--boxes 36`` is ``lo = hi = 36``. The saved boxes are the
    raw proposals. :func:`per_class_nms_max_conf` computes every class's greedy NMS at once
    (no loop over the 1600 classes, see there).
``maxnms`` (airsplay/py-bottom-up-attention ``detectron2_mscoco_proposal_maxnms.py``)
    Each proposal's best foreground class and its class-specific regressed box (clipped to the
    input); class-agnostic NMS over those boxes at IoU 0.3, 0.4, ... 0.9 until at least ``lo``
    boxes survive; keep the top ``hi``. For 36 boxes this is the port's procedure (no 0.2
    threshold). For an adaptive range we also apply the 0.2 threshold, clamped to ``[lo, hi]``
    (our generalisation). Saved boxes are the regressed boxes; features are the proposals'.
``given``
    Every given box, in the given order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import nms

SELECTIONS = ("caffe", "maxnms")
CONF_THRESH = 0.2
CAFFE_NMS = 0.3
MAXNMS_THRESHOLDS = tuple(float(t) for t in np.arange(0.3, 1.0, 0.1))  # as the port iterates
_CHUNK_ELEMS = 1 << 22  # (classes x overlapping pairs) per step of the vectorised NMS
_CAFFE_FLOORS = (0.01, 0.0)  # score floors tried in turn (see per_class_nms_max_conf)


@dataclass(frozen=True)
class BoxSpec:
    """How many boxes to keep: ``lo == hi`` is a fixed count, otherwise an adaptive range."""

    lo: int
    hi: int

    @property
    def box_mode(self) -> str:
        return "fixed36" if (self.lo, self.hi) == (36, 36) else "adaptive"

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"


def parse_boxes(text: str) -> BoxSpec:
    """``"36"`` -> 36 boxes; ``"10-100"`` -> keep confident boxes, at least 10, at most 100."""
    text = str(text).strip()
    if text == "36":
        return BoxSpec(36, 36)
    match = re.fullmatch(r"(\d+)-(\d+)", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"--boxes must be '36' or 'LO-HI' with 1 <= LO <= HI, got {text!r}")
    return BoxSpec(int(match[1]), int(match[2]))


@dataclass
class RoIOutputs:
    """Detector outputs for the R RoIs of one image (CPU tensors).

    boxes      [R,4] float32  RoIs (proposals or given boxes), x1,y1,x2,y2 in network-input pixels
    features   [R,D] float32  pooled RoI features (D = 2048)
    cls_probs  [R,K+1] float32  class softmax, background last (K = 1600)
    attr_probs [R,A] float32  attribute softmax over the A = 400 attributes ("none" dropped)
    regressed  [R,K,4] float32  class-specific regressed boxes, clipped, input pixels (or None)
    """

    boxes: torch.Tensor
    features: torch.Tensor
    cls_probs: torch.Tensor
    attr_probs: torch.Tensor
    regressed: torch.Tensor | None = None


@dataclass
class Selection:
    """Kept RoIs: ``index`` [N] int64 rows of :class:`RoIOutputs`, ``boxes`` [N,4] float32 to save
    (original image pixels)."""

    index: torch.Tensor
    boxes: torch.Tensor


def pairwise_iou(a: torch.Tensor, b: torch.Tensor, *, plus_one: bool = False) -> torch.Tensor:
    """IoU of boxes a [N,4] and b [M,4] (x1,y1,x2,y2) -> [N,M] float32. ``plus_one`` uses the
    legacy pixel-inclusive widths ``x2 - x1 + 1`` of the Caffe code."""
    one = 1.0 if plus_one else 0.0
    a, b = a.float(), b.float()
    area_a = (a[:, 2] - a[:, 0] + one).clamp(min=0) * (a[:, 3] - a[:, 1] + one).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0] + one).clamp(min=0) * (b[:, 3] - b[:, 1] + one).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt + one).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def per_class_nms_max_conf(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    *,
    nms_thresh: float = CAFFE_NMS,
    plus_one: bool = True,
    floor: float = 0.0,
) -> torch.Tensor:
    """Greedy NMS per class, all classes at once; each box's best surviving class score.

    boxes [R,4] float32, scores [R,K] float32 (foreground classes) -> max_conf [R] float32.

    Exact greedy NMS for every class without a loop over classes: box i suppresses box j in
    class c iff IoU(i,j) > nms_thresh, i ranks above j in class c (higher score; ties go to the
    lower index) and i itself is kept in class c. Only overlapping pairs matter, so the work is
    on (overlapping pair, class) triples, and ``kept`` is iterated to its fixed point over them:
    after t steps the first t ranks of every class are final, and the fixed point is the greedy
    result (unique, by induction on rank). Suppression chains are short: a few steps suffice.

    ``floor``: (box, class) scores below it are dropped first. A dropped pair cannot suppress a
    pair that scores more, so every ``max_conf >= floor`` is still exact; smaller ones are
    reported as 0. With a trained detector few pairs pass 0.01, which makes this cheap.
    """
    num, num_classes = scores.shape
    scores = scores.float()
    live = scores >= floor if floor > 0 else scores > 0
    max_conf = scores.new_zeros(num)
    over = pairwise_iou(boxes, boxes, plus_one=plus_one) > nms_thresh
    over.fill_diagonal_(False)
    src, dst = over.nonzero(as_tuple=True)
    classes = torch.nonzero(live.any(dim=0)).flatten()
    if num == 0 or classes.numel() == 0:
        return max_conf
    step = max(1, _CHUNK_ELEMS // max(1, src.numel()))
    for chunk in classes.split(step):
        s = torch.where(live[:, chunk], scores[:, chunk], torch.zeros(()))  # [R,C]
        width = chunk.numel()
        edge, cls = ((s[src] > 0) & (s[dst] > 0)).nonzero(as_tuple=True)  # both ends live
        a = src[edge] * width + cls  # flat (box, class) index of the would-be suppressor
        b = dst[edge] * width + cls
        flat = s.flatten()
        above = (flat[a] > flat[b]) | ((flat[a] == flat[b]) & (src[edge] < dst[edge]))
        a, b = a[above], b[above]
        kept = torch.ones(num * width, dtype=torch.bool)
        for _ in range(num + 1):
            hits = torch.zeros(num * width).index_add_(0, b, kept[a].float())
            new_kept = hits == 0
            if torch.equal(new_kept, kept):
                break
            kept = new_kept
        conf = torch.where(kept.view(num, width), s, torch.zeros(())).max(dim=1).values
        max_conf = torch.maximum(max_conf, conf)
    return max_conf


def keep_by_conf(max_conf: torch.Tensor, spec: BoxSpec, conf_thresh: float = CONF_THRESH):
    """Caffe's rule: rows with ``max_conf >= conf_thresh`` in their original order; if fewer than
    ``lo`` or more than ``hi``, the top ``lo``/``hi`` by ``max_conf`` instead. -> [N] int64."""
    keep = torch.nonzero(max_conf >= conf_thresh).flatten()
    if spec.lo <= keep.numel() <= spec.hi:
        return keep
    order = torch.sort(max_conf, descending=True, stable=True).indices
    return order[: spec.lo if keep.numel() < spec.lo else spec.hi]


def select_caffe(
    outputs: RoIOutputs, spec: BoxSpec, scale_xy: tuple[float, float], **kwargs
) -> Selection:
    """The Caffe procedure (module docstring). ``scale_xy`` maps original to input pixels."""
    boxes = to_original(outputs.boxes, scale_xy)
    scores = outputs.cls_probs[:, :-1]
    for floor in _CAFFE_FLOORS:  # exact: retry lower while too few boxes reach the floor
        max_conf = per_class_nms_max_conf(boxes, scores, floor=floor, **kwargs)
        if int((max_conf >= floor).sum()) >= min(spec.lo, len(boxes)) and floor > 0:
            break
    index = keep_by_conf(max_conf, spec)
    return Selection(index, boxes[index])


def select_maxnms(
    outputs: RoIOutputs,
    spec: BoxSpec,
    scale_xy: tuple[float, float],
    *,
    thresholds: tuple[float, ...] = MAXNMS_THRESHOLDS,
    conf_thresh: float = CONF_THRESH,
) -> Selection:
    """The detectron2 port's class-agnostic NMS on best-class regressed boxes (module docstring)."""
    if outputs.regressed is None:
        raise ValueError("maxnms selection needs the regressed boxes (RoIOutputs.regressed)")
    max_scores, max_classes = outputs.cls_probs[:, :-1].max(dim=1)
    rows = torch.arange(max_scores.numel())
    max_boxes = outputs.regressed[rows, max_classes]
    keep = torch.zeros(0, dtype=torch.int64)
    for thresh in thresholds:
        keep = nms(max_boxes, max_scores, thresh)  # sorted by score, descending
        if keep.numel() >= spec.lo:
            break
    if spec.lo == spec.hi:
        keep = keep[: spec.hi]
    else:
        confident = int((max_scores[keep] >= conf_thresh).sum())
        keep = keep[: min(max(confident, spec.lo), spec.hi)]
    return Selection(keep, to_original(max_boxes[keep], scale_xy))


def select_given(outputs: RoIOutputs, scale_xy: tuple[float, float]) -> Selection:
    """Every RoI, in order (the given boxes, mapped back to original pixels)."""
    index = torch.arange(outputs.boxes.shape[0])
    return Selection(index, to_original(outputs.boxes, scale_xy))


def select(
    outputs: RoIOutputs,
    *,
    selection: str,
    spec: BoxSpec | None,
    scale_xy: tuple[float, float],
) -> Selection:
    """Dispatch on ``selection`` (``caffe``, ``maxnms``, or ``given`` with ``spec=None``)."""
    if selection == "given":
        return select_given(outputs, scale_xy)
    if spec is None:
        raise ValueError(f"selection {selection!r} needs a BoxSpec")
    if selection == "caffe":
        return select_caffe(outputs, spec, scale_xy)
    if selection == "maxnms":
        return select_maxnms(outputs, spec, scale_xy)
    raise ValueError(f"unknown selection {selection!r}; one of {SELECTIONS}")


def to_original(boxes: torch.Tensor, scale_xy: tuple[float, float]) -> torch.Tensor:
    """Boxes [N,4] in network-input pixels -> original image pixels (float32)."""
    sx, sy = scale_xy
    return boxes.float() / torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
