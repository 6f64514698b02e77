"""Checkers for lesson 04, multi-head attention.

check_split_merge(split_heads, merge_heads)   split_heads(x, n_heads): (B, T, d_model) -> (B, h, T, d_k)
                                              merge_heads(x): (B, h, T, d_k) -> (B, T, d_model)
check_attention_step(step)                    step(mha, x_new, cache) -> (B, 1, d_model), one position at a
                                              time with a KV cache, against the full causal forward
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import KVCache, MultiHeadAttention, scaled_dot_product_attention
from ..masks import causal_mask
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _same(a: object, b: Tensor) -> bool:
    return isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a.double(), b.double())


@checker(MultiHeadAttention.split_heads, MultiHeadAttention.merge_heads)
def check_split_merge(
    split_heads: Callable[[Tensor, int], Tensor], merge_heads: Callable[[Tensor], Tensor]
) -> CheckResult:
    """Both functions on fresh random shapes and values, against `MultiHeadAttention`'s own."""
    g = fresh_generator()
    # the first shape always has several heads and positions, so a mix-up cannot hide
    shapes = [(2, 5, 4, 3)] + [
        (_randint(g, 1, 3), _randint(g, 2, 7), _randint(g, 2, 6), _randint(g, 1, 5)) for _ in range(3)
    ]

    def trial(B: int, T: int, h: int, d_k: int) -> Callable[[], str | None]:
        def run() -> str | None:
            x = torch.randn(B, T, h * d_k, generator=g)
            ref = MultiHeadAttention(h * d_k, h)
            expected = ref.split_heads(x)  # (B, h, T, d_k)
            got = split_heads(x.clone(), h)
            if isinstance(got, Tensor) and got.shape == expected.shape:
                if h > 1 and T > 1 and _same(got, x.reshape(B, h, T, d_k)):
                    return (
                        "split_heads has the right shape but mixes positions into heads: reshaping "
                        "straight to (B, h, T, d_k) cuts across tokens. View as (B, T, h, d_k) first, "
                        "then swap axes 1 and 2"
                    )
            hint = compare(got, expected, f"split_heads(x of shape {(B, T, h * d_k)}, n_heads={h})")
            if hint:
                return hint + " (expected (B, h, T, d_k))" if "shape" in hint else hint
            try:
                merged = merge_heads(expected.contiguous())  # as attention outputs are
            except RuntimeError as e:
                if "view" in str(e):
                    return (
                        "merge_heads raised a RuntimeError about view: after transpose the tensor is "
                        "not contiguous; use .reshape (or .contiguous().view)"
                    )
                raise
            if isinstance(merged, Tensor) and merged.shape == x.shape and h > 1 and T > 1:
                if _same(merged, expected.reshape(B, T, h * d_k)):
                    return (
                        "merge_heads has the right shape but is not the concatenation of the heads: "
                        "swap axes 1 and 2 back to (B, T, h, d_k) before reshaping to (B, T, d_model)"
                    )
            return compare(merged, x, f"merge_heads(split_heads(x)) for x of shape {(B, T, h * d_k)}")

        return run

    return run_trials(
        "split_heads / merge_heads",
        [trial(*s) for s in shapes],
        "right on 4 fresh random shapes, and merge_heads undoes split_heads exactly.",
    )


@checker(
    MultiHeadAttention,
    KVCache,
    scaled_dot_product_attention,
    nn.MultiheadAttention,
    F.multi_head_attention_forward,
    F.scaled_dot_product_attention,
    label="attention with a KV cache",
)
def check_attention_step(step: Callable[[MultiHeadAttention, Tensor, dict], Tensor]) -> CheckResult:
    """step(mha, x_new (B, 1, d_model), cache {"k", "v"}) -> (B, 1, d_model), called once per
    position; the outputs together must equal mha's full causal forward, and after t calls the
    cache must hold (B, h, t, d_k) keys and values."""
    g = fresh_generator()

    def trial() -> str | None:
        B, T, h, d_k = _randint(g, 1, 3), _randint(g, 4, 8), _randint(g, 2, 4), _randint(g, 2, 5)
        d_model = h * d_k
        with torch.random.fork_rng():
            torch.manual_seed(_randint(g, 0, 2**31 - 2))
            mha = MultiHeadAttention(d_model, h).double().eval()
        x = torch.randn(B, T, d_model, generator=g, dtype=torch.float64)
        with torch.no_grad():
            full = mha(x, mask=causal_mask(T))  # (B, T, d_model): every position at once, causal
            k_all = mha.split_heads(mha.w_k(x))  # (B, h, T, d_k)
            cache: dict = {"k": None, "v": None}
            where = f"(B={B}, T={T}, h={h}, d_k={d_k})"
            for t in range(T):
                got = step(mha, x[:, t : t + 1].clone(), cache)
                hint = compare(
                    got, full[:, t : t + 1], f"the output at step {t} {where}", atol=1e-9, rtol=1e-7
                )
                ck = cache.get("k") if isinstance(cache, dict) else None
                if not isinstance(ck, Tensor) or ck.shape != (B, h, t + 1, d_k):
                    shape = tuple(ck.shape) if isinstance(ck, Tensor) else ck
                    return (
                        f"after step {t} cache['k'] should hold the keys of all {t + 1} positions seen, "
                        f"(B, h, {t + 1}, d_k) = {(B, h, t + 1, d_k)}, got {shape}: append the new key and "
                        f"value to the cache and store them back"
                    )
                if not torch.allclose(ck.double(), k_all[:, :, : t + 1], atol=1e-9):
                    return f"after step {t} cache['k'] does not hold the projected keys x W^K of positions 0..{t}"
                if hint is not None:
                    if t > 0 and isinstance(got, Tensor) and got.shape == full[:, t : t + 1].shape:
                        alone = mha(x[:, t : t + 1])  # the new position attending to itself only
                        if torch.allclose(got.double(), alone, atol=1e-9):
                            return (
                                f"step {t}'s output uses only the new position's key and value: the new query "
                                f"must attend to every cached key, itself included"
                            )
                    return hint
        return None

    return run_trials(
        "attention with a KV cache",
        [trial] * 3,
        "one position at a time with the cache gives the full causal forward, to round-off. Well done!",
    )
