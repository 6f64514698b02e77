"""Inside a trained model: induction heads (lesson 16).

A two-layer, attention-only Transformer (no feed-forward network, no LayerNorm) trained on
random tokens that repeat. Its residual stream is the sum of what each part writes
(Elhage et al., 2021, "A Mathematical Framework for Transformer Circuits"):

    x_0 = W_E[token] + W_P[position]
    x_1 = x_0 + sum_h head^{0,h}(x_0)          layer 0 (causal self-attention)
    x_2 = x_1 + sum_h head^{1,h}(x_1)          layer 1
    logits = x_2 W_U

Trained on repeats, it learns the two-head circuit of Olsson et al. (2022), "In-context Learning
and Induction Heads": a *previous-token head* in layer 0 copies each token's predecessor into its
position, and an *induction head* in layer 1 matches the current token against those copies
(K-composition), attends to the token that followed its earlier occurrence and copies it.

    SymbolVocab, InductionConfig, AttentionOnlyTransformer, torch_reference
    repeated_tokens, training_batch                the data
    per_position_loss, split_losses                in-context learning, measured
    previous_token_score, induction_score, attention_patterns, head_scores
    ablate_heads                                   zero heads with forward pre-hooks, restored on exit
    composition_score, composition_scores, random_composition_baseline
    train_induction, save_induction, load_induction, measure

Make the shipped checkpoint (about a minute on one CPU thread) with

    python -m course_lib.induction train --out assets/induction_model.pt
    python -m course_lib.induction info assets/induction_model.pt
"""

from __future__ import annotations

import argparse
import contextlib
import string
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import MultiHeadAttention, keep_attention_weights
from .checkpoint import read_model_file, save_model_file
from .heads import head_slice, ov_circuit, qk_circuit
from .masks import causal_mask, to_torch_attn_mask
from .validate import InputTypeError, check_divisible, check_int, check_tensor, check_token_ids

INDUCTION_FORMAT = "course_lib.induction/1"
INDUCTION_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "induction_model.pt"
SYMBOLS = string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,"  # 64 symbols


