"""Input checks shared by the library: a clear error instead of a deep traceback.

Every public component calls these at its boundary, so a learner who passes the
wrong thing reads what was expected and what came, in one line.

A wrong *value* (a shape, a dtype, a size out of range) raises `ValueError`. A wrong
*type* (a float where a size belongs, a list where a tensor belongs) raises
`InputTypeError`, which is a `TypeError` and also a `ValueError`, so code that
catches the library's `ValueError` keeps catching every bad input.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong type: a TypeError that `except ValueError` also catches."""


def _kind(value: object) -> str:
    return type(value).__name__


# --- loops that checked their inputs once ----------------------------------------------

_CHECKED: ContextVar[bool] = ContextVar("course_lib_inputs_checked", default=False)


@contextlib.contextmanager
def inputs_checked() -> Iterator[None]:
    """Within the block the tensor checks below return at once.

    For loops such as token-by-token decoding, which check what the caller gave once and then
    feed the model only its own outputs: one new token per step would otherwise pay for every
    layer's checks (and, on a GPU, for reading the token ids back) again and again.
    """
    token = _CHECKED.set(True)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def checks_skipped() -> bool:
    """True inside `inputs_checked()`."""
    return _CHECKED.get()


# --- plain Python numbers -----------------------------------------------------------


def check_int(
    value: object, name: str, low: int | None = None, high: int | None = None, why: str = ""
) -> int:
    """An int (not a bool, not a float) in [low, high]; `why` is added to the message."""
    if low is not None and high is not None:
        want = f"an integer {name} in [{low}, {high}]"
    elif low is not None:
        want = f"an integer {name} >= {low}"
    else:
        want = f"an integer {name}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"expected {want}{why}, got {name}={value!r} (a {_kind(value)})")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"expected {want}{why}, got {name}={value!r}")
    return value


def check_sizes(**sizes: object) -> None:
    """Every keyword is a size: an int >= 1, e.g. `check_sizes(d_model=d_model, d_ff=d_ff)`."""
    for name, value in sizes.items():
        check_int(value, name, 1)


def check_offset(offset: object, name: str = "offset") -> int:
    """A position offset (how many positions come before): an int >= 0."""
    return check_int(offset, name, 0)


