"""Grouped-query and multi-query attention: equal to MultiHeadAttention when groups = heads, the
right shapes, a cache of n_kv_heads heads, and the bytes formula."""

from __future__ import annotations

import pytest
import torch

from course_lib.attention import KVCache, MultiHeadAttention
from course_lib.gpt import GPT, GPTConfig
from course_lib.gqa import GroupedQueryAttention, cache_bytes, kv_cache_bytes_per_token
from course_lib.masks import causal_mask, combine_masks, padding_mask
from course_lib.validate import InputTypeError


def mha(gen, d=24, h=6):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    return MultiHeadAttention(d, h).double()


@pytest.mark.parametrize("fused", [True, False])
def test_equals_mha_when_groups_equal_heads(gen, fused):
    ref = mha(gen)
    ref.fused = fused
    gqa = GroupedQueryAttention.from_mha(ref, 6)
    x = torch.randn(3, 9, 24, generator=gen, dtype=torch.float64)
    mem = torch.randn(3, 5, 24, generator=gen, dtype=torch.float64)
    ids = torch.randint(1, 5, (3, 9), generator=gen)
    ids[0, 5:] = 0
    ids[2, :] = 0  # every key padding: fully masked rows
    for mask in (None, causal_mask(9), combine_masks(padding_mask(ids, 0), causal_mask(9))):
        torch.testing.assert_close(gqa(x, mask=mask), ref(x, mask=mask), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(gqa(x, mem, mem), ref(x, mem, mem), atol=1e-12, rtol=1e-12)  # cross-attention
    out = gqa(x, mask=causal_mask(9))
    out.square().sum().backward()
    ref(x, mask=causal_mask(9)).square().sum().backward()
    torch.testing.assert_close(gqa.w_k.weight.grad, ref.w_k.weight.grad, atol=1e-10, rtol=1e-10)


def test_mqa_with_identical_kv_heads_equals_mha(gen):
    ref = mha(gen)
    with torch.no_grad():  # all six key heads and value heads the same: one shared head loses nothing
        for w in (ref.w_k, ref.w_v):
            w.weight.copy_(w.weight[:4].repeat(6, 1))
            w.bias.copy_(w.bias[:4].repeat(6))
    mqa = GroupedQueryAttention.from_mha(ref, 1)
    x = torch.randn(2, 7, 24, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        mqa(x, mask=causal_mask(7)), ref(x, mask=causal_mask(7)), atol=1e-12, rtol=1e-12
    )


@pytest.mark.parametrize("n_kv", [1, 2, 3, 6])
def test_shapes_cache_and_incremental_decoding(gen, n_kv):
    gqa = GroupedQueryAttention.from_mha(mha(gen), n_kv)
    assert gqa.w_k.weight.shape == (n_kv * 4, 24) and gqa.w_q.weight.shape == (24, 24)
    x = torch.randn(2, 10, 24, generator=gen, dtype=torch.float64)
    full = gqa(x, mask=causal_mask(10))
    cache = KVCache()
    steps = [gqa(x[:, :4], mask=causal_mask(4), cache=cache)]
    steps += [gqa(x[:, t : t + 1], cache=cache) for t in range(4, 10)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-12, rtol=1e-12)
    assert cache.k.shape == (2, n_kv, 10, 4) and cache.v.shape == (2, n_kv, 10, 4)
    assert cache_bytes(cache) == 2 * 10 * kv_cache_bytes_per_token(1, n_kv, 4, 8)


def test_bytes_formula_against_a_gpt_cache(gen):
    model = GPT(GPTConfig(vocab_size=20, d_model=32, n_heads=4, n_layers=3, d_ff=16, max_len=40)).eval()
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.randint(0, 20, (1, 17), generator=gen), cache=cache)
    assert cache_bytes(cache) == 17 * kv_cache_bytes_per_token(3, 4, 8, 4)
    assert kv_cache_bytes_per_token(32, 32, 128, 2) == 524_288  # Llama 2 7B in float16: 0.5 MiB a token
    assert kv_cache_bytes_per_token(80, 8, 128, 2) == 327_680  # Llama 2 70B, GQA with 8 KV heads


def test_bad_input(gen):
    with pytest.raises(ValueError, match="divisible by n_kv_heads"):
        GroupedQueryAttention(24, 6, 4)
    with pytest.raises(ValueError, match="n_kv_heads"):
        GroupedQueryAttention(24, 6, 0)
    with pytest.raises(ValueError, match="n_kv_heads"):
        GroupedQueryAttention(24, 6, 12)
    with pytest.raises(InputTypeError, match="n_kv_heads"):
        GroupedQueryAttention(24, 6, 2.0)
    with pytest.raises(InputTypeError, match="MultiHeadAttention"):
        GroupedQueryAttention.from_mha(torch.nn.Linear(2, 2), 1)
    gqa = GroupedQueryAttention(24, 6, 2)
    with pytest.raises(ValueError, match="d_model=24"):
        gqa(torch.randn(1, 3, 20))
    with pytest.raises(ValueError, match="empty sequence"):
        gqa(torch.randn(1, 0, 24))
    with pytest.raises(InputTypeError, match="KVCache"):
        gqa(torch.randn(1, 3, 24), cache={})
    cache = KVCache()
    gqa(torch.randn(1, 3, 24), cache=cache)
    with pytest.raises(ValueError, match="batch size"):
        gqa(torch.randn(2, 1, 24), cache=cache)
    with pytest.raises(ValueError, match="broadcast"):
        gqa(torch.randn(1, 3, 24), mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="n_layers"):
        kv_cache_bytes_per_token(0, 1, 1)
    with pytest.raises(InputTypeError, match="KVCache"):
        cache_bytes([cache, None])
