import math

import torch

from course_lib.positional import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    apply_rope,
    shift_matrix,
    sinusoidal_encoding,
)


def test_formula_values(gen):
    d = 16
    pe = sinusoidal_encoding(50, d)
    for _ in range(10):
        pos = int(torch.randint(0, 50, (1,), generator=gen))
        i = int(torch.randint(0, d // 2, (1,), generator=gen))
        angle = pos / 10000 ** (2 * i / d)
        assert math.isclose(pe[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
        assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)


def test_shift_is_a_fixed_linear_map(gen):
    d = 32
    pe = sinusoidal_encoding(200, d).double()
    for _ in range(5):
        k = int(torch.randint(1, 50, (1,), generator=gen))
        m = shift_matrix(k, d)
        pos = torch.randint(0, 150, (8,), generator=gen)
        assert (pe[pos + k] - pe[pos] @ m.T).abs().max() < 1e-5  # float32 table


def test_module_adds_encoding_with_offset(gen):
    mod = SinusoidalPositionalEncoding(8, max_len=20)
    x = torch.randn(2, 5, 8, generator=gen)
    assert torch.allclose(mod(x, offset=3), x + sinusoidal_encoding(20, 8)[3:8])
    learned = LearnedPositionalEncoding(8, max_len=20)
    assert learned(x).shape == x.shape and sum(p.numel() for p in learned.parameters()) == 160


def test_rope_depends_on_offset_only(gen):
    q, k = (
        torch.randn(1, 16, generator=gen, dtype=torch.float64),
        torch.randn(1, 16, generator=gen, dtype=torch.float64),
    )

    def score(m, n):
        return (apply_rope(q, torch.tensor([m])) * apply_rope(k, torch.tensor([n]))).sum().item()

    for _ in range(5):
        m, n, s = (int(v) for v in torch.randint(0, 100, (3,), generator=gen))
        assert math.isclose(score(m, n), score(m + s, n + s), rel_tol=1e-9, abs_tol=1e-9)
    # and it preserves norms (a rotation)
    assert torch.allclose(apply_rope(q).norm(), q.norm())
