import math

import torch
import torch.nn.functional as F

from course_lib.exercises.lesson06 import (
    check_ffn_share,
    check_layer_norm,
    check_sublayer_connection,
    ffn_share,
)
from course_lib.layers import EncoderLayer, FeedForward
from course_lib.params import count_parameters


def _ln(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return gamma * (x - mean) / torch.sqrt(var + eps) + beta


def test_layer_norm_checker_accepts_right_answers():
    assert check_layer_norm(_ln)
    r = check_layer_norm(lambda x, g, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], g, b, eps))
    assert not r and "layer_norm: write it yourself" in r.message
    assert str(check_layer_norm(_ln)).startswith("✅")


def test_layer_norm_checker_names_the_slip():
    res = check_layer_norm(
        lambda x, g, b, eps=1e-5: g * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + eps) + b
    )
    assert not res and ("biased variance" in res.message or "inside the square root" in res.message)
    res = check_layer_norm(
        lambda x, g, b, eps=1e-5: (
            (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
        )
    )
    assert not res and "gamma" in res.message
    res = check_layer_norm(
        lambda x, g, b, eps=1e-5: _ln(x.transpose(0, -1), 1.0, 0.0).transpose(0, -1) * g + b
    )
    assert not res
    mm = lambda x, g, b, eps=1e-5: (
        g * (x - x.amin(-1, keepdim=True)) / (x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)) + b
    )
    res = check_layer_norm(mm)
    assert not res and "range" in res.message
    res = check_layer_norm(
        lambda x, g, b, eps=1e-5: (
            g * (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, unbiased=False, keepdim=True) + eps) + b
        )
    )
    assert not res and "BatchNorm" in res.message
    res = check_layer_norm(
        lambda x, g, b, eps=1e-5: (
            g * (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True).sqrt() + eps) + b
        )
    )
    assert not res and "inside the square root" in res.message
    assert not check_layer_norm(lambda x, g, b, eps=1e-5: x.numpy().tolist()[0])


def test_sublayer_connection_checker():
    assert check_sublayer_connection(lambda x, s, n, nf: x + s(n(x)) if nf else n(x + s(x)))
    res = check_sublayer_connection(lambda x, s, n, nf: n(x + s(x)) if nf else x + s(n(x)))
    assert not res and "other arrangement" in res.message
    res = check_sublayer_connection(lambda x, s, n, nf: s(n(x)) if nf else n(s(x)))
    assert not res and "residual is missing" in res.message
    res = check_sublayer_connection(lambda x, s, n, nf: x + n(s(x)))
    assert not res and ("after the sum" in res.message or "before" in res.message)


def test_sublayer_connection_checker_keeps_the_global_rng():
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    check_sublayer_connection(lambda x, s, n, nf: x + s(n(x)) if nf else n(x + s(x)))
    assert torch.equal(torch.rand(3), a)


def test_ffn_share_reference_matches_a_real_layer():
    for d, f in [(512, 2048), (24, 40), (64, 64)]:
        real = count_parameters(FeedForward(d, f)) / count_parameters(EncoderLayer(d, 4, f, dropout=0.0))
        assert math.isclose(real, ffn_share(d, f), rel_tol=1e-12)
    assert abs(ffn_share(512, 2048) - 2 / 3) < 0.002  # about two thirds for d_ff = 4 d_model


def test_ffn_share_checker():
    right = lambda d, f: (2 * d * f + d + f) / (2 * d * f + d + f + 4 * d * d + 4 * d + 4 * d)
    assert check_ffn_share(right)
    res = check_ffn_share(lambda d, f: 100 * right(d, f))
    assert not res and "percentage" in res.message
    res = check_ffn_share(lambda d, f: (2 * d * f + d + f) / (2 * d * f + d + f + 4 * d * d + 4 * d))
    assert not res and "LayerNorm" in res.message
    res = check_ffn_share(lambda d, f: 2 * d * f / (2 * d * f + 4 * d * d))
    assert not res and "biases" in res.message
    res = check_ffn_share(lambda d, f: "two thirds")
    assert not res and "number" in res.message
