"""Retention (Sun et al., 2023, "Retentive Network: A Successor to Transformer for Large Language
Models"): one function, three ways to compute it.

For one head with decay 0 < gamma < 1, queries Q, keys K (T, d_k) and values V (T, d_v):

  parallel   (training):    Retention(X) = (Q K^T * D) V,   D_nm = gamma^(n - m) if n >= m else 0
  recurrent  (generation):  S_n = gamma S_{n-1} + k_n^T v_n,   out_n = q_n S_n   (S is d_k x d_v)
  chunkwise  (long inputs): inside a chunk of B tokens, the parallel form; across chunks the state
                            R_i = K_[i]^T (V_[i] * zeta) + gamma^B R_{i-1},  zeta_j = gamma^(B - j - 1),
                            out_[i] = (Q_[i] K_[i]^T * D) V_[i] + (Q_[i] R_{i-1}) * xi,  xi_j = gamma^(j + 1)

(equations (5)-(7) of the paper, without the rotation Theta, which is a relative position encoding
applied to Q and K beforehand, like RoPE: the three forms agree for any Q and K). Each head has its
own decay, gamma = 1 - 2^(-5 - arange(h)): head 0 forgets fastest (a memory of about 32 tokens),
later heads remember longer. Multi-scale retention (`MultiScaleRetention`) adds the paper's per-head
GroupNorm and swish gate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .validate import (
    check_divisible,
    check_features,
    check_int,
    check_nonempty,
    check_qkv,
    check_tensor,
)


def retention_gammas(n_heads: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """gamma_i = 1 - 2^(-5 - i), i = 0 .. h - 1: the decay of each head (Sun et al., 2023)."""
    check_int(n_heads, "n_heads", 1)
    return 1.0 - 2.0 ** (-5.0 - torch.arange(n_heads, dtype=dtype))


def _check(q: Tensor, k: Tensor, v: Tensor, gammas: Tensor) -> Tensor:
    """q, k (B, h, T, d_k), v (B, h, T, d_v), gammas (h,) in (0, 1]; returns gammas in q's dtype."""
    check_qkv(q, k, v)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (B, h, T, d), got {tuple(t.shape)}")
    if q.shape[:-1] != k.shape[:-1]:
        raise ValueError(f"q and k must have the same (B, h, T), got {tuple(q.shape)} and {tuple(k.shape)}")
    check_tensor(gammas, "gammas", ndim=1)
    if gammas.numel() != q.size(1):
        raise ValueError(
            f"gammas must hold one decay per head: expected {q.size(1)} values, got {gammas.numel()}"
        )
    if not gammas.is_floating_point() or not bool(((gammas > 0) & (gammas <= 1)).all()):
        raise ValueError(f"gammas must be decays in (0, 1], got {gammas.tolist()}")
    return gammas.to(q.dtype)


def decay_matrix(T: int, gammas: Tensor) -> Tensor:
    """D (h, T, T): D[i, n, m] = gamma_i^(n - m) for n >= m, else 0 (causal and decaying)."""
    check_int(T, "T", 1)
    n = torch.arange(T, device=gammas.device)
    diff = (n[:, None] - n[None, :]).to(gammas.dtype)  # (T, T): n - m
    D = gammas[:, None, None] ** diff.clamp(min=0)  # (h, T, T)
    return D * (diff >= 0)


def retention_parallel(q: Tensor, k: Tensor, v: Tensor, gammas: Tensor) -> Tensor:
    """(Q K^T * D) V for every head: q, k (B, h, T, d_k), v (B, h, T, d_v) -> (B, h, T, d_v)."""
    gammas = _check(q, k, v, gammas)
    D = decay_matrix(q.size(-2), gammas)  # (h, T, T)
    return ((q @ k.transpose(-2, -1)) * D) @ v


def retention_step(
    q_t: Tensor, k_t: Tensor, v_t: Tensor, state: Tensor, gammas: Tensor
) -> tuple[Tensor, Tensor]:
    """One token: q_t, k_t (B, h, d_k), v_t (B, h, d_v), state S (B, h, d_k, d_v), gammas (h,)
    -> out_t (B, h, d_v) and the new state S_n = gamma S_{n-1} + k_n^T v_n."""
    S = gammas[:, None, None] * state + k_t[..., :, None] * v_t[..., None, :]  # (B, h, d_k, d_v)
    return (q_t[..., None, :] @ S).squeeze(-2), S


def _initial_state(q: Tensor, v: Tensor, state: Tensor | None) -> Tensor:
    B, h, _, d_k = q.shape
    want = (B, h, d_k, v.size(-1))
    if state is None:
        return q.new_zeros(want)
    check_tensor(state, "state", ndim=4)
    if tuple(state.shape) != want:
        raise ValueError(f"state must have shape (B, h, d_k, d_v) = {want}, got {tuple(state.shape)}")
    return state


