"""Make a randomly initialised VG detector numerically sane (no checkpoint available).

detectron2's initialisation with identity FrozenBN statistics does not give a usable network:
activations grow with depth (res4 reaches ~1e6, so pooled features overflow float16), random
RPN deltas turn anchors into full-image or zero-height boxes, and class logits are so large
that every softmax is one-hot. :func:`calibrate_random_init` fixes that from one forward
pass over a fixed synthetic image, deterministically:

* each FrozenBN gets the mean and variance of its input (as a BatchNorm network at init), and
  each residual branch's last FrozenBN a scale of 0.2 (in the spirit of SkipInit/Fixup), so
  photos, which differ from the calibration image, do not blow activations up;
* the output layers (RPN objectness and deltas, class scores, box deltas, attribute scores) are
  rescaled to a target standard deviation on that image, so proposals stay near their anchors
  and probabilities are spread out.

The conv and linear weights stay those drawn from the seed, up to a scale per output layer. Nothing here is used with a
real checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from extract import d2compat

d2compat.ensure()

from detectron2.layers import FrozenBatchNorm2d  # noqa: E402
from detectron2.structures import Boxes  # noqa: E402

# target output standard deviations on the synthetic image
_TARGET_STD = {"objectness": 1.0, "anchor_deltas": 0.1, "cls": 3.0, "bbox": 0.1, "attr": 3.0}
# scale of each residual branch (its last FrozenBN): keeps the deep random net near-linear, so
# images unlike the calibration image do not blow activations up
_BRANCH_SCALE = 0.2


def synthetic_image(seed: int, height: int = 224, width: int = 320) -> torch.Tensor:
    """A fixed random BGR image with structure at several scales, mean subtracted:
    [1,3,H,W] float32, std about 70 (like photos after mean subtraction)."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.zeros(1, 3, height, width)
    for cell, amplitude in ((32, 50.0), (8, 35.0), (2, 25.0), (1, 10.0)):
        noise = torch.randn(1, 3, height // cell, width // cell, generator=gen)
        image += amplitude * nn.functional.interpolate(noise, size=(height, width), mode="bilinear")
    return image


def _set_stats(module: FrozenBatchNorm2d, args: tuple[torch.Tensor]) -> None:
    x = args[0]
    var = x.var(dim=(0, 2, 3))
    module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
    module.running_var.copy_(var + 0.01 * var.mean() + 1e-5)  # no near-zero variances
    module.weight.fill_(1.0)
    module.bias.zero_()


def _scale_branch(module: FrozenBatchNorm2d, args: tuple[torch.Tensor]) -> None:
    module.weight.fill_(_BRANCH_SCALE)


def _rescale(layer: nn.Module, output: torch.Tensor, target_std: float) -> None:
    """Scale a conv/linear layer so that ``output`` (its output) would have ``target_std``."""
    std = float(output.float().std())
    if std > 0:
        layer.weight.mul_(target_std / std)
        if layer.bias is not None:
            layer.bias.mul_(target_std / std)


@torch.no_grad()
def calibrate_random_init(model: nn.Module, seed: int) -> None:
    """Set FrozenBN statistics and output-layer scales of a random-init detector (in place)."""
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    branch_ends = [m.conv3.norm for m in model.modules() if hasattr(m, "conv3")]
    handles = [m.register_forward_pre_hook(_set_stats) for m in frozen]
    handles += [m.register_forward_pre_hook(_scale_branch) for m in branch_ends]
    try:
        image = synthetic_image(seed)
        res4 = model.backbone(image)["res4"]
        h, w = image.shape[-2:]
        boxes = torch.tensor(
            [[0, 0, w, h], [0, 0, w / 2, h / 2], [w / 3, h / 4, w, h], [w / 4, 0, w / 2, h]]
        )
        heads = model.roi_heads
        feats = heads.box_features(heads.pooler([res4], [Boxes(boxes.float())]))
    finally:
        for handle in handles:
            handle.remove()

    rpn = model.proposal_generator.rpn_head
    hidden = torch.relu(rpn.conv(res4))
    _rescale(rpn.objectness_logits, rpn.objectness_logits(hidden), _TARGET_STD["objectness"])
    _rescale(rpn.anchor_deltas, rpn.anchor_deltas(hidden), _TARGET_STD["anchor_deltas"])
    pred = heads.box_predictor
    _rescale(pred.cls_score, pred.cls_score(feats), _TARGET_STD["cls"])
    _rescale(pred.bbox_pred, pred.bbox_pred(feats), _TARGET_STD["bbox"])
    cls_logits = pred.cls_score(feats)
    _rescale(pred.attr_score, pred.attribute_logits(feats, cls_logits), _TARGET_STD["attr"])