def check_number(value: object, name: str, want: str = "a number") -> float:
    """A real number (not a bool, not a tensor); NaN is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be {want}, got {value!r} (a {_kind(value)})")
    if math.isnan(value):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value


def check_dropout(p: object, name: str = "dropout") -> float:
    """A dropout probability in [0, 1) (1 would drop everything)."""
    want = "a probability in [0, 1)"
    check_number(p, name, want)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be {want}, got {p!r}")
    return p


# --- tensors --------------------------------------------------------------------------


def check_tensor(
    x: object, name: str, ndim: int | tuple[int, ...] | None = None, min_ndim: int = 0
) -> Tensor:
    """Return `x` if it is a tensor with the expected number of dimensions (or at least `min_ndim`)."""
    if _CHECKED.get():
        return x
    if not isinstance(x, Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor, got {_kind(x)}")
    if x.dim() < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.dim() not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    return x


def check_last_dim(x: Tensor, name: str, size: int, what: str = "d_model") -> None:
    """The last axis of `x` must be the model width."""
    if _CHECKED.get():
        return
    if x.dim() == 0 or x.size(-1) != size:
        raise ValueError(f"{name} must have last dimension {what}={size}, got shape {tuple(x.shape)}")


def check_nonempty(x: Tensor, name: str, axis: int = -2) -> None:
    """A sequence must hold at least one position."""
    if _CHECKED.get():
        return
    if x.size(axis) == 0:
        raise ValueError(f"{name} is an empty sequence (shape {tuple(x.shape)}): need T >= 1")


def autocast_on(device: torch.device) -> bool:
    """True inside `torch.autocast` for this device type: then lower-precision inputs are expected."""
    try:
        return bool(torch.is_autocast_enabled(device.type))
    except TypeError:  # torch < 2.4 takes no device type
        return bool(torch.is_autocast_enabled() if device.type == "cuda" else torch.is_autocast_cpu_enabled())


def check_float(x: Tensor, name: str, like: Tensor | None = None, same_dtype: bool = True) -> Tensor:
    """A floating-point tensor; with `like` (a module's parameter or buffer) on the same device
    and, if `same_dtype`, of the same dtype (any float dtype is fine inside torch.autocast)."""
    if _CHECKED.get():
        return x
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor (e.g. torch.float32), got dtype {x.dtype}: "
            f"convert it with {name}.float()"
        )
    if like is None:
        return x
    if x.device != like.device:
        raise ValueError(
            f"{name} is on {x.device} but the module's parameters are on {like.device}: expected "
            f"{like.device}; move one of them, e.g. {name}.to('{like.device}') or module.to('{x.device}')"
        )
    if same_dtype and x.dtype != like.dtype and not autocast_on(x.device):
        raise ValueError(
            f"{name} has dtype {x.dtype} but the module's parameters are {like.dtype}: expected "
            f"{like.dtype}; convert the input with {name}.to({like.dtype}) or the module with "
            f"module.to({x.dtype}) (e.g. model.double() for torch.float64)"
        )
    return x


def check_features(x: object, name: str, size: int, like: Tensor, what: str = "d_model") -> Tensor:
    """The input of a layer: a floating-point tensor (..., size) matching the dtype and device
    of the layer's parameter `like`."""
    if _CHECKED.get():
        return x
    check_tensor(x, name)
    check_float(x, name, like)
    check_last_dim(x, name, size, what)
    return x


def check_qkv(q: object, k: object, v: object) -> None:
    """Queries (..., T_q, d_k), keys (..., T_k, d_k) and values (..., T_k, d_v) for attention:
    floating point, one dtype (inside torch.autocast mixed dtypes are fine), d_k >= 1."""
    if _CHECKED.get():
        return
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(t, name, ndim=(2, 3, 4))
        check_nonempty(t, name)
        check_float(t, name)
    dtypes = {q.dtype, k.dtype, v.dtype}
    if len(dtypes) > 1 and not autocast_on(q.device):
        raise ValueError(
            f"q, k and v must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}: "
            f"expected one float dtype; convert them, e.g. k.to({q.dtype})"
        )
    if q.size(-1) != k.size(-1):
        raise ValueError(
            f"q and k must share their last dimension d_k, got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if q.size(-1) == 0:
        raise ValueError(
            f"q and k have last dimension d_k = 0 (shapes {tuple(q.shape)} and {tuple(k.shape)}): "
            f"expected d_k >= 1 features per query and key"
        )
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"k and v must have the same shape up to the last axis (one value per key), "
            f"got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )


def check_divisible(d_model: int, n_heads: int) -> None:
    check_sizes(d_model=d_model, n_heads=n_heads)
    if d_model < n_heads:
        raise ValueError(
            f"d_model={d_model} is smaller than n_heads={n_heads}: each head would get "
            f"d_k = d_model // n_heads = 0 dimensions; expected d_model >= n_heads and divisible by it"
        )
    if d_model % n_heads != 0:
        raise ValueError(
            f"d_model={d_model} is not divisible by n_heads={n_heads}: "
            f"each head needs d_k = d_model / n_heads to be a whole number"
        )


# --- token ids --------------------------------------------------------------------------

ID_DTYPES = (torch.long, torch.int32)  # what torch indexing takes as indices (uint8 would be a mask)


def check_token_ids(ids: object, name: str, vocab_size: int) -> Tensor:
    """Token ids: a torch.long (or int32) tensor (B, T), T >= 1, every id in [0, vocab_size)."""
    if _CHECKED.get():
        return ids
    ids = check_tensor(ids, name, ndim=2)
    if ids.dtype not in ID_DTYPES:
        raise ValueError(
            f"{name} must hold integer token ids of dtype torch.long (torch.int32 works too), "
            f"got dtype {ids.dtype}: convert them with {name}.long()"
        )
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


def check_pad_id(pad_id: object, vocab_size: int | None = None, why: str = "") -> int:
    """The padding id: an int >= 0, and an id of the vocabulary when its size is known."""
    high = None if vocab_size is None else vocab_size - 1
    return check_int(pad_id, "pad_id", 0, high, why)


def _compiling() -> bool:
    """True while torch.compile traces the code (torch >= 2.3; older versions never skip)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling and is_compiling())


# --- masks ------------------------------------------------------------------------------


def check_bool_mask(mask: object, name: str = "mask") -> Tensor:
    """A boolean tensor (True = may attend)."""
    mask = check_tensor(mask, name)
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a boolean tensor (True = may attend), got dtype {mask.dtype}")
    return mask


def check_mask(mask: object, target: tuple[int, ...], name: str = "mask") -> Tensor:
    """A boolean mask (True = may attend) that broadcasts to `target` = (B, h, T_q, T_k)."""
    if _CHECKED.get():
        return mask
    mask = check_bool_mask(mask, name)
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


def check_masks(masks: Sequence[object]) -> list[Tensor]:
    """The masks given to `combine_masks`, None entries dropped: boolean tensors on one device
    whose shapes broadcast together."""
    out = [m for m in masks if m is not None]
    for m in out:
        if not isinstance(m, Tensor):
            raise InputTypeError(f"masks must be boolean torch.Tensors (or None), got {_kind(m)}")
        if m.dtype != torch.bool:
            raise ValueError(f"masks must be boolean (True = may attend), got dtype {m.dtype}")
    shapes = [tuple(m.shape) for m in out]
    try:
        torch.broadcast_shapes(*shapes)
    except RuntimeError:
        raise ValueError(
            f"masks with shapes {', '.join(map(str, shapes))} do not broadcast together: expected shapes "
            f"that broadcast to one (B, h, T_q, T_k), e.g. (T, T) and (B, 1, 1, T)"
        ) from None
    devices = {m.device for m in out}
    if len(devices) > 1:
        raise ValueError(f"masks must be on one device, got {', '.join(sorted(map(str, devices)))}")
    return out


# --- caches -----------------------------------------------------------------------------


def check_kv_cache(cache: Any, query: Tensor, n_heads: int, d_k: int, dtype: torch.dtype) -> None:
    """A KVCache that already holds keys must have been filled by calls like this one: the same
    batch size, heads, d_k, dtype (outside autocast) and device."""
    if _CHECKED.get():
        return
    k = getattr(cache, "k", None)
    if k is None:
        return
    held = {"batch size": k.size(0), "heads": k.size(1), "d_k": k.size(-1), "device": k.device}
    now = {"batch size": query.size(0), "heads": n_heads, "d_k": d_k, "device": query.device}
    if not autocast_on(query.device):
        held["dtype"], now["dtype"] = k.dtype, dtype
    diff = [f"{what} {held[what]} (this call: {now[what]})" for what in held if held[what] != now[what]]
    if diff:
        raise ValueError(
            f"this KVCache was filled by another run: it holds {', '.join(diff)}; expected the same "
            f"batch size, heads, d_k, dtype and device as when it was filled. Start a fresh cache for "
            f"a new batch: model.new_cache() (or KVCache())"
        )


# --- logits -----------------------------------------------------------------------------


def check_logits(logits: object, name: str = "logits") -> Tensor:
    """Scores (..., V) to sample from: floating point, V >= 1, no NaN or +inf, and in every row
    at least one finite score (-inf rules a token out)."""
    logits = check_tensor(logits, name)
    if logits.dim() == 0 or logits.size(-1) == 0:
        raise ValueError(f"{name} must have a vocabulary axis last, got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {logits.dtype}")
    if logits.numel() == 0 or _compiling() or bool(torch.isfinite(logits).all()):
        return logits  # the usual case: one read-back
    n_nan, n_pos = int(torch.isnan(logits).sum()), int(torch.isposinf(logits).sum())
    if n_nan:
        raise ValueError(
            f"{name} contain NaN ({n_nan} of {logits.numel()} entries): expected finite scores "
            f"(or -inf to rule a token out); NaN usually comes from a model whose weights or inputs hold NaN"
        )
    if n_pos:
        raise ValueError(
            f"{name} contain +inf ({n_pos} of {logits.numel()} entries): expected finite scores "
            f"(or -inf to rule a token out); softmax of +inf is NaN"
        )
    dead = torch.isneginf(logits).all(dim=-1)
    if bool(dead.any()):
        where = "" if dead.dim() == 0 else f" in row {tuple(int(i) for i in dead.nonzero()[0])}"
        raise ValueError(
            f"{name} rule out every token{where} (all -inf): expected at least one finite score per row"
        )
    return logits
