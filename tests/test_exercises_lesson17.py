"""The lesson-17 checkers accept right answers, refuse wrong ones, and refuse the library's own."""

from __future__ import annotations

import torch

from course_lib.exercises.lesson17 import check_online_softmax_step, check_retention_recurrent
from course_lib.flash import online_softmax_update
from course_lib.retention import retention_chunkwise, retention_recurrent


# --- the online softmax step ---------------------------------------------------------------------
def step_right(m, l, acc, s, v):
    m_new = torch.maximum(m, s.amax(-1, keepdim=True))
    safe = m_new.masked_fill(torch.isneginf(m_new), 0.0)
    c, p = torch.exp(m - safe), torch.exp(s - safe)
    return m_new, c * l + p.sum(-1, keepdim=True), c * acc + p @ v


def step_no_rescale(m, l, acc, s, v):
    m_new = torch.maximum(m, s.amax(-1, keepdim=True))
    safe = m_new.masked_fill(torch.isneginf(m_new), 0.0)
    p = torch.exp(s - safe)
    return m_new, l + p.sum(-1, keepdim=True), acc + p @ v


def step_nan_on_empty_rows(m, l, acc, s, v):
    m_new = torch.maximum(m, s.amax(-1, keepdim=True))
    c, p = torch.exp(m - m_new), torch.exp(s - m_new)
    return m_new, c * l + p.sum(-1, keepdim=True), c * acc + p @ v


def test_step_accepts_right_answers():
    r = check_online_softmax_step(step_right)
    assert r.passed and str(r).startswith("✅"), r.message


def test_step_rejects_wrong_answers():
    r = check_online_softmax_step(step_no_rescale)
    assert not r.passed and "differs" in r.message and "exp(m_old - m_new)" in r.message
    r = check_online_softmax_step(step_nan_on_empty_rows)
    assert not r.passed and "NaN" in r.message and "subtract 0" in r.message
    r = check_online_softmax_step(lambda m, l, acc, s, v: (m, l))
    assert not r.passed and "three tensors" in r.message
    r = check_online_softmax_step(lambda m, l, acc, s, v: 1 / 0)
    assert not r.passed and "ZeroDivisionError" in r.message and "\n" not in str(r)


def test_step_refuses_the_library():
    r = check_online_softmax_step(online_softmax_update)
    assert not r.passed and "online_softmax_update" in r.message and "yourself" in r.message
    r = check_online_softmax_step(lambda *a: online_softmax_update(*a))
    assert not r.passed and "yourself" in r.message


# --- retention, token by token -------------------------------------------------------------------
def recurrent_right(q, k, v, gammas):
    B, h, T, d_k = q.shape
    S = q.new_zeros(B, h, d_k, v.size(-1))
    outs = []
    for t in range(T):
        S = gammas[:, None, None] * S + k[:, :, t, :, None] * v[:, :, t, None, :]
        outs.append((q[:, :, t, None, :] @ S).squeeze(-2))
    return torch.stack(outs, 2), S


def recurrent_no_decay(q, k, v, gammas):
    return recurrent_right(q, k, v, torch.ones_like(gammas))


def recurrent_decay_after_read(q, k, v, gammas):
    B, h, T, d_k = q.shape
    S = q.new_zeros(B, h, d_k, v.size(-1))
    outs = []
    for t in range(T):
        S = S + k[:, :, t, :, None] * v[:, :, t, None, :]
        outs.append((q[:, :, t, None, :] @ S).squeeze(-2))
        S = gammas[:, None, None] * S
    return torch.stack(outs, 2), S


def test_retention_accepts_right_answers():
    r = check_retention_recurrent(recurrent_right)
    assert r.passed and str(r).startswith("✅"), r.message


def test_retention_rejects_wrong_answers():
    r = check_retention_recurrent(recurrent_no_decay)
    assert not r.passed and "differs" in r.message and "gamma" in r.message
    r = check_retention_recurrent(recurrent_decay_after_read)
    assert not r.passed and "state" in r.message  # outputs right, state decayed once too often
    r = check_retention_recurrent(lambda q, k, v, g: recurrent_right(q, k, v, g)[0])
    assert not r.passed and "two tensors" in r.message


def test_retention_refuses_the_library():
    for fn in (retention_recurrent, lambda q, k, v, g: retention_chunkwise(q, k, v, g, 3)):
        r = check_retention_recurrent(fn)
        assert not r.passed and "retention_" in r.message and "yourself" in r.message
