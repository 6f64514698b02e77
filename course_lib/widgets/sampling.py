"""A widget for the next-token distribution: how temperature, top-k and top-p reshape it.

    explorer = SamplingExplorer(logits, labels)   # logits (V,), one label per token
    explorer                                       # in a notebook: sliders + bar chart
    explorer.set(temperature=0.5, top_k=3)         # from Python; returns the distribution
    explorer.set_logits(new_logits)                # another distribution, same labels

A setting or logits the explorer cannot draw (NaN, inf) leave a note in `message` and in
the widget, keep the last good view, and the next good value draws again.

The numbers come from `course_lib.decode.next_token_distribution`, the function the
sampler itself uses, so what the chart shows is what `sample` draws from; the summary line
from `compute.sampling_readout`.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..decode import next_token_distribution
from .compute import bar_order, checked_logits, sampling_readout, sampling_settings, settings_caption


def plot_distribution(
    probs: Tensor,
    labels: Sequence[str],
    reference: Tensor | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
    max_bars: int = 20,
) -> plt.Axes:
    """Bar chart of a next-token distribution (V,); `reference` (e.g. the plain softmax) is
    drawn as outlines behind it. Tokens are sorted by the reference probability (or by
    `probs`), at most `max_bars` of them."""
    probs = probs.detach().float().cpu().numpy()
    ref = None if reference is None else reference.detach().float().cpu().numpy()
    order = bar_order(probs, ref, max_bars)
    x = range(len(order))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.2))
    if ref is not None:
        ax.bar(x, ref[order], color="none", edgecolor="0.5", linestyle="--", label="softmax(z), τ = 1")
    cmap = plt.get_cmap("viridis")
    ax.bar(x, probs[order], color=cmap(0.35), alpha=0.9, label="distribution sampled from")
    names = [labels[int(i)] for i in order]
    # long names such as "<pad>" would overlap side by side: turn them
    ax.set_xticks(list(x), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_xlabel("next token (sorted by probability)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper right", fontsize=10)
    if title:
        ax.set_title(title)
    return ax


class SamplingExplorer:
    """Sliders for temperature, top-k and top-p over one next-token distribution.

    logits: (V,) raw scores z of the next token; labels: V display strings.
    `probs` holds the current filtered distribution, `readout` a one-line summary;
    `set(...)` changes the controls from Python (as a learner would) and returns `probs`.
    top_k = 0 and top_p = 1.0 mean "off". `message` holds the note on a setting that could
    not be drawn ("" when the view is current).
    """

    def __init__(self, logits: Tensor, labels: Sequence[str], title: str = "", max_bars: int = 20) -> None:
        self.logits = checked_logits(logits, labels)
        self.labels = list(labels)
        self.message = ""
        self.title = title
        self.max_bars = max_bars
        self.reference = self.logits.softmax(-1)
        self._build_controls(self.logits.numel())
        self._wire_callbacks()
        self.widget = widgets.VBox([self.temperature, self.top_k, self.top_p, self.info, self.image])
        self.probs: Tensor = self.reference
        self._quiet = False
        self.readout = ""
        self.update()  # the first view

    # --- construction ------------------------------------------------------------------
    def _build_controls(self, V: int) -> None:
        style = {"description_width": "110px"}
        layout = widgets.Layout(width="460px")
        self.temperature = widgets.FloatLogSlider(
            value=1.0, base=10, min=-1.5, max=0.7, step=0.01, description="temperature",
            style=style, layout=layout, continuous_update=False, readout_format=".2f",
        )  # fmt: skip
        self.top_k = widgets.IntSlider(
            value=0, min=0, max=V, description="top-k (0 = off)", style=style, layout=layout,
            continuous_update=False,
        )  # fmt: skip
        self.top_p = widgets.FloatSlider(
            value=1.0, min=0.05, max=1.0, step=0.01, description="top-p (1 = off)", style=style,
            layout=layout, continuous_update=False,
        )  # fmt: skip
        self.image = widgets.Image(format="png")
        self.info = widgets.HTML()

    def _wire_callbacks(self) -> None:
        for w in (self.temperature, self.top_k, self.top_p):
            w.observe(self._on_change, names="value")

    # --- state ---------------------------------------------------------------------
    def settings(self) -> dict:
        return sampling_settings(self.temperature.value, self.top_k.value, self.top_p.value)

    def set_logits(self, logits: Tensor, labels: Sequence[str] | None = None) -> Tensor:
        """Show another distribution (V,) (with new labels, or the same ones); returns `probs`.
        Logits that cannot be drawn (NaN, +inf, all -inf) leave a note and the last view."""
        labels = self.labels if labels is None else labels
        try:
            logits = checked_logits(torch.as_tensor(logits), labels)
        except ValueError as e:
            self._note(e)
            return self.probs
        self.logits, self.labels = logits, list(labels)
        self.reference = self.logits.softmax(-1)
        self._quiet = True  # one redraw, after the top-k slider fits the new vocabulary
        try:
            self.top_k.max = self.logits.numel()
        finally:
            self._quiet = False
        self.update()
        return self.probs

    def set(
        self, temperature: float | None = None, top_k: int | None = None, top_p: float | None = None
    ) -> Tensor:
        """Move the sliders (None leaves one as it is) and return the new distribution."""
        self._quiet = True  # one redraw for all the changes, not one per slider
        try:
            if temperature is not None:
                self.temperature.value = temperature
            if top_k is not None:
                self.top_k.value = top_k
            if top_p is not None:
                self.top_p.value = top_p
        finally:
            self._quiet = False
        self.update()
        return self.probs

    def _on_change(self, _change: dict) -> None:
        if not self._quiet:
            self.update()

    def _note(self, error: Exception) -> None:
        """Say why the view did not change; the last good view stays."""
        self.message = f"cannot draw this: {error}; showing the last good view"
        self.info.value = f"<b>cannot draw this:</b> {html.escape(str(error))}; showing the last good view"

    def update(self) -> None:
        """Recompute and redraw; never raises (it runs in the sliders' callbacks)."""
        try:
            probs = next_token_distribution(self.logits, **self.settings())
            readout = sampling_readout(probs, self.labels)
            old, self.probs = self.probs, probs
            try:
                png = self._png()
            except Exception:
                self.probs = old
                raise
        except Exception as e:  # noqa: BLE001 -- a widget shows a note, never a traceback
            self._note(e)
            return
        self.message = ""
        self.readout = readout
        self.info.value = self.readout
        self.image.value = png

    # --- drawing -----------------------------------------------------------------------
    def figure(self) -> Figure:
        desc = settings_caption(self.settings())
        fig, ax = plt.subplots(figsize=(8, 3.2))
        plot_distribution(
            self.probs, self.labels, self.reference, ax=ax, title=f"{self.title} {desc}".strip(),
            max_bars=self.max_bars,
        )  # fmt: skip
        fig.tight_layout()
        return fig

    def _png(self) -> bytes:
        fig = self.figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        return buf.getvalue()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
