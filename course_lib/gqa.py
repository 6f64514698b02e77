"""Multi-query and grouped-query attention: fewer key/value heads, a smaller KV cache.

Multi-query attention (Shazeer, 2019, "Fast Transformer Decoding: One Write-Head is All You Need")
keeps h query heads but only ONE key head and one value head, shared by all of them. Grouped-query
attention (Ainslie et al., 2023, "GQA: Training Generalized Multi-Query Transformer Models from
Multi-Head Checkpoints") sits between: `n_kv_heads` key/value heads, each shared by a group of
h / n_kv_heads query heads. n_kv_heads = h is ordinary multi-head attention, n_kv_heads = 1 is MQA.

What shrinks is what decoding keeps: the KV cache holds n_kv_heads heads instead of h, so

    bytes per token = 2 (keys and values) * n_layers * n_kv_heads * d_k * bytes per element.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import KVCache, MultiHeadAttention, scaled_dot_product_attention
from .validate import (
    InputTypeError,
    check_features,
    check_int,
    check_kv_cache,
    check_mask,
    check_nonempty,
    check_tensor,
)


def kv_cache_bytes_per_token(n_layers: int, n_kv_heads: int, d_k: int, bytes_per_element: int = 2) -> int:
    """2 * n_layers * n_kv_heads * d_k * bytes_per_element: one key and one value vector per
    key/value head and layer (bytes_per_element: 2 for float16/bfloat16, 4 for float32)."""
    check_int(n_layers, "n_layers", 1)
    check_int(n_kv_heads, "n_kv_heads", 1)
    check_int(d_k, "d_k", 1)
    check_int(bytes_per_element, "bytes_per_element", 1)
    return 2 * n_layers * n_kv_heads * d_k * bytes_per_element


def cache_bytes(cache: KVCache | list[KVCache]) -> int:
    """The bytes the keys and values of one KVCache (or a model's list of them) hold."""
    caches = cache if isinstance(cache, list) else [cache]
    total = 0
    for c in caches:
        if not isinstance(c, KVCache):
            raise InputTypeError(f"expected a KVCache or a list of them, got {type(c).__name__}")
        for t in (c.k, c.v):
            if t is not None:
                total += t.numel() * t.element_size()
    return total


class GroupedQueryAttention(MultiHeadAttention):
    """MultiHeadAttention with `n_kv_heads` key/value heads shared by groups of query heads.

    w_q and w_o are as in MultiHeadAttention (d_model -> d_model); w_k and w_v project to
    n_kv_heads * d_k only. Query head i reads key/value head i // (n_heads // n_kv_heads).
    n_kv_heads = n_heads is multi-head attention; n_kv_heads = 1 is multi-query attention.
    The KVCache holds (B, n_kv_heads, T, d_k): the saving is there."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        fused: bool = True,
    ) -> None:
        super().__init__(d_model, n_heads, dropout=dropout, bias=bias, fused=fused)
        check_int(n_kv_heads, "n_kv_heads", 1, n_heads, " (key/value heads, at most n_heads)")
        if n_heads % n_kv_heads != 0:
            raise ValueError(
                f"n_heads={n_heads} is not divisible by n_kv_heads={n_kv_heads}: each key/value head "
                f"must serve a whole group of query heads; expected a divisor of {n_heads}"
            )
        self.n_kv_heads = n_kv_heads
        self.group = n_heads // n_kv_heads  # query heads per key/value head
        self.w_k = nn.Linear(d_model, n_kv_heads * self.d_k, bias=bias)
        self.w_v = nn.Linear(d_model, n_kv_heads * self.d_k, bias=bias)

    @classmethod
    def from_mha(cls, mha: MultiHeadAttention, n_kv_heads: int) -> GroupedQueryAttention:
        """A GQA module from a trained MultiHeadAttention, as Ainslie et al. (2023) convert a
        checkpoint: w_q and w_o copied, each group's key (and value) heads mean-pooled into one.
        With n_kv_heads = n_heads this is an exact copy."""
        if not isinstance(mha, MultiHeadAttention):
            raise InputTypeError(f"mha must be a MultiHeadAttention, got {type(mha).__name__}")
        bias = mha.w_q.bias is not None
        gqa = cls(mha.d_model, mha.n_heads, n_kv_heads, dropout=mha.dropout, bias=bias, fused=mha.fused)
        gqa = gqa.to(dtype=mha.w_q.weight.dtype, device=mha.w_q.weight.device)
        h, g, d_k = mha.n_heads, gqa.group, mha.d_k
        with torch.no_grad():
            for name in ("w_q", "w_o"):
                getattr(gqa, name).load_state_dict(getattr(mha, name).state_dict())
            for name in ("w_k", "w_v"):
                src, dst = getattr(mha, name), getattr(gqa, name)
                w = src.weight.view(h // g, g, d_k, -1).mean(dim=1)  # (n_kv, d_k, d_model)
                dst.weight.copy_(w.reshape(-1, src.weight.size(1)))
                if bias:
                    dst.bias.copy_(src.bias.view(h // g, g, d_k).mean(dim=1).reshape(-1))
        return gqa

    def _check(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        """Three float tensors (B, T, d_model) of the module's dtype and device, T >= 1."""
        for name, t in (("query", query), ("key", key), ("value", value)):
            check_tensor(t, name, ndim=3)
            check_features(t, name, self.d_model, self.w_q.weight)
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

    def _split(self, x: Tensor, heads: int) -> Tensor:
        """(B, T, heads * d_k) -> (B, heads, T, d_k)"""
        B, T, _ = x.shape
        return x.view(B, T, heads, self.d_k).transpose(1, 2)

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
        """As MultiHeadAttention.forward; the cache holds n_kv_heads heads. Returns (B, T_q, d_model)."""
        key = query if key is None else key
        value = key if value is None else value
        if cache is not None and not isinstance(cache, KVCache):
            raise InputTypeError(f"cache must be a KVCache, got {type(cache).__name__}")
        self._check(query, key, value)
        if cache is not None:
            check_kv_cache(cache, query, self.n_kv_heads, self.d_k, self.w_q.weight.dtype)

        q = self._split(self.w_q(query), self.n_heads)  # (B, h, T_q, d_k)
        if cache is not None and static_kv and cache.k is not None:
            k, v = cache.k, cache.v
        else:
            k = self._split(self.w_k(key), self.n_kv_heads)  # (B, n_kv, T_k, d_k)
            v = self._split(self.w_v(value), self.n_kv_heads)
            if cache is not None:
                if not static_kv and cache.k is not None:
                    k = torch.cat([cache.k, k], dim=2)  # (B, n_kv, T_seen + T_new, d_k)
                    v = torch.cat([cache.v, v], dim=2)
                cache.k, cache.v = k, v
        # every key/value head serves `group` query heads: (B, n_kv, T_k, d_k) -> (B, h, T_k, d_k)
        k = k.repeat_interleave(self.group, dim=1)
        v = v.repeat_interleave(self.group, dim=1)

        if mask is not None:
            check_mask(mask, (q.size(0), self.n_heads, q.size(2), k.size(2)))
        p = self.dropout if self.training else 0.0
        if need_weights or self.keep_weights or not self.fused:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
            self.attn_weights = weights.detach()
        else:
            self.attn_weights = None
            if mask is None:
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
            else:
                row_ok = mask.any(dim=-1, keepdim=True)  # queries with at least one key
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~row_ok, dropout_p=p)
                out = out * row_ok  # the course's rule: a query with no key gets 0
        return self.w_o(self.merge_heads(out))  # (B, T_q, d_model)
