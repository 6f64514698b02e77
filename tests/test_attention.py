import pytest
import torch
import torch.nn.functional as F

from course_lib import MultiHeadAttention, causal_mask, keep_attention_weights, padding_mask
from course_lib.attention import KVCache, copy_mha_to_torch, scaled_dot_product_attention
from course_lib.masks import to_key_padding_mask

D = torch.float64


def rand(g, *shape):
    return torch.randn(*shape, generator=g, dtype=D)


@pytest.mark.parametrize("masked", ["none", "causal", "random"])
def test_sdpa_matches_torch(gen, masked):
    B, h, Tq, Tk, d = 3, 2, 5, 7, 8
    q, k, v = rand(gen, B, h, Tq, d), rand(gen, B, h, Tk, d), rand(gen, B, h, Tk, 6)
    mask = None
    if masked == "causal":
        mask = torch.ones(Tq, Tk, dtype=torch.bool).tril()
    elif masked == "random":
        mask = torch.rand(B, 1, Tq, Tk, generator=gen) > 0.3
        mask[..., 0] = True  # every query keeps a key, so torch's result is finite too
    out, w = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (out - ref).abs().max() < 1e-12
    assert torch.allclose(w.sum(-1), torch.ones((), dtype=D))


def test_fully_masked_row_is_zero_not_nan(gen):
    q, k, v = rand(gen, 1, 3, 4), rand(gen, 1, 5, 4), rand(gen, 1, 5, 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert w[0, 1].abs().sum() == 0 and out[0, 1].abs().sum() == 0
    assert torch.allclose(w[0, [0, 2]].sum(-1), torch.ones(2, dtype=D))


def test_gradcheck_attention(gen):
    q, k, v = (rand(gen, 2, 3, 4).requires_grad_() for _ in range(3))
    mask = causal_mask(3)
    assert torch.autograd.gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c, mask)[0], (q, k, v))


def test_gradcheck_mha(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    mha = MultiHeadAttention(8, 2).double()
    x = rand(gen, 2, 4, 8).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: mha(t, mask=causal_mask(4), need_weights=True), (x,))


def _pair(gen, d_model=16, h=4):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    ours = MultiHeadAttention(d_model, h).double().eval()
    theirs = torch.nn.MultiheadAttention(d_model, h, batch_first=True).double().eval()
    copy_mha_to_torch(ours, theirs)
    return ours, theirs


def test_mha_self_attention_matches_torch(gen):
    ours, theirs = _pair(gen)
    x = rand(gen, 3, 6, 16)
    y = ours(x, need_weights=True)
    ref, ref_w = theirs(x, x, x, need_weights=True, average_attn_weights=False)
    assert (y - ref).abs().max() < 1e-10
    assert (ours.attn_weights - ref_w).abs().max() < 1e-10


def test_mha_cross_attention_with_padding_matches_torch(gen):
    ours, theirs = _pair(gen)
    q, mem = rand(gen, 2, 4, 16), rand(gen, 2, 7, 16)
    ids = torch.tensor([[5, 6, 7, 8, 9, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    y = ours(q, mem, mem, mask=padding_mask(ids, 0), need_weights=True)
    ref, ref_w = theirs(q, mem, mem, key_padding_mask=to_key_padding_mask(ids, 0), average_attn_weights=False)
    assert (y - ref).abs().max() < 1e-10
    assert (ours.attn_weights - ref_w).abs().max() < 1e-10


def test_mha_causal_and_padding_matches_torch(gen):
    ours, theirs = _pair(gen)
    x = rand(gen, 2, 5, 16)
    ids = torch.tensor([[3, 4, 5, 0, 0], [3, 4, 5, 6, 7]])
    mask = padding_mask(ids, 0) & causal_mask(5)
    y = ours(x, mask=mask, need_weights=True)
    ref, ref_w = theirs(
        x, x, x, attn_mask=~causal_mask(5), key_padding_mask=ids == 0, average_attn_weights=False
    )
    assert (y - ref).abs().max() < 1e-10
    assert (ours.attn_weights - ref_w).abs().max() < 1e-10


def test_fast_path_equals_naive_path(gen):
    ours, _ = _pair(gen)
    x, mem = rand(gen, 2, 5, 16), rand(gen, 2, 9, 16)
    mask = torch.rand(2, 1, 5, 9, generator=gen) > 0.5
    mask[0, 0, 2] = False  # a fully masked query
    naive = ours(x, mem, mem, mask, need_weights=True)
    fast = ours(x, mem, mem, mask)
    assert ours.attn_weights is None
    assert (naive - fast).abs().max() < 1e-12
    with keep_attention_weights(ours):
        ours(x, mem, mem, mask)
    assert ours.attn_weights.shape == (2, 4, 5, 9)


def test_kv_cache_gives_same_outputs(gen):
    ours, _ = _pair(gen)
    x = rand(gen, 2, 6, 16)
    full = ours(x, mask=causal_mask(6))
    cache = KVCache()
    steps = [ours(x[:, t : t + 1], cache=cache) for t in range(6)]
    assert len(cache) == 6
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-12


def test_heads_split_and_merge_round_trip(gen):
    ours, _ = _pair(gen)
    x = rand(gen, 2, 5, 16)
    assert ours.split_heads(x).shape == (2, 4, 5, 4)
    assert torch.equal(ours.merge_heads(ours.split_heads(x)), x)


@pytest.mark.parametrize("offset", [0, 1, 5])
def test_causal_mask_with_cached_keys(offset):
    # the T new queries after `offset` cached ones: the last T rows of the full causal mask
    T = 4
    full = causal_mask(offset + T)
    assert torch.equal(causal_mask(T, offset=offset), full[offset:])
    with pytest.raises(ValueError, match="offset >= 0"):
        causal_mask(T, offset=-1)
