"""A decoder-only Transformer language model, GPT-style (lesson 13).

The decoder-only model keeps one stack of the course's layers and drops the encoder and
cross-attention: every block is masked self-attention then the feed-forward network, each in a
pre-LN residual branch, x = x + Sublayer(LayerNorm(x)), as GPT-2 arranges them (Radford et al.,
2019), with one final LayerNorm before the output layer. It reads a text as a stream of token ids
and is trained to predict every next id at once (the causal mask keeps each position from seeing
its future). The output layer is tied to the token embedding.

    GPTConfig        every size and switch, checked (one-line ValueErrors)
    GPTBlock         masked self-attention + FFN, pre-LN, with an optional KVCache
    GPT              embedding + positions -> blocks -> LayerNorm -> tied output; `new_cache()`
    generate, greedy, sample
                     the token-by-token loop for a decoder-only model; the next-token choice is
                     course_lib.decode's: argmax, or a draw from `next_token_distribution`
    torch_reference  the same network built from torch's own modules (nn.TransformerEncoderLayer,
                     norm_first=True, causal mask), weights copied: the independent check
    save_gpt, load_gpt
                     checkpoints through course_lib.checkpoint's atomic writer, checksum and checks
    lm_loss, evaluate, ngram baselines, train_gpt

Train the shipped checkpoint with

    python -m course_lib.gpt train --out assets/gpt_corpus.pt --minutes 10 --threads 1
    python -m course_lib.gpt info assets/gpt_corpus.pt
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import KVCache, MultiHeadAttention, copy_mha_to_torch
from .checkpoint import read_model_file, save_model_file
from .corpus import Corpus
from .decode import _check_sampling, _eval_mode, next_token_distribution
from .device import device_of
from .layers import FeedForward, LayerNorm
from .masks import causal_mask
from .model import TokenEmbedding
from .positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from .tokenizer import BPETokenizer
from .validate import InputTypeError, check_divisible, check_dropout, check_int, check_token_ids

GPT_FORMAT = "course_lib.gpt/1"
GPT_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "gpt_corpus.pt"


# --- the model ---------------------------------------------------------------------------------
@dataclass
class GPTConfig:
    """Sizes of a decoder-only model. `max_len` is the context: the most positions it reads."""

    vocab_size: int
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    d_ff: int = 512
    dropout: float = 0.0
    max_len: int = 128
    positional: str = "learned"  # GPT-style; or "sinusoidal"
    tie_output: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "d_ff", "max_len"):
            check_int(getattr(self, name), name, 1)
        check_int(self.n_layers, "n_layers", 0)
        check_divisible(self.d_model, self.n_heads)
        check_dropout(self.dropout)
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional must be 'learned' or 'sinusoidal', got {self.positional!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class GPTBlock(nn.Module):
    """x = x + SelfAttention(LayerNorm(x), causal);  x = x + FFN(LayerNorm(x)).

    No cross-attention: the only thing a position reads is the positions before it."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.norm2 = LayerNorm(d_model)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        """x (B, T, d_model); mask broadcastable to (B, h, T, T_seen + T), True = may attend."""
        h = self.norm1(x)
        x = x + self.dropout1(self.self_attn(h, h, h, mask, cache=cache))
        return x + self.dropout2(self.ff(self.norm2(x)))  # (B, T, d_model)


class GPT(nn.Module):
    """ids (B, T) -> logits (B, T, V): the distribution of the next id after every position.

    With `cache` (from `new_cache()`), ids holds only the new tokens; their positions continue
    where the cache stops, and each block appends their keys and values to its KVCache."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise InputTypeError(f"cfg must be a GPTConfig, got {type(cfg).__name__}")
        self.cfg = c = cfg
        self.embed = TokenEmbedding(c.vocab_size, c.d_model)
        kind = LearnedPositionalEncoding if c.positional == "learned" else SinusoidalPositionalEncoding
        self.pos = kind(c.d_model, c.max_len, c.dropout)
        self.blocks = nn.ModuleList(
            GPTBlock(c.d_model, c.n_heads, c.d_ff, c.dropout) for _ in range(c.n_layers)
        )
        self.norm = LayerNorm(c.d_model)
        self.generator = nn.Linear(c.d_model, c.vocab_size, bias=False)
        for m in self.modules():  # Xavier-uniform matrices, as the course's Transformer
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
        if c.tie_output:
            self.generator.weight = self.embed.weight  # (V, d_model), one tensor

    def new_cache(self) -> list[KVCache]:
        """One empty KVCache per block."""
        return [KVCache() for _ in self.blocks]

    def hidden(self, ids: Tensor, cache: list[KVCache] | None = None) -> Tensor:
        """ids (B, T) -> the last block's normalised states (B, T, d_model)."""
        check_token_ids(ids, "ids", self.cfg.vocab_size)
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, T), got {tuple(ids.shape)}")
        if cache is not None and (
            not isinstance(cache, list)
            or len(cache) != len(self.blocks)
            or not all(isinstance(kv, KVCache) for kv in cache)
        ):
            raise InputTypeError(
                f"cache must come from model.new_cache(): a list of {len(self.blocks)} KVCache"
            )
        offset = len(cache[0]) if cache else 0
        T = ids.size(1)
        mask = None if T == 1 else causal_mask(T, ids.device, offset)  # one new token sees every key
        x = self.pos(self.embed(ids, validated=True), offset=offset)  # (B, T, d_model)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache[i] if cache is not None else None)
        return self.norm(x)

    def forward(self, ids: Tensor, cache: list[KVCache] | None = None) -> Tensor:
        return self.generator(self.hidden(ids, cache))  # (B, T, V)


