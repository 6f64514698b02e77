"""Checkers for lesson 02, "Tokens, embeddings, Q/K/V": a stable softmax, scaled dot-product attention.

References are torch's own `softmax` and `scaled_dot_product_attention`, on fresh random
inputs of several shapes (T_q != T_k and d_v != d_k, so a swapped axis cannot pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attention import scaled_dot_product_attention
from . import CheckResult, checker, compare, fresh_generator, run_trials

D = torch.float64


def _shape(g: torch.Generator, ndim: int, last: int | None = None) -> tuple[int, ...]:
    """A random shape whose last two axes differ: (..., T_q, T_k)."""
    sizes = [int(s) for s in torch.randint(2, 5, (ndim,), generator=g)]
    sizes[-2] = int(torch.randint(3, 7, (1,), generator=g))
    sizes[-1] = sizes[-2] + int(torch.randint(1, 4, (1,), generator=g)) if last is None else last
    return tuple(sizes)


def _matches(got: object, expected: Tensor) -> bool:
    return compare(got, expected, "", atol=1e-8, rtol=1e-6) is None


# ----------------------------------------------------------------------------- softmax


@checker(torch.softmax, F.softmax, torch.Tensor.softmax, torch.nn.Softmax)
def check_softmax(fn: Callable[[Tensor], Tensor]) -> CheckResult:
    """fn(x) -> softmax over the last axis (the keys), finite even for scores in the thousands."""
    g = fresh_generator()

    def trial(ndim: int, scale: float) -> Callable[[], str | None]:
        def run() -> str | None:
            x = torch.randn(*_shape(g, ndim), generator=g, dtype=D) * scale
            if scale > 100:
                x = x + 500.0  # large, positive scores: a naive exp overflows
            got = fn(x.clone())
            ref = torch.softmax(x, dim=-1)
            hint = compare(got, ref, "your softmax", atol=1e-8, rtol=1e-6)
            if hint is None or not isinstance(got, Tensor) or got.shape != ref.shape:
                return hint
            if not torch.isfinite(got).all():
                return (
                    "scores in the thousands gave inf or NaN: exp overflowed. Subtract each row's "
                    "maximum before exponentiating (softmax(x) = softmax(x - max))"
                )
            if _matches(got, torch.softmax(x, dim=-2)):
                return (
                    "you normalised over axis -2 (the queries). Softmax runs over the keys, the last axis: "
                    "for each query the weights over all keys sum to 1"
                )
            if x.dim() > 2 and _matches(got, torch.softmax(x.flatten(-2), -1).view_as(x)):
                return "you normalised over the whole grid: normalise each row (each query) on its own"
            sums = got.to(D).sum(-1)
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-6):
                return f"{hint}; each row should sum to 1 over the last axis, yours sum to e.g. {sums.flatten()[0]:.3g}"
            return hint

        return run

    return run_trials(
        "check_softmax",
        [trial(2, 1.0), trial(3, 3.0), trial(4, 1.0), trial(2, 1000.0), trial(3, 1000.0)],
        "rows sum to 1 over the keys, and it stays finite for scores in the thousands.",
    )


# -------------------------------------------------------------------------- attention


def _attention(q: Tensor, k: Tensor, v: Tensor, scale: float, dim: int = -1) -> tuple[Tensor, Tensor]:
    w = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=dim)
    return w @ v, w


@checker(scaled_dot_product_attention, F.scaled_dot_product_attention)
def check_attention(fn: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]) -> CheckResult:
    """fn(q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v)) -> (output (..., T_q, d_v), weights (..., T_q, T_k))."""
    g = fresh_generator()
    passed_2d: list[bool] = []

    def trial(ndim: int) -> Callable[[], str | None]:
        def run() -> str | None:
            lead = _shape(g, ndim)[:-2]
            T_q, T_k = (
                int(torch.randint(2, 6, (1,), generator=g)),
                int(torch.randint(6, 9, (1,), generator=g)),
            )
            d_k = int(torch.randint(4, 17, (1,), generator=g))
            d_v = d_k + int(torch.randint(1, 4, (1,), generator=g))
            q = torch.randn(*lead, T_q, d_k, generator=g, dtype=D)
            k = torch.randn(*lead, T_k, d_k, generator=g, dtype=D)
            v = torch.randn(*lead, T_k, d_v, generator=g, dtype=D)
            try:
                got = fn(q.clone(), k.clone(), v.clone())
            except Exception as e:
                if passed_2d:
                    return (
                        f"it works on (T, d) inputs but raised {type(e).__name__} with batch axes {lead}: "
                        "use k.transpose(-2, -1), not k.T, so the leading axes stay in place"
                    )
                raise
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                return "return two things, (output, weights), like the library's function"
            out, w = got
            ref_out = F.scaled_dot_product_attention(q, k, v)
            ref_w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_k), dim=-1)
            hint_w = compare(w, ref_w, "your weights", atol=1e-8, rtol=1e-6)
            hint_o = compare(out, ref_out, "your output", atol=1e-8, rtol=1e-6)
            if hint_w is None and hint_o is None:
                if ndim == 2:
                    passed_2d.append(True)
                return None
            if isinstance(w, Tensor) and w.shape == ref_w.shape:
                w = w.detach().to(D)
                if _matches(w, _attention(q, k, v, 1.0)[1]):
                    return (
                        "the weights are not scaled: divide the scores Q K^T by sqrt(d_k) before the softmax"
                    )
                if _matches(w, _attention(q, k, v, 1.0 / d_k)[1]):
                    return "you divided the scores by d_k: the paper divides by sqrt(d_k)"
                if _matches(w, _attention(q, k, v, 1.0 / math.sqrt(d_k), dim=-2)[1]):
                    return "softmax over the wrong axis: it runs over the keys (the last axis), once for each query"
            if hint_w is None:
                return f"{hint_o}: the weights are right, the output is weights @ v (one weighted sum of values per query)"
            if passed_2d and isinstance(w, Tensor) and w.shape != ref_w.shape:
                return f"{hint_w}: with batch axes use k.transpose(-2, -1), not k.T"
            return hint_w

        return run

    return run_trials(
        "check_attention",
        [trial(2), trial(3), trial(4), trial(2)],
        "softmax(Q K^T / sqrt(d_k)) V matches torch's scaled_dot_product_attention, batch axes included.",
    )
