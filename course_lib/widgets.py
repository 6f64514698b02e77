"""Interactive attention viewers (ipywidgets + matplotlib, offline): one design, two explorers.

* `PatternExplorer` (lessons 03 and 07): hand-built attention patterns (course_lib.patterns)
  on a sentence you type, with a temperature slider, causal and padding masks, row entropy
  and the top keys of a chosen query.
* `AttentionExplorer` (lessons 03, 04, 10, 11): the real attention weights of a course_lib
  model -- a `Transformer` (encoder self, decoder self and cross-attention; every layer and
  head), or a bare `MultiHeadAttention` / `EncoderLayer` / stack applied to embeddings.

Both draw into one reused matplotlib figure rendered to PNG bytes shown by an
`ipywidgets.Image`, so a change only redraws the picture (no widget is re-created).
Grids follow the course convention: rows are queries, columns are keys, rows sum to 1;
masked cells are drawn grey. Input the explorer cannot show (empty, too long, characters
outside the vocabulary) sets `explorer.message` and a note in the widget, and the last
good view stays on screen.

For tests and lessons the state is exposed: `current_weights` (numpy, what the picture
shows), `query_labels`, `key_labels`, `message`, `image.value` (the PNG bytes),
`last_redraw_ms`. Every control carries a stable CSS class (`course-...`) for browser tests.
"""

from __future__ import annotations

import html
import io
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import matplotlib
import numpy as np
import PIL.Image
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import ScaledTranslation
from torch import nn

from . import patterns as P
from .attention import MultiHeadAttention, keep_attention_weights
from .masks import causal_mask, padding_mask
from .viz import row_entropy, top_attended

COLORMAPS = ("viridis", "magma", "cividis")
MASKED_COLOR = "#d0d0d0"
# The all-heads view: its panels wrap into rows so that the figure stays about as wide as a
# notebook (HEADS_MAX_WIDTH inches of panels, about 720 px at the explorers' 80 dpi) and is not
# shrunk on screen; its token labels are never smaller than HEADS_MIN_FONT points (every k-th
# token is labelled when the panel has no room for all of them).
HEADS_MAX_WIDTH = 9.0
HEADS_MIN_FONT = 9.0

__all__ = ["PatternExplorer", "AttentionExplorer", "word_embedder", "COLORMAPS"]


