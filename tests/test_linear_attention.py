"""Linear attention: the parallel and recurrent forms are one function; the state has a fixed size."""

from __future__ import annotations

import pytest
import torch

from course_lib.linear_attention import (
    LinearAttention,
    LinearAttentionState,
    elu_feature_map,
    linear_attention_parallel,
    linear_attention_recurrent,
)


def heads(gen, B=2, h=3, T=11, d_k=5, d_v=4):
    return tuple(torch.randn(B, h, T, d, generator=gen, dtype=torch.float64) for d in (d_k, d_k, d_v))


def test_parallel_equals_recurrent(gen):
    q, k, v = heads(gen)
    out, state = linear_attention_recurrent(q, k, v)
    torch.testing.assert_close(out, linear_attention_parallel(q, k, v), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(state.S, torch.einsum("bhtk,bhtv->bhkv", elu_feature_map(k), v))


def test_parallel_equals_an_explicit_sum(gen):
    q, k, v = heads(gen, B=1, h=1, T=4)
    fq, fk = elu_feature_map(q[0, 0]), elu_feature_map(k[0, 0])
    i = 3
    w = fq[i] @ fk[: i + 1].T  # phi(q_i) . phi(k_j), j <= i
    torch.testing.assert_close(linear_attention_parallel(q, k, v)[0, 0, i], (w / w.sum()) @ v[0, 0, : i + 1])


def test_state_size_does_not_grow_and_continuation_works(gen):
    q, k, v = heads(gen, T=20)
    out1, s1 = linear_attention_recurrent(q[:, :, :5], k[:, :, :5], v[:, :, :5])
    out2, s2 = linear_attention_recurrent(q[:, :, 5:], k[:, :, 5:], v[:, :, 5:], s1)
    assert s1.nbytes() == s2.nbytes() == 2 * 3 * (5 * 4 + 5) * 8
    torch.testing.assert_close(torch.cat([out1, out2], 2), linear_attention_parallel(q, k, v))


def test_module_forms_agree_and_are_causal(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    m = LinearAttention(12, 3).double()
    x = torch.randn(2, 8, 12, generator=gen, dtype=torch.float64)
    y = m(x)
    torch.testing.assert_close(m.recurrent(x)[0], y, atol=1e-12, rtol=1e-12)
    x2 = x.clone()
    x2[:, 5:] += 1
    torch.testing.assert_close(m(x2)[:, :5], y[:, :5])


def test_bad_input(gen):
    q, k, v = heads(gen)
    with pytest.raises(ValueError, match=r"\(B, h, T, d\)"):
        linear_attention_parallel(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="same"):
        linear_attention_parallel(q, k[:, :, :3], v[:, :, :3])
    with pytest.raises(ValueError, match="LinearAttentionState"):
        linear_attention_recurrent(q, k, v, state=torch.zeros(1))
    with pytest.raises(ValueError, match="divisible"):
        LinearAttention(10, 3)
    with pytest.raises(ValueError, match="d_model=12"):
        LinearAttention(12, 3)(torch.randn(1, 2, 10))
    assert isinstance(LinearAttentionState.zeros(1, 1, 2, 2, q), LinearAttentionState)
