"""Backbones: cross-modality encoders, pluggable through ``BACKBONES``.

Registry contract: ``BACKBONES[name](cfg: ModelConfig) -> nn.Module`` whose ``forward(input_ids,
position_ids, attention_mask, feats, boxes, visual_mask, lang_rows=None, vis_rows=None)`` takes
the tensors of :class:`train.data.Batch` and returns :class:`EncoderOutput`, and which exposes
``word_embeddings`` (``nn.Embedding``, tied to the MLM decoder) and ``hidden`` (int).
``lang_rows``/``vis_rows`` (bool [B,L]/[B,N], None = all) name the final states the caller will
read; a backbone may skip the work of the others and leave NaN there (or ignore the arguments
and compute everything). The pooled output is always computed.

LXMERT-S (MSP) is LXMERT without its language and object-relationship encoders: the embeddings
feed 5 cross-modality layers directly. Each layer (LXMERT's ``LXRTXLayer``): one cross-attention
module used in both directions (language queries vision, vision queries language), then a
self-attention and an FFN per modality, each sub-layer post-norm with a residual.

Work that nothing reads is skipped, which changes no output that is read and no gradient. The
pre-training losses read few final states: [CLS] (ITM, topic tasks), the masked tokens and the
masked or shuffled regions of matched pairs (MLM, MRFR, MOC, IFRS), about one position in ten.
In the last layer every position is still needed as a key/value of the self-attention, but the
attention output projection, residual, LayerNorm and FFN run only at the rows that are read:
half of the last layer's cost, 1.6 of the 16.7 GFLOP per sample of a training step with every
MSP loss on at 20 tokens and 36 regions. Where no region is read (retrieval scoring, ITM-only
stages) the last layer's whole vision side is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.config import ModelConfig

QKV = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class EncoderOutput:
    """``lang`` [B,L,H], ``vis`` [B,N,H] final hidden states (NaN at rows the caller said it
    would not read); ``pooled`` [B,H] from [CLS]."""

    lang: torch.Tensor
    vis: torch.Tensor
    pooled: torch.Tensor


class Dropout(nn.Dropout):
    """``nn.Dropout`` (inverted: kept values scaled by 1/(1-p)) whose keep mask is drawn with
    ``torch.rand`` in float32: on CPU that is about twice as fast as the ``bernoulli_`` of
    ``F.dropout`` (forward + backward of a [32,36,768] activation: 3.9 ms against 6.3 ms on 2
    cores); the same distribution. Elsewhere it is ``nn.Dropout`` itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        keep = torch.rand(x.shape) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


def key_mask(mask: torch.Tensor) -> torch.Tensor:
    """Keys a query may attend to: bool [B,S] (True = real) -> bool [B,1,1,S].

    A row with nothing real (an image without boxes) attends to its padding instead, which keeps
    the softmax finite; its output is never read as a real state.
    """
    mask = mask | ~mask.any(dim=1, keepdim=True)
    return mask[:, None, None, :]