def n_params(model: nn.Module) -> int:
    """Trainable parameters, a tied matrix counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- generation ----------------------------------------------------------------------------------
def generate(
    model: GPT,
    prompt: Tensor,
    max_new: int,
    choose: Callable[[Tensor], Tensor],
    eos_id: int | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Continue `prompt` (ids (B, T) or (T,)) by `max_new` tokens, one at a time.

    The prompt runs through the model once (filling the cache); then each step feeds only the
    newest token. `choose` maps the last position's logits (B, V) to ids (B,), as in
    course_lib.decode.generate. Without the cache the whole sequence runs again every step.
    Returns the new ids (B, L), L <= max_new; stops when every row has produced `eos_id`."""
    if not isinstance(model, GPT):
        raise InputTypeError(f"model must be a course_lib GPT, got {type(model).__name__}")
    if not callable(choose):
        raise InputTypeError(
            f"choose must be a function logits (B, V) -> ids (B,), got {type(choose).__name__}"
        )
    if isinstance(prompt, Tensor) and prompt.dim() == 1:
        prompt = prompt[None]  # one prompt: (T,) -> (1, T)
    prompt = check_token_ids(prompt, "prompt", model.cfg.vocab_size)
    room = model.cfg.max_len - prompt.size(1)
    check_int(max_new, "max_new", 1, max(room, 1), why=f" (the context holds {model.cfg.max_len} positions)")
    B = prompt.size(0)
    done = torch.zeros(B, dtype=torch.bool, device=prompt.device)
    out: list[Tensor] = []
    with _eval_mode(model):
        cache = model.new_cache() if use_cache else None
        seq, feed = prompt, prompt
        for _ in range(max_new):
            logits = model(feed if use_cache else seq, cache=cache)[:, -1].float()  # (B, V)
            nxt = choose(logits)
            if not isinstance(nxt, Tensor) or nxt.shape != (B,) or nxt.is_floating_point():
                raise ValueError(f"choose must return integer ids of shape ({B},)")
            if eos_id is not None:
                nxt = nxt.masked_fill(done, eos_id)
                done |= nxt == eos_id
            out.append(nxt)
            feed = nxt[:, None]
            seq = torch.cat([seq, feed], dim=1)
            if eos_id is not None and bool(done.all()):
                break
    return torch.stack(out, dim=1)


def greedy(
    model: GPT, prompt: Tensor, max_new: int, eos_id: int | None = None, use_cache: bool = True
) -> Tensor:
    """The most probable next token at every step."""
    return generate(model, prompt, max_new, lambda z: z.argmax(-1), eos_id, use_cache)


