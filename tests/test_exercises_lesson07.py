import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import MultiHeadAttention, copy_mha_to_torch
from course_lib.exercises import NOT_WRITTEN
from course_lib.exercises.lesson07 import (
    check_masked_self_attention,
    check_masked_softmax,
    masked_softmax,
    padded_ids,
    torch_reference,
)
from course_lib.masks import causal_mask, decoder_mask, padding_mask


# --- masked softmax ------------------------------------------------------------------------------
def test_masked_softmax_reference():
    scores = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, False], [False] * 4, [True] * 4])
    w = masked_softmax(scores, mask.expand(2, 3, 4))
    assert not torch.isnan(w).any()
    assert torch.equal(w[:, 1], torch.zeros(2, 4, dtype=torch.float64))  # fully masked row: all 0
    assert torch.allclose(w[:, 0].sum(-1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(w[:, 2], scores[:, 2].softmax(-1))
    assert (w[:, 0, 2:] == 0).all()


def test_masked_softmax_checker():
    good = lambda s, m: s.masked_fill(~m, float("-inf")).softmax(-1).nan_to_num(0.0)
    assert check_masked_softmax(good)
    res = check_masked_softmax(lambda s, m: s.masked_fill(~m, float("-inf")).softmax(-1))
    assert not res and "NaN" in res.message
    res = check_masked_softmax(lambda s, m: s.masked_fill(~m, -1e9).softmax(-1))
    assert not res and "fully masked row" in res.message
    res = check_masked_softmax(lambda s, m: s.masked_fill(m, float("-inf")).softmax(-1).nan_to_num(0.0))
    assert not res and "wrong way round" in res.message
    res = check_masked_softmax(lambda s, m: s.softmax(-1))
    assert not res and "-inf" in res.message


# --- masked self-attention over a padded batch ----------------------------------------------------
def attention(
    mha,
    x,
    ids,
    pad_id,
    invert=False,
    causal=True,
    padding="keys",
    split="view",
    scale=True,
    use_w_o=True,
    empty="zero",
    triangle="tril",
):
    """A learner's answer; the keywords switch on one typical mistake each."""
    B, T, d_model = x.shape
    h = mha.n_heads
    d_k = d_model // h
    real = ids != pad_id  # (B, T)
    mask = torch.ones(B, 1, T, T, dtype=torch.bool)
    if padding == "keys":
        mask = mask & real[:, None, None, :]  # (B, 1, 1, T)
    elif padding == "queries":  # wrong: hides the padding queries, not the keys
        mask = mask & real[:, None, :, None]  # (B, 1, T, 1)
    if causal:
        tri = torch.ones(T, T, dtype=torch.bool)
        mask = mask & (tri.tril() if triangle == "tril" else tri.triu())
    if invert:  # wrong: True read as blocked
        mask = ~mask

    def split_heads(t):  # (B, T, d_model) -> (B, h, T, d_k)
        return t.view(B, T, h, d_k).transpose(1, 2) if split == "view" else t.reshape(B, h, T, d_k)

    q, k, v = split_heads(mha.w_q(x)), split_heads(mha.w_k(x)), split_heads(mha.w_v(x))
    scores = q @ k.transpose(-2, -1) / (math.sqrt(d_k) if scale else 1.0)  # (B, h, T, T)
    if empty == "large negative":
        weights = scores.masked_fill(~mask, -1e9).softmax(-1)
    else:
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)  # NaN on rows with no key
        if empty in ("zero", "zero output"):
            weights = weights.nan_to_num(0.0)
    heads = weights @ v  # (B, h, T, d_k)
    merged = heads.transpose(1, 2).reshape(B, T, d_model) if split == "view" else heads.reshape(B, T, d_model)
    if not use_w_o:
        return merged
    out = mha.w_o(merged)
    if empty == "zero output":  # wrong: zeroes the layer's output, not the weights
        out = out * mask.any(-1)[:, 0, :, None]
    return out


def test_torch_reference_matches_the_library():
    g = torch.Generator().manual_seed(0)
    mha = MultiHeadAttention(12, 3).double().eval()
    theirs = nn.MultiheadAttention(12, 3, batch_first=True, dtype=torch.float64).eval()
    copy_mha_to_torch(mha, theirs)
    for left in (True, False):
        ids = padded_ids(g, [3, 7, 1, 5], 7, pad_id=2, left=left)
        assert (ids == 2).sum(-1).tolist() == [4, 0, 6, 2]
        x = torch.randn(4, 7, 12, dtype=torch.float64)
        with torch.no_grad():
            ref = torch_reference(mha, theirs, x, ids, 2)
            lib = mha(x, mask=decoder_mask(ids, 2))
            ours = attention(mha, x, ids, 2)
        assert not torch.isnan(ref).any()
        assert torch.allclose(ref, lib, atol=1e-12) and torch.allclose(ref, ours, atol=1e-12)
        # left padding: sentence 2's six leading pads have no key, and output w_o's bias
        on_bias = torch.isclose(ref[2], mha.w_o.bias.detach()).all(-1)
        assert on_bias.tolist() == ([True] * 6 + [False] if left else [False] * 7)


def test_masked_self_attention_accepts_right_answers():
    r = check_masked_self_attention(attention, repeat=2)
    assert r.passed and str(r).startswith("✅"), r.message

    def with_own_softmax(mha, x, ids, pad_id):  # a learner reusing their masked softmax: the same
        B, T, d = x.shape
        h = mha.n_heads
        mask = (ids != pad_id)[:, None, None, :] & torch.ones(T, T, dtype=torch.bool).tril()

        def split(t):
            return t.view(B, T, h, d // h).transpose(1, 2)

        q, k, v = split(mha.w_q(x)), split(mha.w_k(x)), split(mha.w_v(x))
        w = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), mask)
        return mha.w_o((w @ v).transpose(1, 2).reshape(B, T, d))

    assert check_masked_self_attention(with_own_softmax)


