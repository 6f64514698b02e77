"""One head at a time: the per-head matrices hidden inside `MultiHeadAttention` (section 3.2.2).

`MultiHeadAttention` stores the h heads side by side in four d_model x d_model `nn.Linear`
layers. Written as ``x @ W`` (the paper's convention; ``nn.Linear`` keeps ``weight = W.T``):

  W_Q^i, W_K^i, W_V^i = columns  i*d_k : (i+1)*d_k  of W_Q, W_K, W_V   (d_model, d_k)
  W_O^i               = rows     i*d_k : (i+1)*d_k  of W_O              (d_k, d_model)

so that ``Concat(head_1, ..., head_h) W_O = sum_i head_i W_O^i``: each head writes into the whole
model dimension through its own slice of W_O. The per-head products

  QK circuit  W_Q^i (W_K^i)^T   (d_model, d_model), rank <= d_k: what head i compares,
  OV circuit  W_V^i W_O^i       (d_model, d_model), rank <= d_k: what head i writes,

are the "low-rank" view of a head ("value down" W_V^i, then "value up" W_O^i).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .attention import MultiHeadAttention
from .validate import check_int, check_last_dim, check_tensor


def head_slice(mha: MultiHeadAttention, i: int) -> slice:
    """The d_k coordinates of head i inside d_model."""
    if not isinstance(mha, MultiHeadAttention):
        raise ValueError(f"expected a course_lib MultiHeadAttention, got {type(mha).__name__}")
    check_int(i, "head index", 0, mha.n_heads - 1)
    return slice(i * mha.d_k, (i + 1) * mha.d_k)


def head_matrices(mha: MultiHeadAttention, i: int) -> dict[str, Tensor]:
    """Head i's four matrices in ``x @ W`` form: w_q, w_k, w_v (d_model, d_k) and w_o (d_k, d_model)."""
    s = head_slice(mha, i)
    return {
        "w_q": mha.w_q.weight.T[:, s],  # (d_model, d_k)
        "w_k": mha.w_k.weight.T[:, s],  # (d_model, d_k)
        "w_v": mha.w_v.weight.T[:, s],  # (d_model, d_k)  "value down"
        "w_o": mha.w_o.weight.T[s, :],  # (d_k, d_model)  "value up"
    }


def qk_circuit(mha: MultiHeadAttention, i: int) -> Tensor:
    """W_Q^i (W_K^i)^T, (d_model, d_model) of rank <= d_k: score = x_q W x_k^T / sqrt(d_k) (no bias)."""
    m = head_matrices(mha, i)
    return m["w_q"] @ m["w_k"].T


def ov_circuit(mha: MultiHeadAttention, i: int) -> Tensor:
    """W_V^i W_O^i, (d_model, d_model) of rank <= d_k: what head i adds for each unit of attention."""
    m = head_matrices(mha, i)
    return m["w_v"] @ m["w_o"]


def head_contributions(mha: MultiHeadAttention, x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Self-attention split by head: (B, T, d_model) -> (B, h, T, d_model).

    Entry i is A^i (x W_V^i + b_V^i) W_O^i, what head i writes into the model dimension;
    summing over the heads and adding W_O's bias gives ``mha(x, mask=mask)``.
    """
    check_tensor(x, "x", ndim=3)
    check_last_dim(x, "x", mha.d_model)
    with torch.no_grad():
        mha(x, mask=mask, need_weights=True)
    weights = mha.attn_weights  # (B, h, T, T)
    v = mha.split_heads(mha.w_v(x))  # (B, h, T, d_k)
    w_o = mha.w_o.weight.T.reshape(mha.n_heads, mha.d_k, mha.d_model)  # (h, d_k, d_model)
    return (weights @ v) @ w_o  # (B, h, T, d_k) @ (h, d_k, d_model) -> (B, h, T, d_model)


__all__ = [
    "head_contributions",
    "head_matrices",
    "head_slice",
    "ov_circuit",
    "qk_circuit",
]