# --- the vocabulary ------------------------------------------------------------------------------
class SymbolVocab:
    """One token per character of `symbols` (default: a-z, A-Z, 0-9, '.' and ',': 64 tokens)."""

    def __init__(self, symbols: str = SYMBOLS) -> None:
        if not isinstance(symbols, str) or len(set(symbols)) != len(symbols) or not symbols:
            raise ValueError("symbols must be a non-empty string of distinct characters")
        self.itos = list(symbols)
        self.stoi = {s: i for i, s in enumerate(symbols)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Text -> ids; a ValueError names the characters that are not in the vocabulary."""
        if not isinstance(text, str):
            raise InputTypeError(f"text must be a str, got {type(text).__name__}")
        unknown = sorted({c for c in text if c not in self.stoi})
        if unknown:
            raise ValueError(
                f"unknown characters {''.join(unknown)!r}: the vocabulary is a-z, A-Z, 0-9, '.' and ','"
            )
        return [self.stoi[c] for c in text]

    def tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.tokens(ids))


# --- the model -----------------------------------------------------------------------------------
@dataclass
class InductionConfig:
    """Sizes of the attention-only model. `max_len` is the most positions it reads."""

    vocab_size: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    max_len: int = 32

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "max_len"):
            check_int(getattr(self, name), name, 1)
        check_divisible(self.d_model, self.n_heads)

    def to_dict(self) -> dict:
        return asdict(self)


class AttentionOnlyTransformer(nn.Module):
    """ids (B, T) -> logits (B, T, V): embeddings, `n_layers` causal multi-head self-attention
    layers each added to the residual stream, and an unembedding. No FFN, no LayerNorm, no biases,
    so that each head is exactly its QK and OV circuits (course_lib.heads)."""

    def __init__(self, cfg: InductionConfig) -> None:
        super().__init__()
        if not isinstance(cfg, InductionConfig):
            raise InputTypeError(f"cfg must be an InductionConfig, got {type(cfg).__name__}")
        self.cfg = c = cfg
        self.embed = nn.Embedding(c.vocab_size, c.d_model)  # W_E, N(0, 1) entries
        self.pos = nn.Embedding(c.max_len, c.d_model)  # W_P, learned, N(0, 1) entries
        self.layers = nn.ModuleList(
            MultiHeadAttention(c.d_model, c.n_heads, bias=False) for _ in range(c.n_layers)
        )
        self.unembed = nn.Linear(c.d_model, c.vocab_size, bias=False)  # W_U

    def check_ids(self, ids: Tensor) -> Tensor:
        ids = check_token_ids(ids, "ids", self.cfg.vocab_size)
        if ids.dim() != 2 or ids.size(1) == 0:
            raise ValueError(f"ids must have shape (B, T) with T >= 1, got {tuple(ids.shape)}")
        if ids.size(1) > self.cfg.max_len:
            raise ValueError(f"ids has {ids.size(1)} positions, the model reads at most {self.cfg.max_len}")
        return ids

    def residual(self, ids: Tensor) -> list[Tensor]:
        """The residual stream before the first layer and after each one: n_layers + 1 of (B, T, d_model)."""
        ids = self.check_ids(ids)
        T = ids.size(1)
        mask = causal_mask(T, ids.device)  # (T, T), True = may attend
        x = self.embed(ids) + self.pos.weight[:T]  # (B, T, d_model)
        streams = [x]
        for layer in self.layers:
            x = x + layer(x, mask=mask)  # each layer adds what its heads write
            streams.append(x)
        return streams

    def forward(self, ids: Tensor) -> Tensor:
        return self.unembed(self.residual(ids)[-1])  # (B, T, V)


class TorchAttentionOnly(nn.Module):
    """The same network from torch's nn.MultiheadAttention (the independent reference).
    forward returns (logits (B, T, V), [per-layer weights (B, h, T, T)])."""

    def __init__(self, cfg: InductionConfig) -> None:
        super().__init__()
        c = self.cfg = cfg
        self.embed = nn.Parameter(torch.zeros(c.vocab_size, c.d_model))
        self.pos = nn.Parameter(torch.zeros(c.max_len, c.d_model))
        self.attn = nn.ModuleList(
            nn.MultiheadAttention(c.d_model, c.n_heads, bias=False, batch_first=True)
            for _ in range(c.n_layers)
        )
        self.unembed = nn.Parameter(torch.zeros(c.vocab_size, c.d_model))

    def forward(self, ids: Tensor) -> tuple[Tensor, list[Tensor]]:
        T = ids.size(1)
        x = self.embed[ids] + self.pos[:T]
        blocked = to_torch_attn_mask(causal_mask(T, ids.device))  # torch's convention: True = blocked
        weights = []
        for a in self.attn:
            out, w = a(x, x, x, attn_mask=blocked, need_weights=True, average_attn_weights=False)
            x = x + out
            weights.append(w)
        return x @ self.unembed.T, weights


@torch.no_grad()
def torch_reference(model: AttentionOnlyTransformer) -> TorchAttentionOnly:
    """A TorchAttentionOnly holding copies of `model`'s weights (W_Q, W_K, W_V stacked into
    `in_proj_weight`, W_O into `out_proj`)."""
    if not isinstance(model, AttentionOnlyTransformer):
        raise InputTypeError(f"model must be an AttentionOnlyTransformer, got {type(model).__name__}")
    w = model.embed.weight
    ref = TorchAttentionOnly(model.cfg).to(dtype=w.dtype, device=w.device)
    ref.embed.copy_(model.embed.weight)
    ref.pos.copy_(model.pos.weight)
    ref.unembed.copy_(model.unembed.weight)
    for ours, theirs in zip(model.layers, ref.attn):
        theirs.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
        theirs.out_proj.weight.copy_(ours.w_o.weight)
    return ref


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- the data ------------------------------------------------------------------------------------
def repeated_tokens(
    batch: int, half: int, vocab_size: int, generator: torch.Generator | None = None
) -> Tensor:
    """(batch, 2 * half) ids: `half` uniformly random tokens, then the same tokens again."""
    for name, v in (("batch", batch), ("half", half), ("vocab_size", vocab_size)):
        check_int(v, name, 1)
    first = torch.randint(0, vocab_size, (batch, half), generator=generator)
    return torch.cat([first, first], dim=1)


def training_batch(
    batch: int,
    length: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
    min_period: int = 4,
    max_period: int | None = None,
) -> Tensor:
    """(batch, length) ids: in each row a random stretch of P tokens, repeated until the row is
    full, with P drawn in [min_period, max_period] (default length // 2) for every row. A fixed P
    would let one layer cheat by position (attend to t - P + 1); a varying P can only be found
    by matching content: an induction head."""
    check_int(batch, "batch", 1)
    check_int(length, "length", 2)
    max_period = length // 2 if max_period is None else max_period
    check_int(min_period, "min_period", 1)
    check_int(max_period, "max_period", min_period, length - 1)
    base = torch.randint(0, vocab_size, (batch, length), generator=generator)
    period = torch.randint(min_period, max_period + 1, (batch, 1), generator=generator)
    return base.gather(1, torch.arange(length) % period)  # (batch, length): position t holds token t mod P


# --- in-context learning, measured ---------------------------------------------------------------
@torch.no_grad()
def per_position_loss(model: nn.Module, ids: Tensor) -> Tensor:
    """Cross-entropy (nats) of predicting ids[:, t] from the positions before it, averaged over the
    batch: (T - 1,), entry t - 1 for token t."""
    check_tensor(ids, "ids", ndim=2)
    logits = model(ids[:, :-1]).float()  # (B, T - 1, V)
    return F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none").mean(0)


def split_losses(losses: Tensor, half: int) -> dict[str, float]:
    """Mean loss on the first copy (tokens 1 .. half - 1) and on the repeat after its first token
    (tokens half + 1 .. 2 half - 1), from `per_position_loss` of a `repeated_tokens` batch."""
    check_int(half, "half", 2)
    if losses.shape != (2 * half - 1,):
        raise ValueError(
            f"losses must have shape ({2 * half - 1},) for half={half}, got {tuple(losses.shape)}"
        )
    return {"first": float(losses[: half - 1].mean()), "repeat": float(losses[half:].mean())}


# --- heads found by score ------------------------------------------------------------------------
def _check_weights(weights: Tensor) -> Tensor:
    check_tensor(weights, "weights")
    if weights.dim() < 2 or weights.size(-1) != weights.size(-2) or weights.size(-1) < 2:
        raise ValueError(f"weights must have shape (..., T, T) with T >= 2, got {tuple(weights.shape)}")
    return weights


def previous_token_score(weights: Tensor) -> Tensor:
    """Mean weight of each query t >= 1 on key t - 1: (..., T, T) -> (...). 1 for a perfect
    previous-token head."""
    w = _check_weights(weights)
    return w.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)  # the stripe just below the diagonal


def induction_score(weights: Tensor, period: int) -> Tensor:
    """On a sequence where token t equals token t - period (for t >= period): the mean weight of
    each query t >= period on key t - period + 1, the token that followed the earlier copy of
    the current token (Olsson et al., 2022). (..., T, T) -> (...); 1 for a perfect induction head."""
    w = _check_weights(weights)
    T = w.size(-1)
    check_int(period, "period", 1, T - 1, why=f" (the sequence has {T} positions)")
    return w.diagonal(offset=-(period - 1), dim1=-2, dim2=-1)[..., 1:].mean(-1)  # queries period .. T-1


def attention_patterns(model: nn.Module, ids: Tensor) -> Tensor:
    """Every attention layer's weights on ids (B, T): (n_layers, B, h, T, T)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), keep_attention_weights(model) as mhas:
            model(ids)
    finally:
        model.train(was_training)
    if not mhas:
        raise ValueError(f"{type(model).__name__} holds no course_lib MultiHeadAttention")
    return torch.stack([m.attn_weights for m in mhas])


def head_scores(model: nn.Module, ids: Tensor, period: int) -> dict[str, Tensor]:
    """The previous-token and induction scores of every head, averaged over the batch:
    {"previous token": (n_layers, h), "induction": (n_layers, h)}. `ids` should repeat with
    `period` (e.g. `repeated_tokens(..., half=period, ...)`)."""
    w = attention_patterns(model, ids)  # (L, B, h, T, T)
    return {
        "previous token": previous_token_score(w).mean(1),
        "induction": induction_score(w, period).mean(1),
    }


# --- ablation with hooks -------------------------------------------------------------------------
def _attention_modules(model: nn.Module) -> list[MultiHeadAttention]:
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    mhas = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not mhas:
        raise ValueError(f"{type(model).__name__} holds no course_lib MultiHeadAttention")
    return mhas


@contextlib.contextmanager
def ablate_heads(model: nn.Module, heads: Iterable[tuple[int, int]]) -> Iterator[nn.Module]:
    """Within the block, each (layer, head) of `heads` writes nothing: a forward pre-hook on that
    layer's W_O zeroes the head's d_k coordinates of Concat(head_1, ..., head_h) before W_O mixes
    them. The hooks are removed on exit, also when the block raises; the weights are never touched.

    >>> with ablate_heads(model, [(1, 0)]):
    ...     losses = per_position_loss(model, ids)
    """
    mhas = _attention_modules(model)
    pairs = []
    for pair in heads:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ValueError(f"heads must be (layer, head) pairs, got {pair!r}")
        layer = check_int(pair[0], "layer", 0, len(mhas) - 1)
        pairs.append((layer, head_slice(mhas[layer], check_int(pair[1], "head", 0))))

    def zero(s: slice) -> Callable:
        def hook(module: nn.Module, args: tuple) -> tuple:
            z = args[0].clone()  # (B, T, d_model): the concatenated heads
            z[..., s] = 0.0
            return (z, *args[1:])

        return hook

    handles = []
    try:
        for layer, s in pairs:
            handles.append(mhas[layer].w_o.register_forward_pre_hook(zero(s)))
        yield model
    finally:
        for h in handles:
            h.remove()


def n_hooks(model: nn.Module) -> int:
    """Forward hooks and forward pre-hooks registered on `model` and all its submodules."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# --- composition ---------------------------------------------------------------------------------
def composition_score(left: Tensor, right: Tensor) -> float:
    """||left @ right||_F / (||left||_F ||right||_F): how much of what `left` writes `right` reads,
    between 0 and 1 (Elhage et al., 2021)."""
    for name, m in (("left", left), ("right", right)):
        check_tensor(m, name, ndim=2)
    if left.size(1) != right.size(0):
        raise ValueError(f"left {tuple(left.shape)} and right {tuple(right.shape)} cannot be multiplied")
    left, right = left.detach().double(), right.detach().double()
    return float(
        torch.linalg.matrix_norm(left @ right)
        / (torch.linalg.matrix_norm(left) * torch.linalg.matrix_norm(right))
    )


def _composed(kind: str, ov_src: Tensor, qk_dst: Tensor, ov_dst: Tensor) -> tuple[Tensor, Tensor]:
    """In the course's row convention (x @ W; QK = W_Q W_K^T, OV = W_V W_O, course_lib.heads):
    Q: the destination's queries read x OV_src -> x OV_src QK_dst x_k^T: OV_src @ QK_dst
    K: its keys read it                        -> x_q QK_dst (x OV_src)^T: QK_dst @ OV_src^T
    V: its values read it                      -> x OV_src OV_dst:        OV_src @ OV_dst"""
    if kind == "Q":
        return ov_src, qk_dst
    if kind == "K":
        return qk_dst, ov_src.T
    return ov_src, ov_dst


def composition_scores(model: nn.Module, kind: str = "K", src: int = 0, dst: int = 1) -> Tensor:
    """(h_src, h_dst): the `kind` ("Q", "K" or "V") composition score of every head of layer `src`
    with every head of the later layer `dst`."""
    if kind not in ("Q", "K", "V"):
        raise ValueError(f"kind must be 'Q', 'K' or 'V', got {kind!r}")
    mhas = _attention_modules(model)
    check_int(src, "src", 0, len(mhas) - 2)
    check_int(dst, "dst", src + 1, len(mhas) - 1, why=" (a later layer than src)")
    a, b = mhas[src], mhas[dst]
    out = torch.zeros(a.n_heads, b.n_heads)
    with torch.no_grad():
        for i in range(a.n_heads):
            for j in range(b.n_heads):
                out[i, j] = composition_score(
                    *_composed(kind, ov_circuit(a, i), qk_circuit(b, j), ov_circuit(b, j))
                )
    return out


def random_composition_baseline(
    d_model: int, d_k: int, kind: str = "K", samples: int = 200, generator: torch.Generator | None = None
) -> float:
    """The mean composition score of heads with independent Gaussian W_Q, W_K, W_V, W_O of the
    same shapes: what "no composition" scores (it is not 0)."""
    if kind not in ("Q", "K", "V"):
        raise ValueError(f"kind must be 'Q', 'K' or 'V', got {kind!r}")
    check_int(d_model, "d_model", 1)
    check_int(d_k, "d_k", 1)
    check_int(samples, "samples", 1)
    total = 0.0
    for _ in range(samples):
        w = torch.randn(6, d_model, d_k, generator=generator, dtype=torch.float64)
        ov_src, qk_dst, ov_dst = w[0] @ w[1].T, w[2] @ w[3].T, w[4] @ w[5].T
        total += composition_score(*_composed(kind, ov_src, qk_dst, ov_dst))
    return total / samples


# --- training ------------------------------------------------------------------------------------
def measure(model: nn.Module, half: int = 16, batch: int = 256, seed: int = 1234) -> dict:
    """Losses and head scores on a fixed test batch of `repeated_tokens` (plain data)."""
    cfg = model.cfg
    ids = repeated_tokens(batch, half, cfg.vocab_size, torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    try:
        losses = split_losses(per_position_loss(model, ids), half)
        scores = head_scores(model, ids, half)
    finally:
        model.train(was_training)
    return {
        "loss_first": round(losses["first"], 4),
        "loss_repeat": round(losses["repeat"], 4),
        "previous_token": [[round(float(s), 4) for s in row] for row in scores["previous token"]],
        "induction": [[round(float(s), 4) for s in row] for row in scores["induction"]],
    }


def train_induction(
    model: AttentionOnlyTransformer,
    steps: int = 1500,
    batch: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    eval_every: int = 50,
    on_step: Callable[[int, float], None] | None = None,
    weight_decay: float = 0.01,
) -> dict:
    """AdamW (weight decay `weight_decay`, gradient clipping at 1) at a constant learning rate on
    `training_batch` windows of max_len + 1 tokens. Every `eval_every` steps it records
    `measure(model)`. Returns {"steps", "seconds", "losses", "evals": [(step, measure), ...]}."""
    if not isinstance(model, AttentionOnlyTransformer):
        raise InputTypeError(f"model must be an AttentionOnlyTransformer, got {type(model).__name__}")
    check_int(steps, "steps", 1)
    check_int(batch, "batch", 1)
    check_int(eval_every, "eval_every", 1)
    cfg = model.cfg
    half = cfg.max_len // 2
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    evals: list[tuple[int, dict]] = [(0, measure(model, half))]
    t0 = time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        ids = training_batch(batch, cfg.max_len + 1, cfg.vocab_size, g)
        logits = model(ids[:, :-1])  # (B, max_len, V)
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(round(loss.item(), 4))
        if on_step is not None:
            on_step(step, losses[-1])
        if step % eval_every == 0 or step == steps:
            evals.append((step, measure(model, half)))
    model.eval()
    return {"steps": steps, "seconds": time.perf_counter() - t0, "losses": losses, "evals": evals}


# --- checkpoints ---------------------------------------------------------------------------------
def save_induction(path: str | Path, model: AttentionOnlyTransformer, extra: dict | None = None) -> None:
    """Config, weights and `extra` (plain data), with a checksum, written atomically and read
    back before it replaces `path`. Refuses non-finite weights."""
    if not isinstance(model, AttentionOnlyTransformer):
        raise InputTypeError(
            f"save_induction expects an AttentionOnlyTransformer, got {type(model).__name__}"
        )
    save_model_file(path, INDUCTION_FORMAT, model, {"extra": extra or {}}, verify=load_induction)


def load_induction(path: str | Path = INDUCTION_CHECKPOINT) -> tuple[AttentionOnlyTransformer, dict]:
    """(model in eval mode, extra) from a `save_induction` file, read with weights_only=True; a
    one-line ValueError for another format, a wrong checksum or non-finite weights."""
    ckpt = read_model_file(path, INDUCTION_FORMAT, "induction", ("extra",))
    model = AttentionOnlyTransformer(InductionConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt["extra"]


# --- the command ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    from .cli import check_out_path, nonneg_int, positive_float, positive_int

    p = argparse.ArgumentParser(prog="python -m course_lib.induction", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the attention-only model on repeated random tokens and save it")
    t.add_argument("--out", required=True, help="where to save the checkpoint (.pt)")
    t.add_argument("--steps", type=positive_int, default=1500, help="default 1500")
    t.add_argument("--batch", type=positive_int, default=64, help="windows per step (default 64)")
    t.add_argument("--lr", type=positive_float, default=3e-3, help="default 3e-3")
    t.add_argument("--d-model", type=positive_int, default=64, help="default 64")
    t.add_argument("--n-heads", type=positive_int, default=4, help="heads per layer (default 4)")
    t.add_argument("--n-layers", type=positive_int, default=2, help="default 2")
    t.add_argument("--context", type=positive_int, default=32, help="positions (default 32)")
    t.add_argument("--seed", type=nonneg_int, default=0, help="default 0")
    t.add_argument("--eval-every", type=positive_int, default=50, help="default 50")
    i = sub.add_parser("info", help="print a checkpoint's config and recorded metrics")
    i.add_argument("path", nargs="?", default=str(INDUCTION_CHECKPOINT))
    a = p.parse_args(argv)
    try:
        if a.cmd == "info":
            model, extra = load_induction(a.path)
            print(f"{model.cfg}\nparameters: {n_params(model):,}")
            for k, v in extra.items():
                if k not in ("history",):
                    print(f"{k}: {v}")
            return 0
        check_out_path(t, a.out)
        if a.d_model % a.n_heads:
            t.error(f"argument --n-heads: expected a divisor of --d-model {a.d_model}, got {a.n_heads}")
        if a.context < 4:
            t.error(f"argument --context: expected at least 4 positions, got {a.context}")
        torch.set_num_threads(1)
        torch.manual_seed(a.seed)
        cfg = InductionConfig(len(SYMBOLS), a.d_model, a.n_heads, a.n_layers, a.context)
        model = AttentionOnlyTransformer(cfg)
        print(f"{n_params(model):,} parameters; training {a.steps} steps", flush=True)

        def report(step: int, loss: float) -> None:
            if step % 250 == 0:
                print(f"step {step}: loss {loss:.3f}", flush=True)

        run = train_induction(model, a.steps, a.batch, a.lr, a.seed, a.eval_every, on_step=report)
        final = run["evals"][-1][1]
        extra = {
            "train_config": {"steps": a.steps, "batch": a.batch, "lr": a.lr, "seed": a.seed},
            "metrics": final,
            "history": {"losses": run["losses"], "evals": [[s, m] for s, m in run["evals"]]},
        }
        save_induction(a.out, model, extra)
        print(
            f"saved {a.out}: loss on the first half {final['loss_first']:.3f}, on the repeat "
            f"{final['loss_repeat']:.3f}, in {run['seconds']:.0f} s"
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
