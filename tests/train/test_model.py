"""LXMERT-S backbone: shapes, masking of padding, the registry, the full-size parameter count,
the last layer computed only at the rows that are read, dropout."""

from __future__ import annotations

import pytest
import torch

from train.config import ModelConfig
from train.model import BACKBONES, Dropout, LxmertS, build_backbone, count_parameters


def inputs(b: int = 2, t: int = 5, n: int = 4, d: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 3:] = False
    visual = torch.ones(b, n, dtype=torch.bool)
    visual[0, 2:] = False
    return {
        "input_ids": torch.randint(1000, 2000, (b, t), generator=g),
        "position_ids": torch.arange(t).expand(b, t),
        "attention_mask": mask,
        "feats": torch.rand(b, n, d, generator=g),
        "boxes": torch.rand(b, n, 4, generator=g),
        "visual_mask": visual,
    }


def test_shapes_and_padding_is_ignored() -> None:
    model = LxmertS(hidden=16, heads=2, layers=2, intermediate=32, visual_feat_dim=8).eval()
    x = inputs()
    out = model(**x)
    assert out.lang.shape == (2, 5, 16) and out.vis.shape == (2, 4, 16)
    assert out.pooled.shape == (2, 16) and out.pooled.abs().max() <= 1
    y = dict(x, feats=x["feats"].clone(), input_ids=x["input_ids"].clone())
    y["feats"][0, 2:] = 100.0  # padded regions of pair 0
    y["input_ids"][1, 3:] = 7  # padded tokens of pair 1
    again = model(**y)
    assert torch.allclose(again.lang[:, 0], out.lang[:, 0], atol=1e-5)
    assert torch.allclose(again.vis[0, :2], out.vis[0, :2], atol=1e-5)


def test_image_without_boxes_gives_finite_outputs() -> None:
    model = LxmertS(hidden=16, heads=2, layers=1, intermediate=32, visual_feat_dim=8).eval()
    x = inputs()
    x["visual_mask"][0] = False
    assert torch.isfinite(model(**x).pooled).all()


def test_registry() -> None:
    assert "lxmert_s" in BACKBONES
    with pytest.raises(KeyError, match="lxmert_s"):
        build_backbone(ModelConfig(backbone="nope"))


def test_full_size_matches_lxmert_s() -> None:
    # LXMERT-S: ~86M parameters without word embeddings (REFERENCE; 46% of LXMERT)
    model = build_backbone(ModelConfig())
    assert 84e6 < count_parameters(model, exclude_embeddings=True) < 87e6
    assert len(model.layers) == 5


# ------------------------------------------- last-layer work only at the rows that are read
def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_rows_give_the_same_states_and_gradients() -> None:
    torch.manual_seed(0)
    model = LxmertS(hidden=16, heads=2, layers=2, intermediate=32, visual_feat_dim=8).eval()
    x = inputs()
    lang_rows = torch.tensor(
        [[False, False, True, False, True], [False, True, False, False, False]]
    )
    vis_rows = torch.tensor([[False, True, False, False], [True, False, False, True]])
    read_lang, read_vis = lang_rows.clone(), vis_rows.clone()
    read_lang[:, 0] = True  # [CLS] is always computed

    def loss(out):  # reads only the named rows
        return out.lang[read_lang].sum() + (out.vis[read_vis] ** 2).sum() + out.pooled.sum()

    full = model(**x)
    loss(full).backward()
    full_grads = grads(model)
    model.zero_grad()
    part = model(**x, lang_rows=lang_rows, vis_rows=vis_rows)
    loss(part).backward()
    assert torch.allclose(part.lang[read_lang], full.lang[read_lang], atol=1e-6)
    assert torch.allclose(part.vis[read_vis], full.vis[read_vis], atol=1e-6)
    assert torch.allclose(part.pooled, full.pooled, atol=1e-6)
    assert part.lang[~read_lang].isnan().all() and part.vis[~read_vis].isnan().all()
    part_grads = grads(model)
    assert part_grads.keys() == full_grads.keys()
    for name, g in full_grads.items():
        assert torch.allclose(part_grads[name], g, atol=1e-6), name


def test_no_region_rows_skip_the_last_vision_side() -> None:
    model = LxmertS(hidden=16, heads=2, layers=2, intermediate=32, visual_feat_dim=8).eval()
    x = inputs()
    none = torch.zeros(2, 4, dtype=torch.bool)
    part = model(**x, lang_rows=torch.zeros(2, 5, dtype=torch.bool), vis_rows=none)
    assert torch.allclose(part.pooled, model(**x).pooled, atol=1e-6)
    assert part.vis.isnan().all()
    part.pooled.sum().backward()
    last = model.layers[-1]
    assert last.vis_ffn.up.weight.grad is None and last.vis_self.qkv.weight.grad is None
    assert model.layers[0].vis_ffn.up.weight.grad is not None


def test_dropout_keeps_the_expectation_and_drops_p() -> None:
    torch.manual_seed(0)
    drop = Dropout(0.1)
    x = torch.ones(200_000, requires_grad=True)
    y = drop(x)
    assert abs(float((y == 0).float().mean()) - 0.1) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient flows through kept values only, scaled
    assert drop.eval()(x) is x
