"""The memory counter counts what a function keeps, and the helpers refuse bad input."""

from __future__ import annotations

import pytest
import torch

from course_lib.measure import loglog_slope, tensor_memory, time_call
from course_lib.validate import InputTypeError


def test_counts_live_tensors_and_frees():
    x = torch.randn(1000)  # an input: not counted, nor its views

    def chain(x):
        a = x * 2  # 4000 bytes
        b = a * 2  # 8000 alive
        del a
        c = b[:10] + 1  # a view of b (no new memory), then 40 bytes
        return b, c

    r = tensor_memory(chain, x)
    assert r.peak_bytes == 8000 and r.largest_bytes == 4000 and r.largest_shape == (1000,)
    assert tensor_memory(lambda x: x[2:5], x).peak_bytes == 0


def test_scores_of_attention_are_counted():
    q = torch.randn(3, 50, 4)
    r = tensor_memory(lambda q: (q @ q.transpose(-2, -1)).softmax(-1) @ q, q)
    assert r.largest_bytes == 3 * 50 * 50 * 4 and r.peak_bytes >= 2 * 3 * 50 * 50 * 4


def test_slope_and_timer():
    assert loglog_slope([1, 2, 4, 8], [3, 12, 48, 192]) == pytest.approx(2.0)
    assert time_call(lambda: None, repeats=3) >= 0
    assert time_call(max, 1, 2, repeats=1, warmup=0) >= 0
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([0, 1], [1, 2])
    with pytest.raises(ValueError, match="same length"):
        loglog_slope([1, 2], [1])
    with pytest.raises(InputTypeError, match="callable"):
        tensor_memory(3)
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)
