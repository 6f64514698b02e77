"""Checkers for lesson 17, "Beyond attention".

check_online_softmax_step(fn)   fn(m, l, acc, scores, v) -> (m, l, acc): one block of the online
                                softmax (running max, running sum, running output), compared with
                                the update rule on fresh random blocks, masked keys and empty rows
                                included, and chained over a whole row against softmax(scores) V
check_retention_recurrent(fn)   fn(q, k, v, gammas) -> (out (B, h, T, d_v), state (B, h, d_k, d_v)):
                                retention token by token, compared with the parallel form
                                (Q K^T * D) V and the state sum_m gamma^(T-1-m) k_m^T v_m

Both refuse an answer that calls the library's own implementation (course_lib.flash,
course_lib.retention): the exercise is to write it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import flash, retention
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _reference_step(m: Tensor, l: Tensor, acc: Tensor, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The update rule, written out again here (independent of course_lib.flash)."""
    m_new = torch.maximum(m, s.max(dim=-1, keepdim=True).values)
    safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    c = torch.exp(m - safe)
    p = torch.exp(s - safe)
    return m_new, c * l + p.sum(-1, keepdim=True), c * acc + p @ v


def _unpack(out: object) -> tuple[Tensor, Tensor, Tensor] | str:
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        return f"return three tensors (m, l, acc), got {type(out).__name__}"
    return tuple(out)  # type: ignore[return-value]


@checker(flash.online_softmax_update, flash.online_softmax_attention, label="online softmax step")
def check_online_softmax_step(fn: Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Any]) -> CheckResult:
    """fn(m, l, acc, scores, v) -> (m_new, l_new, acc_new) on fresh random blocks."""
    g = fresh_generator()

    def random_block(rows: int, cols: int, d_v: int, masked: bool) -> tuple[Tensor, Tensor]:
        s = 2 * torch.randn(rows, cols, generator=g, dtype=torch.float64)
        if masked:
            s = s.masked_fill(torch.rand(rows, cols, generator=g) < 0.3, float("-inf"))
        return s, torch.randn(cols, d_v, generator=g, dtype=torch.float64)

    def state_after(s: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        rows = s.size(0)
        start = (
            torch.full((rows, 1), float("-inf"), dtype=torch.float64),
            torch.zeros(rows, 1, dtype=torch.float64),
            torch.zeros(rows, v.size(1), dtype=torch.float64),
        )
        return _reference_step(*start, s, v)

    def one_step(shift: float, masked: bool, empty_start: bool) -> str | None:
        rows, cols, d_v = _randint(g, 2, 6), _randint(g, 2, 7), _randint(g, 1, 5)
        if empty_start:
            state = (
                torch.full((rows, 1), float("-inf"), dtype=torch.float64),
                torch.zeros(rows, 1, dtype=torch.float64),
                torch.zeros(rows, d_v, dtype=torch.float64),
            )
        else:
            state = state_after(*random_block(rows, _randint(g, 1, 6), d_v, masked))
        s, v = random_block(rows, cols, d_v, masked)
        s = s + shift
        if masked:
            s[0] = float("-inf")  # a row whose keys in this block are all masked
        want = _reference_step(*state, s, v)
        got = _unpack(fn(*(t.clone() for t in state), s.clone(), v.clone()))
        if isinstance(got, str):
            return got
        for name, a, b in zip(("m", "l", "acc"), got, want):
            if isinstance(a, Tensor) and torch.isnan(a).any():
                return f"the new {name} contains NaN" + (
                    " for a row that has seen only masked keys: where the new maximum is -inf, "
                    "subtract 0 instead of -inf"
                    if masked
                    else ""
                )
            hint = compare(a, b, f"the new {name}", atol=1e-10, rtol=1e-10)
            if hint is not None:
                if name != "m":
                    hint += (
                        " (when the maximum grows, the old l and acc must be rescaled by exp(m_old - m_new))"
                    )
                return hint
        return None

    def chained() -> str | None:
        rows, T, d_v, block = _randint(g, 1, 5), _randint(g, 3, 20), _randint(g, 1, 4), _randint(g, 1, 6)
        s = 3 * torch.randn(rows, T, generator=g, dtype=torch.float64)
        v = torch.randn(T, d_v, generator=g, dtype=torch.float64)
        m = torch.full((rows, 1), float("-inf"), dtype=torch.float64)
        l, acc = torch.zeros(rows, 1, dtype=torch.float64), torch.zeros(rows, d_v, dtype=torch.float64)
        for j in range(0, T, block):
            got = _unpack(fn(m, l, acc, s[:, j : j + block], v[j : j + block]))
            if isinstance(got, str):
                return got
            m, l, acc = got
        return compare(
            acc / l, s.softmax(-1) @ v, f"acc / l after {T} keys in blocks of {block}", atol=1e-10, rtol=1e-10
        )

    trials = [
        lambda: one_step(0.0, False, False),
        lambda: one_step(6.0, False, False),  # the new block raises the maximum
        lambda: one_step(0.0, True, False),
        lambda: one_step(0.0, True, True),  # nothing seen yet, and a row masked in this block too
        chained,
        chained,
    ]
    return run_trials(
        "online softmax step",
        trials,
        "running max, sum and output are right, masked keys and empty rows included.",
    )


# --- retention, token by token ---------------------------------------------------------------------


@checker(
    retention.retention_parallel,
    retention.retention_recurrent,
    retention.retention_chunkwise,
    retention.retention_step,
    label="recurrent retention",
)
def check_retention_recurrent(fn: Callable[[Tensor, Tensor, Tensor, Tensor], Any]) -> CheckResult:
    """fn(q, k, v, gammas) -> (out, state) on fresh random heads, compared with the parallel form."""
    g = fresh_generator()

    def trial() -> str | None:
        B, h, T = _randint(g, 1, 3), _randint(g, 1, 4), _randint(g, 1, 12)
        d_k, d_v = _randint(g, 1, 6), _randint(g, 1, 6)
        q = torch.randn(B, h, T, d_k, generator=g, dtype=torch.float64)
        k = torch.randn(B, h, T, d_k, generator=g, dtype=torch.float64)
        v = torch.randn(B, h, T, d_v, generator=g, dtype=torch.float64)
        gammas = 0.5 + 0.5 * torch.rand(h, generator=g, dtype=torch.float64)  # not the paper's: any decay
        want = retention.retention_parallel(q, k, v, gammas)
        powers = gammas[:, None] ** torch.arange(T - 1, -1, -1, dtype=torch.float64)  # (h, T): gamma^(T-1-m)
        want_state = torch.einsum("bhtk,bhtv,ht->bhkv", k, v, powers)
        got = fn(q.clone(), k.clone(), v.clone(), gammas.clone())
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return f"return two tensors (out, state), got {type(got).__name__}"
        out, state = got
        hint = compare(out, want, "the output", atol=1e-10, rtol=1e-10)
        if hint is not None:
            return (
                hint + " (S_n = gamma S_{n-1} + k_n^T v_n, then out_n = q_n S_n, with each head's own gamma)"
            )
        return compare(state, want_state, "the final state S_T", atol=1e-10, rtol=1e-10)

    return run_trials(
        "recurrent retention",
        [trial] * 5,
        "equal to the parallel form (Q K^T * D) V, and the state is right.",
    )
