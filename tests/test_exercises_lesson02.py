import math

import pytest
import torch

from course_lib.exercises.lesson02 import check_attention, check_softmax


# ----------------------------------------------------------------------- check_softmax
def softmax_right(x):
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def softmax_naive(x):  # right on small inputs, overflows on large ones
    e = torch.exp(x)
    return e / e.sum(dim=-1, keepdim=True)


def softmax_columns(x):
    e = torch.exp(x - x.max(dim=-2, keepdim=True).values)
    return e / e.sum(dim=-2, keepdim=True)


def softmax_unnormalised(x):
    return torch.exp(x - x.max(dim=-1, keepdim=True).values)


def test_softmax_accepts_right_answer():
    r = check_softmax(softmax_right)
    assert r.passed and str(r).startswith("✅")


def test_refuses_the_library():
    for fn in (torch.softmax, lambda x: torch.softmax(x, dim=-1), lambda x: x.softmax(-1)):
        r = check_softmax(fn)
        assert not r.passed and "write it yourself" in r.message and "softmax" in r.message
    from course_lib.attention import scaled_dot_product_attention

    for fn in (scaled_dot_product_attention, lambda q, k, v: scaled_dot_product_attention(q, k, v)):
        r = check_attention(fn)
        assert not r.passed and "scaled_dot_product_attention: write it yourself" in r.message


def test_softmax_hints():
    r = check_softmax(softmax_naive)
    assert not r.passed and str(r).startswith("❌") and "maximum" in str(r) and "overflow" in str(r)
    r = check_softmax(softmax_columns)
    assert not r.passed and "the last axis" in str(r) and "queries" in str(r)
    r = check_softmax(softmax_unnormalised)
    assert not r.passed and "sum to 1" in str(r)
    r = check_softmax(lambda x: x.sum())
    assert not r.passed and "shape" in str(r)


# --------------------------------------------------------------------- check_attention
def attention_right(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v, w


def attention_unscaled(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
    return w @ v, w


def attention_by_dk(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1], dim=-1)
    return w @ v, w


def attention_columns(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-2)
    return w @ v, w


def attention_dot_T(q, k, v):  # works for 2-D inputs only
    w = torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v, w


def attention_output_only(q, k, v):
    return attention_right(q, k, v)[0]


def attention_forgets_v(q, k, v):
    w = attention_right(q, k, v)[1]
    return w @ v[..., :1].expand_as(v), w


def test_attention_accepts_right_answer():
    r = check_attention(attention_right)
    assert r.passed and str(r).startswith("✅")


@pytest.mark.filterwarnings("ignore:The use of `x.T`")
def test_attention_hints():
    r = check_attention(attention_unscaled)
    assert not r.passed and "sqrt(d_k)" in str(r) and "not scaled" in str(r)
    r = check_attention(attention_by_dk)
    assert not r.passed and "divided the scores by d_k" in str(r)
    r = check_attention(attention_columns)
    assert not r.passed and "wrong axis" in str(r)
    r = check_attention(attention_dot_T)
    assert not r.passed and "transpose(-2, -1)" in str(r)
    r = check_attention(attention_output_only)
    assert not r.passed and "(output, weights)" in str(r)
    r = check_attention(attention_forgets_v)
    assert not r.passed and "weights are right" in str(r)
