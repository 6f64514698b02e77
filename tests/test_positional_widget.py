import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

matplotlib.use("Agg")

from course_lib.positional import frequencies, sinusoidal_encoding  # noqa: E402
from course_lib.widgets import PositionalEncodingExplorer  # noqa: E402


def test_explorer_follows_its_sliders():
    ex = PositionalEncodingExplorer(d_model=32, max_len=50, pos=0, i=0)
    assert ex.pos.max == 49 and ex.freq.max == 15
    pe = sinusoidal_encoding(50, 32).double().numpy()
    for p, i in [(7, 3), (49, 15), (0, 0), (23, 8)]:
        ex.pos.value, ex.freq.value = p, i  # as if the learner moved the sliders
        np.testing.assert_allclose(ex.vector, pe[p], atol=1e-6)
        w = float(frequencies(32)[i])
        assert ex.pair == pytest.approx((math.sin(p * w), math.cos(p * w)), abs=1e-6)
        assert ex.angle == pytest.approx(p * w)
        assert ex.wavelength == pytest.approx(2 * math.pi / w)
        assert (
            f"PE({p}, {2 * i})" in ex.readout.value and f"dimensions {2 * i}, {2 * i + 1}" in ex.readout.value
        )


def test_explorer_draws_one_figure_and_closes_it():
    before = len(plt.get_fignums())
    ex = PositionalEncodingExplorer(d_model=8, max_len=10)
    ex.pos.value = 3
    assert len(plt.get_fignums()) == before  # figures are closed after being shown
    assert len(ex._draw(3, 1).axes) == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_model": 7}, "d_model must be an even integer"),
        ({"d_model": 0}, "d_model must be an even integer"),
        ({"max_len": 1}, "max_len must be an integer >= 2"),
        ({"pos": 200}, "need 0 <= pos < 100"),
        ({"i": 32}, "0 <= i < 32"),
    ],
)
def test_explorer_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PositionalEncodingExplorer(**kwargs)


def test_set_moves_both_sliders_with_one_redraw(monkeypatch):
    ex = PositionalEncodingExplorer(d_model=16, max_len=20)
    draws = []

    def fake_draw(p, i):
        draws.append((p, i))
        return plt.figure()

    monkeypatch.setattr(ex, "_draw", fake_draw)
    ex.set(pos=12, i=3)
    assert draws == [(12, 3)]
    np.testing.assert_allclose(ex.vector, sinusoidal_encoding(20, 16).double().numpy()[12], atol=1e-6)