# --- the picture: one reusable figure -------------------------------------------------
class _Layout:
    """One figure with fixed geometry: `n` heatmaps (heads) sharing a colour bar, plus a
    row-entropy panel when n == 1. Built once; new labels only re-set ticks and extents."""

    def __init__(self, n: int, entropy: bool, large: bool, dpi: int) -> None:
        self.n, self.has_entropy, self.large = n, entropy, large
        self.fig = Figure(dpi=dpi)
        FigureCanvasAgg(self.fig)
        if n == 1:
            self.hw, self.hh = (7.0, 6.2) if large else (4.6, 4.0)
            self.ncols = self.nrows = 1
        else:  # all heads: as many columns as fit HEADS_MAX_WIDTH, the rows filled evenly
            self.hw = self.hh = 4.2 if large else 3.2
            fit = max(1, int((HEADS_MAX_WIDTH + 0.3) // (self.hw + 0.3)))
            self.nrows = math.ceil(n / min(n, fit))
            self.ncols = math.ceil(n / self.nrows)
        self.ent_w = 1.3 if entropy else 0.0
        self.axes = []
        for i in range(n):
            r, c = divmod(i, self.ncols)
            ax = self.fig.add_axes((0, 0, 1, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            first_col, last_row = c == 0, i + self.ncols >= n
            if last_row:
                ax.set_xlabel("key (attended to)", fontsize=10)
            if first_col:
                ax.set_ylabel("query (attending)", fontsize=10)
            ax._course_edges = (first_col, last_row)
            self.axes.append(ax)
        self.ent_ax = None
        if entropy:
            e = self.ent_ax = self.fig.add_axes((0, 0, 1, 1), sharey=self.axes[0])
            e.tick_params(axis="y", left=False, labelleft=False)
            e.tick_params(axis="x", labelsize=8)
            e.set_xlabel("entropy (nats)", fontsize=10)
            e.set_title("row entropy", fontsize=10)
        self.cax = self.fig.add_axes((0, 0, 1, 1))
        self._place(1.0, 1.0)
        self.images = [
            ax.imshow(np.zeros((1, 1)), vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
            for ax in self.axes
        ]
        self.boxes = []
        for ax in self.axes:
            box = Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor="#ff3030", linewidth=1.6)
            ax.add_patch(box)
            self.boxes.append(box)
        self.colorbar = self.fig.colorbar(self.images[0], cax=self.cax)
        self.colorbar.set_label("attention weight", fontsize=10)
        self.colorbar.ax.tick_params(labelsize=9)
        self.titles = [ax.set_title("", fontsize=10) for ax in self.axes]
        self.suptitle = self.fig.suptitle("", fontsize=11, y=1 - 0.1 / self.fig.get_figheight(), va="top")
        self.bars: list[Any] = []
        self._bar_pool: list[Rectangle] = []
        self._pools: dict[tuple, list[Any]] = {}
        self.uniform = self.ent_ax.axvline(0, color="#444444", ls="--", lw=1) if entropy else None
        self.labels: tuple | None = None
        self.bg_key: tuple | None = None
        self.bg: Any = None

    def _place(self, left: float, bottom: float) -> None:
        """Size the figure and position every axes (in inches) for the given label margins."""
        top = 0.45 if self.n == 1 else 0.8
        hw, hh, ncols, nrows = self.hw, self.hh, self.ncols, self.nrows
        gap_x = 0.3
        # between rows: room for the titles only, since only the panels with no panel below them
        # carry key labels (those of a short last row's neighbours hang into its empty slots)
        gap_y = 0.35 if nrows > 1 else 0.0
        width = left + ncols * hw + (ncols - 1) * gap_x + 0.3
        width += (self.ent_w + 0.25) if self.ent_ax is not None else 0.0
        width += 0.18 + 0.85
        height = bottom + nrows * hh + (nrows - 1) * gap_y + top
        W, H = width, height
        self.fig.set_size_inches(width, height)
        for i, ax in enumerate(self.axes):
            r, c = divmod(i, ncols)
            x0 = left + c * (hw + gap_x)
            y0 = height - top - (r + 1) * hh - r * gap_y
            ax.set_position((x0 / W, y0 / H, hw / W, hh / H))
        x = left + ncols * hw + (ncols - 1) * gap_x + 0.3
        if self.ent_ax is not None:
            self.ent_ax.set_position((x / W, bottom / H, self.ent_w / W, hh / H))
            x += self.ent_w + 0.25
        self.cax.set_position((x / W, (height - top - hh) / H, 0.18 / W, hh / H))
        if getattr(self, "suptitle", None) is not None:
            self.suptitle.set_y(1 - 0.1 / height)

    def _texts(self, ax: Any, axis: str, items: list[tuple[int, str]], fs: float) -> None:
        """Token labels along one edge of `ax`, from a pool of Text artists (reused, because
        creating matplotlib ticks is what makes a fresh figure slow)."""
        pool = self._pools.setdefault((id(ax), axis), [])
        while len(pool) < len(items):
            if axis == "x":  # below the axes, rotated; x in data units, y in axes units
                tr = ax.get_xaxis_transform() + ScaledTranslation(0, -3 / 72, self.fig.dpi_scale_trans)
                t = ax.text(0, 0, "", transform=tr, rotation=90, ha="center", va="top", clip_on=False)
            else:  # left of the axes; y in data units
                tr = ax.get_yaxis_transform() + ScaledTranslation(-3 / 72, 0, self.fig.dpi_scale_trans)
                t = ax.text(0, 0, "", transform=tr, ha="right", va="center", clip_on=False)
            pool.append(t)
        for k, t in enumerate(pool):
            if k < len(items):
                j, lab = items[k]
                t.set_position((j, 0) if axis == "x" else (0, j))
                t.set_text(lab)
                t.set_fontsize(fs)
                t.set_visible(True)
            else:
                t.set_visible(False)

    def set_labels(self, q_labels: Sequence[str], k_labels: Sequence[str]) -> None:
        T_q, T_k = len(q_labels), len(k_labels)
        # font size from the room per cell (points); label every k-th token if even the smallest
        # font (6.5 pt for one head, HEADS_MIN_FONT for all heads) does not fit one per cell
        cell_pt = min(self.hw * 72 / max(T_k, 1), self.hh * 72 / max(T_q, 1))
        fs = min(max(0.9 * cell_pt, 6.5 if self.n == 1 else HEADS_MIN_FONT), 10.0)
        every = max(1, math.ceil(1.05 * fs / cell_pt))
        q_short = [s if len(s) <= 12 else s[:11] + "…" for s in q_labels]
        k_short = [s if len(s) <= 12 else s[:11] + "…" for s in k_labels]
        char_w = fs * 0.62 / 72  # inches per character of a label, roughly
        q_ext = 0.06 + char_w * max((len(s) for s in q_short), default=1)  # label widths, inches
        k_ext = 0.06 + char_w * max((len(s) for s in k_short), default=1)
        self._place(0.42 + q_ext, 0.4 + k_ext)
        for ax, im, box in zip(self.axes, self.images, self.boxes):
            first_col, last_row = ax._course_edges
            im.set_data(np.zeros((T_q, T_k)))
            im.set_extent((-0.5, T_k - 0.5, T_q - 0.5, -0.5))
            xt, yt = range(0, T_k, every), range(0, T_q, every)
            self._texts(ax, "x", [(j, k_short[j]) for j in xt] if last_row else [], fs)
            self._texts(ax, "y", [(j, q_short[j]) for j in yt] if first_col else [], fs)
            ax.xaxis.set_label_coords(0.5, -(k_ext + 0.08) / self.hh)
            ax.yaxis.set_label_coords(-(q_ext + 0.1) / self.hw, 0.5)
            ax.set_xlim(-0.5, T_k - 0.5)
            ax.set_ylim(T_q - 0.5, -0.5)
            box.set_width(T_k)
        if self.ent_ax is not None:
            while len(self._bar_pool) < T_q:
                r = Rectangle((0, 0), 0, 0.8, color="#7f7f7f")
                self.ent_ax.add_patch(r)
                self._bar_pool.append(r)
            for j, r in enumerate(self._bar_pool):
                r.set_visible(j < T_q)
                r.set_y(j - 0.4)
            self.bars = self._bar_pool[:T_q]
            self.ent_ax.set_ylim(T_q - 0.5, -0.5)
            self.ent_ax.set_xlim(0, 1.08 * math.log(max(T_k, 2)))
            self.uniform.set_xdata([math.log(max(T_k, 1))] * 2)
        self.labels = (tuple(q_labels), tuple(k_labels))
        self.bg_key = None

    def dynamic(self) -> list[Any]:
        """The artists that change from one redraw to the next (drawn over the background)."""
        return [*self.images, *self.boxes, *self.titles, self.suptitle, *self.bars]


class _GridView:
    """The picture of an explorer: reusable figures (one per layout: single grid with a
    row-entropy panel, or the heads of a layer in rows of panels), rendered to PNG bytes.

    Speed: each layout's figure is built once; its static parts (axes, tick labels, colour
    bar) are drawn into a background that is reused while the labels, colours and scale stay
    the same. A redraw restores that background and draws only the images, the query box,
    the entropy bars and the titles (blitting), then encodes the pixels as PNG."""

    def __init__(self, dpi: int = 80) -> None:
        self.dpi = dpi
        self._layouts: dict[tuple, _Layout] = {}
        self.current: _Layout | None = None

    @property
    def fig(self) -> Figure | None:
        return self.current.fig if self.current is not None else None

    def draw(
        self,
        grids: np.ndarray,
        q_labels: Sequence[str],
        k_labels: Sequence[str],
        *,
        allowed: np.ndarray | None = None,
        titles: Sequence[str] = (),
        suptitle: str = "",
        query: int | None = None,
        cmap: str = "viridis",
        vmax: float | None = 1.0,
        entropy: np.ndarray | None = None,
        slot: Any = None,
    ) -> bytes:
        """grids (n, T_q, T_k) -> PNG bytes. allowed: boolean (T_q, T_k), False cells grey.
        vmax None scales the colours to the largest weight shown. `slot` keeps separate
        figures for views whose labels differ (e.g. encoder and decoder side)."""
        n = grids.shape[0]
        large = max(len(q_labels), len(k_labels)) > 24
        key = (n, entropy is not None, large, slot)
        lay = self._layouts.get(key)
        if lay is None:
            lay = self._layouts[key] = _Layout(n, entropy is not None, large, self.dpi)
        self.current = lay
        if lay.labels != (tuple(q_labels), tuple(k_labels)):
            lay.set_labels(q_labels, k_labels)
        top = float(grids.max()) if grids.size else 1.0
        vmax = vmax if vmax is not None else max(round(top, 2), 0.01)
        for i, im in enumerate(lay.images):
            im.set_data(grids[i] if allowed is None else np.ma.masked_array(grids[i], mask=~allowed))
            lay.boxes[i].set_visible(query is not None)
            if query is not None:
                lay.boxes[i].set_y(query - 0.5)
        for t, s in zip(lay.titles, titles):
            t.set_text(s)
        lay.suptitle.set_text(suptitle)
        if entropy is not None:
            for j, (bar, h) in enumerate(zip(lay.bars, entropy)):
                bar.set_width(float(h))
                bar.set_color("#d62728" if j == query else "#7f7f7f")

        canvas = lay.fig.canvas
        if lay.bg_key != (cmap, vmax):  # the static background changed: draw it once
            cm = matplotlib.colormaps[cmap].with_extremes(bad=MASKED_COLOR)
            for im in lay.images:
                im.set_cmap(cm)
                im.set_clim(0.0, vmax)
            lay.colorbar.update_normal(lay.images[0])
            for a in lay.dynamic():
                a.set_animated(True)
            canvas.draw()
            lay.bg = canvas.copy_from_bbox(lay.fig.bbox)
            lay.bg_key = (cmap, vmax)
        canvas.restore_region(lay.bg)
        for a in lay.dynamic():
            if a.get_visible():
                lay.fig.draw_artist(a)
        w, h = canvas.get_width_height()
        pixels = PIL.Image.frombuffer("RGBA", (w, h), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buf = io.BytesIO()
        pixels.convert("RGB").save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def save(self, path: Path, dpi: int = 150) -> None:
        """A full-quality render of the current view (every artist, at `dpi`)."""
        lay = self.current
        if lay is None:
            raise ValueError("nothing to save yet: the explorer has not drawn a view")
        dyn = lay.dynamic()
        for a in dyn:
            a.set_animated(False)
        try:
            lay.fig.savefig(path, format="png", dpi=dpi)
        finally:
            for a in dyn:
                a.set_animated(True)
            lay.bg_key = None  # savefig re-rendered the canvas: draw the background again


# --- shared plumbing --------------------------------------------------------------------
def _row(children: list[widgets.Widget]) -> widgets.HBox:
    """A row of controls that wraps on narrow screens."""
    return widgets.HBox(children, layout=widgets.Layout(flex_flow="row wrap", align_items="center"))


def _tag(w: widgets.Widget, *names: str) -> widgets.Widget:
    """Add stable CSS classes (for browser tests and styling); show the full description."""
    for n in names:
        w.add_class(n)
    if getattr(w, "description", "") and hasattr(w.style, "description_width"):
        w.style.description_width = "initial"
    return w


class _Explorer:
    """What both explorers share: the image, the message and readout areas, saving a PNG,
    display in Jupyter, and timing of every redraw."""

    kind = "explorer"

    def __init__(self, dpi: int = 80, save_path: str = "attention.png") -> None:
        self._view = _GridView(dpi)
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        _tag(self.image, "course-attention-image")
        self.status = _tag(widgets.HTML(""), "course-explorer-message")
        self.readout = _tag(widgets.HTML(""), "course-explorer-readout")
        self.save_path = _tag(
            widgets.Text(value=save_path, description="PNG file", layout=widgets.Layout(width="22em")),
            "course-explorer-save-path",
        )
        self.save_button = _tag(
            widgets.Button(description="save PNG", icon="download", tooltip="save the current view as PNG"),
            "course-explorer-save",
        )
        self.save_button.on_click(lambda _b: self.save_png())
        self.message = ""
        self._failure = ""  # the note of the last update that raised, until one succeeds
        self.redraw_ms: list[float] = []
        self._holding = False
        self.widget: widgets.Box = widgets.VBox()

    # -- display ---------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def png(self) -> bytes:
        """The PNG bytes of the picture on screen."""
        return bytes(self.image.value)

    @property
    def last_redraw_ms(self) -> float | None:
        return self.redraw_ms[-1] if self.redraw_ms else None

    # -- messages --------------------------------------------------------------------
    def _say(self, text: str, level: str = "warning") -> None:
        """Show a one-line note in the widget (and keep it in `message`)."""
        self.message = text
        if not text:
            self.status.value = ""
            return
        color = {"warning": "#8a4b00", "info": "#1f5f1f"}.get(level, "#8a4b00")
        icon = "⚠️" if level == "warning" else "ℹ️"
        self.status.value = f'<span style="color:{color}">{icon} {html.escape(text)}</span>'

    def _run_safely(self, fn: Callable[[], None]) -> None:
        """Run a recompute+redraw; any unexpected error becomes a message, never a traceback.
        The next update that succeeds takes that message away again."""
        if self._holding:
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 -- a widget must never show a traceback
            self._say(f"could not update the view ({type(e).__name__}: {e}); showing the last good one")
            self._failure = self.message
            return
        if self._failure and self.message == self._failure:
            self._say("")
        self._failure = ""

    def _show(self, png: bytes, t0: float) -> None:
        self.image.value = png
        self.redraw_ms.append(1000 * (time.perf_counter() - t0))

    def save_png(self, path: str | Path | None = None, dpi: int = 150) -> Path | None:
        """Save the current view as a PNG (for slides); returns the path, or None on failure."""
        path = Path(path if path is not None else self.save_path.value).expanduser()
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._view.save(path, dpi)
        except (OSError, ValueError) as e:
            self._say(f"could not save {path}: {e}")
            return None
        self._say(f"saved the view to {path}", level="info")
        return path

    def _readout_html(self, lines: list[str]) -> str:
        return (
            "<div style='font-family:monospace;font-size:13px;line-height:1.5'>"
            + "<br>".join(lines)
            + "</div>"
        )


def _check_finite(weights: np.ndarray, what: str) -> np.ndarray:
    """Attention weights to draw: finite numbers (NaN or inf would draw as nonsense)."""
    if not np.isfinite(weights).all():
        bad = int((~np.isfinite(weights)).sum())
        raise ValueError(
            f"{what} contain NaN or inf ({bad} of {weights.size} entries): expected finite weights, "
            f"rows summing to 1; the model's weights or its input hold NaN or inf"
        )
    return weights


def _fmt_top(weights_row: np.ndarray, labels: Sequence[str], k: int = 3) -> str:
    return " · ".join(
        f"<b>{html.escape(lab)}</b><sub>{j}</sub> {w:.2f}"
        for j, lab, w in top_attended(weights_row, labels, k)
    )


# --- 1. hand-built patterns ---------------------------------------------------------------
class PatternExplorer(_Explorer):
    """Hand-built attention patterns on a sentence you type (lessons 03 and 07).

    Each pattern is one head with hand-built W_Q, W_K (see `course_lib.patterns`); its scores
    Q K^T / sqrt(d_k) go through softmax(scores / temperature) with the chosen masks.
    Controls: sentence, pattern (the head), "all patterns" (every head side by side),
    temperature, query, causal mask, padding mask and the number of pad tokens, colour map.

    State: `tokens`, `labels` (tokens + pads), `current_scores` / `current_weights` /
    `current_mask` (T, T) of the chosen pattern ((h, T, T) weights when all patterns are
    shown), `entropy` (T,) of the chosen pattern, `message`.
    """

    kind = "pattern-explorer"

    def __init__(
        self,
        text: str = "The cat sat on the mat because the cat was tired .",
        pattern: str = "previous token",
        temperature: float = 1.0,
        *,
        causal: bool = False,
        padding: bool = False,
        n_pad: int = 0,
        all_patterns: bool = False,
        query: int = 1,
        max_tokens: int = 24,
        max_pad: int = 8,
        strength: float = P.STRENGTH,
        show_masks: bool = True,
        cmap: str = "viridis",
        dpi: int = 80,
        save_path: str = "attention_pattern.png",
    ) -> None:
        super().__init__(dpi, save_path)
        if pattern not in P.PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r}: expected one of {', '.join(P.PATTERNS)}")
        if max_tokens < 1 or max_pad < 0:
            raise ValueError(f"need max_tokens >= 1 and max_pad >= 0, got {max_tokens} and {max_pad}")
        self.max_tokens, self.max_pad, self.strength = max_tokens, max_pad, strength
        self._max_len = max_tokens + max_pad  # positions the embedding must tell apart
        self.tokens: list[str] = []
        self.labels: list[str] = []
        self.current_scores = self.current_weights = self.current_mask = self.entropy = None

        W = widgets
        self.text = _tag(
            W.Text(value="", description="sentence", continuous_update=False, layout=W.Layout(width="36em")),
            "course-explorer-text",
            "course-pattern-text",
        )
        self.pattern = _tag(
            W.Dropdown(options=P.PATTERNS, value=pattern, description="pattern"), "course-pattern-pattern"
        )
        self.all_patterns = _tag(
            W.Checkbox(value=all_patterns, description="all patterns (one head each)", indent=False),
            "course-pattern-all",
        )
        self.temperature = _tag(
            W.FloatLogSlider(
                value=temperature,
                base=10,
                min=-1.3,
                max=0.7,
                step=0.02,
                description="temperature",
                readout_format=".2f",
                # False: ipywidgets' log slider would otherwise echo a step-rounded value back
                # to the kernel whenever Python sets the temperature
                continuous_update=False,
            ),
            "course-explorer-slider",
            "course-pattern-temperature",
        )
        self.query = _tag(
            W.IntSlider(value=0, min=0, max=1, description="query"),
            "course-explorer-slider",
            "course-pattern-query",
        )
        self.causal = _tag(
            W.Checkbox(value=causal, description="causal mask", indent=False), "course-pattern-causal"
        )
        self.padding = _tag(
            W.Checkbox(value=padding, description="padding mask", indent=False), "course-pattern-padding"
        )
        self.n_pad = _tag(
            W.IntSlider(value=min(n_pad, max_pad), min=0, max=max_pad, description="pad tokens"),
            "course-explorer-slider",
            "course-pattern-npad",
        )
        self.cmap = _tag(
            W.Dropdown(options=COLORMAPS, value=cmap, description="colours", layout=W.Layout(width="14em")),
            "course-explorer-cmap",
        )
        rows = [
            _row([self.text, self.pattern]),
            _row([self.temperature, self.query, self.all_patterns]),
        ]
        if show_masks:
            rows.append(_row([self.causal, self.padding, self.n_pad]))
        rows.append(_row([self.cmap, self.save_path, self.save_button]))
        self.widget = W.VBox([*rows, self.status, self.image, self.readout])
        for cls in ("course-explorer", "course-pattern-explorer"):
            self.widget.add_class(cls)

        self.text.observe(self._on_text, names="value")
        for w in (
            self.pattern,
            self.all_patterns,
            self.temperature,
            self.query,
            self.causal,
            self.padding,
            self.n_pad,
            self.cmap,
        ):
            w.observe(lambda _c: self._run_safely(self._update), names="value")
        self._initial_query = query
        self.text.value = text  # triggers the first view (or a message)
        if not self.tokens:  # the initial text itself was unusable: fall back to a default sentence
            msg = self.message
            self.set_text("attention is all you need")
            self._say(msg)

    # -- input -------------------------------------------------------------------------
    def set_text(self, text: str) -> None:
        """Same as typing `text` in the box and pressing Enter."""
        if self.text.value == text:
            self._on_text({"new": text})
        else:
            self.text.value = text

    def _check_text(self, text: str) -> list[str] | None:
        if not isinstance(text, str) or not text.strip():
            self._say("Type a sentence: the box is empty. Showing the last sentence.")
            return None
        if len(text) > 20 * self.max_tokens:
            self._say(
                f"That text is too long ({len(text)} characters): the explorer shows at most "
                f"{self.max_tokens} tokens. Showing the last sentence."
            )
            return None
        toks = P.tokenize(text)
        if len(toks) > self.max_tokens:
            self._say(
                f"That sentence has {len(toks)} tokens; the explorer shows at most {self.max_tokens}. "
                "Shorten it (showing the last sentence)."
            )
            return None
        return toks

    def _on_text(self, change: dict) -> None:
        def run() -> None:
            toks = self._check_text(change["new"])
            if toks is None:
                return
            self.tokens = toks
            self._update(clear_message=True)

        self._run_safely(run)

    # -- compute -------------------------------------------------------------------------
    def _compute(self) -> None:
        tau = self.temperature.value
        if not 0 < tau < math.inf:
            raise ValueError(f"temperature must be a finite number > 0, got {tau!r}")
        n_pad = self.n_pad.value
        labels = self.tokens + [P.PAD] * n_pad
        T = len(labels)
        allowed = np.ones((T, T), dtype=bool)
        if self.causal.value:
            allowed &= causal_mask(T).numpy()
        if self.padding.value and n_pad:
            ids = torch.tensor([[1] * len(self.tokens) + [0] * n_pad])
            allowed &= padding_mask(ids, pad_id=0)[0, 0].numpy()  # (1, T): no query sees a pad key
        X = P.embed(labels, self._max_len)
        names = P.PATTERNS if self.all_patterns.value else (self.pattern.value,)
        scores = np.stack(
            [P.scores_from_qk(*P.pattern_qk(n, X, self._max_len, self.strength)) for n in names]
        )
        weights = _check_finite(P.softmax_attention(scores, tau, allowed), "the weights")  # (n, T, T)
        chosen = names.index(self.pattern.value) if self.pattern.value in names else 0
        self.labels = labels
        self.current_mask = allowed
        self.current_scores = scores[chosen]
        self.layer_weights = weights
        self.current_weights = weights if self.all_patterns.value else weights[0]
        self.entropy = row_entropy(weights[chosen])
        self._names = names

    def _update(self, clear_message: bool = False) -> None:
        if not self.tokens:
            return
        t0 = time.perf_counter()
        T = len(self.tokens) + self.n_pad.value
        self._holding = True
        try:  # keep the query slider inside the sentence without triggering a second redraw
            self.query.max = max(T - 1, 1)
            if self._initial_query is not None:
                self.query.value = min(self._initial_query, T - 1)
                self._initial_query = None
            self.query.value = min(self.query.value, T - 1)
        finally:
            self._holding = False
        self._compute()
        q = self.query.value
        names = self._names
        chosen = names.index(self.pattern.value) if self.pattern.value in names else 0
        grids = self.layer_weights
        tau = self.temperature.value
        mask_note = ", ".join(
            s
            for s, on in (
                ("causal mask", self.causal.value),
                ("padding mask", self.padding.value and self.n_pad.value),
            )
            if on
        )
        titles = [f"{n}  (H̄={row_entropy(w).mean():.2f})" for n, w in zip(names, grids)]
        if len(names) == 1:
            titles = [f"{names[0]}, temperature {tau:.2f}" + (f"  [{mask_note}]" if mask_note else "")]
            sup = ""
        else:
            sup = f"every pattern as one head, temperature {tau:.2f}" + (
                f"  [{mask_note}]" if mask_note else ""
            )
        png = self._view.draw(
            grids,
            self.labels,
            self.labels,
            allowed=self.current_mask,
            titles=titles,
            suptitle=sup,
            query=q,
            cmap=self.cmap.value,
            vmax=1.0,
            entropy=self.entropy if len(names) == 1 else None,
        )
        self._show(png, t0)
        if clear_message:
            self._say("")
        lab = self.labels[q]
        H, n_keys = self.entropy[q], int(self.current_mask[q].sum())
        lines = [
            f"query {q} <b>{html.escape(lab)}</b> attends to: {_fmt_top(grids[chosen][q], self.labels)}",
            f"row entropy of query {q}: {H:.2f} nats (uniform over its {n_keys} keys: ln {n_keys} = "
            f"{math.log(max(n_keys, 1)):.2f}); mean over rows {self.entropy.mean():.2f}",
        ]
        self.readout.value = self._readout_html(lines)


# --- 2. real models -------------------------------------------------------------------------
def _visible(label: str) -> str:
    return {" ": "·", "\n": "⏎", "\t": "⇥"}.get(label, label)


def _labels_for(vocab: Any, ids: Sequence[int]) -> list[str]:
    """Display labels of token ids: vocab.tokens(ids), vocab.itos[id], vocab.decode([id]) or the id."""
    if hasattr(vocab, "tokens"):
        labels = [str(t) for t in vocab.tokens(list(ids))]
    elif hasattr(vocab, "itos"):
        labels = [str(vocab.itos[i]) for i in ids]
    elif hasattr(vocab, "decode"):
        labels = [str(vocab.decode([i])) or str(i) for i in ids]
    else:
        labels = [str(i) for i in ids]
    return [_visible(s) for s in labels]


def _sos_id(vocab: Any) -> int | None:
    for name in ("sos_id", "bos_id", "SOS", "BOS"):
        v = getattr(vocab, name, None)
        if isinstance(v, int):
            return v
    return None


def word_embedder(
    d_model: int, seed: int = 0, positions: bool = True, max_len: int = 64
) -> Callable[[str], tuple[torch.Tensor, list[str]]]:
    """A fixed toy embedding for `AttentionExplorer` on a bare module: text -> (x (T, d_model),
    word labels). Each word gets a fixed pseudo-random vector (the same word, the same vector),
    plus the sinusoidal positional encoding when `positions` is True."""
    from .positional import sinusoidal_encoding

    pe = sinusoidal_encoding(max_len, d_model) if positions else torch.zeros(max_len, d_model)

    def embed(text: str) -> tuple[torch.Tensor, list[str]]:
        toks = P.tokenize(text)
        if not toks:
            raise ValueError("no words to embed: type a sentence")
        if len(toks) > max_len:
            raise ValueError(f"{len(toks)} tokens, at most {max_len} can be embedded")
        vecs = [
            torch.from_numpy(P._hashed_normal(f"{seed}:{t.lower()}", d_model) * math.sqrt(d_model)).float()
            for t in toks
        ]
        return torch.stack(vecs) + pe[: len(toks)], toks

    return embed


class _Source:
    """Runs a model on text and returns, per attention type, a list (one per layer) of
    weights (h, T_q, T_k) with the query and key labels."""

    types: list[str]
    needs_target = False

    def run(self, text: str, target: str | None) -> tuple[dict[str, list[np.ndarray]], dict[str, tuple]]:
        raise NotImplementedError


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _weights_of(mhas: Sequence[MultiHeadAttention]) -> list[np.ndarray]:
    out = []
    for m in mhas:
        if m.attn_weights is None:
            raise ValueError("the model ran but an attention module kept no weights")
        w = m.attn_weights[0].detach().float().cpu().numpy()  # (h, T_q, T_k)
        out.append(_check_finite(w, "the attention weights"))
    return out


class _TransformerSource(_Source):
    names = {
        "encoder self": "encoder self-attention",
        "decoder self": "decoder self-attention",
        "cross": "cross-attention",
    }

    def __init__(self, model, src_vocab, tgt_vocab, translate, max_len, src_encode, tgt_encode) -> None:
        if src_vocab is None:
            raise ValueError(
                "AttentionExplorer on a Transformer needs src_vocab (with encode(text) -> list[int])"
            )
        self.model, self.src_vocab = model, src_vocab
        self.tgt_vocab = tgt_vocab if tgt_vocab is not None else src_vocab
        self.translate = translate
        self.max_len = min(max_len, model.cfg.max_len)
        self.src_encode = src_encode or src_vocab.encode
        sos = _sos_id(self.tgt_vocab)
        self.tgt_encode = tgt_encode or (
            lambda t: ([sos] if sos is not None else []) + list(self.tgt_vocab.encode(t))
        )
        self.modules = {
            "encoder self": [layer.self_attn for layer in model.encoder_layers],
            "decoder self": [layer.self_attn for layer in model.decoder_layers],
            "cross": [layer.cross_attn for layer in model.decoder_layers],
        }
        self.types = [t for t, mods in self.modules.items() if mods]
        if not self.types:
            raise ValueError("the Transformer has no layers with attention to show")
        self.needs_target = bool(model.decoder_layers) and translate is None
        self.has_decoder = bool(model.decoder_layers)

    def _ids(self, encode, text: str, side: str) -> list[int]:
        try:
            ids = list(encode(text))
        except (ValueError, KeyError) as e:
            msg = e.args[0] if e.args else str(e)
            raise ValueError(f"the {side} cannot be encoded: {msg}") from None
        if not ids:
            raise ValueError(f"the {side} is empty after encoding")
        if len(ids) > self.max_len:
            raise ValueError(
                f"the {side} is too long: {len(ids)} tokens, the explorer shows at most {self.max_len}"
            )
        return ids

    def run(self, text, target):
        src_ids = self._ids(self.src_encode, text, "input")
        tgt_ids: list[int] = []
        if self.has_decoder:
            if self.translate is not None:
                try:
                    target = self.translate(text)
                except ValueError as e:
                    raise ValueError(f"could not translate the input: {e}") from None
                self.last_translation = target
            if target is None:
                raise ValueError("the target is empty: type a target text")
            tgt_ids = self._ids(self.tgt_encode, target, "target")
        dev = _device_of(self.model)
        src = torch.tensor([src_ids], dtype=torch.long, device=dev)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), keep_attention_weights(self.model):
                memory = self.model.encode(src)
                if self.has_decoder:
                    tgt = torch.tensor([tgt_ids], dtype=torch.long, device=dev)
                    self.model.decode(tgt, memory, src_mask=padding_mask(src, self.model.cfg.pad_id))
        finally:
            self.model.train(was_training)
        src_lab = _labels_for(self.src_vocab, src_ids)
        tgt_lab = _labels_for(self.tgt_vocab, tgt_ids) if tgt_ids else []
        weights = {t: _weights_of(self.modules[t]) for t in self.types}
        labels = {
            "encoder self": (src_lab, src_lab),
            "decoder self": (tgt_lab, tgt_lab),
            "cross": (tgt_lab, src_lab),
        }
        return weights, {t: labels[t] for t in self.types}


class _ModuleSource(_Source):
    """A bare MultiHeadAttention, EncoderLayer or any module containing MultiHeadAttention
    modules, called on the embeddings of the text (self-attention)."""

    def __init__(self, module, embed, vocab, forward, max_len, causal) -> None:
        self.module, self.embed, self.vocab, self.forward = module, embed, vocab, forward
        self.max_len, self.causal = max_len, causal
        self.mhas = [m for m in module.modules() if isinstance(m, MultiHeadAttention)]
        if not self.mhas:
            raise ValueError(f"{type(module).__name__} contains no course_lib MultiHeadAttention to show")
        if embed is None and vocab is None:
            d = self.mhas[0].d_model
            self.embed = word_embedder(d, max_len=max_len)
        self.types = ["self"]
        self.names = {"self": "self-attention"}

    def run(self, text, target):
        if self.embed is not None:
            try:
                x, labels = self.embed(text)
            except (ValueError, KeyError) as e:
                raise ValueError(f"the input cannot be embedded: {e.args[0] if e.args else e}") from None
            x = torch.as_tensor(x)
            if x.dim() == 2:
                x = x[None]  # (1, T, d_model)
            labels = [_visible(str(s)) for s in labels]
            inputs = x
        else:
            try:
                ids = list(self.vocab.encode(text))
            except (ValueError, KeyError) as e:
                raise ValueError(f"the input cannot be encoded: {e.args[0] if e.args else e}") from None
            labels = _labels_for(self.vocab, ids)
            inputs = torch.tensor([ids], dtype=torch.long)
        T = inputs.size(1)
        if T == 0:
            raise ValueError("the input is empty")
        if T > self.max_len:
            raise ValueError(f"the input is too long: {T} tokens, the explorer shows at most {self.max_len}")
        p = next(iter(self.module.parameters()), None)
        if p is not None:
            inputs = inputs.to(p.device, p.dtype if inputs.is_floating_point() else inputs.dtype)
        mask = causal_mask(T, inputs.device) if self.causal else None
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad(), keep_attention_weights(self.module):
                if self.forward is not None:
                    self.forward(self.module, inputs, mask)
                elif isinstance(self.module, MultiHeadAttention):
                    self.module(inputs, mask=mask)
                elif mask is not None:
                    self.module(inputs, mask)
                else:
                    self.module(inputs)
        finally:
            self.module.train(was_training)
        return {"self": _weights_of(self.mhas)}, {"self": (labels, labels)}


class AttentionExplorer(_Explorer):
    """The attention of a course_lib model on text you type (issue 6; lessons 03, 04, 07, 10, 11).

    model: a `Transformer` -- then give `src_vocab` (and `tgt_vocab` if different): objects with
      `encode(text) -> list[int]` (raising ValueError on unknown characters) and labels per id
      (`tokens(ids)`, an `itos` list or `decode`). The decoder's input is SOS + the target
      (as in training); the target comes from `translate(text) -> str` when given (e.g. greedy
      decoding), otherwise from a second text box.
    model: a `MultiHeadAttention`, `EncoderLayer` or any module holding MultiHeadAttention
      modules -- then give `embed(text) -> (x (T, d_model), labels)` (default: `word_embedder`),
      or a `src_vocab` whose ids the module takes. `forward(module, x, mask)` overrides the call;
      `causal=True` passes a causal mask.

    Controls: input (and target), attention type, layer, head ("all heads" = grid of the
    layer), query, colour map, colour scale (fixed 0..1 or auto), save PNG.
    State: `current_weights` ((T_q, T_k), or (h, T_q, T_k) for all heads), `layer_weights`
    (h, T_q, T_k), `weights` (every type and layer of the last good run), `query_labels`,
    `key_labels`, `message`, `translation`.
    """

    kind = "attention-explorer"

    def __init__(
        self,
        model: nn.Module,
        src_vocab: Any = None,
        tgt_vocab: Any = None,
        *,
        text: str = "",
        target: str = "",
        translate: Callable[[str], str] | None = None,
        embed: Callable[[str], tuple[Any, Sequence[str]]] | None = None,
        forward: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], Any] | None = None,
        causal: bool = False,
        src_encode: Callable[[str], Sequence[int]] | None = None,
        tgt_encode: Callable[[str], Sequence[int]] | None = None,
        attention: str | None = None,
        layer: int = 0,
        head: int | str = 0,
        query: int = 0,
        max_len: int = 64,
        cmap: str = "viridis",
        dpi: int = 80,
        title: str | None = None,
        save_path: str = "attention_view.png",
    ) -> None:
        super().__init__(dpi, save_path)
        from .model import Transformer

        if isinstance(model, Transformer):
            self.source: _Source = _TransformerSource(
                model, src_vocab, tgt_vocab, translate, max_len, src_encode, tgt_encode
            )
        elif isinstance(model, nn.Module):
            self.source = _ModuleSource(model, embed, src_vocab, forward, max_len, causal)
        else:
            raise ValueError(
                f"model must be a course_lib Transformer or an nn.Module, got {type(model).__name__}"
            )
        self.model = model
        self.title = title
        self.weights: dict[str, list[np.ndarray]] = {}
        self._labels: dict[str, tuple] = {}
        self.current_weights = self.layer_weights = None
        self.query_labels: list[str] = []
        self.key_labels: list[str] = []
        self.translation: str | None = None

        W = widgets
        types = self.source.types
        if attention is not None and attention not in types:
            raise ValueError(f"attention must be one of {types}, got {attention!r}")
        self.text = _tag(
            W.Text(value="", description="input", continuous_update=False, layout=W.Layout(width="30em")),
            "course-explorer-text",
            "course-attention-text",
        )
        self.target = _tag(
            W.Text(value="", description="target", continuous_update=False, layout=W.Layout(width="30em")),
            "course-attention-target",
        )
        self.attention = _tag(
            W.Dropdown(
                options=[(self.source.names[t], t) for t in types],
                value=attention or types[0],
                description="attention",
            ),
            "course-attention-type",
        )
        self.layer = _tag(
            W.IntSlider(value=0, min=0, max=1, description="layer"),
            "course-explorer-slider",
            "course-attention-layer",
        )
        self.head = _tag(
            W.Dropdown(description="head", layout=W.Layout(width="14em")), "course-attention-head"
        )
        self.query = _tag(
            W.IntSlider(value=0, min=0, max=1, description="query"),
            "course-explorer-slider",
            "course-attention-query",
        )
        self.cmap = _tag(
            W.Dropdown(options=COLORMAPS, value=cmap, description="colours", layout=W.Layout(width="14em")),
            "course-explorer-cmap",
        )
        self.scale = _tag(
            W.ToggleButtons(
                options=[("0 to 1", "fixed"), ("auto", "auto")], value="fixed", description="scale"
            ),
            "course-attention-scale",
        )
        self.scale.style.button_width = "5em"
        first = [self.text]
        if self.source.needs_target:
            first.append(self.target)
        elif isinstance(self.source, _TransformerSource) and self.source.has_decoder:
            self.target.disabled = True
            self.target.description = "output"
            first.append(self.target)
        rows = [
            W.HBox(first),
            _row([self.attention, self.layer, self.head]),
            _row([self.query, self.cmap, self.scale]),
            _row([self.save_path, self.save_button]),
        ]
        self.widget = W.VBox([*rows, self.status, self.image, self.readout])
        for cls in ("course-explorer", "course-attention-explorer"):
            self.widget.add_class(cls)

        self._holding = True
        self._sync_selectors(layer=layer, head=head)
        self._holding = False
        self._init_query = query
        self.text.observe(self._on_input, names="value")
        self.target.observe(self._on_input, names="value")
        self.attention.observe(lambda _c: self._run_safely(self._on_type), names="value")
        for w in (self.layer, self.head, self.query, self.cmap, self.scale):
            w.observe(lambda _c: self._run_safely(self._redraw), names="value")
        self._holding = True
        self.target.value = target
        self.text.value = text
        self._holding = False
        if text:
            self._run_safely(lambda: self._recompute(clear_message=True))
        else:
            self._say("Type an input text (and press Enter).", level="info")

    # -- selectors -----------------------------------------------------------------------
    def _n_layers(self, kind: str) -> int:
        return len(self.weights[kind]) if kind in self.weights else len(self.source_modules(kind))

    def source_modules(self, kind: str) -> list[MultiHeadAttention]:
        src = self.source
        return src.modules[kind] if isinstance(src, _TransformerSource) else src.mhas

    def _sync_selectors(self, layer: int | None = None, head: int | str | None = None) -> None:
        """Fit layer and head selectors to the chosen attention type (without redrawing)."""
        kind = self.attention.value
        mods = self.source_modules(kind)
        n_layers, h = len(mods), mods[0].n_heads
        self.layer.max = max(n_layers - 1, 1)
        self.layer.disabled = n_layers == 1
        want = self.layer.value if layer is None else layer
        if not 0 <= want < n_layers:
            raise ValueError(f"layer must be in [0, {n_layers - 1}] for {kind}, got {want}")
        self.layer.value = want
        options = [("all heads", -1)] + [(f"head {i}", i) for i in range(h)]
        cur = self.head.value if head is None else (-1 if head in ("all", -1) else head)
        if cur not in range(-1, h):
            raise ValueError(f"head must be 'all' or in [0, {h - 1}], got {head!r}")
        self.head.options = options
        self.head.value = cur

    def _on_type(self) -> None:
        self._holding = True
        try:
            self._sync_selectors()
        finally:
            self._holding = False
        self._redraw()

    # -- input ---------------------------------------------------------------------------
    def set_text(self, text: str, target: str | None = None) -> None:
        """Same as typing in the box(es) and pressing Enter."""
        self._holding = True
        try:
            if target is not None:
                self.target.value = target
            self.text.value = text
        finally:
            self._holding = False
        self._run_safely(lambda: self._recompute(clear_message=True))

    def _on_input(self, _change: dict) -> None:
        self._run_safely(lambda: self._recompute(clear_message=True))

    def _recompute(self, clear_message: bool = False) -> None:
        text = self.text.value
        if not text.strip():
            self._say("The input is empty: type a text. Showing the last good view.")
            return
        target = self.target.value if self.source.needs_target else None
        if self.source.needs_target and not target.strip():
            self._say("The target is empty: type a target text. Showing the last good view.")
            return
        try:
            weights, labels = self.source.run(text, target)
        except ValueError as e:
            self._say(f"{e}. Showing the last good view.")
            return
        self.weights, self._labels = weights, labels
        tr = getattr(self.source, "last_translation", None)
        if tr is not None:
            self.translation = tr
            self._holding = True
            self.target.value = tr
            self._holding = False
        if clear_message:
            self._say("")
        self._redraw()

    # -- picture -------------------------------------------------------------------------
    def _redraw(self) -> None:
        if not self.weights:
            return
        t0 = time.perf_counter()
        kind, layer, head = self.attention.value, self.layer.value, self.head.value
        lw = self.weights[kind][layer]  # (h, T_q, T_k)
        q_lab, k_lab = self._labels[kind]
        T_q = lw.shape[1]
        self._holding = True
        try:
            self.query.max = max(T_q - 1, 1)
            if self._init_query is not None:
                self.query.value = min(self._init_query, T_q - 1)
                self._init_query = None
            self.query.value = min(self.query.value, T_q - 1)
            self.query.disabled = T_q == 1
        finally:
            self._holding = False
        q = self.query.value
        self.layer_weights = lw
        self.current_weights = lw if head == -1 else lw[head]
        self.query_labels, self.key_labels = list(q_lab), list(k_lab)
        name = self.source.names[kind]
        grids = lw if head == -1 else lw[head : head + 1]
        vmax = 1.0 if self.scale.value == "fixed" else None
        if head == -1:
            titles = [f"head {i}" for i in range(lw.shape[0])]
            sup = f"{self.title + ': ' if self.title else ''}{name}, layer {layer}, all heads"
            ent = None
        else:
            titles = [f"{self.title + ': ' if self.title else ''}{name}, layer {layer}, head {head}"]
            sup = ""
            ent = row_entropy(lw[head])
        png = self._view.draw(
            grids,
            q_lab,
            k_lab,
            titles=titles,
            suptitle=sup,
            query=q,
            cmap=self.cmap.value,
            vmax=vmax,
            entropy=ent,
            slot=kind,
        )
        self._show(png, t0)
        heads = range(lw.shape[0]) if head == -1 else [head]
        lines = [f"query {q} <b>{html.escape(q_lab[q])}</b> ({name}, layer {layer}) attends to:"]
        for i in heads:
            lines.append(f"&nbsp;&nbsp;head {i}: {_fmt_top(lw[i][q], k_lab)}")
        self.readout.value = self._readout_html(lines)