class Attention(nn.Module):
    """Multi-head attention + dropout + residual + LayerNorm, with one fused Q/K/V projection.

    ``forward(x, mask, rows)`` is self-attention. Cross-attention is assembled by
    :class:`CrossLayer` from the parts: ``qkv`` (Linear(H,3H): queries, keys and values in one
    matrix product), ``split_heads``, ``attention`` and ``finish``.
    """

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = Dropout(dropout)

    def split_heads(self, qkv: torch.Tensor) -> QKV:
        """A projection [B,S,3H] -> q, k, v, each [B,heads,S,H/heads] (strided views).

        ``unbind`` rather than indexing: its backward stacks the three gradients straight into
        the layout of the product, where indexing would zero-fill and add three full copies.
        """
        b, s, h3 = qkv.shape
        parts = qkv.view(b, s, 3, self.heads, h3 // (3 * self.heads)).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in parts)
        return q, k, v

    def attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """q [B,heads,T,d] over k, v [B,heads,S,d]; mask bool [B,1,1,S] (:func:`key_mask`)
        -> [B,T,heads,d], attention probabilities dropped out in training."""
        dropout = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return att.transpose(1, 2)

    def finish(self, x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """Output projection, dropout, residual, LayerNorm: x [*,H], att [*,heads,d] -> [*,H]."""
        return self.norm(x + self.drop(self.out(att.reshape(x.shape))))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Self-attention: x [B,T,H], mask bool [B,1,1,T] -> [B,T,H], or [M,H] for the M rows
        selected by ``rows`` (bool [B,T]; every row is still a key and value)."""
        att = self.attention(*self.split_heads(self.qkv(x)), mask)
        if rows is not None:
            x, att = x[rows], att[rows]
        return self.finish(x, att)


class FeedForward(nn.Module):
    """Linear -> GELU -> Linear + dropout + residual + LayerNorm. [*,H] -> [*,H]."""

    def __init__(self, hidden: int, intermediate: int, dropout: float) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(hidden, intermediate), nn.Linear(intermediate, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.drop(self.down(F.gelu(self.up(x)))))


class CrossLayer(nn.Module):
    """One LXMERT cross-modality layer (shared cross-attention, per-modality self-att and FFN).

    The cross-attention module is shared by both directions (language queries vision, vision
    queries language), so both modalities' rows go through its Q/K/V projection, its output
    projection and its LayerNorm together: one matrix product of B*(L+N) rows instead of two
    smaller ones each time (better use of the cores at these sizes), the same arithmetic.
    """

    def __init__(self, hidden: int, heads: int, intermediate: int, dropout: float) -> None:
        super().__init__()
        self.cross = Attention(hidden, heads, dropout)
        self.lang_self, self.vis_self = (Attention(hidden, heads, dropout) for _ in range(2))
        self.lang_ffn, self.vis_ffn = (FeedForward(hidden, intermediate, dropout) for _ in range(2))

    def cross_attend(
        self,
        lang: torch.Tensor,
        lang_mask: torch.Tensor,
        vis: torch.Tensor,
        vis_mask: torch.Tensor,
        want_vis: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Both directions of the shared cross-attention -> (lang [B,L,H], vis [B,N,H] or None
        when ``want_vis`` is False: then only language queries vision)."""
        b, length, h = lang.shape
        n = vis.shape[1]
        rows = torch.cat([lang.reshape(b * length, h), vis.reshape(b * n, h)])
        lang_qkv, vis_qkv = self.cross.qkv(rows).split([b * length, b * n])
        lq, lk, lv = self.cross.split_heads(lang_qkv.view(b, length, 3 * h))
        vq, vk, vv = self.cross.split_heads(vis_qkv.view(b, n, 3 * h))
        att = self.cross.attention(lq, vk, vv, vis_mask).reshape(b * length, h)
        if not want_vis:
            return self.cross.finish(rows[: b * length], att).view(b, length, h), None
        vis_att = self.cross.attention(vq, lk, lv, lang_mask).reshape(b * n, h)
        out = self.cross.finish(rows, torch.cat([att, vis_att]))
        return out[: b * length].view(b, length, h), out[b * length :].view(b, n, h)

    def forward(
        self,
        lang: torch.Tensor,
        lang_mask: torch.Tensor,
        vis: torch.Tensor,
        vis_mask: torch.Tensor,
        lang_rows: torch.Tensor | None = None,
        vis_rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """lang [B,L,H], vis [B,N,H]; masks bool [B,1,1,L]/[B,1,1,N] (:func:`key_mask`)
        -> new lang, vis.

        With ``lang_rows``/``vis_rows`` (bool [B,L]/[B,N]) only those rows are returned, packed
        [M,H]; vis is None when ``vis_rows`` selects nothing (its side is then not computed).
        """
        want_vis = vis_rows is None or bool(vis_rows.any())
        lang_x, vis_x = self.cross_attend(lang, lang_mask, vis, vis_mask, want_vis)
        lang = self.lang_ffn(self.lang_self(lang_x, lang_mask, rows=lang_rows))
        if vis_x is None:
            return lang, None
        return lang, self.vis_ffn(self.vis_self(vis_x, vis_mask, rows=vis_rows))


def unpack(rows: torch.Tensor, packed: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Packed states [M,H] of ``rows`` (bool [B,T]) back to the shape of ``like`` [B,T,H], NaN
    elsewhere: a task that reads a row it did not ask for gets a NaN loss, not a stale state."""
    if packed is None:
        return like.new_full(like.shape, float("nan"))
    out = packed.new_full(like.shape, float("nan"))
    out[rows] = packed
    return out


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
        self.drop = Dropout(dropout)
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
        lang_rows: torch.Tensor | None = None,
        vis_rows: torch.Tensor | None = None,
    ) -> EncoderOutput:
        """input_ids/position_ids int64 [B,L], attention_mask bool [B,L], feats float [B,N,D],
        boxes float [B,N,4] in [0,1], visual_mask bool [B,N] -> EncoderOutput.

        ``lang_rows``/``vis_rows`` bool [B,L]/[B,N] (None = all): the final states that will be
        read; the others are not computed in the last layer and hold NaN ([CLS] always is).
        """
        lang = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        lang = self.drop(self.text_norm(lang))
        vis = (self.feat_norm(self.feat_fc(feats)) + self.box_norm(self.box_fc(boxes))) / 2
        vis = self.drop(vis)
        lang_mask, vis_mask = key_mask(attention_mask), key_mask(visual_mask)
        if lang_rows is not None:
            lang_rows = lang_rows.clone()
            lang_rows[:, 0] = True  # the pooled output reads [CLS]
        embedded = {"lang": lang, "vis": vis}  # shapes for unpacking
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            rows = (lang_rows, vis_rows) if i == last else (None, None)
            lang, vis = layer(lang, lang_mask, vis, vis_mask, *rows)
        if self.layers and lang_rows is not None:
            lang = unpack(lang_rows, lang, embedded["lang"])
        if self.layers and vis_rows is not None:
            vis = unpack(vis_rows, vis, embedded["vis"])
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
