"""What the explorers show, computed without a front end (no ipywidgets, no matplotlib).

Pure functions from the explorers' settings to the numbers and text they display: the masked
softmax grids of the hand-built patterns, row entropies, the titles and readout lines of the
attention views (top-k keys of a query), the summary line of a next-token distribution, and
one frequency pair of the sinusoidal positional encoding. The widgets in this package only
read their controls, call these, and draw the result; tests call them directly.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .. import patterns as P
from ..masks import causal_mask, padding_mask
from ..validate import check_logits, check_tensor
from ..viz import row_entropy, top_attended

__all__ = [
    "check_finite",
    "top_keys_html",
    "readout_html",
    "sentence_tokens",
    "PatternView",
    "pattern_view",
    "mask_note",
    "pattern_titles",
    "pattern_readout",
    "attention_titles",
    "attention_readout",
    "checked_logits",
    "sampling_settings",
    "settings_caption",
    "sampling_readout",
    "bar_order",
    "check_positional_args",
    "PairState",
    "positional_pair",
    "positional_readout",
]


# --- shared: weights and the readout of a query ------------------------------------------
def check_finite(weights: np.ndarray, what: str) -> np.ndarray:
    """Attention weights to draw: finite numbers (NaN or inf would draw as nonsense)."""
    if not np.isfinite(weights).all():
        bad = int((~np.isfinite(weights)).sum())
        raise ValueError(
            f"{what} contain NaN or inf ({bad} of {weights.size} entries): expected finite weights, "
            f"rows summing to 1; the model's weights or its input hold NaN or inf"
        )
    return weights


def top_keys_html(weights_row: np.ndarray, labels: Sequence[str], k: int = 3) -> str:
    """The k keys a query attends to most, as HTML: label, key index (subscript) and weight."""
    return " · ".join(
        f"<b>{html.escape(lab)}</b><sub>{j}</sub> {w:.2f}"
        for j, lab, w in top_attended(weights_row, labels, k)
    )


def readout_html(lines: Sequence[str]) -> str:
    """The readout under an explorer's picture: one monospace line per entry."""
    return (
        "<div style='font-family:monospace;font-size:13px;line-height:1.5'>" + "<br>".join(lines) + "</div>"
    )


