"""Dropout (Srivastava et al., 2014) as the Transformer uses it, and a small over-fitting experiment
(lesson 06).

The paper (section 5.4, "residual dropout") drops units in two places, at one rate P_drop
(0.1 for the base model, 0.3 for the big English-German one): on every sublayer's output
before the residual add, and on the sums of embeddings and positional encodings. The library
adds two sites of later practice (tensor2tensor's attention_dropout and relu_dropout, torch's
nn.Transformer): the attention weights and the feed-forward network's hidden layer.

  * `dropout_sites(model)` lists every site of a model, what it drops, and whether the paper names it;
  * `set_dropout(model, p)` sets the one rate at every site;
  * `train_on_fixed_set(...)` trains a `TinyLM` on a few sequences, seen again and again, and
    records the loss on them and on held-out sequences, so the gap can be measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .attention import MultiHeadAttention
from .device import one_thread
from .layers import DecoderLayer, EncoderLayer, FeedForward
from .positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from .toy_tasks import TinyLM, next_token_loss
from .validate import InputTypeError, check_dropout, check_int, check_number, check_token_ids

RESIDUAL = "sublayer output, before the residual add"
EMBEDDING = "embeddings + positional encodings"
ATTENTION = "attention weights, after the softmax"
FFN_HIDDEN = "feed-forward hidden units, after the ReLU"


@dataclass(frozen=True)
class DropoutSite:
    """One place where a model drops activations in training."""

    name: str  # module path, e.g. "dropout1" or "layers.0.self_attn.dropout"
    p: float  # the drop probability at this site
    what: str  # what is dropped: RESIDUAL, EMBEDDING, ATTENTION, FFN_HIDDEN or "other"
    in_paper: bool  # named in section 5.4 of the paper (False: later practice, or not the Transformer's)


def _check_module(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _classify(parent: nn.Module | None) -> tuple[str, bool]:
    """What an nn.Dropout owned by `parent` drops, and whether the paper names that site."""
    if isinstance(parent, (EncoderLayer, DecoderLayer)):
        return RESIDUAL, True
    if isinstance(parent, (SinusoidalPositionalEncoding, LearnedPositionalEncoding)):
        return EMBEDDING, True
    if isinstance(parent, FeedForward):
        return FFN_HIDDEN, False
    return "other", False


def dropout_sites(model: nn.Module) -> list[DropoutSite]:
    """Every dropout site of `model`, in module order: each nn.Dropout, and the attention weights
    of each MultiHeadAttention (its float `dropout`, reported as "<name>.dropout")."""
    _check_module(model)
    sites: list[DropoutSite] = []
    for name, module in model.named_modules():
        if isinstance(module, MultiHeadAttention):
            sites.append(
                DropoutSite(f"{name}.dropout" if name else "dropout", module.dropout, ATTENTION, False)
            )
        elif isinstance(module, nn.Dropout):
            parent_name = name.rpartition(".")[0]
            parent = model.get_submodule(parent_name) if name else None
            what, in_paper = _classify(parent)
            sites.append(DropoutSite(name, module.p, what, in_paper))
    return sites


def set_dropout(model: nn.Module, p: float) -> nn.Module:
    """Set the one rate `p` (the paper's P_drop) at every dropout site of `model`; returns `model`."""
    _check_module(model)
    p = check_dropout(p)
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.dropout = float(p)
        elif isinstance(module, nn.Dropout):
            module.p = float(p)
    return model


@dataclass
class FitCurves:
    """Mean next-token loss (nats, measured in eval mode) after each recorded step."""

    step: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    heldout: list[float] = field(default_factory=list)

    @property
    def gap(self) -> float:
        """Held-out loss minus training loss at the last recorded step."""
        return self.heldout[-1] - self.train[-1]


@torch.no_grad()
def _measure(model: TinyLM, ids: Tensor) -> float:
    return next_token_loss(model, ids).item()


def _check_fit_args(
    model: object, train_ids: object, heldout_ids: object, steps: object, lr: object, eval_every: object
) -> None:
    """The arguments of `train_on_fixed_set`, checked, with a one-line error for each mistake."""
    if not isinstance(model, TinyLM):
        raise InputTypeError(f"model must be a course_lib.toy_tasks.TinyLM, got {type(model).__name__}")
    for ids, name in ((train_ids, "train_ids"), (heldout_ids, "heldout_ids")):
        check_token_ids(ids, name, model.vocab_size)
        if ids.size(1) < 2:
            raise ValueError(
                f"{name} needs sequences of at least 2 tokens (input and next token), got {ids.size(1)}"
            )
    check_int(steps, "steps", 1)
    check_int(eval_every, "eval_every", 1)
    check_number(lr, "lr", "a positive number")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")


def train_on_fixed_set(
    model: TinyLM,
    train_ids: Tensor,
    heldout_ids: Tensor,
    steps: int = 300,
    lr: float = 3e-3,
    eval_every: int = 10,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> FitCurves:
    """Train `model` on the same sequences `train_ids` (B, T) at every step (the whole set is the
    batch), with Adam(0.9, 0.98, 1e-9) as in the paper, section 5.3, at a constant `lr`.

    Before training and every `eval_every` steps (and after the last one), the mean next-token
    loss on `train_ids` and on `heldout_ids` is measured in eval mode, i.e. without dropout.
    Dropout masks are drawn from `seed` (the global generator is left untouched), on one thread,
    so a run is reproducible. The model is left in eval mode.
    """
    _check_fit_args(model, train_ids, heldout_ids, steps, lr, eval_every)
    from tqdm.auto import tqdm

    curves = FitCurves()

    def record(step: int) -> None:
        model.eval()  # dropout off while measuring
        curves.step.append(step)
        curves.train.append(_measure(model, train_ids))
        curves.heldout.append(_measure(model, heldout_ids))

    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9, foreach=True)
    with one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the dropout masks
        record(0)
        for step in tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False):
            model.train()  # dropout on
            loss = next_token_loss(model, train_ids)  # the whole training set, every step
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % eval_every == 0 or step == steps:
                record(step)
    model.eval()
    return curves