def sample(
    model: GPT,
    prompt: Tensor,
    max_new: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: torch.Generator | None = None,
    eos_id: int | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Each next token drawn from course_lib.decode.next_token_distribution(logits, temperature,
    top_k, top_p); pass a seeded torch.Generator for reproducible draws."""
    _check_sampling(temperature, top_k, top_p)

    def choose(logits: Tensor) -> Tensor:
        probs = next_token_distribution(logits, temperature, top_k, top_p)
        return torch.multinomial(probs, 1, generator=rng).squeeze(-1)

    return generate(model, prompt, max_new, choose, eos_id, use_cache)


def continue_text(
    model: GPT, tok: BPETokenizer, text: str, max_new: int = 40, temperature: float | None = None, **kw
) -> str:
    """The model's continuation of `text` (greedy when temperature is None), as text."""
    ids = torch.tensor([tok.encode(text)], dtype=torch.long, device=device_of(model))
    ids = ids[:, -(model.cfg.max_len - max_new) :]
    out = (
        greedy(model, ids, max_new) if temperature is None else sample(model, ids, max_new, temperature, **kw)
    )
    return tok.decode(out[0].tolist())


# --- the independent reference -------------------------------------------------------------------
class TorchGPT(nn.Module):
    """The same network from torch's own modules: nn.Embedding-free lookups, nn.TransformerEncoderLayer
    (norm_first=True, ReLU, batch_first) with a causal mask, nn.LayerNorm and a tied nn.Linear."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        c = self.cfg = cfg
        self.tok = nn.Parameter(torch.randn(c.vocab_size, c.d_model) * c.d_model**-0.5)
        self.pos = nn.Parameter(torch.randn(c.max_len, c.d_model) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                c.d_model, c.n_heads, c.d_ff, dropout=c.dropout, batch_first=True, norm_first=True
            )
            for _ in range(c.n_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)

    def forward(self, ids: Tensor) -> Tensor:
        T = ids.size(1)
        x = self.tok[ids] * math.sqrt(self.cfg.d_model) + self.pos[:T]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=ids.device, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        return self.norm(x) @ self.tok.T


@torch.no_grad()
def torch_reference(model: GPT) -> TorchGPT:
    """A TorchGPT holding copies of `model`'s weights (learned positions, tied output)."""
    c = model.cfg
    if c.positional != "learned" or not c.tie_output:
        raise ValueError("torch_reference copies a GPT with positional='learned' and tie_output=True")
    ref = TorchGPT(c).to(dtype=model.embed.weight.dtype, device=model.embed.weight.device)
    ref.tok.copy_(model.embed.weight)
    ref.pos.copy_(model.pos.embedding.weight)
    for ours, theirs in zip(model.blocks, ref.layers):
        copy_mha_to_torch(ours.self_attn, theirs.self_attn)
        theirs.linear1.weight.copy_(ours.ff.w_1.weight)
        theirs.linear1.bias.copy_(ours.ff.w_1.bias)
        theirs.linear2.weight.copy_(ours.ff.w_2.weight)
        theirs.linear2.bias.copy_(ours.ff.w_2.bias)
        for n_ours, n_theirs in ((ours.norm1, theirs.norm1), (ours.norm2, theirs.norm2)):
            n_theirs.weight.copy_(n_ours.gamma)
            n_theirs.bias.copy_(n_ours.beta)
    ref.norm.weight.copy_(model.norm.gamma)
    ref.norm.bias.copy_(model.norm.beta)
    return ref


# --- loss, data and baselines --------------------------------------------------------------------
def lm_loss(model: nn.Module, ids: Tensor) -> Tensor:
    """Mean next-token cross-entropy of a batch of windows (B, T + 1): position t predicts t + 1."""
    logits = model(ids[:, :-1])
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 / fp16 -> fp32
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))


def random_windows(stream: Tensor, batch: int, length: int, rng: torch.Generator) -> Tensor:
    """`batch` windows of `length` + 1 consecutive ids from a 1-D token stream, at random starts."""
    starts = torch.randint(0, stream.numel() - length - 1, (batch,), generator=rng)
    return torch.stack([stream[s : s + length + 1] for s in starts.tolist()])


@torch.no_grad()
def evaluate(model: GPT, stream: Tensor, length: int | None = None) -> float:
    """Total next-token negative log-likelihood (nats) of a stream, read in consecutive windows
    (each window's first id is context only, so every id but the first is predicted once)."""
    length = length or model.cfg.max_len
    total, n = 0.0, stream.numel()
    with _eval_mode(model):
        for s in range(0, n - 1, length):
            w = stream[s : s + length + 1][None]
            if w.size(1) < 2:
                break
            logits = model(w[:, :-1]).float()
            total += float(F.cross_entropy(logits[0], w[0, 1:], reduction="sum"))
    return total


def unigram_nll(train: list[int], test: list[int], vocab_size: int, k: float) -> float:
    """Total NLL (nats) of `test` under add-k smoothed unigram counts from `train`."""
    counts = torch.bincount(torch.tensor(train), minlength=vocab_size).double() + k
    logp = (counts / counts.sum()).log()
    return -float(logp[torch.tensor(test[1:])].sum())


