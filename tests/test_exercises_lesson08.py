"""Each lesson 08 checker accepts a right answer and rejects a wrong one with a useful hint."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.exercises.lesson08 import (
    check_cross_attention_shapes,
    check_decoder_layer,
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


def decoder_layer_answer(
    layer, x, memory, src_keep, pre_ln=False, causal=True, src_mask=True, cross_kv="memory"
):
    def attention(mha, q_in, kv_in, mask):
        B, Tq, d_model = q_in.shape
        h, d_k = mha.n_heads, d_model // mha.n_heads

        def heads(t):  # (B, T, d_model) -> (B, h, T, d_k)
            return t.view(B, -1, h, d_k).transpose(1, 2)

        q, k, v = heads(mha.w_q(q_in)), heads(mha.w_k(kv_in)), heads(mha.w_v(kv_in))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, Tq, Tk)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, Tq, d_model)
        return mha.w_o(out)

    def norm(ln, t):
        return F.layer_norm(t, (t.size(-1),), ln.gamma, ln.beta, ln.eps)

    T = x.size(1)
    tgt_mask = torch.ones(T, T, dtype=torch.bool).tril() if causal else None
    keep = src_keep[:, None, None, :] if src_mask else None

    def sa(h):
        return attention(layer.self_attn, h, h, tgt_mask)

    def ca(h):
        if cross_kv == "memory":
            return attention(layer.cross_attn, h, memory, keep)
        return attention(layer.cross_attn, h, h, None)  # wrong: keys and values from the decoder

    def ff(h):
        return layer.ff.w_2(torch.relu(layer.ff.w_1(h)))

    if pre_ln:
        x = x + sa(norm(layer.norm1, x))
        x = x + ca(norm(layer.norm2, x))
        return x + ff(norm(layer.norm3, x))
    x = norm(layer.norm1, x + sa(x))
    x = norm(layer.norm2, x + ca(x))
    return norm(layer.norm3, x + ff(x))


def test_decoder_layer_checker():
    res = check_decoder_layer(decoder_layer_answer, repeat=2)
    assert res and str(res).startswith("✅")
    res = check_decoder_layer(lambda *a: decoder_layer_answer(*a, pre_ln=True))
    assert not res and "pre-LN" in res.message and "post-LN" in res.message
    res = check_decoder_layer(lambda *a: decoder_layer_answer(*a, causal=False))
    assert not res and "causal mask" in res.message
    res = check_decoder_layer(lambda *a: decoder_layer_answer(*a, src_mask=False))
    assert not res and "src_keep" in res.message
    res = check_decoder_layer(lambda *a: decoder_layer_answer(*a, cross_kv="x"))
    assert not res and "differs" in res.message
    res = check_decoder_layer(lambda *a: decoder_layer_answer(*a)[:, :-1])
    assert not res and "shape" in res.message


def test_decoder_layer_checker_refuses_the_library():
    def uses_norm_module(layer, x, memory, src_keep):  # the library's LayerNorm, run through the layer
        y = decoder_layer_answer(layer, x, memory, src_keep)
        return layer.norm3(y) * 0 + y

    def uses_torch(layer, x, memory, src_keep):
        d, h = x.size(-1), layer.self_attn.n_heads
        ref = torch.nn.TransformerDecoderLayer(d, h, layer.ff.w_1.out_features, dropout=0.0, batch_first=True)
        return ref.double().eval()(x, memory)

    for answer in (
        uses_norm_module,
        uses_torch,
        lambda layer, x, m, k: layer(x, m, None, k[:, None, None, :]),
    ):
        res = check_decoder_layer(answer)
        assert not res and "write it yourself" in res.message
