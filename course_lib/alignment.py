"""Cross-attention as a soft word alignment (lesson 14), drawn two ways.

`cross_attention(model, tokenizer, source, target)` runs the translation model with teacher forcing
on a (source, target) pair and returns every decoder layer's cross-attention weights
(layers, h, T_target, T_source): row t says where output token t looked in the source when it was
predicted from the tokens before it (the decoder's input at t is SOS + target[:t]).

`plot_alignment_lines` draws one head (or a mean of heads) as the paper draws attention in its
Figures 3 to 5: the two token sequences in two rows, a line from each query to each key, as dark
as its weight. `plot_alignment_grid` draws the same weights as a grid (rows = queries = target).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes

from .attention import keep_attention_weights
from .data import SOS
from .model import Transformer
from .tokenizer import BPETokenizer


@torch.no_grad()
def cross_attention(
    model: Transformer, tokenizer: BPETokenizer, source: str, target: str
) -> tuple[np.ndarray, list[str], list[str]]:
    """(weights (layers, h, T_target + 1, T_source), source labels, target labels + '</s>').

    Query t predicts target token t (the last one predicts the end of sentence)."""
    src_ids, tgt_ids = tokenizer.encode(source), tokenizer.encode(target)
    if not src_ids or not tgt_ids:
        raise ValueError("source and target must both be non-empty text")
    src = torch.tensor([src_ids])  # (1, S)
    tgt_in = torch.tensor([[SOS, *tgt_ids]])  # (1, T + 1): the decoder reads SOS + target
    model.eval()
    with keep_attention_weights(model):
        model(src, tgt_in)
        weights = [layer.cross_attn.attn_weights[0].float().numpy() for layer in model.decoder_layers]
    return np.stack(weights), tokenizer.tokens(src_ids), [*tokenizer.tokens(tgt_ids), "</s>"]


def plot_alignment_lines(
    ax: Axes,
    weights: np.ndarray,
    source_labels: Sequence[str],
    target_labels: Sequence[str],
    title: str = "",
    color: str = "#3b0f70",
    min_weight: float = 0.05,
) -> None:
    """The paper's style (Figures 3-5): target tokens on top (queries), source tokens below (keys),
    one line per (query, key) with opacity = weight; weights below `min_weight` are left out."""
    w = np.asarray(weights)  # (T_target, T_source)
    if w.shape != (len(target_labels), len(source_labels)):
        raise ValueError(
            f"weights must be (T_target, T_source) = {(len(target_labels), len(source_labels))}, got {w.shape}"
        )
    n = max(len(source_labels), len(target_labels))
    xs_t = np.linspace(0, n - 1, len(target_labels))
    xs_s = np.linspace(0, n - 1, len(source_labels))
    for i, xt in enumerate(xs_t):
        for j, xs in enumerate(xs_s):
            if w[i, j] >= min_weight:
                ax.plot([xt, xs], [1, 0], color=color, alpha=float(min(1.0, w[i, j])), lw=2.5 * w[i, j] + 0.3)
    for xs, lab in ((xs_t, target_labels), (xs_s, source_labels)):
        y = 1 if xs is xs_t else 0
        for x, t in zip(xs, lab):
            ax.text(
                x,
                y + (0.04 if y else -0.04),
                t,
                rotation=90,
                ha="center",
                va="bottom" if y else "top",
                fontsize=10,
            )
    ax.set_xlim(-1, n)
    ax.set_ylim(-0.9, 1.9)
    ax.axis("off")
    ax.text(-1, 1.0, "German\n(queries)", ha="right", va="center", fontsize=9)
    ax.text(-1, 0.0, "English\n(keys)", ha="right", va="center", fontsize=9)
    if title:
        ax.set_title(title)


def plot_alignment_grid(
    ax: Axes,
    weights: np.ndarray,
    source_labels: Sequence[str],
    target_labels: Sequence[str],
    title: str = "",
    cmap: str = "viridis",
):
    """Rows = target tokens (queries), columns = source tokens (keys), colour = weight in [0, 1]."""
    im = ax.imshow(np.asarray(weights), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_labels)), source_labels, rotation=90)
    ax.set_yticks(range(len(target_labels)), target_labels)
    ax.set_xlabel("English source token (key)")
    ax.set_ylabel("German output token (query)")
    if title:
        ax.set_title(title)
    return im
