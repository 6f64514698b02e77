"""Pictures of attention: one grid, or every head of a layer side by side.

Convention for every grid in the course: rows are queries (the tokens that ask), columns are
keys (the tokens that answer); each row of weights sums to 1 over the keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def _as_numpy(weights: object, ndim: int, name: str = "weights") -> np.ndarray:
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().float().cpu().numpy()
    arr = np.asarray(weights, dtype=float)
    if arr.ndim != ndim:
        want = {1: "(T_k,)", 2: "(T_q, T_k)", 3: "(h, T_q, T_k)"}.get(ndim, f"{ndim} dimensions")
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    return arr


def row_entropy(weights: object) -> np.ndarray:
    """Entropy in nats of each query's distribution over keys: 0 = one key, log(T_k) = uniform."""
    w = _as_numpy(weights, weights.dim() if isinstance(weights, torch.Tensor) else np.ndim(weights))
    return -(w * np.log(np.where(w > 0, w, 1.0))).sum(-1)


def plot_attention(
    weights: object,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str = "viridis",
    vmax: float | None = 1.0,
    annotate: bool = False,
    colorbar: bool = True,
) -> Axes:
    """Draw one attention grid (T_q, T_k): rows = queries, columns = keys."""
    w = _as_numpy(weights, 2)
    T_q, T_k = w.shape
    for labels, n, what in ((query_labels, T_q, "query_labels"), (key_labels, T_k, "key_labels")):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{what} has {len(labels)} labels for {n} rows/columns of weights")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(3.5, 0.45 * T_k + 2), max(3.0, 0.4 * T_q + 1.5)))
    im = ax.imshow(w, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(T_k), list(key_labels) if key_labels is not None else range(T_k), rotation=90)
    ax.set_yticks(range(T_q), list(query_labels) if query_labels is not None else range(T_q))
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title)
    if annotate:
        for i in range(T_q):
            for j in range(T_k):
                ax.text(
                    j,
                    i,
                    f"{w[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if w[i, j] < 0.6 * (vmax or w.max()) else "black",
                )
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return ax


def plot_heads(
    weights: object,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    title: str | None = None,
    ncols: int = 4,
    cmap: str = "viridis",
) -> Figure:
    """Every head of one layer side by side: weights (h, T_q, T_k)."""
    w = _as_numpy(weights, 3)
    h = w.shape[0]
    ncols = min(ncols, h)
    nrows = -(-h // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= h:
            ax.axis("off")
            continue
        plot_attention(w[i], query_labels, key_labels, ax=ax, title=f"head {i}", cmap=cmap, colorbar=False)
        if i % ncols:
            ax.set_ylabel("")
        if i < h - ncols:
            ax.set_xlabel("")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def top_attended(
    weights_row: object, key_labels: Sequence[str] | None = None, k: int = 3
) -> list[tuple[int, str, float]]:
    """The k keys one query attends to most: [(key index, label, weight), ...], largest first."""
    w = _as_numpy(weights_row, 1, "weights_row")
    labels = list(key_labels) if key_labels is not None else [str(j) for j in range(len(w))]
    if len(labels) != len(w):
        raise ValueError(f"key_labels has {len(labels)} labels for {len(w)} weights")
    order = np.argsort(-w, kind="stable")[: max(k, 0)]
    return [(int(j), labels[j], float(w[j])) for j in order]
