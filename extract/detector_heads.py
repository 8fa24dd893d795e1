"""The VG bottom-up-attention detector's custom parts, registered in detectron2's registries.

Stock detectron2 builds the rest (ResNet stages with FrozenBN and ``STRIDE_IN_1X1``, the
``StandardRPNHead`` with a 512-channel hidden conv, the RPN, ``GeneralizedRCNN``). What the
Caffe original (and its detectron2 port) does differently lives here:

* :func:`build_vg_resnet_backbone` (``BACKBONE_REGISTRY``): stock ResNet with
  :class:`CaffeMaxPoolStem`, whose max pool is ``max_pool2d(3, 2, padding=0, ceil_mode=True)``
  (stock: ``padding=1``, floor mode). The two differ in output size for odd inputs.
* :class:`PersistentAnchorGenerator` (``ANCHOR_GENERATOR_REGISTRY``): stock anchors, but the
  cell anchors are a saved buffer (``proposal_generator.anchor_generator.cell_anchors.0``), as in
  the converted checkpoint; the loader compares the stored anchors with the configured ones.
* :class:`VGRes5ROIHeads` (``ROI_HEADS_REGISTRY``): ``Res5ROIHeads`` whose res5 runs at stride 1
  with its 3x3 convs dilated by ``MODEL.RESNETS.RES5_DILATION`` (2), and whose box predictor is
  :class:`AttributePredictor`.
* :class:`AttributePredictor`: ``FastRCNNOutputLayers`` (1601-way ``cls_score`` with background
  last, class-specific ``bbox_pred`` 1600x4) plus the attribute head.

Importing this module registers the components; ``extract.detector`` does so before building.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from extract import d2compat

d2compat.ensure()

# detectron2 is importable only after the compatibility shims above.
from detectron2.config import configurable  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling import (  # noqa: E402
    ANCHOR_GENERATOR_REGISTRY,
    BACKBONE_REGISTRY,
    ROI_HEADS_REGISTRY,
)
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator  # noqa: E402
from detectron2.modeling.backbone.resnet import (  # noqa: E402
    BasicStem,
    BottleneckBlock,
    ResNet,
    build_resnet_backbone,
)
from detectron2.modeling.roi_heads import Res5ROIHeads  # noqa: E402
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers  # noqa: E402


class CaffeMaxPoolStem(BasicStem):
    """ResNet stem of the Caffe model: conv 7x7/2 (FrozenBN, ReLU), then max pool 3x3/2 with no
    padding and ceil mode. Input [N,3,H,W] float32 -> output [N,64,H',W'] at stride 4, where
    ``H' = ceil((floor((H - 1) / 2) + 1 - 3) / 2) + 1``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=0, ceil_mode=True)


@BACKBONE_REGISTRY.register()
def build_vg_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """Stock ``build_resnet_backbone`` with the Caffe max-pool stem.

    Called by detectron2 as ``build_vg_resnet_backbone(cfg, input_shape)``; returns a ``ResNet``
    whose state-dict names are the stock ones (``backbone.stem.conv1.*``, ``backbone.res2.*``...).
    """
    backbone = build_resnet_backbone(cfg, input_shape)
    stem = CaffeMaxPoolStem(
        in_channels=input_shape.channels,
        out_channels=cfg.MODEL.RESNETS.STEM_OUT_CHANNELS,
        norm=cfg.MODEL.RESNETS.NORM,
    )
    if cfg.MODEL.BACKBONE.FREEZE_AT >= 1:
        stem.freeze()
    backbone.stem = stem
    return backbone


class _SavedBufferList(nn.Module):
    """Like detectron2's ``BufferList`` but the buffers are persistent (saved in state dicts)."""

    def __init__(self, buffers: list[torch.Tensor]) -> None:
        super().__init__()
        for i, buffer in enumerate(buffers):
            self.register_buffer(str(i), buffer)

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self):
        return iter(self._buffers.values())


@ANCHOR_GENERATOR_REGISTRY.register()
class PersistentAnchorGenerator(DefaultAnchorGenerator):
    """``DefaultAnchorGenerator`` whose cell anchors ([A,4] float32, x1,y1,x2,y2 centred at 0,
    size-major order) are saved as ``cell_anchors.<level>``, as in the converted checkpoint."""

    def _calculate_anchors(self, sizes, aspect_ratios) -> _SavedBufferList:
        cell_anchors = [
            self.generate_cell_anchors(s, a).float()
            for s, a in zip(sizes, aspect_ratios, strict=True)
        ]
        return _SavedBufferList(cell_anchors)


