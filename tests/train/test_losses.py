"""Every loss against a hand computation on a tiny batch, and each task head's conditional
masking (reconstruction losses only on matched pairs)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from train.batch import Batch
from train.config import ModelConfig, StageConfig
from train.model import EncoderOutput, LxmertS
from train.tasks import TASKS, build_model, needed_corruptions, union_positions
from train.tasks.base import TaskSetup, regression
from train.tasks.corrupt import corrupt
from train.tasks.itm import itm_loss
from train.tasks.mlm import mlm_loss, scored_tokens
from train.tasks.regions import weighted_ce
from train.tasks.topic import detector_pieces, topic_loss, topic_targets
from train.text import TextEncoder


def log1pexp(x: float) -> float:
    return math.log(1.0 + math.exp(x))


def test_mlm_loss_by_hand() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([2, 0])
    ce_first = math.log(math.e + math.e**2 + math.e**3) - 3.0
    expected = (ce_first + math.log(3.0)) / 2
    assert mlm_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    labels = torch.tensor([[-100, 5, -100], [7, -100, 8]])
    matched = torch.tensor([True, False])
    assert scored_tokens(labels, matched).tolist() == [[False, True, False], [False] * 3]
    empty = mlm_loss(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, dtype=torch.long))
    assert empty.item() == 0.0 and empty.requires_grad


def test_moc_weighted_ce_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([0, 1])
    weights = torch.tensor([0.5, 1.0])
    expected = (0.5 * log1pexp(-2.0) + math.log(2.0)) / 2
    assert weighted_ce(logits, targets, weights).item() == pytest.approx(expected, rel=1e-6)


def test_mrfr_regression_by_hand() -> None:
    pred = torch.tensor([[0.5, 3.0]])
    target = torch.zeros(1, 2)
    # SmoothL1 (beta 1): 0.5 * 0.5^2 = 0.125 and 3 - 0.5 = 2.5; mean over the 2 elements
    assert regression(pred, target, "smooth_l1").item() == pytest.approx(1.3125)
    assert regression(pred, target, "l2").item() == pytest.approx((0.25 + 9) / 2)
    assert regression(torch.zeros(0, 2), torch.zeros(0, 2)).item() == 0.0


def test_itm_loss_by_hand() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0])
    matched = torch.tensor([True, False, True])
    expected = (math.log(2.0) + log1pexp(2.0) + log1pexp(1.0)) / 3
    assert itm_loss(logits, matched).item() == pytest.approx(expected, rel=1e-6)


def test_topic_targets_and_loss_by_hand() -> None:
    # vocab of 10 ids, 0-2 special; text ids {1, 5, 6, 2} (+ a padded 9); regions: class 3
    # (pieces 5, 7) real, class 4 (piece 6) padding -> W = {5, 6}, L = {5, 7}, W ∩ L = {5}
    input_ids = torch.tensor([[1, 5, 6, 2, 9]])
    attention = torch.tensor([[True, True, True, True, False]])
    obj_ids = torch.tensor([[3, 4]])
    visual_mask = torch.tensor([[True, False]])
    pieces = torch.tensor([[-1, -1], [-1, -1], [-1, -1], [5, 7], [6, -1]])
    target = topic_targets(
        input_ids, attention, detector_pieces(obj_ids, visual_mask, pieces), 10, [0, 1, 2]
    )
    assert target.tolist() == [[0, 0, 0, 0, 0, 1, 0, 0, 0, 0]]
    logits = torch.zeros(1, 10)
    logits[0, 5] = 2.0
    expected = (log1pexp(-2.0) + 9 * math.log(2.0)) / 10
    assert topic_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------- task modules on a tiny batch
def tiny_batch(b: int = 2, n: int = 3, h: int = 2) -> Batch:
    return Batch(
        input_ids=torch.tensor([[101, 2000, 102], [101, 2001, 102]]),
        position_ids=torch.tensor([[0, 1, 2]] * b),
        attention_mask=torch.ones(b, 3, dtype=torch.bool),
        feats=torch.zeros(b, n, h),
        boxes=torch.zeros(b, n, 4),
        visual_mask=torch.ones(b, n, dtype=torch.bool),
        obj_ids=torch.tensor([[0, 1, 1], [1, 0, 0]]),
        obj_conf=torch.tensor([[1.0, 0.5, 1.0], [1.0, 1.0, 1.0]]),
        attr_ids=torch.tensor([[1, 1, 0], [0, 0, 0]]),
        attr_conf=torch.ones(b, n),
        matched=torch.tensor([True, False]),  # the second pair is a negative: not scored
        text_keys=["a", "b"],
        image_keys=["a", "c"],
        feats_orig=torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]] * b),
        region_mask=torch.tensor([[True, True, False], [True, True, True]]),
        shuffled=torch.tensor([[False, True, True], [True, True, True]]),
    )


def make_task(name: str, h: int = 2) -> nn.Module:
    cfg = ModelConfig(hidden=h, heads=1, visual_feat_dim=h, num_objects=h, num_attributes=h)
    setup = TaskSetup(
        cfg,
        LxmertS(hidden=h, heads=1, layers=0, intermediate=4, visual_feat_dim=h),
        label_pieces=torch.full((h, 2), -1),
        special_ids=[0],
    )
    return TASKS[name](name, setup)


def output(vis: torch.Tensor) -> EncoderOutput:
    return EncoderOutput(lang=torch.zeros(2, 3, 2), vis=vis, pooled=torch.zeros(2, 2))


VIS = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [5.0, 5.0]], [[7.0, 7.0], [7.0, 7.0], [7.0, 7.0]]])


def test_moc_task_scores_masked_regions_of_matched_pairs() -> None:
    task = make_task("moc")
    task.transform, task.obj, task.attr = nn.Identity(), nn.Identity(), nn.Identity()
    losses = task(output(VIS), tiny_batch())
    # pair 0, regions 0 and 1: logits [2,0] -> obj 0 (conf 1), logits [0,0] -> obj 1 (conf .5)
    obj = (log1pexp(-2.0) + 0.5 * math.log(2.0)) / 2
    attr = (log1pexp(2.0) + math.log(2.0)) / 2  # attr ids 1, 1 with confidence 1
    assert losses["moc.obj"].item() == pytest.approx(obj, rel=1e-6)
    assert losses["moc.attr"].item() == pytest.approx(attr, rel=1e-6)


def test_mrfr_task_regresses_clean_features_of_masked_regions() -> None:
    task = make_task("mrfr")
    task.head = nn.Identity()
    loss = task(output(VIS), tiny_batch())["mrfr"]
    # pair 0, regions 0 and 1: diffs [1, 0] and [0, -1] -> SmoothL1 0.5 twice over 4 elements
    assert loss.item() == pytest.approx(0.25)


def test_ifrs_task_regresses_original_features_of_shuffled_positions() -> None:
    task = make_task("ifrs")
    task.head = nn.Identity()
    loss = task(output(VIS), tiny_batch())["ifrs"]
    # pair 0, positions 1 and 2: diffs [0,-1] and [3,3] -> squared errors 0,1,9,9 over 4
    assert loss.item() == pytest.approx(19 / 4)


def test_itm_task_scores_every_pair() -> None:
    task = make_task("itm_hs")
    with torch.no_grad():
        task.head.weight.copy_(torch.tensor([[1.0, 0.0]]))
        task.head.bias.zero_()
    out = EncoderOutput(torch.zeros(2, 3, 2), VIS, pooled=torch.tensor([[0.0, 3.0], [2.0, 1.0]]))
    loss = task(out, tiny_batch())["itm_hs"]
    assert loss.item() == pytest.approx((math.log(2.0) + log1pexp(2.0)) / 2, rel=1e-6)


@pytest.mark.parametrize("name", ["mlm", "mrfr", "moc", "ifrs"])
def test_nothing_to_score_adds_no_loss(name: str) -> None:
    task = make_task(name)
    batch = tiny_batch()
    batch.matched = torch.tensor([False, False])  # conditional masking: no matched pair
    batch.mlm_labels = torch.tensor([[-100, 2000, -100], [-100, 2001, -100]])
    assert task(output(VIS), batch) == {}


def test_pretrain_model_losses_equal_those_of_a_full_encoder_pass() -> None:
    """The model encodes only what its tasks read; every loss and gradient is unchanged."""
    torch.manual_seed(0)
    encoder = TextEncoder()
    cfg = ModelConfig(hidden=16, heads=2, cross_layers=2, intermediate=32, visual_feat_dim=8)
    names = ["mlm", "mrfr", "moc", "ifrs", "titp", "itm_hs"]
    model = build_model(cfg, names, encoder, [f"c{i}" for i in range(cfg.num_objects)]).eval()
    g = torch.Generator().manual_seed(0)
    b, n, length = 6, 9, 7
    batch = Batch(
        input_ids=torch.randint(1000, 5000, (b, length), generator=g),
        position_ids=torch.arange(length).expand(b, length).clone(),
        attention_mask=torch.ones(b, length, dtype=torch.bool),
        feats=torch.rand(b, n, 8, generator=g),
        boxes=torch.rand(b, n, 4, generator=g),
        visual_mask=torch.ones(b, n, dtype=torch.bool),
        obj_ids=torch.randint(0, cfg.num_objects, (b, n), generator=g),
        obj_conf=torch.rand(b, n, generator=g),
        attr_ids=torch.randint(0, cfg.num_attributes, (b, n), generator=g),
        attr_conf=torch.rand(b, n, generator=g),
        matched=torch.tensor([True, False] * (b // 2)),
        text_keys=[""] * b,
        image_keys=[""] * b,
    )
    stage = StageConfig(tasks=names, shuffle_prob=0.5, token_mask_prob=0.3, region_mask_prob=0.3)
    batch = corrupt(batch, needed_corruptions(model.tasks.values()), stage, encoder, g)

    def run(losses: dict) -> tuple[dict, dict]:
        total = sum(sum(parts.values()) for parts in losses.values())
        model.zero_grad()
        total.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        return {k: {c: v.item() for c, v in parts.items()} for k, parts in losses.items()}, grads

    lang_rows, vis_rows = union_positions(model.tasks[name].positions(batch) for name in names)
    assert 0 < int(lang_rows.sum()) < lang_rows.numel() and 0 < int(vis_rows.sum()) < n * b
    pruned, pruned_grads = run(model(batch, names))
    full_out = model.encode(batch)
    full, full_grads = run({name: model.tasks[name](full_out, batch) for name in names})
    assert set(pruned) == set(names) and all(pruned.values())
    for name, parts in full.items():
        assert pruned[name] == pytest.approx(parts, rel=1e-5), name
    assert pruned_grads.keys() == full_grads.keys()
    for key, grad in full_grads.items():
        assert torch.allclose(pruned_grads[key], grad, atol=1e-6), key
