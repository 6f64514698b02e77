import torch

from course_lib.exercises.lesson01 import (
    check_generate_greedy,
    check_jacobian_through_time,
    check_rnn_forward,
)


# ------------------------------------------------------------------ check_rnn_forward
def rnn_right(x, w_ih, w_hh, b, h0):
    h, states = h0, []
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] @ w_ih.T + h @ w_hh.T + b)
        states.append(h)
    return torch.stack(states)


def rnn_no_tanh(x, w_ih, w_hh, b, h0):
    h, states = h0, []
    for t in range(x.shape[0]):
        h = x[t] @ w_ih.T + h @ w_hh.T + b
        states.append(h)
    return torch.stack(states)


def rnn_no_carry(x, w_ih, w_hh, b, h0):
    return torch.stack([torch.tanh(x[t] @ w_ih.T + h0 @ w_hh.T + b) for t in range(x.shape[0])])


def rnn_last_only(x, w_ih, w_hh, b, h0):
    return rnn_right(x, w_ih, w_hh, b, h0)[-1]


def rnn_raises(x, w_ih, w_hh, b, h0):
    return x @ w_hh  # shapes do not fit


def test_rnn_forward_accepts_right_answer():
    r = check_rnn_forward(rnn_right)
    assert r.passed and str(r).startswith("✅")


def test_rnn_forward_hints():
    r = check_rnn_forward(rnn_no_tanh)
    assert not r.passed and str(r).startswith("❌") and "tanh is missing" in str(r)
    r = check_rnn_forward(rnn_no_carry)
    assert not r.passed and "carry the new state" in str(r)
    r = check_rnn_forward(rnn_last_only)
    assert not r.passed and "shape" in str(r) and "(T, H)" in str(r)
    r = check_rnn_forward(rnn_raises)
    assert not r.passed and "raised RuntimeError" in str(r)


# -------------------------------------------------------- check_jacobian_through_time
def jac_right(states, w_hh, k):
    J = torch.eye(w_hh.shape[0], dtype=states.dtype)
    T = states.shape[0]
    for t in range(T - 1, T - 1 - k, -1):
        J = J @ (torch.diag(1 - states[t] ** 2) @ w_hh)
    return J


def jac_no_tanh(states, w_hh, k):
    return torch.linalg.matrix_power(w_hh, k)


def jac_reversed(states, w_hh, k):
    J = torch.eye(w_hh.shape[0], dtype=states.dtype)
    T = states.shape[0]
    for t in range(T - k, T):
        J = J @ (torch.diag(1 - states[t] ** 2) @ w_hh)
    return J


def jac_zero_when_k0(states, w_hh, k):
    return jac_right(states, w_hh, k) if k else torch.zeros_like(w_hh)


def test_jacobian_accepts_right_answer():
    r = check_jacobian_through_time(jac_right)
    assert r.passed and str(r).startswith("✅")


def test_jacobian_hints():
    r = check_jacobian_through_time(jac_no_tanh)
    assert not r.passed and "diag(1 - h_t^2)" in str(r)
    r = check_jacobian_through_time(jac_reversed)
    assert not r.passed and "wrong order" in str(r)
    r = check_jacobian_through_time(jac_zero_when_k0)
    assert not r.passed and "identity" in str(r)


# ------------------------------------------------------------- check_generate_greedy
def gen_right(next_logits, prompt, n_new):
    ids = list(prompt)
    for _ in range(n_new):
        ids.append(int(next_logits(ids).argmax()))
    return ids


def gen_last_token_only(next_logits, prompt, n_new):
    ids = list(prompt)
    for _ in range(n_new):
        ids.append(int(next_logits(ids[-1:]).argmax()))
    return ids


def gen_new_only(next_logits, prompt, n_new):
    return gen_right(next_logits, prompt, n_new)[len(prompt) :]


def gen_argmin(next_logits, prompt, n_new):
    ids = list(prompt)
    for _ in range(n_new):
        ids.append(int(next_logits(ids).argmin()))
    return ids


def test_generate_accepts_right_answer():
    r = check_generate_greedy(gen_right)
    assert r.passed and str(r).startswith("✅")


def test_generate_hints():
    r = check_generate_greedy(gen_last_token_only)
    assert not r.passed and "whole sequence so far" in str(r)
    r = check_generate_greedy(gen_new_only)
    assert not r.passed and "prompt followed by" in str(r)
    r = check_generate_greedy(gen_argmin)
    assert not r.passed and "argmax" in str(r)
