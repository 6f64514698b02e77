"""Hand-built attention patterns: real queries and keys whose scores go through softmax.

Lesson 03 builds a small "pattern zoo". Every token of a sentence gets one embedding
vector x (a row of X, shape (T, d_model)) made of four blocks of features:

    x = [ position one-hot (L) | word one-hot (L) | meaning (N_SEM) | constant 1 ]

where L = `max_len` is the number of positions the embedding can tell apart. A pattern is
nothing but a choice of the two matrices W_Q, W_K (d_model, d_k): Q = X W_Q, K = X W_K, and
the grid is softmax(Q K^T / sqrt(d_k)) -- equation (1) of the paper, one row per query.
Each pattern reads a different block of x:

  previous token  W_Q shifts the position one-hot by one (position i asks for i-1), W_K = I:
                  q_i . k_j is large exactly when j = i - 1.
  current token   W_Q = W_K = I on the positions: q_i . k_j is large when j = i.
  first token     W_Q sends the constant feature to one direction, W_K puts position 0 there:
                  every query asks the same question, only key 0 answers it.
  same word       W_Q = W_K = I on the word one-hot: q_i . k_j = 1 iff tokens i and j are the
                  same word (in any position).
  content         W_Q = W_K = I on the meaning features: q_i . k_j is the cosine similarity of
                  the two words' meanings, so related words attend to each other.
  uniform         W_Q = 0: every score is 0, every key gets 1/T.

`strength` sets how large a full match is after the 1/sqrt(d_k) scaling (the logit gap),
so it decides how sharp each pattern is. Everything here is numpy, float64.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

import numpy as np

PATTERNS: tuple[str, ...] = (
    "previous token",
    "current token",
    "first token",
    "same word",
    "content",
    "uniform",
)
MAX_LEN = 32  # positions the embedding can tell apart (sentence + padding)
N_SEM = 16  # width of the "meaning" block
STRENGTH = 6.0  # score of a full match, after dividing by sqrt(d_k)
PAD = "<pad>"

# A tiny hand-made lexicon: words in one category share a meaning direction.
_CATEGORIES: dict[str, tuple[str, ...]] = {
    "animal": ("cat", "dog", "bird", "fish", "mouse", "horse", "cow", "lion", "fox", "rabbit", "animal"),
    "person": ("man", "woman", "child", "girl", "boy", "teacher", "student", "friend", "mother", "father"),
    "food": ("bread", "cheese", "apple", "milk", "rice", "soup", "cake", "tea", "coffee", "food", "pizza"),
    "colour": ("red", "green", "blue", "yellow", "black", "white", "brown", "grey", "gray", "orange"),
    "place": ("house", "garden", "street", "city", "park", "school", "room", "kitchen", "mat", "table"),
    "motion": ("run", "ran", "walk", "walked", "jump", "jumped", "sat", "sit", "went", "go", "chased"),
    "number": ("one", "two", "three", "four", "five", "ten", "hundred", "first", "second", "many"),
    "function": ("the", "a", "an", "of", "on", "in", "at", "to", "and", "it", "was", "is", "because"),
}
_CATEGORY_OF = {w: i for i, words in enumerate(_CATEGORIES.values()) for w in words}


def tokenize(text: str) -> list[str]:
    """Split a sentence into word and punctuation tokens: "The cat, sat." -> [The, cat, ",", sat, "."]."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    return re.findall(r"\w+|[^\w\s]", text)


def word_ids(tokens: Sequence[str]) -> list[int]:
    """Number the distinct words (case-insensitive) in order of first appearance."""
    seen: dict[str, int] = {}
    return [seen.setdefault(t.lower(), len(seen)) for t in tokens]


def _hashed_normal(word: str, n: int) -> np.ndarray:
    """A fixed pseudo-random N(0, 1/n) vector per word (stable across runs and machines)."""
    seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(n) / math.sqrt(n)


