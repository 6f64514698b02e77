"""Interactive explorers for the lessons (ipywidgets + matplotlib, offline).

* `PatternExplorer` (lessons 03 and 07): hand-built attention patterns (course_lib.patterns)
  on a sentence you type, with a temperature slider, causal and padding masks, row entropy
  and the top keys of a chosen query.
* `AttentionExplorer` (lessons 03, 04, 10, 11, 13): the real attention weights of a course_lib
  model -- a `Transformer` (encoder self, decoder self and cross-attention; every layer and
  head), or a bare `MultiHeadAttention` / `EncoderLayer` / stack applied to embeddings
  (`word_embedder` gives a fixed toy embedding of words).
* `SamplingExplorer` and `plot_distribution` (lessons 10 and 13): how temperature, top-k and
  top-p reshape a next-token distribution.
* `PositionalEncodingExplorer` (lesson 05): the sinusoidal positional encoding, one frequency
  pair at a time.

The modules: `compute` (what is shown, as pure functions: weights, labels, entropies, top-k
text; no ipywidgets), `sources` (running a model for the attention explorer), `layout` (the
reusable figure and the frame the attention explorers share), and one module per explorer
(`patterns`, `attention`, `sampling`, `positional`).

The attention explorers draw into one reused matplotlib figure rendered to PNG bytes shown
by an `ipywidgets.Image`, so a change only redraws the picture (no widget is re-created).
Grids follow the course convention: rows are queries, columns are keys, rows sum to 1;
masked cells are drawn grey. Input an explorer cannot show (empty, too long, characters
outside the vocabulary, NaN) sets `explorer.message` and a note in the widget, and the last
good view stays on screen.

For tests and lessons the state is exposed: `current_weights` (numpy, what the picture
shows), `query_labels`, `key_labels`, `message`, `image.value` (the PNG bytes),
`last_redraw_ms`. Every control carries a stable CSS class (`course-...`) for browser tests.
"""

from __future__ import annotations

from .attention import AttentionExplorer
from .layout import COLORMAPS
from .patterns import PatternExplorer
from .positional import PositionalEncodingExplorer
from .sampling import SamplingExplorer, plot_distribution
from .sources import word_embedder

__all__ = [
    "PatternExplorer",
    "AttentionExplorer",
    "word_embedder",
    "SamplingExplorer",
    "plot_distribution",
    "PositionalEncodingExplorer",
    "COLORMAPS",
]
