import math

import numpy as np
import torch

from course_lib.exercises.lesson05 import check_rope, check_shift_matrix, check_sinusoidal_encoding


# --- sinusoidal encoding -----------------------------------------------------------------
def pe_right(max_len, d_model):
    pos = np.arange(max_len)[:, None]
    i = np.arange(d_model // 2)[None, :]
    angles = pos / 10000 ** (2 * i / d_model)
    pe = np.zeros((max_len, d_model))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angles), np.cos(angles)
    return pe  # numpy is accepted too


def test_pe_accepts_right_answer_numpy_and_torch():
    assert check_sinusoidal_encoding(pe_right).passed
    r = check_sinusoidal_encoding(lambda n, d: torch.tensor(pe_right(n, d), dtype=torch.float32))
    assert r.passed and str(r).startswith("✅")


def test_pe_catches_swapped_sin_cos():
    def swapped(n, d):
        pe = pe_right(n, d)
        return pe[:, np.arange(d) ^ 1]  # swap the columns of each pair

    r = check_sinusoidal_encoding(swapped)
    assert not r.passed and "swapped" in r.message


def test_pe_catches_concatenated_halves():
    def halves(n, d):
        pe = pe_right(n, d)
        return np.concatenate([pe[:, 0::2], pe[:, 1::2]], axis=1)

    r = check_sinusoidal_encoding(halves)
    assert not r.passed and "interleaves" in r.message


def test_pe_catches_wrong_frequencies():
    def wrong(n, d):
        pos, i = np.arange(n)[:, None], np.arange(d // 2)[None, :]
        a = pos / 10000 ** (i / d)  # forgot the 2
        out = np.zeros((n, d))
        out[:, 0::2], out[:, 1::2] = np.sin(a), np.cos(a)
        return out

    r = check_sinusoidal_encoding(wrong)
    assert not r.passed and "frequencies are off" in r.message


def test_pe_catches_wrong_shape():
    r = check_sinusoidal_encoding(lambda n, d: pe_right(n, d).T)
    assert not r.passed and "has shape" in r.message


# --- shift matrix ------------------------------------------------------------------------
def shift_right(k, d_model):
    m = torch.zeros(d_model, d_model, dtype=torch.float64)
    for i in range(d_model // 2):
        a = k / 10000 ** (2 * i / d_model)
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]
        )
    return m


def test_shift_accepts_right_answer():
    r = check_shift_matrix(shift_right)
    assert r.passed, r.message
    assert "PE(pos + k)" in r.message


def test_shift_catches_transpose():
    r = check_shift_matrix(lambda k, d: shift_right(k, d).T)
    assert not r.passed and "transpose" in r.message


def test_shift_catches_identity():
    r = check_shift_matrix(lambda k, d: torch.eye(d))
    assert not r.passed and "identity" in r.message


def test_shift_catches_wrong_frequencies():
    def wrong(k, d):
        m = torch.zeros(d, d, dtype=torch.float64)
        for i in range(d // 2):
            a = k / 10000 ** (i / d)
            m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
                [[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]
            )
        return m

    r = check_shift_matrix(wrong)
    assert not r.passed and "frequencies are off" in r.message


def test_shift_reports_exception_in_one_line():
    r = check_shift_matrix(lambda k, d: np.linalg.inv(np.zeros((d, d))))
    assert not r.passed and "LinAlgError" in r.message and "\n" not in r.message


# --- RoPE --------------------------------------------------------------------------------
def rope_right(x):
    T, d = x.shape[-2], x.shape[-1]
    angles = torch.arange(T, dtype=torch.float64)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
    cos, sin = angles.cos(), angles.sin()
    out = torch.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


def test_rope_accepts_right_answer():
    r = check_rope(rope_right)
    assert r.passed, r.message
    assert "m - n only" in r.message


def test_rope_catches_wrong_direction():
    def backwards(x):
        T, d = x.shape[-2], x.shape[-1]
        a = -torch.arange(T, dtype=torch.float64)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
        out = torch.empty_like(x)
        out[..., 0::2] = x[..., 0::2] * a.cos() - x[..., 1::2] * a.sin()
        out[..., 1::2] = x[..., 0::2] * a.sin() + x[..., 1::2] * a.cos()
        return out

    r = check_rope(backwards)
    assert not r.passed and "wrong way" in r.message


def test_rope_catches_rotate_half_layout():
    def half(x):
        T, d = x.shape[-2], x.shape[-1]
        a = torch.arange(T, dtype=torch.float64)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
        return torch.cat([x1 * a.cos() - x2 * a.sin(), x1 * a.sin() + x2 * a.cos()], -1)

    r = check_rope(half)
    assert not r.passed and "rotate half" in r.message


def test_rope_catches_identity_and_additive_encoding():
    r = check_rope(lambda x: x)
    assert not r.passed and "equals the input" in r.message
    r = check_rope(lambda x: x + torch.tensor(pe_right(x.shape[-2], x.shape[-1])))
    assert not r.passed and "differs" in r.message


def test_right_answers_pass_every_time_even_in_float32_and_tiny_sizes():
    """Fresh sizes include d_model = 2 and T = 1, where some mistakes coincide with the right
    answer: a right answer (here in float32, as learners often write it) must never be flagged."""
    pe32 = lambda n, d: torch.tensor(pe_right(n, d), dtype=torch.float32)
    shift32 = lambda k, d: shift_right(k, d).float()
    rope32 = lambda x: rope_right(x.float())
    for _ in range(25):
        for check, fn in (
            (check_sinusoidal_encoding, pe32),
            (check_shift_matrix, shift32),
            (check_rope, rope32),
        ):
            r = check(fn)
            assert r.passed, r.message
