"""Linear attention (Katharopoulos, Vyas, Pappas and Fleuret, 2020, "Transformers are RNNs").

Replace the softmax's exp(q . k) by a product of features phi(q) . phi(k), with phi(x) = elu(x) + 1
(positive, so the weights stay positive). Then the causal output of query i is

    out_i = phi(q_i)^T S_i / phi(q_i)^T z_i,   S_i = sum_{j<=i} phi(k_j) v_j^T,   z_i = sum_{j<=i} phi(k_j)

(equations (8)-(9) of the paper, causal, as in its section 3.3). Computed all at once (the parallel
form, for training) it is (phi(Q) phi(K)^T, lower triangle) V, row-normalised: still T x T. Computed
token by token (the recurrent form, for generation) it is an RNN whose state is the fixed-size pair
(S, z): (d_k, d_v) + (d_k,) numbers per head, however many tokens came before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .validate import InputTypeError, check_divisible, check_features, check_nonempty, check_qkv, check_tensor


def elu_feature_map(x: Tensor) -> Tensor:
    """phi(x) = elu(x) + 1 > 0, the feature map of Katharopoulos et al. (2020)."""
    return F.elu(x) + 1.0


def _check_heads(q: Tensor, k: Tensor, v: Tensor) -> None:
    """(B, h, T, d) queries, keys and values of one length (self-attention)."""
    check_qkv(q, k, v)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (B, h, T, d), got {tuple(t.shape)}")
    if q.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"q and k must have the same (B, h, T) for causal self-attention, "
            f"got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )


def linear_attention_parallel(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Causal linear attention, all positions at once: q, k (B, h, T, d_k), v (B, h, T, d_v)."""
    _check_heads(q, k, v)
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    T = q.size(-2)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    a = (fq @ fk.transpose(-2, -1)).masked_fill(~causal, 0.0)  # (B, h, T, T), no softmax
    return (a @ v) / a.sum(dim=-1, keepdim=True)  # (B, h, T, d_v)


@dataclass
class LinearAttentionState:
    """The RNN state of linear attention: S = sum phi(k) v^T (B, h, d_k, d_v), z = sum phi(k) (B, h, d_k)."""

    S: Tensor
    z: Tensor

    @classmethod
    def zeros(cls, B: int, h: int, d_k: int, d_v: int, like: Tensor) -> LinearAttentionState:
        return cls(like.new_zeros(B, h, d_k, d_v), like.new_zeros(B, h, d_k))

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.S, self.z))


def linear_attention_step(
    q_t: Tensor, k_t: Tensor, v_t: Tensor, state: LinearAttentionState
) -> tuple[Tensor, LinearAttentionState]:
    """One token: q_t, k_t (B, h, d_k), v_t (B, h, d_v) -> out_t (B, h, d_v) and the new state."""
    if not isinstance(state, LinearAttentionState):
        raise InputTypeError(f"state must be a LinearAttentionState, got {type(state).__name__}")
    fq, fk = elu_feature_map(q_t), elu_feature_map(k_t)  # (B, h, d_k)
    S = state.S + fk[..., :, None] * v_t[..., None, :]  # S_i = S_{i-1} + phi(k_i) v_i^T
    z = state.z + fk  # z_i = z_{i-1} + phi(k_i)
    num = (fq[..., None, :] @ S).squeeze(-2)  # (B, h, d_v): phi(q_i)^T S_i
    den = (fq * z).sum(dim=-1, keepdim=True)  # (B, h, 1): phi(q_i)^T z_i
    return num / den, LinearAttentionState(S, z)


def linear_attention_recurrent(
    q: Tensor, k: Tensor, v: Tensor, state: LinearAttentionState | None = None
) -> tuple[Tensor, LinearAttentionState]:
    """The same function as `linear_attention_parallel`, one token at a time: returns the outputs
    (B, h, T, d_v) and the state after the last token (pass it back in to continue)."""
    _check_heads(q, k, v)
    B, h, T, d_k = q.shape
    if state is None:
        state = LinearAttentionState.zeros(B, h, d_k, v.size(-1), q)
    outs = []
    for t in range(T):
        out, state = linear_attention_step(q[:, :, t], k[:, :, t], v[:, :, t], state)
        outs.append(out)
    return torch.stack(outs, dim=2), state  # (B, h, T, d_v)


class LinearAttention(nn.Module):
    """Multi-head causal linear attention with the projections of MultiHeadAttention
    (w_q, w_k, w_v, w_o). x (B, T, d_model) -> (B, T, d_model)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        check_divisible(d_model, n_heads)
        self.d_model, self.n_heads, self.d_k = d_model, n_heads, d_model // n_heads
        self.w_q, self.w_k, self.w_v, self.w_o = (nn.Linear(d_model, d_model) for _ in range(4))

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_tensor(x, "x", ndim=3)
        check_features(x, "x", self.d_model, self.w_q.weight)
        check_nonempty(x, "x", axis=1)
        B, T, _ = x.shape
        return tuple(
            w(x).view(B, T, self.n_heads, self.d_k).transpose(1, 2) for w in (self.w_q, self.w_k, self.w_v)
        )

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._heads(x)  # (B, h, T, d_k)
        out = linear_attention_parallel(q, k, v)
        return self.w_o(out.transpose(1, 2).reshape(x.shape))

    def recurrent(
        self, x: Tensor, state: LinearAttentionState | None = None
    ) -> tuple[Tensor, LinearAttentionState]:
        """The same outputs token by token, with the state to continue from."""
        q, k, v = self._heads(x)
        out, state = linear_attention_recurrent(q, k, v, state)
        return self.w_o(out.transpose(1, 2).reshape(x.shape)), state
