"""`AttentionExplorer` (lessons 03, 04, 10, 11, 13): the real attention weights of a model.

The weights come from a source (`sources.py`: a `Transformer`, or a bare `MultiHeadAttention` /
`EncoderLayer` / stack applied to embeddings); the titles and the readout from `compute.py`.
This module builds the controls (input, attention type, layer, head, query, colours, scale),
keeps the layer and head selectors in range, and draws with the shared `_GridView`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from torch import nn

from ..attention import MultiHeadAttention
from ..viz import row_entropy
from .compute import attention_readout, attention_titles, readout_html
from .layout import COLORMAPS, _Explorer, _row, _tag
from .sources import _ModuleSource, _Source, _TransformerSource


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
        self.source = self._make_source(
            model, src_vocab, tgt_vocab, translate, embed, forward, causal, src_encode, tgt_encode, max_len
        )
        self.model = model
        self.title = title
        self.weights: dict[str, list[np.ndarray]] = {}
        self._labels: dict[str, tuple] = {}
        self.current_weights = self.layer_weights = None
        self.query_labels: list[str] = []
        self.key_labels: list[str] = []
        self.translation: str | None = None
        if attention is not None and attention not in self.source.types:
            raise ValueError(f"attention must be one of {self.source.types}, got {attention!r}")
        self._build_controls(attention, cmap)
        self._build_layout()
        self._holding = True
        self._sync_selectors(layer=layer, head=head)
        self._holding = False
        self._initial_query = query
        self._wire_callbacks()
        self._first_render(text, target)

    # -- construction, in steps ------------------------------------------------------------
    @staticmethod
    def _make_source(
        model, src_vocab, tgt_vocab, translate, embed, forward, causal, src_encode, tgt_encode, max_len
    ) -> _Source:
        """The source of the weights: the whole Transformer, or a module run on embeddings."""
        from ..model import Transformer

        if isinstance(model, Transformer):
            return _TransformerSource(model, src_vocab, tgt_vocab, translate, max_len, src_encode, tgt_encode)
        if isinstance(model, nn.Module):
            return _ModuleSource(model, embed, src_vocab, forward, max_len, causal)
        raise ValueError(
            f"model must be a course_lib Transformer or an nn.Module, got {type(model).__name__}"
        )

    def _build_controls(self, attention: str | None, cmap: str) -> None:
        W = widgets
        types = self.source.types
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

    def _build_layout(self) -> None:
        """Input row (the target box when the model has a decoder: typed, or the translation
        shown read-only as "output"), then the selectors, the view options and saving."""
        first = [self.text]
        if self.source.needs_target:
            first.append(self.target)
        elif isinstance(self.source, _TransformerSource) and self.source.has_decoder:
            self.target.disabled = True
            self.target.description = "output"
            first.append(self.target)
        rows = [
            widgets.HBox(first),
            _row([self.attention, self.layer, self.head]),
            _row([self.query, self.cmap, self.scale]),
            _row([self.save_path, self.save_button]),
        ]
        self.widget = widgets.VBox([*rows, self.status, self.image, self.readout])
        for cls in ("course-explorer", "course-attention-explorer"):
            self.widget.add_class(cls)

    def _wire_callbacks(self) -> None:
        self.text.observe(self._on_input, names="value")
        self.target.observe(self._on_input, names="value")
        self.attention.observe(lambda _c: self._run_safely(self._on_type), names="value")
        for w in (self.layer, self.head, self.query, self.cmap, self.scale):
            w.observe(lambda _c: self._run_safely(self._redraw), names="value")

    def _first_render(self, text: str, target: str) -> None:
        self._holding = True
        self.target.value = target
        self.text.value = text
        self._holding = False
        if text:
            self._run_safely(lambda: self._recompute(clear_message=True))
        else:
            self._say("Type an input text (and press Enter).", level="info")

    # -- selectors -----------------------------------------------------------------------
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
        q = self._fit_query(lw.shape[1], disable_single=True)
        self.layer_weights = lw
        self.current_weights = lw if head == -1 else lw[head]
        self.query_labels, self.key_labels = list(q_lab), list(k_lab)
        name = self.source.names[kind]
        titles, sup = attention_titles(self.title, name, layer, head, lw.shape[0])
        png = self._view.draw(
            lw if head == -1 else lw[head : head + 1],
            q_lab,
            k_lab,
            titles=titles,
            suptitle=sup,
            query=q,
            cmap=self.cmap.value,
            vmax=1.0 if self.scale.value == "fixed" else None,
            entropy=None if head == -1 else row_entropy(lw[head]),
            slot=kind,
        )
        self._show(png, t0)
        self.readout.value = readout_html(attention_readout(q, q_lab, k_lab, lw, head, name, layer))
