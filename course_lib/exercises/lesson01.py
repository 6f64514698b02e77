"""Checkers for lesson 01, "Why not RNNs": the RNN loop, the Jacobian through time, greedy generation.

Each checker calls the learner's function on fresh random inputs and compares it with an
independent reference (`torch.nn.RNN`, autograd, a greedy loop on a random toy model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import gpt as _gpt
from ..decode import generate, greedy_decode
from ..rnn import TanhRNN, jacobian_through_time, step_jacobian
from . import CheckResult, checker, compare, fresh_generator, run_trials

D = torch.float64


def _randn(g: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=D) * scale


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


# ---------------------------------------------------------------------------- the RNN loop


def _torch_rnn_states(x: Tensor, w_ih: Tensor, w_hh: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """Reference: torch.nn.RNN on copied weights. x (T, D) -> states (T, H)."""
    H, Din = w_ih.shape
    rnn = torch.nn.RNN(Din, H, nonlinearity="tanh", batch_first=True).to(D)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(w_ih)
        rnn.weight_hh_l0.copy_(w_hh)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
        out, _ = rnn(x[None], h0[None, None])
    return out[0]


def _rnn_diagnosis(got: Tensor, x: Tensor, w_ih: Tensor, w_hh: Tensor, b: Tensor, h0: Tensor) -> str:
    """Say what a wrong RNN loop most likely did."""
    T = x.size(0)
    no_tanh, h = [], h0
    for t in range(T):
        h = x[t] @ w_ih.T + h @ w_hh.T + b
        no_tanh.append(h)
    if compare(got, torch.stack(no_tanh), "") is None:
        return "it looks like the tanh is missing: h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)"
    no_carry = torch.tanh(x @ w_ih.T + h0 @ w_hh.T + b)  # every step starts from h0
    if compare(got, no_carry, "") is None:
        return (
            "every step used the initial state h0: carry the new state forward "
            "(h = tanh(...) inside the loop, then use that h at the next step)"
        )
    transposed = torch.tanh(x[0] @ w_ih + h0 @ w_hh + b) if w_ih.shape[0] == w_ih.shape[1] else None
    ref = _torch_rnn_states(x, w_ih, w_hh, b, h0)
    if transposed is not None and compare(got[0], transposed, "") is None:
        return "the weights look transposed: with row vectors, use x_t @ W_ih.T and h @ W_hh.T"
    for t in range(T):
        if compare(got[t], ref[t], "") is not None:
            if t == 0:
                return "the first state h_0 is already wrong: h_0 = tanh(W_ih x_0 + W_hh h_init + b)"
            return f"states h_0 .. h_{t - 1} match but h_{t} does not: check how step {t} uses h_{t - 1}"
    return "the states differ from torch.nn.RNN's"


# TanhRNN (shown in section 3) loops over x_t @ W_ih.T inside the recurrence; the exercise asks
# for the input product hoisted out of the loop, which it does not show
@checker(TanhRNN, torch.nn.RNN, shown_before=(TanhRNN,))
def check_rnn_forward(fn: Callable[..., Tensor]) -> CheckResult:
    """fn(x (T, D), w_ih (H, D), w_hh (H, H), b (H,), h0 (H,)) -> states (T, H), h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)."""
    g = fresh_generator()

    def trial(square: bool) -> Callable[[], str | None]:
        def run() -> str | None:
            T, H = _randint(g, 4, 12), _randint(g, 3, 8)
            Din = H if square else H + _randint(g, 1, 4)
            x, h0 = _randn(g, T, Din), _randn(g, H, scale=0.5)
            w_ih, w_hh, b = _randn(g, H, Din, scale=0.6), _randn(g, H, H, scale=0.6), _randn(g, H, scale=0.3)
            got = fn(x.clone(), w_ih.clone(), w_hh.clone(), b.clone(), h0.clone())
            ref = _torch_rnn_states(x, w_ih, w_hh, b, h0)
            if isinstance(got, (tuple, list)):
                return "return only the stacked states, a tensor of shape (T, H)"
            hint = compare(got, ref, "your result", atol=1e-8, rtol=1e-6)
            if hint is None:
                return None
            if not isinstance(got, Tensor) or tuple(got.shape) != tuple(ref.shape):
                return hint + " (stack h_0 .. h_{T-1} into one (T, H) tensor)"
            return _rnn_diagnosis(got.detach().to(D), x, w_ih, w_hh, b, h0)

        return run

    return run_trials(
        "check_rnn_forward",
        [trial(False), trial(True), trial(False)],
        "your loop matches torch.nn.RNN on fresh random sequences.",
    )


# ---------------------------------------------------------------------- Jacobian through time


def _random_states(g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Callable[[Tensor, int], Tensor]]:
    """A fresh random RNN run on a fresh sequence: (states (T, H), w_hh, x, run_from)."""
    T, H, Din = _randint(g, 5, 9), _randint(g, 3, 6), 3
    w_ih, w_hh, b = _randn(g, H, Din, scale=0.5), _randn(g, H, H, scale=1.3 / H**0.5), _randn(g, H, scale=0.2)
    x = _randn(g, T, Din)
    h, states = torch.zeros(H, dtype=D), []
    for t in range(T):
        h = torch.tanh(w_ih @ x[t] + w_hh @ h + b)
        states.append(h)

    def run_from(h_start: Tensor, start: int) -> Tensor:  # the steps start .. T-1, from h_{start-1}
        h = h_start
        for t in range(start, T):
            h = torch.tanh(w_ih @ x[t] + w_hh @ h + b)
        return h

    return torch.stack(states), w_hh, x, run_from


@checker(jacobian_through_time, step_jacobian, torch.autograd.functional.jacobian)
def check_jacobian_through_time(fn: Callable[[Tensor, Tensor, int], Tensor]) -> CheckResult:
    """fn(states (T, H), w_hh (H, H), k) -> d h_{T-1} / d h_{T-1-k}, an (H, H) matrix."""
    g = fresh_generator()

    def trial(k_choice: str) -> Callable[[], str | None]:
        def run() -> str | None:
            states, w_hh, _, run_from = _random_states(g)
            T, H = states.shape
            k = {"zero": 0, "one": 1, "many": _randint(g, 2, T - 1)}[k_choice]
            got = fn(states.clone(), w_hh.clone(), k)
            if k == 0:
                ref = torch.eye(H, dtype=D)
            else:
                ref = torch.autograd.functional.jacobian(lambda h: run_from(h, T - k), states[T - 1 - k])
            hint = compare(got, ref, f"your Jacobian for k={k}", atol=1e-8, rtol=1e-6)
            if hint is None or not isinstance(got, Tensor) or tuple(got.shape) != (H, H):
                return hint
            got = got.detach().to(D)
            if k == 0:
                return "with k = 0 no step is crossed: d h_{T-1} / d h_{T-1} is the identity matrix"
            if compare(got, torch.linalg.matrix_power(w_hh, k), "") is None:
                return "you get W_hh^k: each step also multiplies by tanh's derivative, diag(1 - h_t^2)"
            J = [(1 - states[t] ** 2)[:, None] * w_hh for t in range(T - k, T)]  # J_{T-k} .. J_{T-1}
            rev = torch.eye(H, dtype=D)
            for j in J:  # J_{T-k} ... J_{T-1}: the wrong order
                rev = rev @ j
            if compare(got, rev, "") is None:
                return "right factors, wrong order: the latest step's Jacobian J_{T-1} goes on the left"
            wrong_h = [w_hh * (1 - states[t] ** 2)[None, :] for t in range(T - k, T)]
            alt = torch.eye(H, dtype=D)
            for j in reversed(wrong_h):
                alt = alt @ j
            if compare(got, alt, "") is None:
                return "diag(1 - h_t^2) multiplies W_hh from the left (it scales rows, one per output unit)"
            return hint + "; J_t = diag(1 - h_t^2) W_hh, product J_{T-1} J_{T-2} ... J_{T-k}"

        return run

    return run_trials(
        "check_jacobian_through_time",
        [trial("one"), trial("many"), trial("zero"), trial("many")],
        "your product of step Jacobians matches autograd on fresh random RNNs.",
    )


# ------------------------------------------------------------------------ greedy generation


@checker(generate, greedy_decode, _gpt.greedy, _gpt.generate)
def check_generate_greedy(
    fn: Callable[[Callable[[list[int]], Tensor], list[int], int], list[int]],
) -> CheckResult:
    """fn(next_logits, prompt, n_new) -> prompt + n_new greedily chosen tokens.

    next_logits(ids: list[int]) -> Tensor (V,): the model's scores for the token after ids.
    """
    g = fresh_generator()

    def run() -> str | None:
        V = _randint(g, 6, 12)
        A, B = _randn(g, V, V), _randn(g, V, V)  # a toy model that reads the last token and the whole prefix
        calls: list[int] = []

        def next_logits(ids: list[int]) -> Tensor:
            ids = [int(i) for i in ids]
            calls.append(len(ids))
            return A[ids[-1]] + B[sum(ids) % V]

        prompt = [_randint(g, 0, V - 1) for _ in range(_randint(g, 2, 4))]
        n_new = _randint(g, 3, 8)
        got = fn(next_logits, list(prompt), n_new)
        try:
            got = [int(t) for t in got]
        except (TypeError, ValueError):
            return f"return a list of token ids, got {type(got).__name__}"
        seq = list(prompt)
        for _ in range(n_new):
            logits = A[seq[-1]] + B[sum(seq) % V]
            seq.append(int(logits.argmax()))
        if len(got) != len(seq):
            return f"return the prompt followed by the {n_new} new tokens: expected length {len(seq)}, got {len(got)}"
        if got[: len(prompt)] != prompt:
            return "the returned sequence should start with the prompt, unchanged"
        if len(calls) != n_new:
            return f"greedy generation calls the model once per new token: {n_new} calls expected, you made {len(calls)}"
        for i, c in enumerate(calls):
            if c != len(prompt) + i:
                return (
                    f"call {i} fed the model {c} token(s) when {len(prompt) + i} were known: "
                    "feed it the whole sequence so far (prompt + the tokens generated so far)"
                )
        for i in range(len(prompt), len(seq)):
            if got[i] != seq[i]:
                return (
                    f"new token {i - len(prompt)} is {got[i]}, but the highest-scoring token is {seq[i]}: "
                    "greedy picks logits.argmax() and appends it before the next step"
                )
        return None

    return run_trials(
        "check_generate_greedy",
        [run, run, run],
        "your loop generates token by token, exactly like greedy decoding on fresh random models.",
    )
