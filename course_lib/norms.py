"""Which entries share one mean and variance: BatchNorm, LayerNorm and GroupNorm on a
batch of sequences (lesson 06).

A batch of sequences is a (B, T, d) tensor: B sentences, T tokens each, d features per token.
Every normalisation standardises sets of entries, (x - mean) / sqrt(var + eps), with one mean
and one (biased) variance per set; they differ only in how the entries are grouped:

  * BatchNorm (Ioffe and Szegedy, 2015): one set per feature, over every sentence and token of
    the batch, so a sentence's output depends on the other sentences in its batch;
  * LayerNorm (Ba, Kiros and Hinton, 2016), the Transformer's: one set per token, over its
    d features, so each token is normalised on its own;
  * GroupNorm (Wu and He, 2018, designed for images): one set per sentence and group of
    features, over every token of that sentence (the image's pixels), so a token's output
    depends on the rest of its sentence, padding included.

`norm_sets` labels each entry with its set, `normalise_within_sets` standardises any such
labelling (tests check it against torch's modules), `plot_norm_axes` draws the picture.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from .validate import check_tensor

NORMS = ("BatchNorm", "LayerNorm", "GroupNorm")


def norm_sets(kind: str, B: int, T: int, d: int, groups: int = 2) -> Tensor:
    """(B, T, d) integer labels: entries with the same label share one mean and variance."""
    if kind not in NORMS:
        raise ValueError(f"kind must be one of {NORMS}, got {kind!r}")
    if min(B, T, d) < 1:
        raise ValueError(f"B, T and d must be >= 1, got {B}, {T}, {d}")
    b = torch.arange(B)[:, None, None]
    t = torch.arange(T)[None, :, None]
    f = torch.arange(d)[None, None, :]
    if kind == "BatchNorm":
        labels = f + 0 * b + 0 * t  # one set per feature
    elif kind == "LayerNorm":
        labels = b * T + t + 0 * f  # one set per token
    else:
        if groups < 1 or d % groups:
            raise ValueError(f"GroupNorm needs d divisible by groups, got d={d}, groups={groups}")
        labels = b * groups + f // (d // groups) + 0 * t  # one set per (sentence, feature group)
    return labels.expand(B, T, d).contiguous()


def normalise_within_sets(x: Tensor, sets: Tensor, eps: float = 1e-5) -> Tensor:
    """Standardise x within each set of `sets` (same shape): mean 0, biased variance 1."""
    check_tensor(x, "x")
    if sets.shape != x.shape:
        raise ValueError(f"sets must have the shape of x {tuple(x.shape)}, got {tuple(sets.shape)}")
    flat, ids = x.reshape(-1), sets.reshape(-1)
    n = int(ids.max()) + 1
    count = torch.zeros(n, dtype=x.dtype).index_add_(0, ids, torch.ones_like(flat))
    mean = torch.zeros(n, dtype=x.dtype).index_add_(0, ids, flat) / count
    centred = flat - mean[ids]
    var = torch.zeros(n, dtype=x.dtype).index_add_(0, ids, centred**2) / count
    return (centred / torch.sqrt(var[ids] + eps)).reshape(x.shape)


_CAPTIONS = {
    "BatchNorm": "BatchNorm: one feature,\nacross every sentence and token",
    "LayerNorm": "LayerNorm: one token,\nacross its own features",
    "GroupNorm": "GroupNorm: one sentence,\na group of features, all its tokens",
}


def plot_norm_axes(B: int = 3, T: int = 4, d: int = 8, groups: int = 2, fontsize: int = 11) -> Figure:
    """Three panels, one per normalisation, each drawing the (B, T, d) batch as B stacked
    sentence blocks (rows = tokens, columns = features). Two of the sets that share one
    mean/variance are filled in colour; every other entry is grey."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2))
    gap = 0.6  # vertical space between sentences
    colours = (plt.get_cmap("viridis")(0.25), plt.get_cmap("viridis")(0.85))
    for ax, kind in zip(axes, NORMS):
        sets = norm_sets(kind, B, T, d, groups).numpy()
        shown = [int(sets[0, 0, 0]), int(sets[-1, -1, -1])]  # the first set and the last one
        for b in range(B):
            top = b * (T + gap)
            for t in range(T):
                for f in range(d):
                    s = int(sets[b, t, f])
                    colour = colours[shown.index(s)] if s in shown else "#e4e4e4"
                    ax.add_patch(Rectangle((f, top + t), 1, 1, facecolor=colour, edgecolor="white", lw=1.2))
            ax.add_patch(Rectangle((0, top), d, T, fill=False, edgecolor="#444444", lw=1.0))
        ax.set_xlim(-0.2, d + 0.2)
        ax.set_ylim(B * (T + gap) - gap + 0.2, -0.2)
        ax.set_aspect("equal")
        ax.set_xticks(np.arange(d) + 0.5, [str(f) for f in range(d)], fontsize=fontsize - 2)
        ax.set_yticks(
            [b * (T + gap) + T / 2 for b in range(B)],
            [f"sentence {b + 1}" for b in range(B)],
            fontsize=fontsize - 1,
        )
        ax.tick_params(length=0)
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
        ax.set_xlabel("feature (d_model axis)", fontsize=fontsize)
        ax.set_title(_CAPTIONS[kind], fontsize=fontsize)
    axes[0].set_ylabel(f"tokens ({T} per sentence, rows)", fontsize=fontsize)
    fig.suptitle(
        f"A batch of {B} sentences x {T} tokens x {d} features: each coloured set shares one mean and variance",
        fontsize=fontsize + 1,
    )
    fig.tight_layout()
    return fig