def semantic_vector(word: str) -> np.ndarray:
    """A unit "meaning" vector (N_SEM,): words of one lexicon category point the same way
    (cosine about 0.8); other words get a fixed random direction of their own."""
    w = word.lower()
    cat = _CATEGORY_OF.get(w, _CATEGORY_OF.get(w[:-1]) if w.endswith("s") else None)  # cats -> cat
    v = _hashed_normal(w, N_SEM)
    if cat is not None:
        v = 0.5 * v
        v[cat] += 1.0
    return v / np.linalg.norm(v)


class Layout:
    """Where each block of features lives inside an embedding vector x (d_model,)."""

    def __init__(self, max_len: int = MAX_LEN) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        L = self.max_len = max_len
        self.pos = slice(0, L)  # position one-hot
        self.word = slice(L, 2 * L)  # word one-hot (distinct words of the sentence)
        self.sem = slice(2 * L, 2 * L + N_SEM)  # meaning
        self.bias = 2 * L + N_SEM  # the constant feature 1
        self.d_model = 2 * L + N_SEM + 1
        self.d_k = L  # every pattern's queries and keys live in L dimensions

    def __repr__(self) -> str:
        return f"Layout(max_len={self.max_len}, d_model={self.d_model}, d_k={self.d_k})"


def embed(tokens: Sequence[str], max_len: int = MAX_LEN, positions: bool = True) -> np.ndarray:
    """Tokens -> X (T, d_model). With `positions=False` the position block stays 0, so the
    embedding carries no order at all (used to show permutation equivariance)."""
    T = len(tokens)
    if T == 0:
        raise ValueError("embed needs at least one token, got an empty list")
    lay = Layout(max_len)
    if T > max_len:
        raise ValueError(f"embed can place at most max_len={max_len} tokens, got {T}")
    X = np.zeros((T, lay.d_model))
    ids = word_ids(tokens)
    for i, (tok, w) in enumerate(zip(tokens, ids)):
        if positions:
            X[i, lay.pos.start + i] = 1.0
        X[i, lay.word.start + w] = 1.0
        X[i, lay.sem] = semantic_vector(tok)
        X[i, lay.bias] = 1.0
    return X


def pattern_projections(
    name: str, max_len: int = MAX_LEN, strength: float = STRENGTH
) -> tuple[np.ndarray, np.ndarray]:
    """The hand-built W_Q, W_K (d_model, d_k) of one pattern (see the module docstring)."""
    if name not in PATTERNS:
        raise ValueError(f"unknown pattern {name!r}: expected one of {', '.join(PATTERNS)}")
    lay = Layout(max_len)
    L, p0, s0 = lay.max_len, lay.pos.start, lay.sem.start
    W_Q, W_K = np.zeros((lay.d_model, lay.d_k)), np.zeros((lay.d_model, lay.d_k))
    if name == "previous token":
        for i in range(L):
            W_Q[p0 + i, max(i - 1, 0)] = 1.0  # position i asks for position i-1 (0 asks for itself)
            W_K[p0 + i, i] = 1.0  # position j answers as itself
    elif name == "current token":
        W_Q[lay.pos, :L] = W_K[lay.pos, :L] = np.eye(L)
    elif name == "first token":
        W_Q[lay.bias, 0] = 1.0  # every query: the same direction e_0
        W_K[p0, 0] = 1.0  # only the key at position 0 lies along e_0
    elif name == "same word":
        W_Q[lay.word, :L] = W_K[lay.word, :L] = np.eye(L)
    elif name == "content":
        W_Q[s0 : s0 + N_SEM, :N_SEM] = W_K[s0 : s0 + N_SEM, :N_SEM] = np.eye(N_SEM)
    # "uniform": W_Q stays 0, every score is 0
    W_Q *= strength * math.sqrt(lay.d_k)  # a full match scores `strength` after / sqrt(d_k)
    return W_Q, W_K


