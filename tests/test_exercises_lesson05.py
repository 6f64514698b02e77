import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import positional
from course_lib.exercises import NOT_WRITTEN
from course_lib.exercises.lesson05 import check_input_layer, check_rope, check_shift_matrix
from course_lib.model import TokenEmbedding
from course_lib.positional import SinusoidalPositionalEncoding, sinusoidal_encoding


# --- the input layer ---------------------------------------------------------------------
def make_layer(
    scale=True,
    use_offset=True,
    table="buffer",  # "buffer", "persistent", "parameter", "plain"
    layout="interleaved",  # "interleaved", "halves", "swapped"
    dropout_on="sum",  # "sum", "embedding", "table", "none"
    length_check="value",  # "value", "vague", "index", "none"
    dtype=torch.float32,
):
    """An input layer class, right by default; each keyword makes one of the named mistakes."""

    class Layer(nn.Module):
        def __init__(self, vocab_size, d_model, max_len, dropout=0.1):
            super().__init__()
            self.d_model, self.max_len = d_model, max_len
            self.embed = nn.Embedding(vocab_size, d_model)
            w = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
            angles = torch.arange(max_len, dtype=torch.float64)[:, None] * w  # (max_len, d_model/2)
            sin, cos = angles.sin(), angles.cos()
            if layout == "interleaved":
                pe = torch.stack([sin, cos], -1).reshape(max_len, d_model)
            elif layout == "swapped":
                pe = torch.stack([cos, sin], -1).reshape(max_len, d_model)
            else:
                pe = torch.cat([sin, cos], -1)
            pe = pe.to(dtype)
            if table == "buffer":
                self.register_buffer("pe", pe, persistent=False)
            elif table == "persistent":
                self.register_buffer("pe", pe)
            elif table == "parameter":
                self.pe = nn.Parameter(pe, requires_grad=False)
            else:
                self.pe = pe
            self.dropout = nn.Dropout(dropout)

        def forward(self, ids, offset=0):
            T = ids.size(1)
            if length_check == "value" and offset + T > self.max_len:
                raise ValueError(f"positions up to {offset + T - 1} requested, max_len={self.max_len}")
            if length_check == "vague" and offset + T > self.max_len:
                raise ValueError("sequence too long")
            if length_check == "index" and offset + T > self.max_len:
                raise IndexError("index out of range")
            x = self.embed(ids) * (math.sqrt(self.d_model) if scale else 1.0)  # (B, T, d_model)
            start = offset if use_offset else 0
            rows = self.pe[start : start + T]  # (T, d_model)
            if dropout_on == "sum":
                return self.dropout(x + rows)
            if dropout_on == "embedding":
                return self.dropout(x) + rows
            if dropout_on == "table":
                return x + self.dropout(rows)
            return x + rows

    return Layer


def test_input_layer_accepts_right_answer():
    r = check_input_layer(make_layer(), repeat=2)
    assert r.passed and str(r).startswith("✅"), r.message
    assert "dropout on the sum" in r.message


def test_input_layer_accepts_a_table_built_in_float32():
    class Float32Table(make_layer()):
        def __init__(self, vocab_size, d_model, max_len, dropout=0.1):
            super().__init__(vocab_size, d_model, max_len, dropout)
            i = torch.arange(0, d_model, 2)
            angles = torch.arange(max_len)[:, None] / 10000 ** (i / d_model)  # float32 throughout
            pe = torch.zeros(max_len, d_model)
            pe[:, 0::2], pe[:, 1::2] = torch.sin(angles), torch.cos(angles)
            self.register_buffer("pe", pe, persistent=False)

    for _ in range(5):
        r = check_input_layer(Float32Table)
        assert r.passed, r.message


def test_input_layer_catches_missing_sqrt_d_model():
    r = check_input_layer(make_layer(scale=False))
    assert not r.passed and "not multiplied by sqrt(d_model)" in r.message


def test_input_layer_catches_ignored_offset():
    r = check_input_layer(make_layer(use_offset=False))
    assert not r.passed and "offset=7 ignored" in r.message


def test_input_layer_catches_table_as_parameter():
    r = check_input_layer(make_layer(table="parameter"))
    assert not r.passed and "the table is fixed, not learned: register it as a buffer" in r.message.lower()


def test_input_layer_catches_plain_and_persistent_tables():
    r = check_input_layer(make_layer(table="plain"))
    assert not r.passed and "plain tensor attribute" in r.message and "register_buffer" in r.message
    r = check_input_layer(make_layer(table="persistent"))
    assert not r.passed and "state_dict" in r.message and "persistent=False" in r.message


def test_input_layer_catches_dropout_in_the_wrong_place():
    r = check_input_layer(make_layer(dropout_on="embedding"))
    assert not r.passed and "dropout to the embeddings only" in r.message
    r = check_input_layer(make_layer(dropout_on="table"))
    assert not r.passed and "dropout to the table only" in r.message
    r = check_input_layer(make_layer(dropout_on="none"))
    assert not r.passed and "no dropout" in r.message


def test_input_layer_catches_dropout_rate_ignored_and_dropout_in_eval():
    class FixedRate(make_layer()):
        def __init__(self, vocab_size, d_model, max_len, dropout=0.1):
            super().__init__(vocab_size, d_model, max_len, dropout)
            self.dropout = nn.Dropout(0.1)

    r = check_input_layer(FixedRate)
    assert not r.passed and "scaled by 1.11" in r.message and "dropout argument" in r.message

    class AlwaysDrops(make_layer(dropout_on="none")):
        def forward(self, ids, offset=0):
            return F.dropout(super().forward(ids, offset), 0.5, training=True)

    r = check_input_layer(AlwaysDrops)
    assert not r.passed and "changes from call to call" in r.message


