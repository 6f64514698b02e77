"""A small explorer of the sinusoidal positional encoding (lesson 05, section 3.5 of the paper).

Two sliders, a position `pos` and a pair index `i` (frequency w_i = 1 / 10000^(2i / d_model)), and
three pictures: the pair's two waves sin(pos w_i), cos(pos w_i) over every position, the same pair as a
point on the unit circle (moving `pos` by k turns it by the angle k w_i), and the whole vector PE(pos).

State for tests and lessons: `vector` (d_model,), `pair` (sin, cos), `angle`, `wavelength`, `readout.value`;
`set(pos, i)` moves both sliders from code with a single redraw. A value it cannot show (NaN, inf, a
position outside the table) leaves a note in `message` and in the readout, and the last good view stays.
The numbers come from `compute.positional_pair`; this module holds the sliders and the drawing.
"""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from ..positional import frequencies, sinusoidal_encoding
from ..validate import check_int
from .compute import check_positional_args, positional_pair, positional_readout


class PositionalEncodingExplorer:
    """ipywidgets view of PE(pos) and of one frequency pair; display it as the last line of a cell."""

    def __init__(self, d_model: int = 64, max_len: int = 100, pos: int | None = None, i: int = 0) -> None:
        pos = check_positional_args(d_model, max_len, pos, i)
        self.d_model, self.max_len = d_model, max_len
        self.pe = sinusoidal_encoding(max_len, d_model).double().numpy()  # (max_len, d_model)
        self.w = frequencies(d_model).numpy()  # (d_model/2,)
        self._build_controls(pos, i)
        self._holding = False
        self.message = ""
        self._wire_callbacks()
        self.update()  # the first view

    def _build_controls(self, pos: int, i: int) -> None:
        self.pos = widgets.IntSlider(value=pos, min=0, max=self.max_len - 1, description="position")
        self.freq = widgets.IntSlider(value=i, min=0, max=self.d_model // 2 - 1, description="pair i")
        self.readout = widgets.HTML()
        self.out = widgets.Output()
        self.widget = widgets.VBox([widgets.HBox([self.pos, self.freq]), self.readout, self.out])

    def _wire_callbacks(self) -> None:
        self.pos.observe(lambda _c: self.update(), names="value")
        self.freq.observe(lambda _c: self.update(), names="value")

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
        state = positional_pair(self.pe, self.w, p, i)
        self.vector, self.pair = state.vector, state.pair  # (d_model,), (sin, cos)
        self.angle, self.wavelength = state.angle, state.wavelength
        self.readout.value = positional_readout(p, i, float(self.w[i]), state)
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
        self._draw_waves(ax_w, p, i)
        self._draw_circle(ax_c)
        self._draw_vector(ax_v, p, i)
        fig.tight_layout()
        return fig

    def _draw_waves(self, ax: plt.Axes, p: int, i: int) -> None:
        """Pair i's sin and cos over every position, with the current position marked."""
        positions = np.arange(self.max_len)
        ax.plot(positions, self.pe[:, 2 * i], label=f"sin (dim {2 * i})")
        ax.plot(positions, self.pe[:, 2 * i + 1], label=f"cos (dim {2 * i + 1})")
        ax.axvline(p, color="k", lw=1, ls=":")
        ax.plot([p, p], self.pair, "ko", ms=5)
        ax.set(xlabel="position", ylabel="value", title=f"pair {i}: the two waves", ylim=(-1.15, 1.15))
        ax.legend(fontsize=9, loc="lower left")

    def _draw_circle(self, ax: plt.Axes) -> None:
        """The pair (cos, sin) as a point on the unit circle, at the angle pos w_i."""
        t = np.linspace(0, 2 * math.pi, 200)
        ax.plot(np.cos(t), np.sin(t), color="0.75", lw=1)
        ax.plot([0, self.pair[1]], [0, self.pair[0]], "k-", lw=1.5)
        ax.plot(self.pair[1], self.pair[0], "o", color="C3", ms=7)
        ax.set(
            xlabel="cos",
            ylabel="sin",
            title=f"angle pos·w = {self.angle % (2 * math.pi):.2f} (mod 2π)",
            aspect="equal",
        )
        ax.set_xlim(-1.2, 1.2)
        ax.set_ylim(-1.2, 1.2)

    def _draw_vector(self, ax: plt.Axes, p: int, i: int) -> None:
        """The whole vector PE(pos) as bars, pair i in red."""
        dims = np.arange(self.d_model)
        colors = np.where(dims % 2 == 0, "C0", "C1")
        colors[2 * i : 2 * i + 2] = "C3"
        ax.bar(dims, self.vector, color=colors, width=0.9)
        ax.set(
            xlabel="dimension (blue = sin, orange = cos, red = pair i)", ylabel="value", ylim=(-1.15, 1.15)
        )
        ax.set_title(f"the whole vector PE({p})")
