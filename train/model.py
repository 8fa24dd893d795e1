"""Backbones: cross-modality encoders, pluggable through ``BACKBONES``.

Registry contract: ``BACKBONES[name](cfg: ModelConfig) -> nn.Module`` whose ``forward(input_ids,
position_ids, attention_mask, feats, boxes, visual_mask)`` takes the tensors of
:class:`train.data.Batch` and returns :class:`EncoderOutput`, and which exposes
``word_embeddings`` (``nn.Embedding``, tied to the MLM decoder) and ``hidden`` (int).

LXMERT-S (MSP) is LXMERT without its language and object-relationship encoders: the embeddings
feed 5 cross-modality layers directly. Each layer (LXMERT's ``LXRTXLayer``): one cross-attention
module used in both directions (language queries vision, vision queries language), then a
self-attention and an FFN per modality, each sub-layer post-norm with a residual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.config import ModelConfig


@dataclass
class EncoderOutput:
    """``lang`` [B,L,H], ``vis`` [B,N,H] final hidden states; ``pooled`` [B,H] from [CLS]."""

    lang: torch.Tensor
    vis: torch.Tensor
    pooled: torch.Tensor


class Attention(nn.Module):
    """Multi-head attention + dropout + residual + LayerNorm, with one fused Q/K/V projection.

    ``project(x)`` computes queries, keys and values of a sequence in one matrix product
    (Linear(H,3H)); ``attend(x, q, k, v, mask)`` finishes the sub-layer for the queries of ``x``.
    The LXMERT cross-attention module is shared by both directions, so each modality's Q/K/V is
    projected once and used twice (as queries, and as keys/values of the other direction).
    """

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B,S,H] -> q, k, v, each [B,heads,S,H/heads]."""
        b, s, h = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def attend(
        self,
        x: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        ctx_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Queries q of x [B,T,H] over keys/values k, v of a context of S positions;
        ctx_mask bool [B,S] (True = attend) -> [B,T,H]."""
        # a row with nothing to attend to (an image without boxes) attends to its padding
        ctx_mask = ctx_mask | ~ctx_mask.any(dim=1, keepdim=True)
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=ctx_mask[:, None, None, :], dropout_p=self.dropout * self.training
        )
        att = att.transpose(1, 2).reshape(x.shape)
        return self.norm(x + self.drop(self.out(att)))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor) -> torch.Tensor:
        """x [B,T,H] attends over ctx [B,S,H]; ctx_mask bool [B,S] (True = attend)."""
        if x is ctx:
            q, k, v = self.project(x)
        else:
            q = self.project(x)[0]
            _, k, v = self.project(ctx)
        return self.attend(x, q, k, v, ctx_mask)


class FeedForward(nn.Module):
    """Linear -> GELU -> Linear + dropout + residual + LayerNorm."""

    def __init__(self, hidden: int, intermediate: int, dropout: float) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(hidden, intermediate), nn.Linear(intermediate, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.drop(self.down(F.gelu(self.up(x)))))


class CrossLayer(nn.Module):
    """One LXMERT cross-modality layer (shared cross-attention, per-modality self-att and FFN)."""

    def __init__(self, hidden: int, heads: int, intermediate: int, dropout: float) -> None:
        super().__init__()
        self.cross = Attention(hidden, heads, dropout)
        self.lang_self, self.vis_self = (Attention(hidden, heads, dropout) for _ in range(2))
        self.lang_ffn, self.vis_ffn = (FeedForward(hidden, intermediate, dropout) for _ in range(2))

    def forward(
        self, lang: torch.Tensor, lang_mask: torch.Tensor, vis: torch.Tensor, vis_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """lang [B,L,H], lang_mask bool [B,L], vis [B,N,H], vis_mask bool [B,N] -> new lang, vis."""
        (lq, lk, lv), (vq, vk, vv) = self.cross.project(lang), self.cross.project(vis)
        lang_x = self.cross.attend(lang, lq, vk, vv, vis_mask)
        vis_x = self.cross.attend(vis, vq, lk, lv, lang_mask)
        lang_x, vis_x = (
            self.lang_self(lang_x, lang_x, lang_mask),
            self.vis_self(vis_x, vis_x, vis_mask),
        )
        return self.lang_ffn(lang_x), self.vis_ffn(vis_x)


class LxmertS(nn.Module):
    """LXMERT-S cross encoder.

    Text: LN(word + word-level position embedding), dropout. Vision: (LN(Linear(D,H)(feats)) +
    LN(Linear(4,H)(boxes))) / 2, dropout. Then ``layers`` cross-modality layers; the pooled
    output is tanh(Linear(H,H)) of the final [CLS] state.
    """

    def __init__(
        self,
        hidden: int = 768,
        heads: int = 12,
        layers: int = 5,
        intermediate: int = 3072,
        vocab_size: int = 30522,
        max_text_len: int = 20,
        visual_feat_dim: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.word_embeddings = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_text_len, hidden)
        self.text_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.feat_fc, self.box_fc = nn.Linear(visual_feat_dim, hidden), nn.Linear(4, hidden)
        self.feat_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.box_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            CrossLayer(hidden, heads, intermediate, dropout) for _ in range(layers)
        )
        self.pooler = nn.Linear(hidden, hidden)
        self.apply(init_weights)

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> LxmertS:
        return cls(
            hidden=cfg.hidden,
            heads=cfg.heads,
            layers=cfg.cross_layers,
            intermediate=cfg.intermediate,
            vocab_size=cfg.vocab_size,
            max_text_len=cfg.max_text_len,
            visual_feat_dim=cfg.visual_feat_dim,
            dropout=cfg.dropout,
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        feats: torch.Tensor,
        boxes: torch.Tensor,
        visual_mask: torch.Tensor,
    ) -> EncoderOutput:
        """input_ids/position_ids int64 [B,L], attention_mask bool [B,L], feats float [B,N,D],
        boxes float [B,N,4] in [0,1], visual_mask bool [B,N] -> EncoderOutput."""
        lang = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        lang = self.drop(self.text_norm(lang))
        vis = (self.feat_norm(self.feat_fc(feats)) + self.box_norm(self.box_fc(boxes))) / 2
        vis = self.drop(vis)
        for layer in self.layers:
            lang, vis = layer(lang, attention_mask, vis, visual_mask)
        return EncoderOutput(lang=lang, vis=vis, pooled=torch.tanh(self.pooler(lang[:, 0])))


def init_weights(module: nn.Module) -> None:
    """BERT initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorm."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# name -> builder(ModelConfig) -> backbone module (contract in the module docstring)
BACKBONES: dict[str, Callable[[ModelConfig], nn.Module]] = {"lxmert_s": LxmertS.from_config}


def build_backbone(cfg: ModelConfig) -> nn.Module:
    if cfg.backbone not in BACKBONES:
        raise KeyError(f"model.backbone={cfg.backbone!r}: one of {sorted(BACKBONES)}")
    return BACKBONES[cfg.backbone](cfg)


def count_parameters(module: nn.Module, exclude_embeddings: bool = False) -> int:
    total = sum(p.numel() for p in module.parameters())
    if exclude_embeddings and hasattr(module, "word_embeddings"):
        total -= module.word_embeddings.weight.numel()
    return total