def retention_recurrent(
    q: Tensor, k: Tensor, v: Tensor, gammas: Tensor, state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The recurrent form, token by token: returns the outputs (B, h, T, d_v) and the state
    S (B, h, d_k, d_v) after the last token (pass it back to continue)."""
    gammas = _check(q, k, v, gammas)
    S = _initial_state(q, v, state)
    outs = []
    for t in range(q.size(2)):
        out, S = retention_step(q[:, :, t], k[:, :, t], v[:, :, t], S, gammas)
        outs.append(out)
    return torch.stack(outs, dim=2), S


def retention_chunkwise(
    q: Tensor, k: Tensor, v: Tensor, gammas: Tensor, chunk_size: int, state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The chunkwise recurrent form: parallel inside chunks of `chunk_size` tokens, recurrent across
    them (the last chunk may be shorter). Returns the outputs (B, h, T, d_v) and the final state."""
    gammas = _check(q, k, v, gammas)
    check_int(chunk_size, "chunk_size", 1)
    R = _initial_state(q, v, state)  # (B, h, d_k, d_v): everything before this chunk
    g = gammas[:, None]  # (h, 1)
    outs = []
    for start in range(0, q.size(2), chunk_size):
        q_i, k_i, v_i = (t[:, :, start : start + chunk_size] for t in (q, k, v))
        n = q_i.size(2)  # this chunk's length
        j = torch.arange(n, device=q.device, dtype=q.dtype)
        inner = ((q_i @ k_i.transpose(-2, -1)) * decay_matrix(n, gammas)) @ v_i  # within the chunk
        xi = (g ** (j + 1))[..., None]  # (h, n, 1): how far query j is from the chunk's start
        cross = (q_i @ R) * xi  # what the earlier chunks contribute
        outs.append(inner + cross)
        zeta = (g ** (n - j - 1))[..., None]  # (h, n, 1): decay from token j to the chunk's end
        R = k_i.transpose(-2, -1) @ (v_i * zeta) + (gammas**n)[:, None, None] * R
    return torch.cat(outs, dim=2), R


class MultiScaleRetention(nn.Module):
    """Multi-scale retention (Sun et al., 2023, section 2.2), one decay per head:

        head_i = Retention(X, gamma_i),  Y = GroupNorm_h(Concat(head_1, ..., head_h)),
        MSR(X) = (swish(X W_G) * Y) W_O

    Q = X W_Q, K = X W_K / sqrt(d_k), V = X W_V (the paper's key scaling; its rotation Theta and its
    wider values, d_v = 2 d_k, are left out). x (B, T, d_model) -> (B, T, d_model). The GroupNorm
    normalises each head's output per position, which makes the three forms' different scalings
    irrelevant and keeps the values in range."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        check_divisible(d_model, n_heads)
        self.d_model, self.n_heads, self.d_k = d_model, n_heads, d_model // n_heads
        self.w_q, self.w_k, self.w_v, self.w_g, self.w_o = (
            nn.Linear(d_model, d_model, bias=False) for _ in range(5)
        )
        self.norm = nn.GroupNorm(n_heads, d_model)
        self.register_buffer("gammas", retention_gammas(n_heads, torch.float32), persistent=False)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_tensor(x, "x", ndim=3)
        check_features(x, "x", self.d_model, self.w_q.weight)
        check_nonempty(x, "x", axis=1)
        B, T, _ = x.shape
        q, k, v = (
            w(x).view(B, T, self.n_heads, self.d_k).transpose(1, 2) for w in (self.w_q, self.w_k, self.w_v)
        )
        return q, k / self.d_k**0.5, v  # (B, h, T, d_k)

    def _out(self, x: Tensor, heads: Tensor) -> Tensor:
        B, T, _ = x.shape
        y = heads.transpose(1, 2).reshape(B * T, self.d_model)  # (B*T, d_model): heads side by side
        y = self.norm(y).view(B, T, self.d_model)  # GroupNorm: one group per head
        return self.w_o(F.silu(self.w_g(x)) * y)  # swish gate, then W_O

    def new_state(self, batch: int) -> Tensor:
        """The empty recurrent state (B, h, d_k, d_k)."""
        return self.w_q.weight.new_zeros(batch, self.n_heads, self.d_k, self.d_k)

    def forward(
        self, x: Tensor, mode: str = "parallel", state: Tensor | None = None, chunk_size: int = 64
    ) -> Tensor | tuple[Tensor, Tensor]:
        """mode "parallel" returns (B, T, d_model); "recurrent" and "chunkwise" also return the state
        (B, h, d_k, d_k) after the last token, to continue from (start with `new_state`)."""
        q, k, v = self._heads(x)
        g = self.gammas.to(q.dtype)
        if mode == "parallel":
            if state is not None:
                raise ValueError(
                    "mode='parallel' starts from nothing; pass state only with 'recurrent' or 'chunkwise'"
                )
            return self._out(x, retention_parallel(q, k, v, g))
        if mode == "recurrent":
            heads, S = retention_recurrent(q, k, v, g, state)
        elif mode == "chunkwise":
            heads, S = retention_chunkwise(q, k, v, g, chunk_size, state)
        else:
            raise ValueError(f"mode must be 'parallel', 'recurrent' or 'chunkwise', got {mode!r}")
        return self._out(x, heads), S
