"""The VG bottom-up-attention detector: config, build, weights, and a batched RoI forward.

The network is stock detectron2 (``GeneralizedRCNN``) built from ``configs/vg_bua_r101_c4.yaml``
with the custom parts of :mod:`extract.detector_heads`. :func:`build_detector` is the entry
point that maps settings (preset, checkpoint, resize mode, device) to a :class:`VGDetector`.

Without a checkpoint the detector is randomly initialised from a fixed seed (the same weights on
every run), then made numerically sane by :mod:`extract.detector_random` (with detectron2's
identity FrozenBN statistics, res4 activations reach ~1e6 and the pooled features overflow
float16). Such a detector exercises every code path but its features, labels and boxes mean
nothing; it is announced with a warning banner and marked ``random_init`` in every output.

Batching: images of equal network-input size share one backbone and RPN pass; images of
different sizes are not padded together (padding changes the activations near the right and
bottom borders, so a batch would differ from single-image inference). RoI heads run in chunks
of ``roi_chunk`` RoIs through the fast path of :mod:`extract.detector_fast` (folded FrozenBN,
channels-last, compute precision, each distinct RoI once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from extract import d2compat
from extract.boxes import RoIOutputs
from extract.checkpoint import load_weights
from extract.precision import compute_dtype
from extract.preprocess import RESIZE_MODES, PreparedImage
from extract.presets import Preset, get_preset

d2compat.ensure()

from detectron2.config import CfgNode, get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, ImageList  # noqa: E402

from extract import detector_heads  # noqa: E402,F401  (registers the custom components)
from extract.detector_fast import FastPath, unique_rois  # noqa: E402
from extract.detector_random import calibrate_random_init  # noqa: E402

logger = logging.getLogger(__name__)

CONFIG_FILE = Path(__file__).resolve().parent / "configs" / "vg_bua_r101_c4.yaml"
RANDOM_INIT_SEED = 0
_HASH_EXCLUDE = ("DEVICE", "WEIGHTS")  # settings that do not change what the network computes

_BANNER_LINES = (
    "NO DETECTOR CHECKPOINT: this run uses a RANDOMLY INITIALISED VG detector (seed {seed}).",
    "Boxes, features, object and attribute labels are NOT meaningful; every output is",
    "marked random_init=true. Pass --checkpoint (the converted bottom-up-attention",
    "faster_rcnn_from_caffe_attr.pkl) for real features.",
)


def random_init_banner(seed: int) -> str:
    """The multi-line warning printed when no checkpoint is given."""
    lines = [line.format(seed=seed) for line in _BANNER_LINES]
    width = max(len(line) for line in lines) + 6
    rule = "#" * width
    body = [f"#  {line:<{width - 6}}  #" for line in lines]
    return "\n".join(["", rule, *body, rule])


def add_vg_config(cfg: CfgNode) -> CfgNode:
    """Add the keys of the attribute head (not in stock detectron2) with their defaults."""
    cfg.MODEL.ROI_ATTRIBUTE_HEAD = CfgNode()
    cfg.MODEL.ROI_ATTRIBUTE_HEAD.NUM_CLASSES = 400
    cfg.MODEL.ROI_ATTRIBUTE_HEAD.EMBED_DIM = 256
    cfg.MODEL.ROI_ATTRIBUTE_HEAD.HIDDEN_DIM = 512
    return cfg


def build_config(preset: str | Preset = "full", config_file: str | os.PathLike = CONFIG_FILE):
    """The resolved detectron2 config: the YAML file with the preset's overrides (frozen)."""
    preset = get_preset(preset)
    cfg = add_vg_config(get_cfg())
    cfg.merge_from_file(str(config_file))
    cfg.INPUT.MIN_SIZE_TEST = preset.min_size
    cfg.INPUT.MAX_SIZE_TEST = preset.max_size
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = preset.pre_nms_topk
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = preset.post_nms_topk
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = preset.pooler_resolution
    cfg.MODEL.DEVICE = "cpu"  # built and loaded on CPU; VGDetector moves it
    cfg.freeze()
    return cfg