# --- hand-built patterns (PatternExplorer) -------------------------------------------------
def sentence_tokens(text: object, max_tokens: int) -> list[str]:
    """The tokens of a typed sentence; ValueError (the note to show) when it cannot be shown."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Type a sentence: the box is empty. Showing the last sentence.")
    if len(text) > 20 * max_tokens:
        raise ValueError(
            f"That text is too long ({len(text)} characters): the explorer shows at most "
            f"{max_tokens} tokens. Showing the last sentence."
        )
    toks = P.tokenize(text)
    if len(toks) > max_tokens:
        raise ValueError(
            f"That sentence has {len(toks)} tokens; the explorer shows at most {max_tokens}. "
            "Shorten it (showing the last sentence)."
        )
    return toks


@dataclass
class PatternView:
    """One view of the pattern explorer: n heads (patterns) over T = tokens + pads."""

    labels: list[str]  # T: the tokens, then the pads
    allowed: np.ndarray  # (T, T) bool: False = masked (query row, key column)
    names: tuple[str, ...]  # the patterns shown, one per head
    chosen: int  # index in `names` of the selected pattern
    scores: np.ndarray  # (n, T, T) Q K^T / sqrt(d_k)
    weights: np.ndarray  # (n, T, T) softmax(scores / temperature), masked; rows sum to 1
    entropy: np.ndarray  # (T,) row entropy (nats) of the chosen pattern


def pattern_view(
    tokens: Sequence[str],
    pattern: str,
    temperature: float,
    *,
    n_pad: int = 0,
    all_patterns: bool = False,
    causal: bool = False,
    padding: bool = False,
    max_len: int = 32,
    strength: float = P.STRENGTH,
) -> PatternView:
    """softmax(Q K^T / sqrt(d_k) / temperature) of the hand-built pattern(s) on the tokens plus
    `n_pad` pads, with the causal mask and/or the padding mask (no query sees a pad key)."""
    if not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    labels = list(tokens) + [P.PAD] * n_pad
    T = len(labels)
    allowed = np.ones((T, T), dtype=bool)
    if causal:
        allowed &= causal_mask(T).numpy()
    if padding and n_pad:
        ids = torch.tensor([[1] * len(tokens) + [0] * n_pad])
        allowed &= padding_mask(ids, pad_id=0)[0, 0].numpy()  # (1, T): no query sees a pad key
    X = P.embed(labels, max_len)
    names = tuple(P.PATTERNS) if all_patterns else (pattern,)
    scores = np.stack([P.scores_from_qk(*P.pattern_qk(n, X, max_len, strength)) for n in names])
    weights = check_finite(P.softmax_attention(scores, temperature, allowed), "the weights")  # (n, T, T)
    chosen = names.index(pattern) if pattern in names else 0
    return PatternView(labels, allowed, names, chosen, scores, weights, row_entropy(weights[chosen]))


def mask_note(causal: bool, padding: bool, n_pad: int) -> str:
    """Which masks are in effect, e.g. "causal mask, padding mask" ("" for none)."""
    on = [("causal mask", causal), ("padding mask", padding and n_pad)]
    return ", ".join(s for s, active in on if active)


def pattern_titles(
    names: Sequence[str], weights: np.ndarray, temperature: float, note: str = ""
) -> tuple[list[str], str]:
    """(panel titles, figure title): one pattern names itself; all patterns show each one's mean
    row entropy H̄ under a shared title."""
    masks = f"  [{note}]" if note else ""
    if len(names) == 1:
        return [f"{names[0]}, temperature {temperature:.2f}" + masks], ""
    titles = [f"{n}  (H̄={row_entropy(w).mean():.2f})" for n, w in zip(names, weights)]
    return titles, f"every pattern as one head, temperature {temperature:.2f}" + masks


def pattern_readout(
    q: int, labels: Sequence[str], weights: np.ndarray, entropy: np.ndarray, allowed: np.ndarray
) -> list[str]:
    """Readout lines for query q: its top keys (weights (T, T) of the chosen pattern) and its row
    entropy against the uniform ln(number of keys it may see) (allowed (T, T))."""
    H, n_keys = entropy[q], int(allowed[q].sum())
    return [
        f"query {q} <b>{html.escape(labels[q])}</b> attends to: {top_keys_html(weights[q], labels)}",
        f"row entropy of query {q}: {H:.2f} nats (uniform over its {n_keys} keys: ln {n_keys} = "
        f"{math.log(max(n_keys, 1)):.2f}); mean over rows {entropy.mean():.2f}",
    ]


# --- attention of a model (AttentionExplorer) ----------------------------------------------
def attention_titles(
    title: str | None, name: str, layer: int, head: int, n_heads: int
) -> tuple[list[str], str]:
    """(panel titles, figure title) of one head (head >= 0) or of every head of a layer (head -1)."""
    prefix = f"{title}: " if title else ""
    if head == -1:
        return [f"head {i}" for i in range(n_heads)], f"{prefix}{name}, layer {layer}, all heads"
    return [f"{prefix}{name}, layer {layer}, head {head}"], ""


def attention_readout(
    q: int,
    q_labels: Sequence[str],
    k_labels: Sequence[str],
    layer_weights: np.ndarray,
    head: int,
    name: str,
    layer: int,
) -> list[str]:
    """Readout lines: the top keys of query q for one head, or for each head (head -1) of a layer
    whose weights are (h, T_q, T_k)."""
    heads = range(layer_weights.shape[0]) if head == -1 else [head]
    lines = [f"query {q} <b>{html.escape(q_labels[q])}</b> ({name}, layer {layer}) attends to:"]
    for i in heads:
        lines.append(f"&nbsp;&nbsp;head {i}: {top_keys_html(layer_weights[i][q], k_labels)}")
    return lines


# --- next-token distribution (SamplingExplorer) --------------------------------------------
def checked_logits(logits: Tensor, labels: Sequence[str]) -> Tensor:
    """Logits (V,) the sampling explorer can draw (finite, one label each), as float32 on the CPU."""
    check_tensor(logits, "logits", ndim=1)
    check_logits(logits)
    if len(labels) != logits.numel():
        raise ValueError(f"labels has {len(labels)} entries for {logits.numel()} logits")
    return logits.detach().float().cpu()


def sampling_settings(temperature: float, top_k: int, top_p: float) -> dict:
    """The keyword arguments of `next_token_distribution` for the sliders: top_k 0 and top_p 1 = off."""
    k, p = int(top_k), float(top_p)
    return {
        "temperature": float(temperature),
        "top_k": k if k > 0 else None,
        "top_p": None if p >= 1.0 else p,  # NaN stays NaN, and is refused
    }


def settings_caption(settings: dict) -> str:
    """The settings in a chart title, e.g. "τ = 0.50, top-k = 4, top-p = off"."""
    s = settings
    return f"τ = {s['temperature']:.2f}, top-k = {s['top_k'] or 'off'}, top-p = {s['top_p'] or 'off'}"


def sampling_readout(probs: Tensor, labels: Sequence[str]) -> str:
    """One line: how many tokens are kept, the entropy, the most likely token."""
    kept = int((probs > 0).sum())
    best = int(probs.argmax())
    H = float(row_entropy(probs))  # nats: 0 for a certain choice, log(V) for uniform
    return (
        f"kept {kept} of {probs.numel()} tokens · entropy {H:.2f} nats "
        f"(uniform: {math.log(probs.numel()):.2f}) · most likely {labels[best]!r} "
        f"p = {float(probs[best]):.3f}"
    )


def bar_order(probs: np.ndarray, reference: np.ndarray | None, max_bars: int) -> np.ndarray:
    """The tokens a bar chart shows: at most `max_bars`, by decreasing reference probability (or
    `probs` without a reference); ties keep the vocabulary order."""
    return (-(reference if reference is not None else probs)).argsort(kind="stable")[:max_bars]


# --- sinusoidal positional encoding (PositionalEncodingExplorer) ---------------------------
def check_positional_args(d_model: object, max_len: object, pos: int | None, i: int) -> int:
    """Check the explorer's settings; returns the starting position (default min(10, max_len - 1))."""
    if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 2 or d_model % 2:
        raise ValueError(f"d_model must be an even integer >= 2, got {d_model!r}")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
        raise ValueError(f"max_len must be an integer >= 2, got {max_len!r}")
    pos = min(10, max_len - 1) if pos is None else pos
    if not 0 <= pos < max_len or not 0 <= i < d_model // 2:
        raise ValueError(f"need 0 <= pos < {max_len} and 0 <= i < {d_model // 2}, got pos={pos}, i={i}")
    return pos