@pytest.mark.parametrize(
    "mistake,hint",
    [
        ({"invert": True}, "wrong way round"),
        ({"causal": False}, "the causal part is missing"),
        ({"padding": None}, "read the padding keys"),
        ({"padding": "queries"}, "padding *queries*"),
        ({"split": "reshape"}, "the heads mix positions"),
        ({"scale": False}, "sqrt(d_k)"),
        ({"use_w_o": False}, "w_o is missing"),
        ({"empty": "nan"}, "gave NaN"),
        ({"empty": "large negative"}, "still attend to something"),
        ({"empty": "zero output"}, "zero the weights, not the output"),
        ({"triangle": "triu"}, "lower triangle, tril"),
    ],
)
def test_masked_self_attention_names_the_mistake(mistake, hint):
    r = check_masked_self_attention(lambda m, x, i, p: attention(m, x, i, p, **mistake))
    assert not r.passed and hint in r.message, r.message
    assert "\n" not in r.message


def test_masked_self_attention_mistakes_with_a_nan_softmax_are_named_first():
    # the naive softmax's NaN on empty rows must not hide the bigger mistake
    for mistake, hint in (({"padding": "queries"}, "padding *queries*"), ({"scale": False}, "sqrt(d_k)")):
        r = check_masked_self_attention(lambda m, x, i, p: attention(m, x, i, p, empty="nan", **mistake))  # noqa: B023
        assert not r.passed and hint in r.message, r.message


def test_masked_self_attention_refuses_the_library():
    def my_mask(ids, pad_id):
        T = ids.size(1)
        return (ids != pad_id)[:, None, None, :] & torch.ones(T, T, dtype=torch.bool).tril()

    def split_with_library(mha, x, ids, pad_id):
        q = mha.split_heads(mha.w_q(x))  # noqa: F841  (the library's split, refused at run time)
        return attention(mha, x, ids, pad_id)

    answers = [
        lambda mha, x, ids, p: mha(x, mask=my_mask(ids, p)),  # the library's module, at run time
        split_with_library,
        lambda mha, x, ids, p: mha(x, mask=decoder_mask(ids, p)),
        lambda mha, x, ids, p: mha(x, mask=padding_mask(ids, p) & causal_mask(ids.size(1))),
        lambda mha, x, ids, p: F.scaled_dot_product_attention(x, x, x, attn_mask=my_mask(ids, p)[:, 0]),
        lambda mha, x, ids, p: nn.MultiheadAttention(x.size(-1), mha.n_heads, batch_first=True)(x, x, x)[0],
    ]
    for answer in answers:
        r = check_masked_self_attention(answer)
        assert not r.passed and "write it yourself" in r.message, r.message


def test_masked_self_attention_greets_a_stub():
    def stub(mha, x, ids, pad_id):
        raise NotImplementedError()

    r = check_masked_self_attention(stub)
    assert not r.passed and NOT_WRITTEN in r.message


def test_masked_self_attention_reports_wrong_types_in_one_line():
    r = check_masked_self_attention(lambda m, x, i, p: (attention(m, x, i, p), None))
    assert not r.passed and "got tuple" in r.message
    r = check_masked_self_attention(lambda m, x, i, p: attention(m, x, i, p)[:, :, None])
    assert not r.passed and "shape" in r.message
    r = check_masked_self_attention(lambda m, x, i, p: 1 / 0)
    assert not r.passed and "ZeroDivisionError" in r.message and "\n" not in r.message


def test_masked_self_attention_uses_fresh_inputs():
    seen = []

    def spy(mha, x, ids, pad_id):
        seen.append(x.flatten()[:4].clone())
        return attention(mha, x, ids, pad_id)

    check_masked_self_attention(spy)
    check_masked_self_attention(spy)
    assert len(seen) == 8 and not torch.equal(seen[0], seen[4])
