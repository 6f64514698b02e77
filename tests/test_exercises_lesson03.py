import math

import numpy as np

from course_lib.exercises.lesson03 import (
    check_attention_weights,
    check_previous_token_projections,
    check_row_entropy,
)


# --- softmax over the keys -------------------------------------------------------------
def good_softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_attention_weights_accepts_a_right_answer():
    res = check_attention_weights(good_softmax)
    assert res and str(res).startswith("✅")


def test_attention_weights_rejects_column_softmax():
    res = check_attention_weights(lambda s: good_softmax(s.T).T)
    assert not res and "columns sum to 1" in res.message and "not column-wise" in res.message


def test_attention_weights_rejects_overflow():
    with np.errstate(over="ignore", invalid="ignore"):
        res = check_attention_weights(lambda s: np.exp(s) / np.exp(s).sum(-1, keepdims=True))
    assert not res and "maximum" in res.message


def test_attention_weights_rejects_transposed_shape():
    res = check_attention_weights(lambda s: good_softmax(s).T)
    assert not res and "one row per query" in res.message


def test_attention_weights_reports_a_crash():
    res = check_attention_weights(lambda s: s.nope())
    assert not res and "AttributeError" in res.message


# --- the previous-token head -------------------------------------------------------------
def prev_token(max_len, strength=8.0):
    d_k = max_len
    W_Q, W_K = np.zeros((max_len, d_k)), np.eye(max_len)
    for i in range(max_len):
        W_Q[i, max(i - 1, 0)] = 1.0
    return W_Q * strength * math.sqrt(d_k), W_K


def test_previous_token_accepts_a_right_answer():
    assert check_previous_token_projections(prev_token)


def test_previous_token_rejects_identity():
    res = check_previous_token_projections(lambda L: (np.eye(L) * 10 * math.sqrt(L), np.eye(L)))
    assert not res and "itself" in res.message


def test_previous_token_rejects_wrong_direction():
    res = check_previous_token_projections(lambda L: (prev_token(L)[0].T.copy(), np.eye(L)))
    assert not res and ("wrong way" in res.message or "expected key" in res.message)


def test_previous_token_rejects_too_soft():
    res = check_previous_token_projections(lambda L: prev_token(L, strength=0.5))
    assert not res and "scale" in res.message


def test_previous_token_rejects_bad_shapes():
    res = check_previous_token_projections(lambda L: (np.eye(L + 1), np.eye(L + 1)))
    assert not res and "(max_len, d_k)" in res.message
    res = check_previous_token_projections(lambda L: (np.eye(L), np.eye(L)[:, :3]))
    assert not res and "share d_k" in res.message


# --- row entropy ---------------------------------------------------------------------------
def good_entropy(w):
    return -(w * np.log(np.where(w > 0, w, 1.0))).sum(-1)


def test_row_entropy_accepts_a_right_answer():
    assert check_row_entropy(good_entropy)


def test_row_entropy_rejects_nan_on_zeros():
    with np.errstate(divide="ignore", invalid="ignore"):
        res = check_row_entropy(lambda w: -(w * np.log(w)).sum(-1))
    assert not res and "0 * log 0" in res.message


def test_row_entropy_rejects_bits_and_sign_and_axis():
    res = check_row_entropy(lambda w: good_entropy(w) / math.log(2))
    assert not res and "nats" in res.message
    res = check_row_entropy(lambda w: -good_entropy(w))
    assert not res and "minus sign" in res.message
    res = check_row_entropy(lambda w: good_entropy(w.T))
    assert not res and "one per query" in res.message
