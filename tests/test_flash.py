"""Online-softmax (FlashAttention-style) attention equals equation (1), masks included, and keeps
no T x T tensor."""

from __future__ import annotations

import pytest
import torch

from course_lib.attention import scaled_dot_product_attention
from course_lib.flash import online_softmax_attention, online_softmax_update
from course_lib.masks import causal_mask, combine_masks, padding_mask
from course_lib.measure import tensor_memory
from course_lib.validate import InputTypeError

BLOCKS = [(64, 64), (1, 1), (5, 7), (16, 3), (4, 100)]


def qkv(gen, B=2, h=3, T_q=13, T_k=13, d_k=5, d_v=4):
    def r(*s):
        return torch.randn(*s, generator=gen, dtype=torch.float64)

    return r(B, h, T_q, d_k), r(B, h, T_k, d_k), r(B, h, T_k, d_v)


@pytest.mark.parametrize("block_q,block_k", BLOCKS)
def test_equals_standard_attention_with_causal_and_padding_masks(gen, block_q, block_k):
    q, k, v = qkv(gen)
    ids = torch.randint(1, 9, (2, 13), generator=gen)
    ids[0, 9:] = 0  # padding at the end of row 0
    ids[1, :3] = 0  # and at the start of row 1: its first three queries see no key at all
    pad = padding_mask(ids, 0)
    for mask in (None, causal_mask(13), pad, combine_masks(pad, causal_mask(13))):
        want, _ = scaled_dot_product_attention(q, k, v, mask)
        got = online_softmax_attention(q, k, v, mask, block_q=block_q, block_k=block_k)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
        assert not torch.isnan(got).any()


def test_fully_masked_rows_give_zero_like_course_lib(gen):
    q, k, v = qkv(gen, T_q=6, T_k=6)
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    mask[0, :, 2] = False  # query 2 of batch 0 may attend to nothing
    mask[1] = False  # nothing at all in batch 1
    got = online_softmax_attention(q, k, v, mask, block_q=4, block_k=2)
    assert got[0, :, 2].abs().max() == 0 and got[1].abs().max() == 0
    torch.testing.assert_close(got, scaled_dot_product_attention(q, k, v, mask)[0], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("block_q,block_k", BLOCKS)
def test_causal_flag_equals_causal_mask_with_cached_keys(gen, block_q, block_k):
    q, k, v = qkv(gen, T_q=9, T_k=14)  # 5 earlier (cached) keys
    want, _ = scaled_dot_product_attention(q, k, v, causal_mask(9, offset=5))
    got = online_softmax_attention(q, k, v, causal=True, block_q=block_q, block_k=block_k)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


def test_update_rule_by_hand():
    m, l, acc = torch.tensor([[1.0]]), torch.tensor([[2.0]]), torch.tensor([[4.0]])
    s, v = torch.tensor([[3.0, float("-inf")]]), torch.tensor([[1.0], [100.0]])
    m2, l2, acc2 = online_softmax_update(m, l, acc, s, v)
    c = torch.exp(torch.tensor(1.0 - 3.0))
    assert m2.item() == 3.0
    torch.testing.assert_close(l2, c * 2.0 + 1.0 + 0 * l2)
    torch.testing.assert_close(acc2, c * 4.0 + 1.0 + 0 * acc2)
    empty = online_softmax_update(
        torch.tensor([[float("-inf")]]),
        torch.zeros(1, 1),
        torch.zeros(1, 1),
        torch.tensor([[float("-inf")] * 3]),
        torch.ones(3, 1),
    )
    assert empty[0].item() == float("-inf") and empty[1].item() == 0 and empty[2].item() == 0


def test_no_t_by_t_tensor():
    T, block = 128, 16
    q = torch.randn(1, 2, T, 8)
    standard = tensor_memory(scaled_dot_product_attention, q, q, q, causal_mask(T))
    tiled = tensor_memory(online_softmax_attention, q, q, q, block_q=block, block_k=block, causal=True)
    assert standard.largest_bytes >= 2 * T * T * 4  # the (h, T, T) scores
    assert tiled.largest_bytes < 2 * T * block * 4 * 2  # never more than a few tiles or the output
    assert tiled.peak_bytes * 10 < standard.peak_bytes


def test_bad_input():
    q = torch.randn(1, 4, 3)
    with pytest.raises(ValueError, match="block_k"):
        online_softmax_attention(q, q, q, block_k=0)
    with pytest.raises(InputTypeError, match="causal"):
        online_softmax_attention(q, q, q, causal=1)
    with pytest.raises(ValueError, match="broadcast"):
        online_softmax_attention(q, q, q, torch.ones(5, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        online_softmax_attention(q, q, q, torch.ones(4, 4))
    with pytest.raises(ValueError, match="d_k"):
        online_softmax_attention(q, torch.randn(1, 4, 2), q)
    with pytest.raises(ValueError, match="floating-point"):
        online_softmax_attention(q.long(), q.long(), q.long())
