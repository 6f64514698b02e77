"""Checkers for lesson 04, multi-head attention.

check_split_merge(split_heads, merge_heads)   split_heads(x, n_heads): (B, T, d_model) -> (B, h, T, d_k)
                                              merge_heads(x): (B, h, T, d_k) -> (B, T, d_model)
check_attention_params(count)                 count(d_model, n_heads, bias) -> int
check_ov_circuit(ov)                          ov(mha, i) -> W^V_i W^O_i, (d_model, d_model)
check_attention_step(step)                    step(mha, x_new, cache) -> (B, 1, d_model), one position at a
                                              time with a KV cache, against the full causal forward
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import params as _params
from ..attention import KVCache, MultiHeadAttention, scaled_dot_product_attention
from ..heads import ov_circuit
from ..masks import causal_mask
from ..params import attention_params
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


@checker(attention_params, _params.per_head_attention_params)
def check_attention_params(count: Callable[[int, int, bool], int]) -> CheckResult:
    """count(d_model, n_heads, bias) against `course_lib.params.attention_params` on fresh sizes."""
    g = fresh_generator()
    cases = []
    for bias in (True, False, True, False):
        n_heads = _randint(g, 2, 16)
        cases.append((n_heads * _randint(g, 2, 64), n_heads, bias))

    def trial(d: int, h: int, bias: bool) -> Callable[[], str | None]:
        def run() -> str | None:
            got = count(d, h, bias)
            if isinstance(got, float) and got.is_integer():
                got = int(got)
            if not isinstance(got, int):
                return f"should return an int, got {type(got).__name__}"
            expected = attention_params(d, bias)
            if got == expected:
                return None
            b = d if bias else 0
            d_k = d // h
            where = f"for d_model={d}, n_heads={h}, bias={bias} you returned {got:,}, expected {expected:,}"
            if bias and got == 4 * d * d:
                return f"{where}: the four weight matrices are right; add their four bias vectors of d_model each"
            if not bias and got == 4 * d * d + 4 * d:
                return f"{where}: with bias=False there are no bias vectors"
            if got == d * d + b:
                return f"{where}: that is one projection; there are four (W_Q, W_K, W_V and W_O)"
            if got == 3 * d * d + 3 * b:
                return f"{where}: W_Q, W_K and W_V are there, but W_O is missing"
            if got in (4 * d * d_k, 4 * d * d_k + 4 * d_k, 4 * d * d_k + 4 * b):
                return f"{where}: that is one head's share; the {h} heads together fill d_model x d_model"
            if got in (h * expected, h * 4 * d * d):
                return (
                    f"{where}: the heads split d_model into {h} slices of d_k={d_k}, "
                    "they do not add width, so the count does not depend on n_heads"
                )
            return where

        return run

    return run_trials(
        "attention parameter count",
        [trial(*c) for c in cases],
        "4·d_model² + 4·d_model with biases, 4·d_model² without, whatever n_heads is.",
    )


@checker(ov_circuit)
def check_ov_circuit(ov: Callable[[MultiHeadAttention, int], Tensor]) -> CheckResult:
    """ov(mha, i) against `course_lib.heads.ov_circuit` on fresh random attention blocks."""
    g = fresh_generator()

    def trial() -> str | None:
        h = _randint(g, 2, 4)
        d = h * _randint(g, 2, 6)
        torch.manual_seed(_randint(g, 0, 2**31 - 2))
        mha = MultiHeadAttention(d, h).double()
        i = _randint(g, 0, h - 1)
        with torch.no_grad():
            got = ov(mha, i)
            expected = ov_circuit(mha, i)
            s = slice(i * mha.d_k, (i + 1) * mha.d_k)
            wv_i = mha.w_v.weight.T[:, s]
            if isinstance(got, Tensor) and got.shape == expected.shape:
                if _same(got, expected.T):
                    return (
                        f"head {i}: you returned the transpose. In x @ W form the value map is "
                        "W^V_i (d_model, d_k) followed by W^O_i (d_k, d_model)"
                    )
                if _same(got, wv_i @ mha.w_o.weight[s, :]):
                    return (
                        f"head {i}: W^O_i is the wrong slice. nn.Linear stores weight = W.T, so W^O_i = "
                        "w_o.weight[:, s].T (rows s of W_O in x @ W form)"
                    )
                for j in range(h):
                    if j != i and _same(got, ov_circuit(mha, j)):
                        return f"you returned head {j}'s circuit for head {i}: the slice is i*d_k:(i+1)*d_k"
        return compare(got, expected, f"ov(mha, {i}) with d_model={d}, n_heads={h}", atol=1e-10, rtol=1e-8)

    return run_trials(
        "OV circuit",
        [trial] * 4,
        "W^V_i W^O_i matches on 4 fresh attention blocks: one d_model x d_model matrix of rank <= d_k per head.",
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
