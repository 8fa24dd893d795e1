"""The VG detector's structure: checkpoint layout, caffe stem, anchors, RoIPool, res5, heads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from extract.checkpoint import ANCHORS_KEY
from extract.detector import build_config, config_hash


def _read_keys(path) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, shape = line.split(" ", 1)
            rows.append((name, tuple(int(v) for v in shape.strip("[]").split(","))))
    return rows


def test_state_dict_matches_converted_checkpoint(test_detector, bua_keys_file):
    expected = _read_keys(bua_keys_file)
    got = [(k, tuple(v.shape)) for k, v in test_detector.model.state_dict().items()]
    assert len(expected) == 536
    assert sorted(got) == sorted(expected)
    # Same order too, except the stored anchors: stock detectron2's RPN registers its head
    # before its anchor generator, the port the other way round (order does not matter to load).
    without = [row for row in got if row[0] != ANCHORS_KEY]
    assert without == [row for row in expected if row[0] != ANCHORS_KEY]


def test_caffe_maxpool_stem_uses_ceil_mode_without_padding(test_detector):
    stem = test_detector.model.backbone.stem
    x = torch.randn(1, 3, 66, 66)
    out = stem(x)
    # conv 7x7/2 pad 3: 66 -> 33; caffe pool 3/2 ceil, no pad: ceil(30/2)+1 = 16 (stock: 17)
    assert out.shape == (1, 64, 16, 16)
    conv = F.relu(stem.conv1(x))
    assert conv.shape[-1] == 33
    assert F.max_pool2d(conv, 3, 2, padding=1).shape[-1] == 17
    torch.testing.assert_close(out, F.max_pool2d(conv, 3, 2, padding=0, ceil_mode=True))


def test_backbone_and_rpn_shapes(test_detector):
    model = test_detector.model
    assert model.backbone.res3[0].conv1.stride == (2, 2)  # STRIDE_IN_1X1
    assert model.backbone.res3[0].conv2.stride == (1, 1)
    assert type(model.backbone.res2[0].conv1.norm).__name__ == "FrozenBatchNorm2d"
    head = model.proposal_generator.rpn_head
    assert head.conv.out_channels == 512
    assert head.objectness_logits.out_channels == 12
    anchors = next(iter(model.proposal_generator.anchor_generator.cell_anchors))
    expected = []
    for size in (64, 128, 256, 512):  # size-major, then ratios 0.5, 1, 2 (h/w), centred at 0
        for ratio in (0.5, 1.0, 2.0):
            w = math.sqrt(size * size / ratio)
            expected.append([-w / 2, -w * ratio / 2, w / 2, w * ratio / 2])
    torch.testing.assert_close(anchors, torch.tensor(expected), atol=1e-3, rtol=0)


def test_res5_stride_one_dilated_keeps_pool_resolution(test_detector):
    heads = test_detector.model.roi_heads
    for block in heads.res5:
        assert block.conv2.dilation == (2, 2) and block.conv2.padding == (2, 2)
        assert block.conv1.stride == (1, 1) and block.conv2.stride == (1, 1)
    pooled = torch.rand(2, 1024, 5, 5)
    assert heads.res5(pooled).shape == (2, 2048, 5, 5)
    feats = heads.box_features(pooled)
    assert feats.shape == (2, 2048)
    torch.testing.assert_close(feats, heads.res5(pooled).mean(dim=(2, 3)))


def test_dilated_res5_receptive_field_is_every_other_cell(test_detector):
    """Three 3x3 convs dilated by 2 at stride 1: a change at one cell of the 14x14 pooled map
    reaches only cells at even offsets up to +-6 in each direction (stock res5 would halve the
    map and mix neighbours)."""
    res5 = test_detector.model.roi_heads.res5
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1024, 14, 14, generator=gen)
    bumped = x.clone()
    bumped[0, :, 5, 6] += 1.0
    with torch.no_grad():
        diff = (res5(bumped) - res5(x)).abs().amax(dim=1)[0]
    changed = diff > 0
    ys, xs = torch.meshgrid(torch.arange(14), torch.arange(14), indexing="ij")
    dy, dx = ys - 5, xs - 6
    reach = (dy % 2 == 0) & (dx % 2 == 0) & (dy.abs() <= 6) & (dx.abs() <= 6)
    assert changed.shape == (14, 14) and bool(changed[5, 6])
    assert not bool((changed & ~reach).any())  # nothing outside the dilated reach moves
    assert bool(changed[11, 6]) or bool(changed[5, 12]) or bool(changed[5, 0])  # reach is 6


def test_roipool_quantises_boxes_to_the_stride16_grid(test_detector):
    pooler = test_detector.model.roi_heads.pooler
    op = pooler.level_poolers[0]
    assert isinstance(op, torchvision.ops.RoIPool) and op.spatial_scale == 1 / 16
    assert op.output_size == (2, 2)  # the test preset; full is 14x14 (below)
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    fmap = (10 * ys + xs).expand(1, 1024, 8, 8)
    # box [16,16,63,47] px -> cells x 1..round(3.94)=4, y 1..round(2.94)=3 (Caffe rounding);
    # 2x2 bins of 2 columns and 1.5 rows -> rows {1,2},{2,3}, cols {1,2},{3,4}: max of 10y+x
    from detectron2.structures import Boxes  # the pooler's own box type

    boxes = [Boxes(torch.tensor([[16.0, 16.0, 63.0, 47.0], [23.0, 23.0, 56.0, 40.0]]))]
    out = pooler([fmap], boxes)[:, 0]
    expected = torch.tensor([[22.0, 24.0], [32.0, 34.0]])
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(out[1], expected)  # moved < 8 px per side: same cells


def test_full_config_is_the_reference():
    cfg = build_config("full")
    assert cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE == "ROIPool"
    assert cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION == 14
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (600, 1000)
    assert (cfg.MODEL.RPN.PRE_NMS_TOPK_TEST, cfg.MODEL.RPN.POST_NMS_TOPK_TEST) == (6000, 300)
    assert cfg.MODEL.RPN.NMS_THRESH == 0.7 and cfg.MODEL.RESNETS.RES5_DILATION == 2
    assert cfg.MODEL.PIXEL_MEAN == [102.9801, 115.9465, 122.7717]
    assert tuple(cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS) == (10.0, 10.0, 5.0, 5.0)
    assert config_hash(cfg, "caffe") != config_hash(cfg, "pillow")
    assert config_hash(cfg, "caffe") != config_hash(build_config("demo"), "caffe")


def test_attribute_head_embeds_argmax_over_all_classes_including_background(test_detector):
    pred = test_detector.model.roi_heads.box_predictor
    assert pred.cls_score.out_features == 1601 and pred.bbox_pred.out_features == 6400
    feats = torch.rand(2, 2048)
    cls_logits = torch.zeros(2, 1601)
    cls_logits[0, 1600] = 5.0  # background (last) wins
    cls_logits[1, 7] = 5.0
    cls_logits[1, 1600] = 4.0
    out = pred.attribute_logits(feats, cls_logits)
    assert out.shape == (2, 401)
    for row, label in ((0, 1600), (1, 7)):
        emb = pred.cls_embedding.weight[label]
        hidden = F.relu(pred.fc_attr(torch.cat([feats[row], emb])))
        torch.testing.assert_close(out[row], pred.attr_score(hidden))


def test_random_init_is_deterministic_sane_and_loud(test_detector, test_preset, caplog):
    from extract.detector import build_detector

    with caplog.at_level("WARNING", logger="extract.detector"):
        other = build_detector(preset=test_preset, device="cpu")
    assert "RANDOMLY INITIALISED" in caplog.text and "#####" in caplog.text
    a, b = test_detector.model.state_dict(), other.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert test_detector.random_init and test_detector.checkpoint_sha256 is None
    var = [m.running_var for m in test_detector.model.modules() if hasattr(m, "running_var")]
    assert all(bool((v > 0).all()) for v in var)


@pytest.mark.parametrize("given", [False, True])
def test_run_returns_probabilities_and_features(test_detector, given):
    from PIL import Image

    from extract.preprocess import preprocess

    image = Image.new("RGB", (80, 60), (120, 30, 200))
    prepared = preprocess(image, **test_detector.preprocess_kwargs())
    boxes = [torch.tensor([[0.0, 0.0, 40.0, 30.0], [10.0, 5.0, 80.0, 60.0]]).numpy()]
    out = test_detector.run([prepared], boxes if given else None, regressed=not given)[0]
    num = out.boxes.shape[0]
    assert num == 2 if given else num > 2
    assert out.features.shape == (num, 2048) and torch.isfinite(out.features).all()
    torch.testing.assert_close(out.cls_probs.sum(1), torch.ones(num))
    torch.testing.assert_close(out.attr_probs.sum(1), torch.ones(num))
    assert out.attr_probs.shape == (num, 400) and out.cls_probs.shape == (num, 1601)
    if given:  # boxes in input pixels = original * scale
        torch.testing.assert_close(out.boxes, torch.tensor(boxes[0]) * prepared.scale_x)
    else:
        assert out.regressed.shape == (num, 1600, 4)
        h, w = prepared.input_size
        assert float(out.regressed[..., 2].max()) <= w and float(out.regressed[..., 3].max()) <= h


def test_batched_run_equals_single_image_runs(test_detector):
    from PIL import Image

    from extract.preprocess import preprocess

    rng = np.random.default_rng(0)
    images = [
        preprocess(
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)),
            **test_detector.preprocess_kwargs(),
        )
        for h, w in ((48, 64), (48, 64), (40, 60))
    ]  # two share an input size (one backbone pass), one does not (no padding)
    batched = test_detector.run(images)
    for image, out in zip(images, batched, strict=True):
        (single,) = test_detector.run([image])
        torch.testing.assert_close(out.boxes, single.boxes, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(out.features, single.features, rtol=1e-4, atol=1e-4)
