"""A small explorer of the sinusoidal positional encoding (lesson 05, section 3.5 of the paper).

Two sliders, a position `pos` and a pair index `i` (frequency w_i = 1 / 10000^(2i / d_model)), and
three pictures: the pair's two waves sin(pos w_i), cos(pos w_i) over every position, the same pair as a
point on the unit circle (moving `pos` by k turns it by the angle k w_i), and the whole vector PE(pos).

State for tests and lessons: `vector` (d_model,), `pair` (sin, cos), `angle`, `wavelength`, `readout.value`;
`set(pos, i)` moves both sliders from code with a single redraw. A value it cannot show (NaN, inf, a
position outside the table) leaves a note in `message` and in the readout, and the last good view stays.
"""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from .positional import frequencies, sinusoidal_encoding
from .validate import check_int


class PositionalEncodingExplorer:
    """ipywidgets view of PE(pos) and of one frequency pair; display it as the last line of a cell."""

    def __init__(self, d_model: int = 64, max_len: int = 100, pos: int | None = None, i: int = 0) -> None:
        if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 2 or d_model % 2:
            raise ValueError(f"d_model must be an even integer >= 2, got {d_model!r}")
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
            raise ValueError(f"max_len must be an integer >= 2, got {max_len!r}")
        pos = min(10, max_len - 1) if pos is None else pos
        if not 0 <= pos < max_len or not 0 <= i < d_model // 2:
            raise ValueError(f"need 0 <= pos < {max_len} and 0 <= i < {d_model // 2}, got pos={pos}, i={i}")
        self.d_model, self.max_len = d_model, max_len
        self.pe = sinusoidal_encoding(max_len, d_model).double().numpy()  # (max_len, d_model)
        self.w = frequencies(d_model).numpy()  # (d_model/2,)
        self.pos = widgets.IntSlider(value=pos, min=0, max=max_len - 1, description="position")
        self.freq = widgets.IntSlider(value=i, min=0, max=d_model // 2 - 1, description="pair i")
        self.readout = widgets.HTML()
        self.out = widgets.Output()
        self.widget = widgets.VBox([widgets.HBox([self.pos, self.freq]), self.readout, self.out])
        self._holding = False
        self.message = ""
        self.pos.observe(lambda _c: self.update(), names="value")
        self.freq.observe(lambda _c: self.update(), names="value")
        self.update()

    def set(self, pos: int | None = None, i: int | None = None) -> None:
        """Move both sliders from code and redraw once; a value it cannot use leaves a note instead."""
        try:
            if pos is not None:
                check_int(pos, "pos", 0, self.max_len - 1, why=" (a position of the table)")
            if i is not None:
                check_int(i, "i", 0, self.d_model // 2 - 1, why=" (a pair of dimensions)")
        except ValueError as e:
            self._note(e)
            return
        self._holding = True
        try:
            if pos is not None:
                self.pos.value = pos
            if i is not None:
                self.freq.value = i
        finally:
            self._holding = False
        self.update()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _note(self, error: Exception) -> None:
        """Say why the view did not change; the last good view stays."""
        self.message = f"cannot show this: {error}; showing the last good view"
        self.readout.value = f"<b>cannot show this:</b> {html.escape(str(error))}; showing the last good view"

    def update(self) -> None:
        """Recompute the state from the sliders and redraw; never raises (it runs in the sliders' callbacks)."""
        if self._holding:
            return
        try:
            self._update()
        except Exception as e:  # noqa: BLE001 -- a widget shows a note, never a traceback
            self._note(e)
            return
        self.message = ""

    def _update(self) -> None:
        p, i = self.pos.value, self.freq.value
        w = float(self.w[i])
        self.vector = self.pe[p]  # (d_model,)
        self.pair = (float(self.vector[2 * i]), float(self.vector[2 * i + 1]))  # (sin, cos)
        self.angle = p * w
        self.wavelength = 2 * math.pi / w
        self.readout.value = (
            f"pair i = {i} (dimensions {2 * i}, {2 * i + 1}): w = {w:.4g}, wavelength {self.wavelength:,.1f} positions. "
            f"PE({p}, {2 * i}) = sin({p}·w) = {self.pair[0]:+.3f}, PE({p}, {2 * i + 1}) = cos({p}·w) = {self.pair[1]:+.3f}"
        )
        self.out.clear_output(wait=True)
        with self.out:
            fig = self._draw(p, i)
            try:
                from IPython.display import display

                display(fig)
            finally:
                plt.close(fig)

    def _draw(self, p: int, i: int) -> plt.Figure:
        fig = plt.figure(figsize=(11, 3.4))
        grid = fig.add_gridspec(1, 3, width_ratios=[2.2, 1, 2.2])
        ax_w, ax_c, ax_v = (fig.add_subplot(g) for g in grid)
        positions = np.arange(self.max_len)
        ax_w.plot(positions, self.pe[:, 2 * i], label=f"sin (dim {2 * i})")
        ax_w.plot(positions, self.pe[:, 2 * i + 1], label=f"cos (dim {2 * i + 1})")
        ax_w.axvline(p, color="k", lw=1, ls=":")
        ax_w.plot([p, p], self.pair, "ko", ms=5)
        ax_w.set(xlabel="position", ylabel="value", title=f"pair {i}: the two waves", ylim=(-1.15, 1.15))
        ax_w.legend(fontsize=9, loc="lower left")

        t = np.linspace(0, 2 * math.pi, 200)
        ax_c.plot(np.cos(t), np.sin(t), color="0.75", lw=1)
        ax_c.plot([0, self.pair[1]], [0, self.pair[0]], "k-", lw=1.5)
        ax_c.plot(self.pair[1], self.pair[0], "o", color="C3", ms=7)
        ax_c.set(
            xlabel="cos",
            ylabel="sin",
            title=f"angle pos·w = {self.angle % (2 * math.pi):.2f} (mod 2π)",
            aspect="equal",
        )
        ax_c.set_xlim(-1.2, 1.2)
        ax_c.set_ylim(-1.2, 1.2)

        dims = np.arange(self.d_model)
        colors = np.where(dims % 2 == 0, "C0", "C1")
        colors[2 * i : 2 * i + 2] = "C3"
        ax_v.bar(dims, self.vector, color=colors, width=0.9)
        ax_v.set(
            xlabel="dimension (blue = sin, orange = cos, red = pair i)", ylabel="value", ylim=(-1.15, 1.15)
        )
        ax_v.set_title(f"the whole vector PE({p})")
        fig.tight_layout()
        return fig
