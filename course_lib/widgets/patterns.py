"""`PatternExplorer` (lessons 03 and 07): hand-built attention patterns on a sentence you type.

The numbers come from `compute.pattern_view` (course_lib.patterns: hand-built W_Q, W_K per
pattern, softmax(Q K^T / sqrt(d_k) / temperature) with the chosen masks); this module only
builds the controls, reads them and draws the result with the shared `_GridView`.
"""

from __future__ import annotations

import time

import ipywidgets as widgets

from .. import patterns as P
from .compute import (
    mask_note,
    pattern_readout,
    pattern_titles,
    pattern_view,
    readout_html,
    sentence_tokens,
)
from .layout import COLORMAPS, _Explorer, _row, _tag


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
        self._build_controls(pattern, temperature, causal, padding, n_pad, all_patterns, cmap)
        self._build_layout(show_masks)
        self._wire_callbacks()
        self._first_render(text, query)

    # -- construction, in steps ------------------------------------------------------------
    def _build_controls(
        self,
        pattern: str,
        temperature: float,
        causal: bool,
        padding: bool,
        n_pad: int,
        all_patterns: bool,
        cmap: str,
    ) -> None:
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
            W.IntSlider(value=min(n_pad, self.max_pad), min=0, max=self.max_pad, description="pad tokens"),
            "course-explorer-slider",
            "course-pattern-npad",
        )
        self.cmap = _tag(
            W.Dropdown(options=COLORMAPS, value=cmap, description="colours", layout=W.Layout(width="14em")),
            "course-explorer-cmap",
        )

    def _build_layout(self, show_masks: bool) -> None:
        rows = [
            _row([self.text, self.pattern]),
            _row([self.temperature, self.query, self.all_patterns]),
        ]
        if show_masks:
            rows.append(_row([self.causal, self.padding, self.n_pad]))
        rows.append(_row([self.cmap, self.save_path, self.save_button]))
        self.widget = widgets.VBox([*rows, self.status, self.image, self.readout])
        for cls in ("course-explorer", "course-pattern-explorer"):
            self.widget.add_class(cls)

    def _wire_callbacks(self) -> None:
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

    def _first_render(self, text: str, query: int) -> None:
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

    def _on_text(self, change: dict) -> None:
        def run() -> None:
            try:
                toks = sentence_tokens(change["new"], self.max_tokens)
            except ValueError as e:
                self._say(str(e))
                return
            self.tokens = toks
            self._update(clear_message=True)

        self._run_safely(run)

    # -- compute -------------------------------------------------------------------------
    def _compute(self) -> None:
        """The view of the current controls (compute.pattern_view), kept as the state."""
        view = pattern_view(
            self.tokens,
            self.pattern.value,
            self.temperature.value,
            n_pad=self.n_pad.value,
            all_patterns=self.all_patterns.value,
            causal=self.causal.value,
            padding=self.padding.value,
            max_len=self._max_len,
            strength=self.strength,
        )
        self.labels = view.labels
        self.current_mask = view.allowed
        self.current_scores = view.scores[view.chosen]
        self.layer_weights = view.weights
        self.current_weights = view.weights if self.all_patterns.value else view.weights[0]
        self.entropy = view.entropy
        self._names = view.names
        self._chosen = view.chosen

    # -- picture -------------------------------------------------------------------------
    def _update(self, clear_message: bool = False) -> None:
        if not self.tokens:
            return
        t0 = time.perf_counter()
        q = self._fit_query(len(self.tokens) + self.n_pad.value)
        self._compute()
        names, grids, tau = self._names, self.layer_weights, self.temperature.value
        note = mask_note(self.causal.value, self.padding.value, self.n_pad.value)
        titles, sup = pattern_titles(names, grids, tau, note)
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
        lines = pattern_readout(q, self.labels, grids[self._chosen], self.entropy, self.current_mask)
        self.readout.value = readout_html(lines)
