"""Checkers for lesson 03, "Attention patterns": softmax over the keys, a hand-built
previous-token head, and the entropy of each row of an attention grid.

Each checker calls the learner's function on fresh random inputs and compares it with the
library's reference (`course_lib.patterns`, `course_lib.viz.row_entropy`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..patterns import pattern_attention, pattern_projections, softmax_attention
from ..viz import row_entropy
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _numpy(x: object, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} should be an array of numbers, got {type(x).__name__}") from e


# ---------------------------------------------------------------- softmax over the keys
@checker(softmax_attention, pattern_attention)
def check_attention_weights(fn: Callable[[np.ndarray], np.ndarray]) -> CheckResult:
    """fn(scores (T_q, T_k)) -> weights (T_q, T_k): softmax over the keys, one row per query."""
    g = fresh_generator()

    def trial(scale: float, offset: float) -> Callable[[], str | None]:
        def run() -> str | None:
            T_q, T_k = _randint(g, 2, 7), _randint(g, 8, 12)  # never square: rows and columns differ
            scores = (torch.randn(T_q, T_k, generator=g, dtype=torch.float64) * scale + offset).numpy()
            want = softmax_attention(scores)
            got = _numpy(fn(scores.copy()), "your weights")
            if got.shape == want.shape[::-1]:
                return f"you returned shape {got.shape}, expected {want.shape}: one row per query, one column per key"
            if got.shape == want.shape and np.isnan(got).any():
                return (
                    "NaN for large scores (exp overflows): subtract each row's maximum before exp "
                    "(softmax does not change when a constant is added to a row)"
                )
            if got.shape == want.shape and not np.allclose(got.sum(-1), 1.0, atol=1e-6):
                cols = softmax_attention(scores.T).T
                if np.allclose(got, cols, atol=1e-6):
                    return (
                        "your columns sum to 1, not your rows: the softmax runs over the keys (the last "
                        "axis), once for each query -- it is not column-wise"
                    )
                return "the rows of your weights do not sum to 1: normalise over the keys (axis=-1)"
            return compare(torch.as_tensor(got), torch.as_tensor(want), "your weights", atol=1e-8, rtol=1e-6)

        return run

    trials = [trial(1.0, 0.0), trial(3.0, 0.0), trial(1.0, 0.0), trial(40.0, 800.0)]
    return run_trials("attention weights", trials, "every query's weights over the keys sum to 1.")


# ---------------------------------------------------------------- the previous-token head
@checker(pattern_projections)
def check_previous_token_projections(fn: Callable[[int], tuple[np.ndarray, np.ndarray]]) -> CheckResult:
    """fn(max_len) -> (W_Q, W_K), each (max_len, d_k), acting on one-hot positions: with
    X = the first T rows of the identity, softmax(X W_Q (X W_K)^T / sqrt(d_k)) must put at least
    90% of every query i >= 1 on key i - 1."""
    g = fresh_generator()

    def trial() -> str | None:
        max_len = _randint(g, 6, 24)
        T = _randint(g, 4, max_len)
        W_Q, W_K = fn(max_len)
        W_Q, W_K = _numpy(W_Q, "W_Q"), _numpy(W_K, "W_K")
        if W_Q.ndim != 2 or W_K.ndim != 2 or W_Q.shape[0] != max_len or W_K.shape[0] != max_len:
            return (
                f"for max_len={max_len}, W_Q and W_K need shape (max_len, d_k) = ({max_len}, d_k); "
                f"got {W_Q.shape} and {W_K.shape}"
            )
        if W_Q.shape[1] != W_K.shape[1]:
            return f"queries and keys must share d_k: W_Q has {W_Q.shape[1]} columns, W_K has {W_K.shape[1]}"
        X = np.eye(max_len)[:T]  # (T, max_len): one-hot positions
        Q, K = X @ W_Q, X @ W_K
        w = softmax_attention(Q @ K.T / math.sqrt(Q.shape[1]))  # (T, T)
        for i in range(1, T):
            j = int(w[i].argmax())
            if j == i:
                return (
                    f"query {i} looks mostly at itself (key {i}), not at key {i - 1}: shift the query by one"
                )
            if j == i + 1:
                return f"query {i} looks at key {i + 1}, the *next* token: your shift goes the wrong way"
            if j != i - 1:
                return f"query {i} looks mostly at key {j}, expected key {i - 1} (its previous token)"
            if w[i, i - 1] < 0.9:
                return (
                    f"query {i} points at key {i - 1} but only with weight {w[i, i - 1]:.2f}: "
                    "scale W_Q (or W_K) up so the match stands out more (need >= 0.9)"
                )
        return None

    return run_trials("previous-token head", [trial] * 5, "each query attends to the token just before it.")


# ---------------------------------------------------------------- row entropy
@checker(row_entropy)
def check_row_entropy(fn: Callable[[np.ndarray], np.ndarray]) -> CheckResult:
    """fn(weights (T_q, T_k)) -> (T_q,): the entropy in nats of each query's weights."""
    g = fresh_generator()

    def trial() -> str | None:
        T_q, T_k = _randint(g, 3, 7), _randint(g, 8, 12)
        scores = torch.randn(T_q, T_k, generator=g, dtype=torch.float64).numpy() * 2
        mask = torch.rand(T_q, T_k, generator=g).numpy() > 0.3  # some keys masked: exact zeros
        mask[:, 0] = True
        w = softmax_attention(scores, mask=mask)
        w[0] = 0.0
        w[0, _randint(g, 0, T_k - 1)] = 1.0  # a one-hot row: entropy 0
        want = row_entropy(w)
        got = _numpy(fn(w.copy()), "your entropies")
        if got.shape == (T_k,):
            return f"you returned one value per key {got.shape}; expected one per query (row), shape ({T_q},)"
        if got.shape != want.shape:
            return f"you returned shape {got.shape}, expected ({T_q},): one entropy per query"
        if np.isnan(got).any():
            return "NaN where a weight is 0: count 0 * log 0 as 0 (skip the zero weights)"
        if np.allclose(got, -want, atol=1e-6) and want.max() > 1e-6:
            return "your entropies are negative: H = -sum p log p (mind the minus sign)"
        if np.allclose(got, want / math.log(2), atol=1e-6):
            return "you used log base 2 (bits); the course measures entropy in nats (natural log)"
        return compare(torch.as_tensor(got), torch.as_tensor(want), "your entropies", atol=1e-8, rtol=1e-6)

    return run_trials("row entropy", [trial] * 5, "0 for a one-hot row, ln T_k for a uniform one.")
