"""Each lesson 08 checker accepts a right answer and rejects a wrong one with a useful hint."""

import pytest

from course_lib.exercises.lesson08 import (
    check_cross_attention_shapes,
    check_decoder_layer_params,
    check_model_params,
    reference_cross_attention_shapes,
)


# --- cross-attention shapes ------------------------------------------------------------
def right_shapes(B, S, T, d_model, n_heads):
    d_k = d_model // n_heads
    return {
        "Q": (B, n_heads, T, d_k),
        "K": (B, n_heads, S, d_k),
        "V": (B, n_heads, S, d_k),
        "weights": (B, n_heads, T, S),
        "out": (B, T, d_model),
    }


def test_reference_shapes_from_a_real_module():
    assert reference_cross_attention_shapes(2, 7, 5, 12, 3) == right_shapes(2, 7, 5, 12, 3)


def test_cross_attention_shapes_accepts_right_answer():
    r = check_cross_attention_shapes(right_shapes)
    assert r.passed and repr(r).startswith("✅"), r


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda s: {**s, "K": s["Q"]}, "SOURCE position"),
        (lambda s: {**s, "Q": s["K"]}, "TARGET position"),
        (lambda s: {**s, "weights": s["weights"][:2] + s["weights"][:1:-1]}, "transposed"),
        (lambda s: {k: v for k, v in s.items() if k != "out"}, "keys"),
    ],
)
def test_cross_attention_shapes_rejects_with_hint(wrong, hint):
    r = check_cross_attention_shapes(lambda *a: wrong(right_shapes(*a)))
    assert not r.passed and repr(r).startswith("❌"), r
    assert hint in r.message, r.message


def test_cross_attention_shapes_reports_exceptions():
    def broken(*a):
        raise RuntimeError("boom")

    r = check_cross_attention_shapes(broken)
    assert not r.passed and "RuntimeError: boom" in r.message


# --- decoder layer parameters ----------------------------------------------------------
def right_layer_count(d, f):
    return 2 * (4 * d * d + 4 * d) + (2 * d * f + f + d) + 3 * 2 * d


def test_decoder_layer_params_accepts_right_answer():
    r = check_decoder_layer_params(right_layer_count)
    assert r.passed, r


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda d, f: (4 * d * d + 4 * d) + (2 * d * f + f + d) + 2 * 2 * d, "cross-attention"),
        (lambda d, f: 2 * (4 * d * d + 4 * d) + (2 * d * f + f + d), "LayerNorms are missing"),
        (lambda d, f: 2 * (4 * d * d) + 2 * d * f + 3 * 2 * d, "biases"),
        (lambda d, f: 2 * (4 * d * d + 4 * d) + (2 * d * f + f + d) + 2 * 2 * d, "three LayerNorms"),
        (lambda d, f: 1.0 * right_layer_count(d, f), "int"),
        (lambda d, f: right_layer_count(d, f) + 1, "not the count"),
    ],
)
def test_decoder_layer_params_rejects_with_hint(wrong, hint):
    r = check_decoder_layer_params(wrong)
    assert not r.passed and hint in r.message, r.message


# --- whole-model parameters ------------------------------------------------------------
def right_model_count(V, d, f, N, share, tie):
    enc = 4 * d * d + 4 * d + 2 * d * f + f + d + 2 * 2 * d
    dec = right_layer_count(d, f)
    embeddings = V * d * (1 if share else 2)
    generator = 0 if tie else V * d
    return embeddings + generator + N * (enc + dec)


def test_model_params_accepts_right_answer():
    r = check_model_params(right_model_count)
    assert r.passed, r


def test_model_params_rejects_counting_a_tied_matrix_twice():
    r = check_model_params(lambda V, d, f, N, share, tie: right_model_count(V, d, f, N, share, False))
    assert not r.passed and "counted twice" in r.message, r.message


def test_model_params_rejects_ignoring_sharing():
    r = check_model_params(lambda V, d, f, N, share, tie: right_model_count(V, d, f, N, False, tie))
    assert not r.passed and "counted twice" in r.message, r.message


def test_model_params_rejects_a_missing_table():
    r = check_model_params(lambda V, d, f, N, share, tie: right_model_count(V, d, f, N, True, True))
    assert not r.passed and "missing" in r.message, r.message
