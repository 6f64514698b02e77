"""Scaled dot-product attention and multi-head attention (Vaswani et al., 2017, section 3.2).

Mask convention, for the whole course: a *boolean* tensor where ``True`` means
"this query may attend to this key" (as in ``torch.nn.functional.scaled_dot_product_attention``).
It must broadcast to ``(B, h, T_q, T_k)``. A query whose row is entirely ``False``
attends to nothing: its weights are all 0 and its output is the zero vector (never NaN).

Dropout here is on the attention weights, after the softmax and before they weight the values,
in training only. This is later practice, not in the paper's text (whose dropout is on sublayer
outputs and embedding sums, see layers and positional): tensor2tensor's `attention_dropout` (0 in
its transformer_base_v1 settings, 0.1 from v2 on) and the `dropout` of torch's
nn.MultiheadAttention. On the fused path torch's kernel applies it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .validate import (
    InputTypeError,
    check_divisible,
    check_dropout,
    check_features,
    check_kv_cache,
    check_mask,
    check_nonempty,
    check_qkv,
    check_tensor,
    checks_skipped,
)


def _safe_mask(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Return a mask with fully masked rows opened up (so softmax stays finite) and
    the boolean `row_ok` (..., T_q, 1) that says which rows had any key at all."""
    row_ok = mask.any(dim=-1, keepdim=True)  # (..., T_q, 1)
    return mask | ~row_ok, row_ok


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V  -- equation (1) of the paper.

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v)
    mask: boolean, True = may attend, broadcastable to (..., T_q, T_k).
    Returns (output (..., T_q, d_v), weights (..., T_q, T_k)); each row of weights sums
    to 1 over the keys (or is all 0 when the mask leaves that query no key).
    """
    check_qkv(q, k, v)  # tensors of one float dtype, matching d_k, one value per key
    check_dropout(dropout_p, "dropout_p")
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    row_ok = None
    if mask is not None:
        check_mask(mask, tuple(scores.shape))
        mask, row_ok = _safe_mask(mask)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # (..., T_q, T_k), rows sum to 1
    if row_ok is not None:
        weights = weights * row_ok  # fully masked queries attend to nothing
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., T_q, d_v)


@dataclass
class KVCache:
    """Keys and values already projected for one attention module, for incremental decoding.

    For decoder self-attention the cache grows by one position per generated token;
    for cross-attention it is filled once from the encoder output and reused.
    """

    k: Tensor | None = None  # (B, h, T_seen, d_k)
    v: Tensor | None = None  # (B, h, T_seen, d_k)

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.size(2)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new positions' keys and values (B, h, T_new, d_k); return all seen so far."""
        if self.k is not None:
            k = torch.cat([self.k, k], dim=2)  # (B, h, T_seen + T_new, d_k)
            v = torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

    The h heads' projections are stored side by side in one `nn.Linear(d_model, d_model)`
    each (`w_q, w_k, w_v`), and `w_o` mixes the concatenated heads back into d_model.

    Two paths give the same numbers:
      * the teaching path computes the weights explicitly and keeps them in
        `self.attn_weights` (B, h, T_q, T_k) for plots;
      * the fast path calls `torch.nn.functional.scaled_dot_product_attention`
        (a fused kernel where one exists) and keeps no weights.
    The teaching path runs when `need_weights=True`, when `keep_weights` is set (see
    `keep_attention_weights`), or when `fused=False`.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        fused: bool = True,
    ) -> None:
        super().__init__()
        check_divisible(d_model, n_heads)
        check_dropout(dropout)
        self.d_model, self.n_heads, self.d_k = d_model, n_heads, d_model // n_heads
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout
        self.fused = fused
        self.keep_weights = False
        self.attn_weights: Tensor | None = None  # (B, h, T_q, T_k) from the last teaching-path call

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, h, T, d_k)"""
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_k).transpose(1, 2)

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, h, T, d_k) -> (B, T, d_model): the concatenation of the heads."""
        B, h, T, d_k = x.shape
        return x.transpose(1, 2).reshape(B, T, h * d_k)

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor, cache: KVCache | None = None) -> None:
        if checks_skipped():  # inside a decoding loop that checked its inputs once
            return
        weight = self.w_q.weight  # inputs must match its dtype (outside autocast) and device
        seen: list[Tensor] = []
        for name, t in (("query", query), ("key", key), ("value", value)):
            if any(t is u for u in seen):
                continue  # the same tensor again (self-attention): already checked
            seen.append(t)
            check_tensor(t, name, ndim=3)
            check_features(t, name, self.d_model, weight)
            check_nonempty(t, name, axis=1)
        if key.shape != value.shape:
            raise ValueError(
                f"key and value must have the same shape (B, T_k, d_model), "
                f"got key {tuple(key.shape)} and value {tuple(value.shape)}"
            )
        if query.size(0) != key.size(0):
            raise ValueError(
                f"query and key must have the same batch size, got {query.size(0)} and {key.size(0)}"
            )
        if cache is not None:
            if not isinstance(cache, KVCache):
                raise InputTypeError(f"cache must be a KVCache, got {type(cache).__name__}")
            check_kv_cache(cache, query, self.n_heads, self.d_k, weight.dtype)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
        need_weights: bool = False,
        cache: KVCache | None = None,
        static_kv: bool = False,
    ) -> Tensor:
        """query (B, T_q, d_model); key, value (B, T_k, d_model), default: query (self-attention).

        mask: boolean, True = may attend, broadcastable to (B, h, T_q, T_k).
        cache: for incremental decoding. With `static_kv=False` (self-attention) the new
        keys/values are appended to it; with `static_kv=True` (cross-attention) they are
        computed from `key`/`value` on the first call and reused afterwards.
        Returns (B, T_q, d_model).
        """
        key = query if key is None else key
        value = key if value is None else value
        self._check_inputs(query, key, value, cache)

        q = self.split_heads(self.w_q(query))  # (B, h, T_q, d_k)
        k, v = self._keys_values(key, value, cache, static_kv)  # (B, h, T_k, d_k) each
        if mask is not None:
            check_mask(mask, (q.size(0), self.n_heads, q.size(2), k.size(2)))
        out = self._attend(q, k, v, mask, need_weights)  # (B, h, T_q, d_k)
        return self.w_o(self.merge_heads(out))  # (B, T_q, d_model)

    def _keys_values(
        self, key: Tensor, value: Tensor, cache: KVCache | None, static_kv: bool
    ) -> tuple[Tensor, Tensor]:
        """K W^K and V W^V split into heads, or taken from (and added to) the cache."""
        if cache is not None and static_kv and cache.k is not None:
            return cache.k, cache.v  # cross-attention: the encoder's keys/values, projected once
        k = self.split_heads(self.w_k(key))  # (B, h, T_k, d_k)
        v = self.split_heads(self.w_v(value))  # (B, h, T_k, d_k)
        return (k, v) if cache is None else cache.append(k, v)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, need_weights: bool) -> Tensor:
        """Equation (1) per head: the teaching path (weights computed and kept) or the fused kernel."""
        p = self.dropout if self.training else 0.0
        if need_weights or self.keep_weights or not self.fused:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
            self.attn_weights = weights.detach()  # (B, h, T_q, T_k), for plots
            return out
        self.attn_weights = None
        return self._fused(q, k, v, mask, p)

    @staticmethod
    def _fused(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float) -> Tensor:
        """torch's fused kernel, with the course's rule for fully masked rows."""
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        mask, row_ok = _safe_mask(mask)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return out * row_ok


