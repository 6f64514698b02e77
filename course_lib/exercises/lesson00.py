"""Checkers for lesson 00: warm-up exercises on the course's shape conventions."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import CheckResult, checker, fresh_generator, run_trials


@checker()
def check_d_k(fn: Callable[[int, int], int]) -> CheckResult:
    """fn(d_model, n_heads) -> d_k, the width of one head."""
    g = fresh_generator()

    def trial() -> str | None:
        n_heads = int(torch.randint(1, 17, (1,), generator=g))
        d_k = int(torch.randint(1, 129, (1,), generator=g))
        got = fn(n_heads * d_k, n_heads)
        if got != d_k:
            return f"for d_model={n_heads * d_k}, n_heads={n_heads} you returned {got!r}, expected {d_k}"
        if not isinstance(got, int):
            return f"return a whole number (int), got {type(got).__name__}"
        return None

    return run_trials("d_k", [trial] * 5, "each head gets d_model / n_heads dimensions.")


@checker()
def check_weights_shape(fn: Callable[[int, int, int, int], tuple]) -> CheckResult:
    """fn(B, h, T_q, T_k) -> the shape of the attention weights."""
    g = fresh_generator()

    def trial() -> str | None:
        B, h, T_q, T_k = (int(v) for v in torch.randint(1, 20, (4,), generator=g))
        got = tuple(fn(B, h, T_q, T_k))
        want = (B, h, T_q, T_k)
        if got == want:
            return None
        if got == (B, h, T_k, T_q):
            return "queries and keys are swapped: rows are queries, columns are keys"
        if got != want:
            return f"for B={B}, h={h}, T_q={T_q}, T_k={T_k} you returned {got}, expected {want}"
        return None

    return run_trials(
        "attention weights shape", [trial] * 5, "one row per query, one column per key, per head."
    )
