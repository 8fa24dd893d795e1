"""LXMERT-S backbone: shapes, masking of padding, the registry, the full-size parameter count."""

from __future__ import annotations

import pytest
import torch

from train.config import ModelConfig
from train.model import BACKBONES, LxmertS, build_backbone, count_parameters


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