class AttributePredictor(FastRCNNOutputLayers):
    """Fast R-CNN outputs plus the bottom-up-attention attribute head.

    ``forward(x)`` is the stock one: x [R,2048] -> (class logits [R,K+1] with background at index
    K, box deltas [R,4K]). :meth:`attribute_logits` adds the attribute head:
    argmax over all K+1 class logits (background included) -> ``cls_embedding`` [K+1,E] ->
    concat with x -> ``fc_attr`` (2048+E -> H) -> ReLU -> ``attr_score`` (H -> A+1), where the
    last attribute logit is the "no attribute" class.
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_attributes: int,
        attr_embed_dim: int = 256,
        attr_hidden_dim: int = 512,
        **kwargs,
    ) -> None:
        super().__init__(input_shape, **kwargs)
        in_dim = input_shape.channels
        self.num_attributes = num_attributes
        self.cls_embedding = nn.Embedding(self.num_classes + 1, attr_embed_dim)
        self.fc_attr = nn.Linear(in_dim + attr_embed_dim, attr_hidden_dim)
        self.attr_score = nn.Linear(attr_hidden_dim, num_attributes + 1)
        nn.init.normal_(self.attr_score.weight, std=0.01)
        nn.init.constant_(self.attr_score.bias, 0)

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec) -> dict:
        ret = super().from_config(cfg, input_shape)
        head = cfg.MODEL.ROI_ATTRIBUTE_HEAD
        ret.update(
            num_attributes=head.NUM_CLASSES,
            attr_embed_dim=head.EMBED_DIM,
            attr_hidden_dim=head.HIDDEN_DIM,
        )
        return ret

    def attribute_logits(self, x: torch.Tensor, cls_logits: torch.Tensor) -> torch.Tensor:
        """x [R,C] float32 pooled features, cls_logits [R,K+1] -> attribute logits [R,A+1]."""
        labels = cls_logits.argmax(dim=1)
        hidden = F.relu(self.fc_attr(torch.cat([x, self.cls_embedding(labels)], dim=1)))
        return self.attr_score(hidden)


@ROI_HEADS_REGISTRY.register()
class VGRes5ROIHeads(Res5ROIHeads):
    """C4 RoI heads of the VG detector: RoIPool on res4, res5 at stride 1 with dilated 3x3 convs,
    mean over the pooled map, :class:`AttributePredictor`.

    With ``MODEL.RESNETS.RES5_DILATION = 2`` the res5 output keeps the pooler's resolution
    (14x14 at the reference settings) instead of halving it.
    """

    @classmethod
    def from_config(cls, cfg, input_shape: dict[str, ShapeSpec]) -> dict:
        ret = super().from_config(cfg, input_shape)
        channels = ret["res5"][-1].out_channels
        ret["box_predictor"] = AttributePredictor(cfg, ShapeSpec(channels=channels))
        return ret

    @classmethod
    def _build_res5_block(cls, cfg) -> tuple[nn.Sequential, int]:
        res = cfg.MODEL.RESNETS
        dilation = res.RES5_DILATION
        factor = 2**3  # res5 is 8x res2
        out_channels = res.RES2_OUT_CHANNELS * factor
        blocks = ResNet.make_stage(
            BottleneckBlock,
            3,
            stride_per_block=[1 if dilation > 1 else 2, 1, 1],
            in_channels=out_channels // 2,
            bottleneck_channels=res.NUM_GROUPS * res.WIDTH_PER_GROUP * factor,
            out_channels=out_channels,
            num_groups=res.NUM_GROUPS,
            norm=res.NORM,
            stride_in_1x1=res.STRIDE_IN_1X1,
            dilation=dilation,
        )
        return nn.Sequential(*blocks), out_channels

    def box_features(self, pooled: torch.Tensor) -> torch.Tensor:
        """RoIPool output [R,1024,P,P] -> res5 (stride 1, same P) -> mean over PxP -> [R,2048]."""
        return self.res5(pooled).mean(dim=(2, 3))

    def predict(self, pooled: torch.Tensor, deltas: bool = True) -> dict[str, torch.Tensor]:
        """pooled [R,2048] float32 -> class logits [R,K+1], attribute logits [R,A+1] and, with
        ``deltas``, class-specific box deltas [R,4K] (skipped otherwise: 2048x6400 per RoI)."""
        predictor = self.box_predictor
        cls_logits = predictor.cls_score(pooled)
        out = {
            "cls_logits": cls_logits,
            "attr_logits": predictor.attribute_logits(pooled, cls_logits),
        }
        if deltas:
            out["deltas"] = predictor.bbox_pred(pooled)
        return out
