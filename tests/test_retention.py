"""Retention: the parallel, recurrent and chunkwise forms are one function (float64, round-off)."""

from __future__ import annotations

import pytest
import torch

from course_lib.retention import (
    MultiScaleRetention,
    decay_matrix,
    retention_chunkwise,
    retention_gammas,
    retention_parallel,
    retention_recurrent,
)


def heads(gen, B=2, h=4, T=23, d_k=5, d_v=3):
    return tuple(torch.randn(B, h, T, d, generator=gen, dtype=torch.float64) for d in (d_k, d_k, d_v))


def test_gammas_are_the_papers():
    g = retention_gammas(4)
    torch.testing.assert_close(
        g, torch.tensor([1 - 1 / 32, 1 - 1 / 64, 1 - 1 / 128, 1 - 1 / 256], dtype=torch.float64)
    )


def test_decay_matrix_by_hand():
    D = decay_matrix(3, torch.tensor([0.5]))
    torch.testing.assert_close(D[0], torch.tensor([[1.0, 0, 0], [0.5, 1, 0], [0.25, 0.5, 1]]))


def test_parallel_is_the_explicit_sum(gen):
    q, k, v = heads(gen, B=1, h=2, T=5)
    g = retention_gammas(2)
    n = 4
    want = sum(g[1] ** (n - m) * (q[0, 1, n] @ k[0, 1, m]) * v[0, 1, m] for m in range(n + 1))
    torch.testing.assert_close(retention_parallel(q, k, v, g)[0, 1, n], want)


@pytest.mark.parametrize("chunk", [1, 4, 5, 7, 23, 50])  # 4, 5 and 7 do not divide T = 23
def test_parallel_equals_recurrent_equals_chunkwise(gen, chunk):
    q, k, v = heads(gen)
    g = retention_gammas(4)
    par = retention_parallel(q, k, v, g)
    rec, S = retention_recurrent(q, k, v, g)
    chk, R = retention_chunkwise(q, k, v, g, chunk)
    torch.testing.assert_close(rec, par, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(chk, par, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(R, S, atol=1e-12, rtol=1e-12)


def test_state_continues_across_calls_and_forms(gen):
    q, k, v = heads(gen, T=17)
    g = 0.3 + 0.7 * torch.rand(4, generator=gen, dtype=torch.float64)  # any decays, not only the paper's
    a, S = retention_recurrent(q[:, :, :6], k[:, :, :6], v[:, :, :6], g)
    b, _ = retention_chunkwise(q[:, :, 6:], k[:, :, 6:], v[:, :, 6:], g, 4, state=S)
    torch.testing.assert_close(torch.cat([a, b], 2), retention_parallel(q, k, v, g), atol=1e-12, rtol=1e-12)


def test_multi_scale_retention_forms_agree(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    m = MultiScaleRetention(16, 4).double()
    x = torch.randn(2, 13, 16, generator=gen, dtype=torch.float64)
    y = m(x)
    y_rec, S = m(x, "recurrent", state=m.new_state(2))
    y_chk, _ = m(x, "chunkwise", chunk_size=5)
    torch.testing.assert_close(y_rec, y, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(y_chk, y, atol=1e-10, rtol=1e-10)
    assert S.shape == (2, 4, 4, 4)


def test_bad_input(gen):
    q, k, v = heads(gen)
    g = retention_gammas(4)
    with pytest.raises(ValueError, match="one decay per head"):
        retention_parallel(q, k, v, retention_gammas(3))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        retention_parallel(q, k, v, torch.tensor([0.5, 1.5, 0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="chunk_size"):
        retention_chunkwise(q, k, v, g, 0)
    with pytest.raises(ValueError, match="state must have shape"):
        retention_recurrent(q, k, v, g, state=torch.zeros(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"\(B, h, T, d\)"):
        retention_parallel(q[0], k[0], v[0], g)
    with pytest.raises(ValueError, match="mode"):
        MultiScaleRetention(8, 2)(torch.randn(1, 3, 8), mode="sideways")
    with pytest.raises(ValueError, match="state"):
        MultiScaleRetention(8, 2)(torch.randn(1, 3, 8), state=torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="n_heads"):
        retention_gammas(0)
