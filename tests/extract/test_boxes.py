"""Box selection: Caffe per-class NMS + max_conf, 36 / adaptive counts, maxnms, given."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import nms

from extract.boxes import (
    BoxSpec,
    RoIOutputs,
    keep_by_conf,
    pairwise_iou,
    parse_boxes,
    per_class_nms_max_conf,
    select,
)


def _outputs(boxes, fg_scores, regressed=None) -> RoIOutputs:
    fg = torch.tensor(fg_scores, dtype=torch.float32)
    probs = torch.cat([fg, (1 - fg.sum(1, keepdim=True)).clamp(min=0)], dim=1)  # bg last
    num = fg.shape[0]
    return RoIOutputs(
        boxes=torch.tensor(boxes, dtype=torch.float32),
        features=torch.arange(num, dtype=torch.float32)[:, None].expand(num, 2048).clone(),
        cls_probs=probs,
        attr_probs=torch.full((num, 400), 1 / 400),
        regressed=None if regressed is None else torch.as_tensor(regressed, dtype=torch.float32),
    )


def test_parse_boxes():
    assert parse_boxes("36") == BoxSpec(36, 36) and BoxSpec(36, 36).box_mode == "fixed36"
    assert parse_boxes("10-100") == BoxSpec(10, 100) and BoxSpec(10, 100).box_mode == "adaptive"
    for bad in ("0-5", "100-10", "abc", "12"):
        with pytest.raises(ValueError, match="--boxes"):
            parse_boxes(bad)


def test_iou_legacy_plus_one():
    a = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    b = torch.tensor([[5.0, 0.0, 14.0, 9.0]])
    # +1: areas 10x10, overlap 5x10 -> 50/150; plain: 81, 81, 4x9 -> 36/126
    assert float(pairwise_iou(a, b, plus_one=True)) == pytest.approx(1 / 3)
    assert float(pairwise_iou(a, b)) == pytest.approx(36 / 126)


def test_max_conf_is_best_class_where_the_box_survives():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]])  # A~B, C apart
    scores = torch.tensor(
        [
            [0.90, 0.05, 0.02],  # A: wins class 0
            [0.80, 0.60, 0.10],  # B: suppressed by A in class 0, survives in 1 and 2
            [0.10, 0.70, 0.05],  # C: overlaps nothing
        ]
    )
    max_conf = per_class_nms_max_conf(boxes, scores, nms_thresh=0.3)
    torch.testing.assert_close(max_conf, torch.tensor([0.90, 0.60, 0.70]))


def test_nms_is_greedy_a_suppressed_box_suppresses_nothing():
    # A overlaps B, B overlaps C (IoU 1/3 each), A and C do not: greedy keeps A and C
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]])
    scores = torch.tensor([[0.9], [0.8], [0.7]])
    max_conf = per_class_nms_max_conf(boxes, scores, nms_thresh=0.3, plus_one=False)
    torch.testing.assert_close(max_conf, torch.tensor([0.9, 0.0, 0.7]))


def test_vectorised_nms_equals_a_loop_over_classes():
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(60, 2, generator=gen) * 80
    wh = torch.rand(60, 2, generator=gen) * 40 + 5
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(60, 40, generator=gen).softmax(dim=1)
    expected = torch.zeros(60)
    for c in range(40):
        keep = nms(boxes, scores[:, c], 0.3)
        expected[keep] = torch.maximum(expected[keep], scores[keep, c])
    got = per_class_nms_max_conf(boxes, scores, nms_thresh=0.3, plus_one=False)
    torch.testing.assert_close(got, expected)
    # a score floor keeps every max_conf at or above it exact and zeroes the rest
    floor = float(expected.median())
    floored = per_class_nms_max_conf(boxes, scores, nms_thresh=0.3, plus_one=False, floor=floor)
    torch.testing.assert_close(floored, torch.where(expected >= floor, expected, 0.0))


def test_keep_by_conf_threshold_order_and_clamping():
    conf = torch.tensor([0.5, 0.1, 0.3, 0.05, 0.25])
    assert keep_by_conf(conf, BoxSpec(2, 3)).tolist() == [0, 2, 4]  # >= 0.2, original order
    assert keep_by_conf(conf, BoxSpec(1, 2)).tolist() == [0, 2]  # too many: top 2
    assert keep_by_conf(conf, BoxSpec(4, 10)).tolist() == [0, 2, 4, 1]  # too few: top 4


def test_exactly_36_and_10_to_100():
    gen = torch.Generator().manual_seed(1)
    many = torch.rand(150, generator=gen) * 0.5 + 0.3  # all confident
    assert keep_by_conf(many, BoxSpec(36, 36)).numel() == 36
    top = keep_by_conf(many, BoxSpec(36, 36))
    assert float(many[top].min()) >= float(many.sort(descending=True).values[35])
    assert keep_by_conf(many, BoxSpec(10, 100)).numel() == 100
    few = torch.cat([torch.full((5,), 0.9), torch.full((25,), 0.01)])
    assert keep_by_conf(few, BoxSpec(10, 100)).numel() == 10
    assert keep_by_conf(few[:20], BoxSpec(36, 36)).numel() == 20  # fewer proposals than 36


def test_select_caffe_saves_raw_proposals_in_original_pixels():
    out = _outputs(
        [[0, 0, 20, 20], [2, 0, 22, 20], [100, 100, 120, 120]],
        [[0.9, 0.05], [0.85, 0.0], [0.1, 0.6]],
    )
    sel = select(out, selection="caffe", spec=BoxSpec(1, 5), scale_xy=(2.0, 2.0))
    assert sel.index.tolist() == [0, 2]  # proposal 1 only scores in class 0, where A wins
    torch.testing.assert_close(sel.boxes, torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]))


def test_select_maxnms_raises_the_threshold_until_enough_survive():
    regressed = torch.zeros(3, 2, 4)
    regressed[0, 0] = torch.tensor([0.0, 0, 10, 10])  # best class 0
    regressed[1, 1] = torch.tensor([0.0, 0, 10, 15])  # best class 1; IoU with row 0 = 2/3
    regressed[2, 0] = torch.tensor([40.0, 40, 50, 50])
    out = _outputs(
        [[1, 1, 9, 9], [1, 1, 9, 14], [41, 41, 49, 49]],
        [[0.9, 0.05], [0.1, 0.8], [0.7, 0.1]],
        regressed=regressed,
    )
    three = select(out, selection="maxnms", spec=BoxSpec(3, 3), scale_xy=(1.0, 1.0))
    assert three.index.tolist() == [0, 1, 2]  # only at IoU 0.7 do all three survive
    torch.testing.assert_close(three.boxes, regressed[[0, 1, 2], [0, 1, 0]])  # regressed boxes
    two = select(out, selection="maxnms", spec=BoxSpec(2, 2), scale_xy=(2.0, 2.0))
    assert two.index.tolist() == [0, 2]  # 0.3 already leaves two
    torch.testing.assert_close(two.boxes, regressed[[0, 2], 0] / 2)


def test_select_given_keeps_every_box_in_order():
    out = _outputs([[0, 0, 8, 8], [4, 4, 6, 6]], [[0.5, 0.1], [0.2, 0.3]])
    sel = select(out, selection="given", spec=None, scale_xy=(4.0, 2.0))
    assert sel.index.tolist() == [0, 1]
    torch.testing.assert_close(sel.boxes, torch.tensor([[0.0, 0, 2, 4], [1, 2, 1.5, 3]]))
