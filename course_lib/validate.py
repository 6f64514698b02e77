"""Input checks shared by the library: a clear `ValueError` instead of a deep traceback.

Every public component calls these at its boundary, so a learner who passes the
wrong thing reads what was expected and what came, in one line.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_tensor(x: object, name: str, ndim: int | tuple[int, ...] | None = None) -> Tensor:
    """Return `x` if it is a tensor with the expected number of dimensions."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.dim() not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    return x


def check_last_dim(x: Tensor, name: str, size: int, what: str = "d_model") -> None:
    """The last axis of `x` must be the model width."""
    if x.size(-1) != size:
        raise ValueError(f"{name} must have last dimension {what}={size}, got shape {tuple(x.shape)}")


def check_nonempty(x: Tensor, name: str, axis: int = -2) -> None:
    """A sequence must hold at least one position."""
    if x.size(axis) == 0:
        raise ValueError(f"{name} is an empty sequence (shape {tuple(x.shape)}): need T >= 1")


def check_divisible(d_model: int, n_heads: int) -> None:
    if n_heads <= 0 or d_model <= 0:
        raise ValueError(f"d_model and n_heads must be positive, got {d_model} and {n_heads}")
    if d_model % n_heads != 0:
        raise ValueError(
            f"d_model={d_model} is not divisible by n_heads={n_heads}: "
            f"each head needs d_k = d_model / n_heads to be a whole number"
        )


def check_token_ids(ids: object, name: str, vocab_size: int) -> Tensor:
    """Token ids: an integer tensor (B, T), T >= 1, every id in [0, vocab_size)."""
    ids = check_tensor(ids, name, ndim=2)
    if ids.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
        raise ValueError(f"{name} must hold integer token ids (torch.long), got dtype {ids.dtype}")
    check_nonempty(ids, name, axis=1)
    if ids.numel() == 0 or _compiling():  # reading values back would split a compiled graph
        return ids
    lo, hi = (int(v) for v in torch.aminmax(ids))
    if lo < 0 or hi >= vocab_size:
        raise ValueError(
            f"{name} holds token ids outside the vocabulary: expected ids in "
            f"[0, {vocab_size - 1}], got min {lo} and max {hi}"
        )
    return ids


def _compiling() -> bool:
    """True while torch.compile traces the code (torch >= 2.3; older versions never skip)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling and is_compiling())


def check_mask(mask: object, target: tuple[int, ...], name: str = "mask") -> Tensor:
    """A boolean mask (True = may attend) that broadcasts to `target` = (B, h, T_q, T_k)."""
    mask = check_tensor(mask, name)
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a boolean tensor (True = may attend), got dtype {mask.dtype}")
    if mask.dim() > len(target):
        raise ValueError(
            f"{name} with shape {tuple(mask.shape)} has too many dimensions to broadcast "
            f"to (B, h, T_q, T_k) = {target}"
        )
    for got, want in zip(reversed(mask.shape), reversed(target)):
        if got not in (1, want):
            raise ValueError(
                f"{name} with shape {tuple(mask.shape)} does not broadcast to (B, h, T_q, T_k) = {target}"
            )
    return mask
