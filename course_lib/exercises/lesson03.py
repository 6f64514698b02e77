"""Checkers for lesson 03, "Attention patterns".

check_previous_token_projections(fn)   fn(max_len) -> (W_Q, W_K), each (max_len, d_k), acting on one-hot
                                       positions: every query i >= 1 puts >= 90% of its weight on key i - 1
check_head_grids(fn)                   fn(mha, x) -> (B, n_heads, T, T): every head's attention weights of a
                                       torch nn.MultiheadAttention, computed by hand from in_proj_weight and
                                       in_proj_bias, against torch's own weights (average_attn_weights=False)

Each checker calls the learner's function on fresh random inputs and compares it with a reference
(`course_lib.patterns`, torch's own layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import MultiHeadAttention, scaled_dot_product_attention
from ..patterns import pattern_projections, softmax_attention
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


# ---------------------------------------------------------------- every head's grid of a torch layer
def _torch_layer(g: torch.Generator, d_model: int, n_heads: int) -> nn.MultiheadAttention:
    """A float64 nn.MultiheadAttention in eval mode with fresh weights and non-zero biases."""
    with torch.random.fork_rng(devices=[]):  # leave the notebook's global RNG alone
        torch.manual_seed(_randint(g, 0, 2**31 - 2))
        mha = nn.MultiheadAttention(d_model, n_heads, batch_first=True, dtype=torch.float64).eval()
    with torch.no_grad():
        # scores of order 1 after the 1/sqrt(d_k): no row saturates to one-hot, every mistake shows
        mha.in_proj_weight.copy_(
            torch.randn(3 * d_model, d_model, generator=g, dtype=torch.float64) / math.sqrt(d_model)
        )
        mha.in_proj_bias.copy_(torch.randn(3 * d_model, generator=g, dtype=torch.float64) * 0.7)
    return mha


def _grids_by_hand(
    x: Tensor,
    w_in: Tensor,
    b_in: Tensor,
    n_heads: int,
    *,
    blocks: tuple[int, int] = (0, 1),
    bias_blocks: tuple[int, int] | None = (0, 1),
    transposed: tuple[bool, bool] = (True, True),
    scale: str = "d_k",
    softmax_dim: int = -1,
    strided: bool = False,
) -> Tensor:
    """(B, n_heads, T, T) attention weights from torch's stacked in-projection, equation (1) per head.

    The keyword arguments rebuild the typical mistakes: the right answer uses the defaults."""
    d_model = x.shape[-1]
    d_k = d_model // n_heads
    w = w_in.split(d_model)  # W^Q, W^K, W^V, each (d_model, d_model) as nn.Linear stores it
    b = b_in.split(d_model)

    def project(which: int) -> Tensor:  # (B, T, d_model)
        weight = w[blocks[which]]
        y = x @ (weight.T if transposed[which] else weight)
        return y if bias_blocks is None else y + b[bias_blocks[which]]

    q, k = project(0), project(1)
    div = {"d_k": math.sqrt(d_k), "d_model": math.sqrt(d_model), "none": 1.0}[scale]
    grids = []
    for i in range(n_heads):
        s = slice(i, None, n_heads) if strided else slice(i * d_k, (i + 1) * d_k)
        scores = q[..., s] @ k[..., s].transpose(-2, -1) / div  # (B, T, T)
        grids.append(scores.softmax(dim=softmax_dim))
    return torch.stack(grids, dim=1)  # (B, n_heads, T, T)


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def _rows(block: int) -> str:
    return ("0:d_model", "d_model:2*d_model", "2*d_model:3*d_model")[block]


_NAMES = ("W^Q", "W^K", "W^V")


def _untr(t: tuple[bool, bool]) -> list[str]:
    return [name for name, ok_ in zip(("W^Q", "W^K"), t, strict=True) if not ok_]


def _mistakes() -> list[tuple[dict, str]]:
    """The wrong answers the checker recognises: keyword arguments of `_grids_by_hand`, and the hint."""
    out: list[tuple[dict, str]] = [
        (
            {"softmax_dim": -2},
            "your softmax runs over the queries (each column sums to 1): it runs over the keys, the "
            "last axis, once for each query",
        ),
        (
            {"bias_blocks": None},
            "you left out the biases: q = x W_q^T + b_q with b_q = in_proj_bias[0:d_model] (the key "
            "bias happens to cancel in the softmax, the query bias does not)",
        ),
        (
            {"scale": "d_model"},
            "you divided the scores by sqrt(d_model); each head divides by sqrt(d_k), the width of its "
            "own queries and keys (mha.head_dim)",
        ),
        ({"scale": "none"}, "the scores are not scaled: divide them by sqrt(d_k) = sqrt(mha.head_dim)"),
        (
            {"strided": True},
            "your heads take every n_heads-th feature (i::n_heads); head i's features are the "
            "contiguous block i*d_k:(i+1)*d_k of q and k",
        ),
    ]
    untransposed = (
        "in_proj_weight stores each block as nn.Linear does, one row per output feature, so the "
        "projection is x @ W.T (+ bias), not x @ W"
    )
    for t in ((False, False), (False, True), (True, False)):
        out.append(({"transposed": t}, f"{untransposed} (you used {' and '.join(_untr(t))} untransposed)"))
    for qb in range(3):
        for kb in range(3):
            if (qb, kb) == (0, 1):
                continue
            if (qb, kb) == (1, 0):
                hint = "you swapped W^Q and W^K: the queries use rows 0:d_model, the keys d_model:2*d_model"
            elif qb == kb:
                hint = (
                    f"your queries and keys both use {_NAMES[qb]} (rows {_rows(qb)} of in_proj_weight); "
                    "W^Q is rows 0:d_model, W^K rows d_model:2*d_model, W^V the last d_model rows"
                )
            else:
                hint = (
                    f"your queries use {_NAMES[qb]} and your keys {_NAMES[kb]} (rows {_rows(qb)} and "
                    f"{_rows(kb)} of in_proj_weight); W^Q is rows 0:d_model, W^K rows d_model:2*d_model, "
                    "W^V the last d_model rows"
                )
            out.append(({"blocks": (qb, kb), "bias_blocks": (qb, kb)}, hint))
            out.append(({"blocks": (qb, kb)}, hint))
    return out


def _distinct(want: Tensor, wrong: list[tuple[Tensor, str]]) -> bool:
    """True when every recognised mistake, and every head's grid, differs clearly from the answer."""
    h = want.shape[1]
    heads_differ = all((want[:, i] - want[:, j]).abs().max() > 1e-3 for i in range(h) for j in range(i))
    return heads_differ and all((w - want).abs().max() > 1e-3 for w, _ in wrong)


