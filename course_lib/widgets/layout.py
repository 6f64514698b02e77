"""The shared layout of the attention explorers: one reusable figure per view, and the widget frame.

`_GridView` draws grids (n, T_q, T_k) into a matplotlib figure that is built once per layout
(`_Layout`: one heatmap with a row-entropy panel, or every head of a layer in rows of panels)
and renders it to PNG bytes for an `ipywidgets.Image`, so a change only redraws the picture.
Grids follow the course convention: rows are queries, columns are keys, rows sum to 1; masked
cells are drawn grey.

`_Explorer` is the frame both explorers share: the image, the message and readout areas,
saving a PNG, display in Jupyter and the timing of every redraw. `_tag` gives each control a
stable CSS class (`course-...`) for the browser tests; `_row` lays controls out in a row.
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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import ScaledTranslation

COLORMAPS = ("viridis", "magma", "cividis")
MASKED_COLOR = "#d0d0d0"
# The all-heads view: its panels wrap into rows so that the figure stays about as wide as a
# notebook (HEADS_MAX_WIDTH inches of panels, about 720 px at the explorers' 80 dpi) and is not
# shrunk on screen; its token labels are never smaller than HEADS_MIN_FONT points (every k-th
# token is labelled when the panel has no room for all of them).
HEADS_MAX_WIDTH = 9.0
HEADS_MIN_FONT = 9.0


# --- the picture: one reusable figure -------------------------------------------------
class _Layout:
    """One figure with fixed geometry: `n` heatmaps (heads) sharing a colour bar, plus a
    row-entropy panel when n == 1. Built once; new labels only re-set ticks and extents."""

    def __init__(self, n: int, entropy: bool, large: bool, dpi: int) -> None:
        self.n, self.has_entropy, self.large = n, entropy, large
        self.fig = Figure(dpi=dpi)
        FigureCanvasAgg(self.fig)
        self._size_panels(n, large)
        self.ent_w = 1.3 if entropy else 0.0
        # the order of creation is the drawing order: heatmaps, entropy panel, colour bar
        self._add_heatmap_axes(n)
        self._add_entropy_axes(entropy)
        self.cax = self.fig.add_axes((0, 0, 1, 1))
        self._place(1.0, 1.0)
        self._add_artists(entropy)
        self.labels: tuple | None = None
        self.bg_key: tuple | None = None
        self.bg: Any = None

    def _size_panels(self, n: int, large: bool) -> None:
        """Panel size (inches) and grid: one large heatmap, or the heads in rows of panels."""
        if n == 1:
            self.hw, self.hh = (7.0, 6.2) if large else (4.6, 4.0)
            self.ncols = self.nrows = 1
        else:  # all heads: as many columns as fit HEADS_MAX_WIDTH, the rows filled evenly
            self.hw = self.hh = 4.2 if large else 3.2
            fit = max(1, int((HEADS_MAX_WIDTH + 0.3) // (self.hw + 0.3)))
            self.nrows = math.ceil(n / min(n, fit))
            self.ncols = math.ceil(n / self.nrows)

    def _add_heatmap_axes(self, n: int) -> None:
        """One axes per head; axis titles only on the left column and the bottom row."""
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

    def _add_entropy_axes(self, entropy: bool) -> None:
        """The row-entropy panel right of the heatmap (sharing its rows), or none."""
        self.ent_ax = None
        if entropy:
            e = self.ent_ax = self.fig.add_axes((0, 0, 1, 1), sharey=self.axes[0])
            e.tick_params(axis="y", left=False, labelleft=False)
            e.tick_params(axis="x", labelsize=8)
            e.set_xlabel("entropy (nats)", fontsize=10)
            e.set_title("row entropy", fontsize=10)

    def _add_artists(self, entropy: bool) -> None:
        """The images, query boxes, colour bar, titles and the entropy panel's uniform line."""
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

    def _label_sizes(self, q_labels: Sequence[str], k_labels: Sequence[str]) -> tuple:
        """(font size, label every k-th token, short query labels, short key labels, widths in
        inches of the query and of the key labels)."""
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
        return fs, every, q_short, k_short, q_ext, k_ext

    def set_labels(self, q_labels: Sequence[str], k_labels: Sequence[str]) -> None:
        T_q, T_k = len(q_labels), len(k_labels)
        fs, every, q_short, k_short, q_ext, k_ext = self._label_sizes(q_labels, k_labels)
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
            self._fit_entropy_bars(T_q, T_k)
        self.labels = (tuple(q_labels), tuple(k_labels))
        self.bg_key = None

    def _fit_entropy_bars(self, T_q: int, T_k: int) -> None:
        """One bar per query (from a reused pool); the x range reaches the uniform ln T_k."""
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
        self._initial_query: int | None = None  # the query asked for, until the first view
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

    def _fit_query(self, T_q: int, disable_single: bool = False) -> int:
        """Keep the query slider inside T_q tokens (the first time at the requested query)
        without triggering a second redraw; returns the query."""
        self._holding = True
        try:
            self.query.max = max(T_q - 1, 1)
            if self._initial_query is not None:
                self.query.value = min(self._initial_query, T_q - 1)
                self._initial_query = None
            self.query.value = min(self.query.value, T_q - 1)
            if disable_single:
                self.query.disabled = T_q == 1
        finally:
            self._holding = False
        return self.query.value
