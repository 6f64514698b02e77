import math

import pytest
import torch

from course_lib.attention import MultiHeadAttention
from course_lib.heads import (
    head_contributions,
    head_matrices,
    head_slice,
    ov_circuit,
    qk_circuit,
)
from course_lib.masks import causal_mask


def _mha(gen, d_model=24, n_heads=4, bias=True):
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    return MultiHeadAttention(d_model, n_heads, bias=bias).double().eval()


def test_head_matrices_shapes_and_slices(gen):
    mha = _mha(gen)
    m = head_matrices(mha, 2)
    assert m["w_q"].shape == m["w_k"].shape == m["w_v"].shape == (24, 6)
    assert m["w_o"].shape == (6, 24)
    # head 2's query is columns 12:18 of the full projection
    x = torch.randn(3, 5, 24, dtype=torch.float64, generator=gen)
    q_full = x @ mha.w_q.weight.T
    torch.testing.assert_close(x @ m["w_q"], q_full[..., 12:18])
    assert head_slice(mha, 3) == slice(18, 24)


@pytest.mark.parametrize("bad", [-1, 4, 1.0, "0"])
def test_head_index_is_checked(gen, bad):
    with pytest.raises(ValueError, match=r"expected an integer head index in \[0, 3\]"):
        head_slice(_mha(gen), bad)


def test_head_slice_rejects_other_modules():
    with pytest.raises(ValueError, match="MultiHeadAttention"):
        head_slice(torch.nn.Linear(4, 4), 0)


def test_circuits_have_rank_d_k(gen):
    mha = _mha(gen, d_model=32, n_heads=4)
    for i in range(4):
        for circuit in (ov_circuit(mha, i), qk_circuit(mha, i)):
            assert circuit.shape == (32, 32)
            assert int(torch.linalg.matrix_rank(circuit)) == 8


def test_qk_circuit_gives_the_scores(gen):
    mha = _mha(gen, bias=False)
    x = torch.randn(2, 7, 24, dtype=torch.float64, generator=gen)
    mha(x, need_weights=True)
    for i in range(4):
        scores = x @ qk_circuit(mha, i) @ x.transpose(1, 2) / math.sqrt(mha.d_k)  # (B, T, T)
        torch.testing.assert_close(scores.softmax(-1), mha.attn_weights[:, i])


@pytest.mark.parametrize("bias", [True, False])
def test_head_contributions_sum_to_the_output(gen, bias):
    mha = _mha(gen, bias=bias)
    x = torch.randn(2, 6, 24, dtype=torch.float64, generator=gen)
    mask = causal_mask(6)
    parts = head_contributions(mha, x, mask=mask)  # (B, h, T, d_model)
    assert parts.shape == (2, 4, 6, 24)
    b_o = mha.w_o.bias if bias else 0.0
    with torch.no_grad():
        torch.testing.assert_close(parts.sum(1) + b_o, mha(x, mask=mask), atol=1e-12, rtol=0)


def test_head_contribution_is_attention_times_ov_circuit(gen):
    mha = _mha(gen, bias=False)
    x = torch.randn(1, 5, 24, dtype=torch.float64, generator=gen)
    parts = head_contributions(mha, x)
    for i in range(4):
        expected = mha.attn_weights[:, i] @ x @ ov_circuit(mha, i)
        torch.testing.assert_close(parts[:, i], expected.detach())


def test_head_contributions_checks_input(gen):
    with pytest.raises(ValueError, match="d_model=24"):
        head_contributions(_mha(gen), torch.randn(1, 3, 8))
