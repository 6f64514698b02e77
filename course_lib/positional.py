"""Positional information (section 3.5): sinusoidal, learned, and rotary (RoPE).

PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

The encoding modules apply dropout to the sum of the (scaled) token embeddings and the
positions, for the encoder and decoder alike: the paper's own site (section 5.4,
P_drop = 0.1 for the base model).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .validate import (
    check_dropout,
    check_float,
    check_last_dim,
    check_offset,
    check_sizes,
    check_tensor,
)


def _check_even(d_model: int) -> None:
    check_sizes(d_model=d_model)
    if d_model % 2:
        raise ValueError(f"positional encodings pair up dimensions: d_model must be even, got {d_model}")


def frequencies(d_model: int, base: float = 10000.0) -> Tensor:
    """The d_model/2 angular frequencies w_i = 1 / base^(2i / d_model), i = 0 .. d_model/2 - 1."""
    _check_even(d_model)
    return base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)


def sinusoidal_encoding(max_len: int, d_model: int, base: float = 10000.0) -> Tensor:
    """(max_len, d_model) table of the paper's encoding; even columns sin, odd columns cos."""
    check_sizes(max_len=max_len)
    w = frequencies(d_model, base)  # (d_model/2,)
    angles = torch.arange(max_len, dtype=torch.float64)[:, None] * w  # (max_len, d_model/2)
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe.float()


def shift_matrix(k: int, d_model: int, base: float = 10000.0) -> Tensor:
    """The fixed (d_model, d_model) matrix M_k with PE(pos + k) = M_k @ PE(pos) for every pos.

    It is block diagonal: for each frequency w a 2x2 rotation by the angle w*k acting on
    the pair (sin, cos). It depends on the offset k only, never on pos.
    """
    w = frequencies(d_model, base) * k
    c, s = torch.cos(w), torch.sin(w)
    m = torch.zeros(d_model, d_model, dtype=torch.float64)
    i = torch.arange(0, d_model, 2)
    m[i, i], m[i, i + 1] = c, s  # sin(a + b) = sin a cos b + cos a sin b
    m[i + 1, i], m[i + 1, i + 1] = -s, c  # cos(a + b) = cos a cos b - sin a sin b
    return m


class _PositionBase(nn.Module):
    def __init__(self, d_model: int, max_len: int, dropout: float) -> None:
        super().__init__()
        check_sizes(d_model=d_model, max_len=max_len)
        check_dropout(dropout)
        self.d_model, self.max_len = d_model, max_len
        self.dropout = nn.Dropout(dropout)

    def _table(self) -> Tensor:
        """The stored positions: x must be on their device (and of their dtype, if trained)."""
        raise NotImplementedError

    def _check(self, x: Tensor, offset: int) -> int:
        check_tensor(x, "x", ndim=3)
        table = self._table()
        check_float(x, "x", table, same_dtype=isinstance(table, nn.Parameter))
        check_last_dim(x, "x", self.d_model)
        check_offset(offset)
        T = x.size(1)
        if offset + T > self.max_len:
            raise ValueError(
                f"sequence too long for the positional encoding: positions up to "
                f"{offset + T - 1} requested, max_len={self.max_len}"
            )
        return T


class SinusoidalPositionalEncoding(_PositionBase):
    """x (B, T, d_model) -> dropout(x + PE[offset : offset + T]); no parameters."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0) -> None:
        super().__init__(d_model, max_len, dropout)
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), persistent=False)

    def _table(self) -> Tensor:
        return self.pe  # a buffer, cast to the dtype of x

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        T = self._check(x, offset)
        return self.dropout(x + self.pe[offset : offset + T].to(x.dtype))  # (B, T, d_model)


class LearnedPositionalEncoding(_PositionBase):
    """One trained vector per position (the paper's alternative, Table 3 row E)."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0) -> None:
        super().__init__(d_model, max_len, dropout)
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def _table(self) -> Tensor:
        return self.embedding.weight

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        T = self._check(x, offset)
        pos = torch.arange(offset, offset + T, device=x.device)
        return self.dropout(x + self.embedding(pos))  # (B, T, d_model)


def apply_rope(x: Tensor, positions: Tensor | None = None, base: float = 10000.0, offset: int = 0) -> Tensor:
    """Rotary position embedding (Su et al., 2021): rotate each pair (x_2i, x_2i+1) by pos * w_i.

    x: (..., T, d) with d even; positions: (T,), default offset..offset+T-1. Applied to queries
    and keys (not values), it makes q_m . k_n depend on the offset m - n only.
    """
    check_tensor(x, "x", min_ndim=2)
    check_float(x, "x")
    d = x.size(-1)
    _check_even(d)
    T = x.size(-2)
    positions = _positions(positions, T, offset, x.device)  # (T,)
    angles = positions.to(torch.float64)[:, None] * frequencies(d, base).to(x.device)  # (T, d/2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out


def _positions(positions: object, T: int, offset: int, device: torch.device) -> Tensor:
    """RoPE's positions: the given (T,) tensor, or offset .. offset + T - 1 (offset >= 0)."""
    if positions is None:
        return torch.arange(check_offset(offset), offset + T, device=device)
    if offset != 0:
        raise ValueError(f"give positions or an offset, not both (got offset={offset!r})")
    check_tensor(positions, "positions", ndim=1)
    if positions.shape != (T,) or positions.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise ValueError(
            f"positions must be a real tensor of shape (T,) = ({T},), one per position of x; "
            f"got shape {tuple(positions.shape)} and dtype {positions.dtype}"
        )
    return positions
