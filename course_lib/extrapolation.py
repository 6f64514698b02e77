"""Train short, test long: do position encodings carry over to longer sequences? (lesson 05)

The paper chose sinusoids partly in the hope that they would let a model run on sequences longer
than any it was trained on (section 3.5). Press, Smith and Lewis
(2022, "Train Short, Test Long", the ALiBi paper) measured it on language models and found that
sinusoidal and rotary positions both degrade beyond the training length.

This module holds the pieces of lesson 05's small version of that measurement:

* `RotarySelfAttention`: the course's `MultiHeadAttention` with RoPE (Su et al., 2021) applied
  to every head's queries and keys;
* `PositionProbe`: token embedding, one position scheme ("sinusoidal", "learned" or "rope"),
  one causal self-attention layer and a linear read-out;
* the previous-token task: at every position t >= 1, output the token at t - 1. Its answer
  depends on the offset -1 only, so a model that learned it "relatively" would solve it at
  any length;
* `train_previous_token` (seeded, one CPU thread) and `previous_token_accuracy` (accuracy
  at each position of longer sequences).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import MultiHeadAttention, scaled_dot_product_attention
from .device import one_thread
from .masks import causal_mask
from .model import TokenEmbedding
from .positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding, apply_rope
from .validate import check_int, check_last_dim, check_nonempty, check_tensor, check_token_ids

POSITIONS = ("sinusoidal", "learned", "rope")


class RotarySelfAttention(MultiHeadAttention):
    """Multi-head self-attention with rotary positions (Su et al., 2021).

    Same projections `w_q, w_k, w_v, w_o` as `MultiHeadAttention`; each head's queries and
    keys are rotated by `apply_rope` (position pos turns pair i by pos * w_i) before the
    scores of equation (1), so q_m . k_n depends on the offset m - n only. Values are not
    rotated. Self-attention only: forward(x (B, T, d_model), mask) -> (B, T, d_model).
    The weights of the last call are kept in `attn_weights` (B, h, T, T).
    """

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        check_tensor(x, "x", ndim=3)
        check_last_dim(x, "x", self.d_model)
        check_nonempty(x, "x", axis=1)
        q = apply_rope(self.split_heads(self.w_q(x)))  # (B, h, T, d_k), rotated
        k = apply_rope(self.split_heads(self.w_k(x)))  # (B, h, T, d_k), rotated
        v = self.split_heads(self.w_v(x))  # (B, h, T, d_k), not rotated
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        self.attn_weights = weights.detach()  # (B, h, T, T)
        return self.w_o(self.merge_heads(out))  # (B, T, d_model)


class PositionProbe(nn.Module):
    """A one-layer causal model for comparing position schemes on the same task.

    ids (B, T) -> embedding x sqrt(d_model) (section 3.4) -> positions -> causal
    self-attention (2 heads by default) -> linear read-out -> logits (B, T, vocab_size).
    positions: "sinusoidal" (added, section 3.5), "learned" (added, one trained row per
    position up to `max_len`, Table 3 row E) or "rope" (rotates queries and keys, no
    length limit). No residual, no feed-forward: attention alone must fetch the answer.
    """

    def __init__(
        self, vocab_size: int, positions: str, d_model: int = 32, n_heads: int = 2, max_len: int = 64
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        self.vocab_size, self.positions = vocab_size, positions
        self.embed = TokenEmbedding(vocab_size, d_model)
        self.pos: nn.Module | None = None
        if positions == "sinusoidal":
            self.pos = SinusoidalPositionalEncoding(d_model, max_len)
        elif positions == "learned":
            self.pos = LearnedPositionalEncoding(d_model, max_len)
        self.attn = (RotarySelfAttention if positions == "rope" else MultiHeadAttention)(d_model, n_heads)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, ids: Tensor) -> Tensor:
        check_token_ids(ids, "ids", self.vocab_size)
        x = self.embed(ids)  # (B, T, d_model)
        if self.pos is not None:
            x = self.pos(x)  # + PE[0:T]
        mask = causal_mask(ids.size(1), ids.device)  # (T, T): position t sees 0..t
        return self.out(self.attn(x, mask=mask))  # (B, T, vocab_size)


def make_probe(positions: str, seed: int = 0, vocab_size: int = 12, **kwargs) -> PositionProbe:
    """A `PositionProbe` initialised from `seed` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PositionProbe(vocab_size, positions, **kwargs)


def previous_token_batch(
    batch_size: int, length: int, vocab_size: int, rng: torch.Generator | None = None
) -> Tensor:
    """(batch_size, length) uniformly random token ids; the targets are ids[:, :-1]."""
    check_int(batch_size, "batch_size", 1)
    check_int(length, "length", 2, why=" (position 0 has no previous token)")
    return torch.randint(0, vocab_size, (batch_size, length), generator=rng)


def previous_token_loss(model: PositionProbe, ids: Tensor) -> Tensor:
    """Mean cross-entropy of predicting ids[:, t-1] at every position t >= 1."""
    logits = model(ids)[:, 1:]  # (B, T-1, V): position 0 has no previous token
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, :-1].reshape(-1))


def train_previous_token(
    model: PositionProbe,
    train_len: int = 16,
    steps: int = 150,
    batch_size: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
) -> list[float]:
    """Train `model` on fresh sequences of exactly `train_len` tokens; return each step's loss.

    Adam (lr `lr`), batches from a generator seeded with `seed`, one CPU thread: a run is
    reproducible. Rows of a learned table beyond `train_len` never receive a gradient.
    """
    check_int(steps, "steps", 1)
    if not lr > 0:
        raise ValueError(f"expected a learning rate lr > 0, got lr={lr!r}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    model.train()
    with one_thread():
        for _ in range(steps):
            loss = previous_token_loss(
                model, previous_token_batch(batch_size, train_len, model.vocab_size, g)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def previous_token_accuracy(
    model: PositionProbe, length: int, n_sequences: int = 256, seed: int = 1234
) -> Tensor:
    """(length - 1,) accuracy at positions 1 .. length-1 of `n_sequences` fresh sequences.

    The same `seed` gives the same test sequences for every model, so they are compared on
    identical inputs.
    """
    g = torch.Generator().manual_seed(seed)
    ids = previous_token_batch(n_sequences, length, model.vocab_size, g)  # (N, L)
    model.eval()
    with one_thread():
        right = model(ids)[:, 1:].argmax(-1) == ids[:, :-1]  # (N, L-1)
    return right.float().mean(0)