def config_hash(cfg: CfgNode, resize_mode: str) -> str:
    """First 16 hex digits of the sha256 of everything that shapes the features."""
    data = json.loads(json.dumps(cfg))
    for key in _HASH_EXCLUDE:
        data["MODEL"].pop(key, None)
    blob = json.dumps({"detectron2": data, "resize_mode": resize_mode}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class VGDetector:
    """The detector plus its input settings; :meth:`run` maps prepared images to RoI outputs.

    ``precision``: ``fp32`` (reference), ``bf16`` or ``fp16`` (CUDA) for the convolutions (see
    :mod:`extract.precision`). The model's own modules define the network; :meth:`run` executes
    the backbone and res5 through :class:`extract.detector_fast.FastPath` copies (folded
    FrozenBN, channels-last, compute dtype), which compute the same function.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        preset: Preset,
        resize_mode: str,
        config_hash: str,
        random_init: bool,
        checkpoint_sha256: str | None,
        anchors: str = "configured",
        device: str | torch.device = "cpu",
        roi_chunk: int = 128,
        precision: str = "fp32",
    ) -> None:
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {resize_mode!r}; one of {RESIZE_MODES}")
        self.device = torch.device(device)
        compute_dtype(precision, self.device)  # validates (fp16 on CPU is refused)
        self.model = model.to(self.device).eval()
        self.preset = preset
        self.resize_mode = resize_mode
        self.config_hash = config_hash
        self.random_init = random_init
        self.checkpoint_sha256 = checkpoint_sha256
        self.anchors = anchors  # where the RPN cell anchors come from (see load_weights)
        self.roi_chunk = roi_chunk
        self.precision = precision
        self.stats: Counter = Counter()  # rois, distinct_rois, images, forward passes
        self._fast: dict[str, FastPath] = {}

    @property
    def pixel_mean(self) -> tuple[float, float, float]:
        """BGR pixel mean subtracted from the input."""
        return tuple(float(v) for v in self.model.pixel_mean.flatten().tolist())

    def preprocess_kwargs(self) -> dict:
        """Keyword arguments for :func:`extract.preprocess.preprocess` matching this detector."""
        return {
            "min_size": self.preset.min_size,
            "max_size": self.preset.max_size,
            "mode": self.resize_mode,
            "pixel_mean": self.pixel_mean,
        }

    def fast_path(self, precision: str | None = None) -> FastPath:
        """The :class:`FastPath` for ``precision`` (default: the detector's), built once."""
        precision = precision or self.precision
        if precision not in self._fast:
            self._fast[precision] = FastPath(
                self.model, compute_dtype(precision, self.device), self.device
            )
        return self._fast[precision]

    def refresh(self) -> None:
        """Drop the fast-path copies (call after changing the model's weights)."""
        self._fast.clear()

    @torch.inference_mode()
    def run(
        self,
        images: Sequence[PreparedImage],
        given_boxes: Sequence[np.ndarray] | None = None,
        *,
        regressed: bool = False,
        precision: str | None = None,
    ) -> list[RoIOutputs]:
        """Detector outputs for each image.

        images: prepared inputs. given_boxes: per image [N,4] float32 boxes in *original* pixels
        (already clipped) to pool instead of RPN proposals. regressed: also return the
        class-specific regressed boxes (for ``maxnms``). precision: override the detector's.
        Images of equal input size share one backbone pass (no padding); the RoIs of a group go
        through res5 together in chunks of ``roi_chunk``. Returns CPU tensors (see RoIOutputs).
        """
        if given_boxes is not None and len(given_boxes) != len(images):
            raise ValueError("given_boxes needs one box array per image")
        fast = self.fast_path(precision)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.input_size, []).append(i)
        results: list[RoIOutputs | None] = [None] * len(images)
        for size, idxs in groups.items():
            x = torch.stack([images[i].tensor for i in idxs]).to(self.device)
            res4 = fast.backbone(x)
            if given_boxes is None:
                proposals, _ = self.model.proposal_generator(
                    ImageList(x, [size] * len(idxs)), {"res4": res4}, None
                )
                boxes = [p.proposal_boxes.tensor for p in proposals]
            else:
                boxes = [self._to_input(given_boxes[i], images[i]) for i in idxs]
            outs = self._roi_outputs(fast, res4, boxes, size, regressed)
            for i, out in zip(idxs, outs, strict=True):
                results[i] = out
            self.stats["forward_passes"] += 1
        self.stats["images"] += len(images)
        return results  # type: ignore[return-value]

    def _to_input(self, boxes: np.ndarray, image: PreparedImage) -> torch.Tensor:
        scale = torch.tensor([image.scale_x, image.scale_y] * 2, dtype=torch.float32)
        boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4) * scale
        return boxes.to(self.device)

    def _box_features(
        self, fast: FastPath, res4: torch.Tensor, boxes: list[torch.Tensor]
    ) -> torch.Tensor:
        """Pooled res5 features [sum R_i, 2048] float32 of every image's boxes [R_i,4]
        (input pixels), each distinct RoI computed once."""
        pool = self.model.roi_heads.pooler.level_poolers[0]  # torchvision RoIPool
        rois, inverse, offset = [], [], 0
        for b, image_boxes in enumerate(boxes):
            first, inv = unique_rois(image_boxes.cpu(), pool.spatial_scale)
            picked = image_boxes[first.to(image_boxes.device)]
            rois.append(torch.cat([picked.new_full((len(first), 1), b), picked], dim=1))
            inverse.append(inv + offset)
            offset += len(first)
        all_rois = torch.cat(rois)
        self.stats["rois"] += sum(len(b) for b in boxes)
        self.stats["distinct_rois"] += len(all_rois)
        width = self.model.roi_heads.res5[-1].out_channels
        feats = [fast.box_features(pool(res4, chunk)) for chunk in all_rois.split(self.roi_chunk)]
        distinct = torch.cat(feats) if feats else res4.new_zeros(0, width)
        return distinct[torch.cat(inverse).to(distinct.device)]

    def _roi_outputs(
        self,
        fast: FastPath,
        res4: torch.Tensor,
        boxes: list[torch.Tensor],
        size: tuple[int, int],
        regressed: bool,
    ) -> list[RoIOutputs]:
        heads = self.model.roi_heads
        feats = self._box_features(fast, res4, boxes)
        pred = heads.predict(feats, deltas=regressed)
        cls_probs = pred["cls_logits"].softmax(dim=1)
        attr_probs = pred["attr_logits"][:, :-1].softmax(dim=1)  # "no attribute" dropped
        all_boxes = torch.cat(boxes)
        reg = None
        if regressed:
            transform = heads.box_predictor.box2box_transform
            flat = Boxes(transform.apply_deltas(pred["deltas"], all_boxes).reshape(-1, 4))
            flat.clip(size)
            reg = flat.tensor.view(all_boxes.shape[0], -1, 4)
        counts = [len(b) for b in boxes]
        parts = [
            t.split(counts) if t is not None else [None] * len(counts)
            for t in (all_boxes, feats, cls_probs, attr_probs, reg)
        ]
        return [
            RoIOutputs(*(p.float().cpu() if p is not None else None for p in fields))
            for fields in zip(*parts, strict=True)
        ]


def build_detector(
    *,
    preset: str | Preset = "full",
    checkpoint: str | os.PathLike | None = None,
    resize_mode: str = "caffe",
    device: str | None = None,
    seed: int = RANDOM_INIT_SEED,
    roi_chunk: int = 128,
    precision: str = "fp32",
) -> VGDetector:
    """Build the VG detector for ``preset``; load ``checkpoint`` or initialise randomly (seeded,
    announced with a warning banner). ``device`` defaults to CUDA when available; ``precision``
    is the convolutions' compute precision (``fp32``, ``bf16``, ``fp16`` on CUDA)."""
    preset = get_preset(preset)
    cfg = build_config(preset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg).eval()
    if checkpoint is None:
        calibrate_random_init(model, seed)
        sha, anchors = None, "configured"
        logger.warning(random_init_banner(seed))
    else:
        loaded = load_weights(model, checkpoint)
        sha, anchors = loaded.sha256, loaded.anchors
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return VGDetector(
        model,
        preset=preset,
        resize_mode=resize_mode,
        config_hash=config_hash(cfg, resize_mode),
        random_init=checkpoint is None,
        checkpoint_sha256=sha,
        anchors=anchors,
        device=device,
        roi_chunk=roi_chunk,
        precision=precision,
    )