def test_input_layer_catches_tables_that_are_not_interleaved():
    r = check_input_layer(make_layer(layout="halves"))
    assert not r.passed and "interleave" in r.message and "column 2i is sin" in r.message
    r = check_input_layer(make_layer(layout="swapped"))
    assert not r.passed and "swapped" in r.message


def test_input_layer_catches_a_float64_table():
    r = check_input_layer(make_layer(dtype=torch.float64))
    assert not r.passed and "float64 output" in r.message


def test_input_layer_wants_a_value_error_naming_max_len():
    r = check_input_layer(make_layer(length_check="none"))
    assert not r.passed and "raise a ValueError that names max_len" in r.message
    assert "RuntimeError" in r.message  # (B, 21, 8) + (20, 8) cannot broadcast
    r = check_input_layer(make_layer(length_check="index"))
    assert not r.passed and "IndexError" in r.message and "ValueError" in r.message
    r = check_input_layer(make_layer(length_check="vague"))
    assert not r.passed and "name max_len in the message" in r.message

    class SilentlyShort(make_layer(length_check="none")):
        def forward(self, ids, offset=0):
            if offset == 0 and ids.size(1) > self.max_len:
                raise ValueError(f"longer than max_len={self.max_len}")
            return super().forward(ids, offset)  # a one-row slice broadcasts silently

    r = check_input_layer(SilentlyShort)
    assert not r.passed and "without a word" in r.message and "positions 19..20" in r.message

    class OffByOne(make_layer()):
        def forward(self, ids, offset=0):
            if offset + ids.size(1) >= self.max_len:
                raise ValueError(f"too long for max_len={self.max_len}")
            return super().forward(ids, offset)

    r = check_input_layer(OffByOne)
    assert not r.passed and "raise only when offset + T > max_len" in r.message


def test_input_layer_catches_extra_parameters_and_non_modules():
    class WithBias(make_layer()):
        def __init__(self, vocab_size, d_model, max_len, dropout=0.1):
            super().__init__(vocab_size, d_model, max_len, dropout)
            self.bias = nn.Parameter(torch.zeros(d_model))

    r = check_input_layer(WithBias)
    assert not r.passed and "the only parameter should be the embedding table" in r.message
    r = check_input_layer(lambda *a, **k: "a layer")
    assert not r.passed and "subclass nn.Module" in r.message


def test_input_layer_refuses_the_library():
    class Wraps(nn.Module):
        def __init__(self, vocab_size, d_model, max_len, dropout=0.1):
            super().__init__()
            self.embed = TokenEmbedding(vocab_size, d_model)
            self.pos = SinusoidalPositionalEncoding(d_model, max_len, dropout)

        def forward(self, ids, offset=0):
            return self.pos(self.embed(ids), offset)

    class Inherits(SinusoidalPositionalEncoding):
        pass

    class LibraryTable(make_layer()):
        def __init__(self, vocab_size, d_model, max_len, dropout=0.1):
            super().__init__(vocab_size, d_model, max_len, dropout)
            self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), persistent=False)

    class LibraryFrequencies(make_layer()):
        def __init__(self, vocab_size, d_model, max_len, dropout=0.1):
            super().__init__(vocab_size, d_model, max_len, dropout)
            self.w = positional.frequencies(d_model)

    class AtRunTime(make_layer()):
        def __init__(self, vocab_size, d_model, max_len, dropout=0.1):
            super().__init__(vocab_size, d_model, max_len, dropout)
            table = getattr(positional, "sinus" + "oidal_encoding")  # out of sight of the static check
            self.register_buffer("pe", table(max_len, d_model), persistent=False)

    for answer in (
        Wraps,
        Inherits,
        LibraryTable,
        LibraryFrequencies,
        AtRunTime,
        SinusoidalPositionalEncoding,
    ):
        r = check_input_layer(answer)
        assert not r.passed and "write it yourself" in r.message, (answer, r.message)


def test_input_layer_greets_a_stub():
    class StubInit(nn.Module):
        def __init__(self, vocab_size, d_model, max_len, dropout=0.1):
            super().__init__()
            raise NotImplementedError()

        def forward(self, ids, offset=0):
            raise NotImplementedError()

    class StubForward(make_layer()):
        def forward(self, ids, offset=0):
            raise NotImplementedError()

    for stub in (StubInit, StubForward):
        r = check_input_layer(stub)
        assert not r.passed and str(r) == f"❌ input layer: {NOT_WRITTEN}"


# --- the sinusoidal table (used by the RoPE tests) -------------------------------------
def pe_right(max_len, d_model):
    pos = np.arange(max_len)[:, None]
    i = np.arange(d_model // 2)[None, :]
    angles = pos / 10000 ** (2 * i / d_model)
    pe = np.zeros((max_len, d_model))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angles), np.cos(angles)
    return pe  # numpy is accepted too


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
    shift32 = lambda k, d: shift_right(k, d).float()
    rope32 = lambda x: rope_right(x.float())
    for _ in range(25):
        for check, fn in (
            (check_shift_matrix, shift32),
            (check_rope, rope32),
        ):
            r = check(fn)
            assert r.passed, r.message