@checker(
    nn.MultiheadAttention,
    F.multi_head_attention_forward,
    F.scaled_dot_product_attention,
    MultiHeadAttention,
    scaled_dot_product_attention,
    label="every head's grid",
)
def check_head_grids(fn: Callable[[nn.MultiheadAttention, Tensor], Tensor]) -> CheckResult:
    """fn(mha, x (B, T, d_model)) -> (B, n_heads, T, T) against torch's
    mha(x, x, x, need_weights=True, average_attn_weights=False)[1] on fresh float64 layers (eval
    mode, dropout 0, non-zero biases). The first trial (2 batches, 5 tokens, 3 heads) shows every
    mistake the hints name; three fresh random sizes follow."""
    g = fresh_generator()

    def trial(B: int, T: int, h: int, d_k: int, first: bool = False) -> Callable[[], str | None]:
        def run() -> str | None:
            d_model = h * d_k
            for _ in range(50):  # the first trial draws again until every mistake would show
                mha = _torch_layer(g, d_model, h)
                x = torch.randn(B, T, d_model, generator=g, dtype=torch.float64)
                w_in, b_in = mha.in_proj_weight.detach().clone(), mha.in_proj_bias.detach().clone()
                with torch.no_grad():
                    want = mha(x, x, x, need_weights=True, average_attn_weights=False)[1]  # (B, h, T, T)
                    wrong = [(_grids_by_hand(x, w_in, b_in, h, **kw), hint) for kw, hint in _mistakes()]
                if not first or _distinct(want, wrong):
                    break
            where = f"(B={B}, T={T}, n_heads={h}, d_k={d_k})"
            with torch.no_grad():
                got = fn(mha, x.clone())
            if isinstance(got, list | tuple):
                return (
                    f"you returned a {type(got).__name__}: stack the heads' grids into one tensor, "
                    "torch.stack(grids, dim=1) gives (B, n_heads, T, T)"
                )
            hint = compare(got, want, f"your result {where}", atol=1e-6, rtol=1e-5)
            if hint is None:
                return None
            if not isinstance(got, Tensor):
                return hint
            got = got.detach().to(torch.float64)
            if got.shape == (B, T, T) and h > 1:
                if _close(got, want.mean(dim=1)):
                    return (
                        "you returned the heads' average, shape (B, T, T) (torch's default, "
                        "average_attn_weights=True): return every head's own grid, (B, n_heads, T, T)"
                    )
                return f"you returned shape {tuple(got.shape)}: one grid per head, (B, n_heads, T, T) = {(B, h, T, T)}"
            if got.shape != want.shape:
                return f"{hint} = (B, n_heads, T, T)"
            rows_ok = torch.allclose(got.sum(-1), torch.ones(()).double(), atol=1e-6)
            if not rows_ok and torch.allclose(got.sum(-2), torch.ones(()).double(), atol=1e-6):
                return _mistakes()[0][1]
            if not rows_ok:
                return (
                    "the rows of your grids do not sum to 1: apply the softmax over the keys (the last "
                    "axis) to the scaled scores"
                )
            for w, mistake in wrong:
                if _close(got, w):
                    return mistake
            for i in range(h):
                if not _close(got[:, i], want[:, i]):
                    for j in range(h):
                        if j != i and _close(got[:, i], want[:, j]):
                            return (
                                f"your head {i} shows head {j}'s grid: head i reads features "
                                "i*d_k:(i+1)*d_k of q and k"
                            )
            return hint

        return run

    sizes = [(2, 5, 3, 4)] + [
        (_randint(g, 1, 3), _randint(g, 2, 8), _randint(g, 1, 4), _randint(g, 1, 6)) for _ in range(3)
    ]
    return run_trials(
        "every head's grid",
        [trial(*s, first=(n == 0)) for n, s in enumerate(sizes)],
        "each head's weights match torch's own on 4 fresh layers, biases and all.",
    )