def pattern_qk(
    name: str, X: np.ndarray, max_len: int = MAX_LEN, strength: float = STRENGTH
) -> tuple[np.ndarray, np.ndarray]:
    """Q = X W_Q and K = X W_K, each (T, d_k)."""
    W_Q, W_K = pattern_projections(name, max_len, strength)
    if X.ndim != 2 or X.shape[1] != W_Q.shape[0]:
        raise ValueError(f"X must have shape (T, {W_Q.shape[0]}), got {X.shape}")
    return X @ W_Q, X @ W_K


def scores_from_qk(Q: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Q K^T / sqrt(d_k): (T_q, d_k), (T_k, d_k) -> (T_q, T_k)."""
    return Q @ K.T / math.sqrt(Q.shape[-1])


def softmax_attention(
    scores: np.ndarray, temperature: float = 1.0, mask: np.ndarray | None = None
) -> np.ndarray:
    """softmax(scores / temperature) over the keys (the last axis), once per query row.

    mask: boolean, True = may attend (the course convention), broadcastable to scores.
    A row with no allowed key gets weights 0 (never NaN)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    s = np.asarray(scores, dtype=float) / temperature
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), s.shape)
        s = np.where(mask, s, -np.inf)
    row_max = s.max(axis=-1, keepdims=True)
    row_ok = np.isfinite(row_max)
    e = np.exp(s - np.where(row_ok, row_max, 0.0))
    total = e.sum(axis=-1, keepdims=True)
    return np.where(row_ok, e / np.where(total > 0, total, 1.0), 0.0)


def pattern_scores(
    name: str, tokens: Sequence[str], max_len: int = MAX_LEN, strength: float = STRENGTH
) -> np.ndarray:
    """The (T, T) scores Q K^T / sqrt(d_k) of one pattern on a list of tokens."""
    return scores_from_qk(*pattern_qk(name, embed(tokens, max_len), max_len, strength))


def pattern_attention(
    name: str,
    tokens: Sequence[str],
    temperature: float = 1.0,
    mask: np.ndarray | None = None,
    max_len: int = MAX_LEN,
    strength: float = STRENGTH,
) -> np.ndarray:
    """The (T, T) attention weights of one pattern: rows = queries, columns = keys."""
    return softmax_attention(pattern_scores(name, tokens, max_len, strength), temperature, mask)


def zoo_attention(names: Sequence[str] = PATTERNS, max_len: int = MAX_LEN, strength: float = STRENGTH):
    """A course_lib `MultiHeadAttention` whose head i *is* pattern names[i].

    d_model = len(names) * d_k (the embedding X is zero-padded up to it, see `zoo_inputs`);
    W_V and W_O are the identity, so the output of head i is the average of the
    embeddings it attends to. Returns the module (float64, eval mode).
    """
    import torch

    from .attention import MultiHeadAttention

    lay = Layout(max_len)
    h = len(names)
    d_model = h * lay.d_k
    if lay.d_model > d_model:
        raise ValueError(f"need at least {math.ceil(lay.d_model / lay.d_k)} heads to hold the embedding")
    mha = MultiHeadAttention(d_model, h).double().eval()
    with torch.no_grad():
        for p in mha.parameters():
            p.zero_()
        for i, name in enumerate(names):
            W_Q, W_K = pattern_projections(name, max_len, strength)  # (d_x, d_k)
            rows = slice(i * lay.d_k, (i + 1) * lay.d_k)
            mha.w_q.weight[rows, : lay.d_model] = torch.from_numpy(W_Q.T)  # nn.Linear computes x W^T
            mha.w_k.weight[rows, : lay.d_model] = torch.from_numpy(W_K.T)
        mha.w_v.weight.copy_(torch.eye(d_model))
        mha.w_o.weight.copy_(torch.eye(d_model))
    return mha


def zoo_inputs(tokens: Sequence[str], n_heads: int = len(PATTERNS), max_len: int = MAX_LEN):
    """The embedding of `tokens` as a torch tensor (1, T, n_heads * d_k) for `zoo_attention`."""
    import torch

    X = embed(tokens, max_len)
    out = np.zeros((1, X.shape[0], n_heads * Layout(max_len).d_k))
    out[0, :, : X.shape[1]] = X
    return torch.from_numpy(out)
