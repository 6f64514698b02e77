"""Attention without the T x T matrix: the online softmax behind FlashAttention.

Softmax needs the maximum and the sum of a whole row of scores before it can give any weight.
The online softmax (Milakov and Gimelshein, 2018, "Online normalizer calculation for softmax")
keeps, for every query, a running maximum m, a running sum l of exp(score - m) and a running,
unnormalised output acc, and corrects them with the factor exp(m_old - m_new) each time a new
block of keys raises the maximum. After the last block, acc / l is exactly softmax(scores) V.

FlashAttention (Dao, Fu, Ermon, Rudra and Re, 2022) is this loop written as one GPU kernel: blocks of
queries and keys are read into fast on-chip memory, and the (T_q, T_k) score matrix never goes to
the GPU's main memory. Rabe and Staats (2021), "Self-attention does not need O(n^2) memory", made the
same memory point. Here it is in plain torch: the arithmetic and the memory, not the speed (a Python
loop over blocks is slower than one big matmul on a CPU; the speed comes from the fused kernel).

Masks follow the course's convention (True = may attend); a query whose keys are all masked gets
the zero vector, as in `course_lib.attention.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .validate import InputTypeError, check_int, check_mask, check_qkv


def online_softmax_update(
    m: Tensor, l: Tensor, acc: Tensor, scores: Tensor, v: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Fold one block of keys into the running statistics of every query.

    m (..., T_q, 1): running maximum of the scores seen so far (-inf before any key);
    l (..., T_q, 1): running sum of exp(score - m);
    acc (..., T_q, d_v): running sum of exp(score - m) * value;
    scores (..., T_q, B_k): this block's scaled scores, -inf where masked; v (..., B_k, d_v).

        m_new = max(m, max_j s_j),   c = exp(m - m_new)
        l_new = c * l + sum_j exp(s_j - m_new),   acc_new = c * acc + sum_j exp(s_j - m_new) v_j

    A row that has seen only -inf keeps m = -inf, l = 0, acc = 0 (never NaN)."""
    m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))  # (..., T_q, 1)
    shift = m_new.masked_fill(torch.isneginf(m_new), 0.0)  # subtract 0 where nothing is seen yet
    correction = torch.exp(m - shift)  # (..., T_q, 1); exp(-inf) = 0 for an empty past
    p = torch.exp(scores - shift)  # (..., T_q, B_k); masked keys give exactly 0
    l_new = correction * l + p.sum(dim=-1, keepdim=True)
    acc_new = correction * acc + p @ v  # (..., T_q, d_v)
    return m_new, l_new, acc_new


def online_softmax_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    block_q: int = 64,
    block_k: int = 64,
    causal: bool = False,
) -> Tensor:
    """softmax(Q K^T / sqrt(d_k)) V computed tile by tile: (block_q, block_k) scores at a time.

    q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v); mask boolean, True = may attend,
    broadcastable to (..., T_q, T_k). `causal=True` adds the causal mask (query i sees keys
    j <= i + T_k - T_q), made tile by tile from indices, so no (T_q, T_k) mask is ever built
    (FlashAttention does the same); tiles wholly above the diagonal are skipped. Returns the output (..., T_q, d_v) and no weights: they
    never exist as one matrix. Equal to equation (1) of the paper up to round-off."""
    check_qkv(q, k, v)
    check_int(block_q, "block_q", 1)
    check_int(block_k, "block_k", 1)
    T_q, T_k = q.size(-2), k.size(-2)
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    if not isinstance(causal, bool):
        raise InputTypeError(f"causal must be True or False, got {causal!r}")
    if mask is not None:
        check_mask(mask, (*batch, T_q, T_k))
        while mask.dim() < 2:
            mask = mask[None]
        mask = mask.expand(*mask.shape[:-2], T_q, T_k)  # slicing needs real rows and columns
    scale = 1.0 / math.sqrt(q.size(-1))
    outs = []
    for i in range(0, T_q, block_q):
        q_i = q[..., i : i + block_q, :] * scale  # (..., b_q, d_k)
        rows = q_i.size(-2)
        m = q.new_full((*batch, rows, 1), float("-inf"))
        l = q.new_zeros((*batch, rows, 1))
        acc = q.new_zeros((*batch, rows, v.size(-1)))
        for j in range(0, T_k, block_k):
            if causal and j > i + rows - 1 + T_k - T_q:
                break  # this tile and every later one lie above the diagonal: nothing to see
            s = q_i @ k[..., j : j + block_k, :].transpose(-2, -1)  # (..., b_q, b_k): one tile
            if mask is not None:
                s = s.masked_fill(~mask[..., i : i + block_q, j : j + block_k], float("-inf"))
            if causal:
                qpos = torch.arange(i, i + rows, device=q.device)[:, None] + (T_k - T_q)
                kpos = torch.arange(j, j + s.size(-1), device=q.device)[None, :]
                s = s.masked_fill(kpos > qpos, float("-inf"))  # (b_q, b_k) from indices
            m, l, acc = online_softmax_update(m, l, acc, s, v[..., j : j + block_k, :])
        outs.append(acc / l.masked_fill(l == 0, 1.0))  # a row with no key: acc = 0, output 0
    return torch.cat(outs, dim=-2)  # (..., T_q, d_v)
