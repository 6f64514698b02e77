"""The Transformer's layers: LayerNorm, the position-wise feed-forward network,
and the encoder and decoder layers (section 3.1 and 3.3).

Each layer has a `norm_first` switch:
  post-LN (the paper, norm_first=False):  x = LayerNorm(x + Sublayer(x))
  pre-LN  (modern models, norm_first=True): x = x + Sublayer(LayerNorm(x))

Dropout, at the one rate `dropout` (the paper's P_drop: 0.1 base, 0.3 big):
  * paper (section 5.4, "residual dropout"): on each sublayer's output, before it is added
    to the sublayer's input (and, post-LN, normalised): `dropout1`, `dropout2`, `dropout3`;
  * later practice: `FeedForward` also drops its hidden ReLU units. The paper's text does not
    mention this; tensor2tensor has it as `relu_dropout` (0 in its transformer_base_v1
    settings, 0.1 from v2 on), and torch's nn.TransformerEncoderLayer between linear1 and linear2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import KVCache, MultiHeadAttention
from .validate import check_dropout, check_features, check_sizes


class LayerNorm(nn.Module):
    """Layer normalisation (Ba, Kiros and Hinton, 2016) over the last axis.

    Each position's d_model features are standardised to mean 0 and variance 1 (the
    biased variance, as in torch), then scaled by gamma and shifted by beta:
        y = gamma * (x - mean) / sqrt(var + eps) + beta
    With fused=True (the default) torch's one-kernel `F.layer_norm` computes the same
    numbers faster; fused=False runs the formula step by step, as written below.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, fused: bool = True) -> None:
        super().__init__()
        check_sizes(d_model=d_model)
        self.d_model, self.eps = d_model, eps
        self.gamma = nn.Parameter(torch.ones(d_model))
        self.beta = nn.Parameter(torch.zeros(d_model))
        self.fused = fused  # True: the same formula in one torch kernel (faster); False: step by step

    def forward(self, x: Tensor) -> Tensor:
        check_features(x, "x", self.d_model, self.gamma)  # float (..., d_model), the dtype of gamma
        if self.fused:
            return F.layer_norm(x, (self.d_model,), self.gamma, self.beta, self.eps)
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        var = x.var(dim=-1, unbiased=False, keepdim=True)  # (..., 1)
        return self.gamma * (x - mean) / torch.sqrt(var + self.eps) + self.beta


class FeedForward(nn.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, the same two-layer network at every position (eq. 2)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        check_sizes(d_model=d_model, d_ff=d_ff)
        check_dropout(dropout)
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        check_features(x, "x", self.w_1.in_features, self.w_1.weight)
        return self.w_2(self.dropout(torch.relu(self.w_1(x))))  # (B, T, d_ff) -> (B, T, d_model)


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each wrapped in a residual connection and LayerNorm."""

    def __init__(
        self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = False
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, T, d_model); mask broadcastable to (B, h, T, T), True = may attend."""
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h, h, h, mask))
            x = x + self.dropout2(self.ff(self.norm2(x)))
        else:
            x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask)))
            x = self.norm2(x + self.dropout2(self.ff(x)))
        return x  # (B, T, d_model)


class DecoderCache:
    """What one decoder layer remembers while generating: its own keys/values so far,
    and the encoder's keys/values projected once for cross-attention."""

    def __init__(self) -> None:
        self.self_kv = KVCache()
        self.cross_kv = KVCache()


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention (queries from the decoder, keys and values
    from the encoder output), then feed-forward; each with residual and LayerNorm."""

    def __init__(
        self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = False
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2, self.norm3 = LayerNorm(d_model), LayerNorm(d_model), LayerNorm(d_model)
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))
        self.norm_first = norm_first

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        cache: DecoderCache | None = None,
    ) -> Tensor:
        """x (B, T_tgt, d_model); memory (B, T_src, d_model) from the encoder.

        tgt_mask broadcasts to (B, h, T_tgt, T_tgt) (causal and padding);
        memory_mask broadcasts to (B, h, T_tgt, T_src) (source padding).
        With `cache`, x holds only the new positions and earlier ones come from the cache.
        """
        self_kv = cache.self_kv if cache is not None else None
        cross_kv = cache.cross_kv if cache is not None else None

        def sa(h: Tensor) -> Tensor:
            return self.self_attn(h, h, h, tgt_mask, cache=self_kv)

        def ca(h: Tensor) -> Tensor:
            return self.cross_attn(h, memory, memory, memory_mask, cache=cross_kv, static_kv=True)

        if self.norm_first:
            x = x + self.dropout1(sa(self.norm1(x)))
            x = x + self.dropout2(ca(self.norm2(x)))
            x = x + self.dropout3(self.ff(self.norm3(x)))
        else:
            x = self.norm1(x + self.dropout1(sa(x)))
            x = self.norm2(x + self.dropout2(ca(x)))
            x = self.norm3(x + self.dropout3(self.ff(x)))
        return x  # (B, T_tgt, d_model)
