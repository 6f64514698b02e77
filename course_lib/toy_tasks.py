"""A tiny next-token task and a tiny decoder-only model that learns it in seconds on a CPU
(lessons 06 and 07).

The copy task: k random letters, a separator "|", the same k letters again, an end mark ".":

    "fdeah|fdeah."

A model reads a sequence and, at every position, predicts the next token. The first k - 1
predictions are guesses (each letter is a fresh random draw, loss ln(n_letters) at best);
everything from the separator on is determined by what came before. So a model that only
sees the past cannot push the average loss below `CopyTask.honest_floor()`; a model that
can see the future (no causal mask) can, by reading the answer one position ahead.

`TinyLM` is a decoder-only Transformer built from the course's own layers; `train_lm` is a
minimal, seeded training loop (Adam(0.9, 0.98, 1e-9) as in the paper, optional linear
warm-up); `generate` continues prompts greedily, one token at a time.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .device import one_thread
from .layers import EncoderLayer, LayerNorm
from .masks import causal_mask
from .model import TokenEmbedding
from .positional import SinusoidalPositionalEncoding
from .validate import check_tensor, check_token_ids

SEP, END = "|", "."


@dataclass(frozen=True)
class CopyTask:
    """Sequences "x_1 .. x_k | x_1 .. x_k ." over `n_letters` letters (ids 0 .. n-1),
    then SEP (id n) and END (id n + 1)."""

    k: int = 5
    n_letters: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.n_letters <= 26:
            raise ValueError(f"n_letters must be between 1 and 26, got {self.n_letters}")
        if self.k < 1:
            raise ValueError(f"k (letters to copy) must be >= 1, got {self.k}")

    # -- vocabulary ---------------------------------------------------------------------
    @property
    def symbols(self) -> str:
        return string.ascii_lowercase[: self.n_letters] + SEP + END

    @property
    def vocab_size(self) -> int:
        return self.n_letters + 2

    @property
    def sep_id(self) -> int:
        return self.n_letters

    @property
    def end_id(self) -> int:
        return self.n_letters + 1

    @property
    def seq_len(self) -> int:
        return 2 * self.k + 2

    def encode(self, text: str) -> list[int]:
        bad = sorted(set(text) - set(self.symbols))
        if bad:
            raise ValueError(f"characters {bad} are not in this task's vocabulary {self.symbols!r}")
        return [self.symbols.index(c) for c in text]

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return "".join(self.symbols[i] if 0 <= i < self.vocab_size else "?" for i in ids)

    # -- data -----------------------------------------------------------------------------
    def sample(self, batch_size: int, rng: torch.Generator | None = None) -> Tensor:
        """(batch_size, 2k + 2) token ids; the same generator state gives the same batch."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        x = torch.randint(0, self.n_letters, (batch_size, self.k), generator=rng)
        sep = torch.full((batch_size, 1), self.sep_id)
        end = torch.full((batch_size, 1), self.end_id)
        return torch.cat([x, sep, x, end], dim=1)

    def prompts(self, ids: Tensor) -> Tensor:
        """The part a model is given when asked to copy: the letters and the separator."""
        return ids[:, : self.k + 1]

    def honest_floor(self) -> float:
        """The lowest mean next-token loss (nats) reachable without seeing the future:
        k - 1 of the 2k + 1 targets are uniform random letters, the rest are determined."""
        return (self.k - 1) * math.log(self.n_letters) / (2 * self.k + 1)

    def copy_accuracy(self, generated: Tensor, ids: Tensor) -> tuple[float, float]:
        """(letter accuracy, exact-copy rate) of the k letters after the separator."""
        check_tensor(generated, "generated", ndim=2)
        lo, hi = self.k + 1, 2 * self.k + 1
        if generated.size(1) < hi:
            raise ValueError(f"generated must hold at least {hi} tokens per row, got {generated.size(1)}")
        right = generated[:, lo:hi] == ids[:, lo:hi]  # (B, k)
        return right.float().mean().item(), right.all(dim=1).float().mean().item()


class TinyLM(nn.Module):
    """A small decoder-only Transformer: token embedding (x sqrt(d_model)) + sinusoidal
    positions, `n_layers` blocks of masked self-attention and feed-forward (course_lib's
    `EncoderLayer` with a causal mask is exactly a GPT-style decoder block), a final
    LayerNorm when the blocks are pre-LN, and a linear read-out to the vocabulary.

    forward(ids (B, T), causal=True) -> logits (B, T, vocab_size). With causal=False the
    mask is dropped and every position sees the whole sequence, future included.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 32,
        n_heads: int = 2,
        n_layers: int = 2,
        d_ff: int = 64,
        max_len: int = 64,
        norm_first: bool = False,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = TokenEmbedding(vocab_size, d_model)
        self.pos = SinusoidalPositionalEncoding(d_model, max_len)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout=0.0, norm_first=norm_first) for _ in range(n_layers)
        )
        self.norm = LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: Tensor, causal: bool = True) -> Tensor:
        check_token_ids(ids, "ids", self.vocab_size)
        x = self.pos(self.embed(ids))  # (B, T, d_model)
        mask = causal_mask(ids.size(1), ids.device) if causal else None  # (T, T)
        for layer in self.layers:
            x = layer(x, mask)
        return self.head(self.norm(x))  # (B, T, vocab_size)


def make_tiny_lm(task: CopyTask, seed: int = 0, **kwargs) -> TinyLM:
    """A `TinyLM` for `task`, initialised from `seed` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyLM(task.vocab_size, **kwargs)


def warmup_factor(step: int, warmup: int) -> float:
    """Learning-rate multiplier: a linear ramp from 1/warmup to 1 over `warmup` steps, then 1."""
    return 1.0 if warmup <= 0 else min(1.0, (step + 1) / warmup)


def next_token_loss(model: TinyLM, ids: Tensor, causal: bool = True) -> Tensor:
    """Mean cross-entropy of predicting ids[:, 1:] from ids[:, :-1] (all positions at once)."""
    logits = model(ids[:, :-1], causal=causal)  # (B, T-1, V)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))


def train_lm(
    model: TinyLM,
    task: CopyTask,
    steps: int = 200,
    lr: float = 3e-3,
    batch_size: int = 32,
    warmup: int = 0,
    causal: bool = True,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> list[float]:
    """Train `model` on fresh batches of `task` for `steps` steps; return the loss of each step.

    Adam(0.9, 0.98, eps=1e-9) as in the paper (section 5.3), learning rate `lr` reached after a
    linear warm-up of `warmup` steps (0: no warm-up), no gradient clipping. Batches come from a
    generator seeded with `seed`, so a run is reproducible.
    """
    if steps < 1 or lr <= 0:
        raise ValueError(f"need steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9, foreach=True)
    losses: list[float] = []
    model.train()
    with one_thread():
        for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
            for group in opt.param_groups:
                group["lr"] = lr * warmup_factor(step, warmup)
            loss = next_token_loss(model, task.sample(batch_size, g), causal)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def generate(model: TinyLM, prompt: Tensor, n_new: int, causal: bool = True) -> Tensor:
    """Greedy continuation: append the most likely next token `n_new` times.

    prompt (B, T0) -> (B, T0 + n_new). Each step runs the model on everything so far and
    keeps the prediction of the last position, the only one whose next token is unknown.
    """
    check_token_ids(prompt, "prompt", model.vocab_size)
    ids = prompt
    with one_thread():
        for _ in range(n_new):
            logits = model(ids, causal=causal)[:, -1]  # (B, V), the last position
            ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return ids