@dataclass
class PairState:
    """PE(pos) and its pair i: PE(pos, 2i) = sin(pos w_i), PE(pos, 2i+1) = cos(pos w_i)."""

    vector: np.ndarray  # (d_model,) the row PE(pos)
    pair: tuple[float, float]  # (sin, cos)
    angle: float  # pos * w_i (radians)
    wavelength: float  # 2 pi / w_i (positions)


def positional_pair(pe: np.ndarray, w: np.ndarray, p: int, i: int) -> PairState:
    """Pair i at position p, read from the table pe (max_len, d_model) with frequencies w (d_model/2,)."""
    wi = float(w[i])
    vector = pe[p]  # (d_model,)
    return PairState(vector, (float(vector[2 * i]), float(vector[2 * i + 1])), p * wi, 2 * math.pi / wi)


def positional_readout(p: int, i: int, w: float, state: PairState) -> str:
    """One line naming pair i's frequency, wavelength and its two values at position p."""
    return (
        f"pair i = {i} (dimensions {2 * i}, {2 * i + 1}): w = {w:.4g}, wavelength {state.wavelength:,.1f} positions. "
        f"PE({p}, {2 * i}) = sin({p}·w) = {state.pair[0]:+.3f}, PE({p}, {2 * i + 1}) = cos({p}·w) = {state.pair[1]:+.3f}"
    )
