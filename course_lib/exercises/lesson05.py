"""Checkers for lesson 05, positional encoding.

check_sinusoidal_encoding(pe)   pe(max_len, d_model) -> (max_len, d_model) table (section 3.5)
check_shift_matrix(shift)       shift(k, d_model) -> M_k, (d_model, d_model), PE(pos + k) = M_k PE(pos)
check_rope(rope)                rope(x) -> x with each pair (2i, 2i+1) at position pos rotated by pos * w_i
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..positional import SinusoidalPositionalEncoding, apply_rope, shift_matrix, sinusoidal_encoding
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _as_f64(x: object) -> Tensor | None:
    try:
        return torch.as_tensor(x).detach().to(torch.float64)
    except Exception:
        return None


def _close(a: Tensor | None, b: Tensor, atol: float = 1e-5) -> bool:
    return a is not None and a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=0.0)


def _is_slip(got: Tensor | None, slip: Tensor, expected: Tensor, atol: float = 1e-5) -> bool:
    """`got` matches a known mistake that, for these sizes, differs from the right answer."""
    return _close(got, slip, atol) and not _close(slip, expected, atol)


def _table(max_len: int, d_model: int, exponent: Tensor) -> tuple[Tensor, Tensor]:
    """sin and cos of pos * 10000^(-exponent), each (max_len, d_model/2)."""
    angles = torch.arange(max_len, dtype=torch.float64)[:, None] * 10000.0 ** (-exponent)
    return torch.sin(angles), torch.cos(angles)


def _rotations(angles: Tensor) -> Tensor:
    """Block-diagonal matrix of 2x2 blocks [[cos a, sin a], [-sin a, cos a]], one per angle."""
    d = 2 * angles.numel()
    m = torch.zeros(d, d, dtype=torch.float64)
    i = torch.arange(0, d, 2)
    m[i, i], m[i, i + 1], m[i + 1, i], m[i + 1, i + 1] = (
        angles.cos(),
        angles.sin(),
        -angles.sin(),
        angles.cos(),
    )
    return m


@checker(sinusoidal_encoding, SinusoidalPositionalEncoding)
def check_sinusoidal_encoding(pe: Callable[[int, int], Tensor]) -> CheckResult:
    """pe(max_len, d_model) against `course_lib.positional.sinusoidal_encoding` on fresh sizes."""
    g = fresh_generator()
    sizes = [(_randint(g, 20, 60), 2 * _randint(g, 4, 32))]  # long and wide enough to show mistakes
    if sizes[0][0] == sizes[0][1]:  # not square, so that a transposed table shows in its shape
        sizes[0] = (sizes[0][0] + 1, sizes[0][1])
    sizes += [(_randint(g, 1, 50), 2 * _randint(g, 1, 32)) for _ in range(3)]

    def trial(max_len: int, d: int) -> Callable[[], str | None]:
        def run() -> str | None:
            got = pe(max_len, d)
            expected = sinusoidal_encoding(max_len, d).double()
            g64 = _as_f64(got)
            if g64 is not None and g64.shape == expected.shape and max_len > 1:
                i = torch.arange(0, d, 2, dtype=torch.float64)
                sin, cos = _table(max_len, d, i / d)
                swapped = torch.stack([cos, sin], -1).reshape(max_len, d)
                if _is_slip(g64, swapped, expected):
                    return "sin and cos are swapped: even columns 2i hold sin, odd columns 2i+1 hold cos"
                if _is_slip(g64, torch.cat([sin, cos], -1), expected):
                    return (
                        "all the sines come first and all the cosines after; the paper interleaves "
                        "them: column 2i is sin, column 2i+1 is cos of the same frequency"
                    )
                for wrong in (
                    i / 2 / d,
                    2 * i / d,
                ):  # pair index in place of 2i, or column index in place of i
                    s, c = _table(max_len, d, wrong)
                    if _is_slip(g64, torch.stack([s, c], -1).reshape(max_len, d), expected):
                        return (
                            "the layout is right but the frequencies are off: pair i uses "
                            "pos / 10000^(2i / d_model), with i = 0 .. d_model/2 - 1"
                        )
            return compare(got, expected, f"pe(max_len={max_len}, d_model={d})", atol=1e-5, rtol=1e-4)

        return run

    return run_trials(
        "sinusoidal encoding",
        [trial(*s) for s in sizes],
        "matches the paper's table on 4 fresh (max_len, d_model) sizes.",
    )


@checker(shift_matrix)
def check_shift_matrix(shift: Callable[[int, int], Tensor]) -> CheckResult:
    """shift(k, d_model) against `course_lib.positional.shift_matrix`, then the property
    M_k PE(pos) = PE(pos + k) for every position, on fresh offsets and widths."""
    g = fresh_generator()
    cases = [(_randint(g, 1, 40), 2 * _randint(g, 2, 16))]  # k > 0 so a sign mistake shows
    cases += [(_randint(g, -30, 60), 2 * _randint(g, 1, 16)) for _ in range(3)]

    def trial(k: int, d: int) -> Callable[[], str | None]:
        def run() -> str | None:
            got = shift(k, d)
            expected = shift_matrix(k, d)
            m = _as_f64(got)
            if m is not None and m.shape == expected.shape and k != 0:
                if _is_slip(m, expected.T, expected, atol=1e-6):
                    return (
                        f"with k={k} your matrix moves PE(pos) to PE(pos - {k}): it is the transpose of "
                        "M_k. In each 2x2 block the new sin is cos(wk)*sin + sin(wk)*cos"
                    )
                if _is_slip(m, torch.eye(d, dtype=torch.float64), expected, atol=1e-6):
                    return f"with k={k} you returned the identity: each pair must rotate by the angle w_i * k"
                slip = _rotations(10000.0 ** (-torch.arange(d // 2, dtype=torch.float64) / d) * k)
                if _is_slip(m, slip, expected, atol=1e-6):
                    return "the frequencies are off: pair i (columns 2i, 2i+1) rotates by k / 10000^(2i / d_model)"
            hint = compare(got, expected, f"shift(k={k}, d_model={d})", atol=1e-6, rtol=1e-5)
            if hint:
                return hint
            pe = sinusoidal_encoding(100 + abs(k), d).double()
            start = max(0, -k)
            moved = pe[start : start + 50] @ m.T  # row-wise M_k @ PE(pos)
            return compare(moved, pe[start + k : start + k + 50], f"M_{k} @ PE(pos)", atol=1e-5)

        return run

    return run_trials(
        "shift matrix",
        [trial(*c) for c in cases],
        "M_k matches on 4 fresh (k, d_model), and M_k PE(pos) = PE(pos + k) at every position tried.",
    )


@checker(apply_rope)
def check_rope(rope: Callable[[Tensor], Tensor]) -> CheckResult:
    """rope(x) for x (..., T, d), positions 0..T-1, against `course_lib.positional.apply_rope`,
    then the relative property q_m . k_n = function of m - n on the learner's own output."""
    g = fresh_generator()
    shapes = [(2, 3, 9, 8)] + [
        (_randint(g, 1, 3), _randint(g, 2, 12), 2 * _randint(g, 1, 16)) for _ in range(3)
    ]

    def trial(shape: tuple[int, ...]) -> Callable[[], str | None]:
        def run() -> str | None:
            x = torch.randn(*shape, generator=g, dtype=torch.float64)
            got = rope(x.clone())
            expected = apply_rope(x)
            y = _as_f64(got)
            T, d = shape[-2], shape[-1]
            if y is not None and y.shape == expected.shape and T > 1:
                pos = torch.arange(T)
                if _is_slip(y, apply_rope(x, -pos), expected, atol=1e-6):
                    return "each pair turns the wrong way: rotate (x_2i, x_2i+1) by +pos·w_i, not -pos·w_i"
                if _is_slip(y, x, expected, atol=1e-6):
                    return "the output equals the input: each pair must be rotated by the angle pos·w_i"
                a = torch.arange(T, dtype=torch.float64)[:, None] * 10000.0 ** (-torch.arange(0, d, 2) / d)
                x1, x2 = x[..., : d // 2], x[..., d // 2 :]  # the "rotate half" pairing (j, j + d/2)
                back = torch.cat([x1 * a.cos() - x2 * a.sin(), x1 * a.sin() + x2 * a.cos()], -1)
                if _is_slip(y, back, expected, atol=1e-6):
                    return (
                        "you paired dimension j with j + d/2 (the 'rotate half' layout some libraries use); "
                        "here pairs are neighbours (2i, 2i+1), as in the sinusoidal encoding"
                    )
            hint = compare(got, expected, f"rope(x of shape {shape})", atol=1e-6, rtol=1e-5)
            if hint:
                return hint
            q = rope(torch.randn(1, d, generator=g, dtype=torch.float64).expand(T, d).clone())
            k = rope(torch.randn(1, d, generator=g, dtype=torch.float64).expand(T, d).clone())
            s = _as_f64(q) @ _as_f64(k).T  # (T, T): q at position m . k at position n
            for off in range(-T + 1, T):
                diag = s.diagonal(off)
                if (diag.max() - diag.min()).abs() > 1e-5:
                    return f"q_m . k_n changes along the offset m - n = {-off}: the scores should depend on the offset only"
            return None

        return run

    return run_trials(
        "RoPE",
        [trial(s) for s in shapes],
        "matches apply_rope on 4 fresh shapes, and your q_m · k_n depends on m - n only.",
    )