@torch.no_grad()
def copy_mha_to_torch(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    """Copy our weights into torch's `nn.MultiheadAttention`, to check one against the other.

    torch stacks W^Q, W^K, W^V in one `in_proj_weight` (3 d_model, d_model) and keeps W^O in
    `out_proj`; biases likewise (both modules with bias, or both without)."""
    if (ours.w_q.bias is None) != (theirs.in_proj_bias is None):
        raise ValueError("copy_mha_to_torch: one module has biases and the other has none")
    theirs.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
    theirs.out_proj.weight.copy_(ours.w_o.weight)
    if ours.w_q.bias is not None:
        theirs.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
        theirs.out_proj.bias.copy_(ours.w_o.bias)


@contextlib.contextmanager
def keep_attention_weights(model: nn.Module) -> Iterator[list[MultiHeadAttention]]:
    """Within the block every `MultiHeadAttention` in `model` keeps its weights.

    >>> with keep_attention_weights(model) as mhas:
    ...     model(src, tgt)
    >>> mhas[0].attn_weights.shape  # (B, h, T_q, T_k)
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    mhas = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    before = [m.keep_weights for m in mhas]
    for m in mhas:
        m.keep_weights = True
    try:
        yield mhas
    finally:
        for m, b in zip(mhas, before):
            m.keep_weights = b