def bigram_nll(train: list[int], test: list[int], vocab_size: int, k: float) -> float:
    """Total NLL (nats) of `test` (every id after the first) under add-k smoothed bigram counts."""
    tr = torch.tensor(train)
    counts = torch.zeros(vocab_size * vocab_size, dtype=torch.float64)
    counts.index_add_(0, tr[:-1] * vocab_size + tr[1:], torch.ones(tr.numel() - 1, dtype=torch.float64))
    counts = counts.view(vocab_size, vocab_size) + k
    logp = (counts / counts.sum(1, keepdim=True)).log()
    te = torch.tensor(test)
    return -float(logp[te[:-1], te[1:]].sum())


def tune_k(
    nll: Callable[[float], float], ks: tuple[float, ...] = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)
) -> float:
    """The add-k constant with the lowest validation NLL, `nll(k)`."""
    return min(ks, key=nll)


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    """Total NLL in nats -> bits per UTF-8 byte of the text: comparable across tokenizers."""
    return nll_nats / math.log(2) / n_bytes


# --- training ------------------------------------------------------------------------------------
def train_gpt(
    model: GPT,
    stream: Tensor,
    steps: int | None = None,
    seconds: float | None = None,
    batch: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    warmup: int = 50,
    val_stream: Tensor | None = None,
    eval_every: int = 0,
    on_step: Callable[[int, float], None] | None = None,
    on_eval: Callable[[int, float], None] | None = None,
) -> dict:
    """AdamW on random windows of the stream, linear warm-up then cosine decay over `steps` (or
    a fixed budget of `seconds`, decaying over the estimated number of steps). Keeps the weights
    with the lowest validation loss when `val_stream` and `eval_every` are given.
    Returns {"steps", "seconds", "tokens", "tokens_per_s", "losses", "best_val"}."""
    if steps is None and seconds is None:
        raise ValueError("give steps or seconds (or both)")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.05)
    L = model.cfg.max_len
    losses: list[float] = []
    best_val, best_state = math.inf, None
    t0 = time.perf_counter()
    planned = steps if steps is not None else 10**6  # with a time budget: re-estimated as we go
    step = 0
    model.train()
    while True:
        elapsed = time.perf_counter() - t0
        if (steps is not None and step >= steps) or (seconds is not None and elapsed >= seconds):
            break
        if steps is None and step >= 20 and step % 20 == 0:  # the steps the budget allows, at today's pace
            planned = max(step + 1, int(step * seconds / elapsed))
        frac = min(step / planned, 1.0)
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = lr * max(scale, 0.02)
        loss = lm_loss(model, random_windows(stream, batch, L, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if on_step is not None:
            on_step(step, losses[-1])
        if val_stream is not None and eval_every and step % eval_every == 0:
            v = evaluate(model, val_stream) / (val_stream.numel() - 1)
            model.train()
            if on_eval is not None:
                on_eval(step, v)
            if v < best_val:
                best_val, best_state = v, {k: t.detach().clone() for k, t in model.state_dict().items()}
    secs = time.perf_counter() - t0
    if best_state is not None:
        v = evaluate(model, val_stream) / (val_stream.numel() - 1)
        if v > best_val:
            model.load_state_dict(best_state)
        else:
            best_val = v
    model.eval()
    tokens = step * batch * L
    return {
        "steps": step,
        "seconds": secs,
        "tokens": tokens,
        "tokens_per_s": tokens / secs if secs > 0 else 0.0,
        "losses": losses,
        "best_val": best_val,
    }


# --- checkpoints ---------------------------------------------------------------------------------
def save_gpt(path: str | Path, model: GPT, tokenizer: BPETokenizer, extra: dict | None = None) -> None:
    """Model config, weights, the tokenizer (as plain data) and `extra`, with a checksum, written
    atomically by course_lib.checkpoint.atomic_torch_save. Refuses non-finite weights."""
    if not isinstance(model, GPT):
        raise InputTypeError(f"save_gpt expects a course_lib GPT, got {type(model).__name__}")
    save_model_file(path, GPT_FORMAT, model, {"tokenizer": tokenizer.to_dict(), "extra": extra or {}})


def load_gpt(path: str | Path = GPT_CHECKPOINT, map_location: str = "cpu") -> tuple[GPT, BPETokenizer, dict]:
    """(model in eval mode, tokenizer, extra) from a `save_gpt` file, read with weights_only=True;
    a one-line ValueError for another format, a wrong checksum or non-finite weights."""
    ckpt = read_model_file(path, GPT_FORMAT, "GPT", ("tokenizer", "extra"), map_location)
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, BPETokenizer.from_dict(ckpt["tokenizer"]), ckpt["extra"]


# --- the command ---------------------------------------------------------------------------------
def _streams(tok: BPETokenizer, corpus: Corpus) -> dict[str, Tensor]:
    """The corpus's train, validation and test splits as token streams."""
    return {
        s: torch.tensor(tok.encode(corpus.split(s)), dtype=torch.long)
        for s in ("train", "validation", "test")
    }


def main(argv: list[str] | None = None) -> int:
    from .cli import check_out_path, fraction, nonneg_int, positive_float, positive_int

    p = argparse.ArgumentParser(prog="python -m course_lib.gpt", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a GPT on the course corpus and save it")
    t.add_argument("--out", required=True, help="where to save the checkpoint (.pt)")
    t.add_argument(
        "--corpus", default=None, help="a UTF-8 text file to train on (default: the course's frozen prose)"
    )
    t.add_argument("--vocab-size", type=positive_int, default=512, help="BPE ids (default 512)")
    t.add_argument("--d-model", type=positive_int, default=128, help="default 128")
    t.add_argument("--n-heads", type=positive_int, default=4, help="default 4")
    t.add_argument("--n-layers", type=positive_int, default=4, help="default 4")
    t.add_argument("--d-ff", type=positive_int, default=512, help="default 512")
    t.add_argument("--context", type=positive_int, default=128, help="tokens per window (default 128)")
    t.add_argument("--dropout", type=fraction, default=0.1, help="default 0.1")
    t.add_argument("--batch", type=positive_int, default=16, help="windows per step (default 16)")
    t.add_argument("--lr", type=positive_float, default=3e-3, help="peak learning rate (default 3e-3)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes", type=positive_float, default=None, help="a time budget (default 10 without --steps)"
    )
    budget.add_argument(
        "--steps", type=positive_int, default=None, help="a fixed number of steps: a reproducible run"
    )
    t.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--seed", type=nonneg_int, default=0, help="default 0")
    i = sub.add_parser("info", help="print a checkpoint's config and recorded metrics")
    i.add_argument("path", nargs="?", default=str(GPT_CHECKPOINT))
    a = p.parse_args(argv)
    if a.cmd == "train":
        check_out_path(t, a.out)
        if a.d_model % a.n_heads:
            t.error(f"argument --n-heads: expected a divisor of --d-model {a.d_model}, got {a.n_heads}")
        if a.minutes is None and a.steps is None:
            a.minutes = 10.0
    try:
        if a.cmd == "info":
            model, tok, extra = load_gpt(a.path)
            print(f"{model.cfg}\nparameters: {n_params(model):,}; tokenizer: {tok.vocab_size} ids")
            for k, v in extra.items():
                if not isinstance(v, list):
                    print(f"{k}: {v}")
            return 0
        torch.set_num_threads(a.threads)
        torch.manual_seed(a.seed)
        from .corpus import load_corpus

        corpus = load_corpus(a.corpus)  # the frozen course text, or the learner's own file
        tok = BPETokenizer.train(corpus.split("train"), a.vocab_size)
        s = _streams(tok, corpus)
        cfg = GPTConfig(tok.vocab_size, a.d_model, a.n_heads, a.n_layers, a.d_ff, a.dropout, a.context)
        model = GPT(cfg)
        print(
            f"{n_params(model):,} parameters; train {s['train'].numel():,} tokens; training "
            + (f"{a.steps} steps" if a.steps else f"{a.minutes} min")
        )
        every = 200

        def report(step: int, loss: float) -> None:
            if step % every == 0:
                print(f"step {step}: loss {loss:.3f}", flush=True)

        r = train_gpt(
            model, s["train"], steps=a.steps, seconds=a.minutes * 60 if a.minutes else None, batch=a.batch, lr=a.lr, seed=a.seed,
            val_stream=s["validation"], eval_every=every, on_step=report,
            on_eval=lambda step, v: print(f"step {step}: validation loss {v:.3f}", flush=True),
        )  # fmt: skip
        test_nll = evaluate(model, s["test"])
        n_test = s["test"].numel() - 1
        test_bytes = len(corpus.split("test").encode("utf-8"))
        extra = {
            "command": "python -m course_lib.gpt " + " ".join(argv if argv is not None else sys.argv[1:]),
            "steps": r["steps"],
            "train_seconds": round(r["seconds"], 1),
            "tokens_per_s": round(r["tokens_per_s"]),
            "threads": a.threads,
            "val_loss": round(r["best_val"], 4),
            "test_loss": round(test_nll / n_test, 4),
            "test_perplexity": round(math.exp(test_nll / n_test), 3),
            "test_bits_per_byte": round(bits_per_byte(test_nll, test_bytes), 4),
            "torch": str(torch.__version__),
        }
        save_gpt(a.out, model, tok, extra)
        for k, v in extra.items():
            print(f"{k}: {v}")
        return 0
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
