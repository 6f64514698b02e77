"""Checkers for lesson 16, "Inside a trained model: induction heads".

check_induction_scores(fn)   fn(model, ids (B, T), period) -> (n_layers, n_heads): the induction
                             score of every head, averaged over the batch, compared with
                             `course_lib.induction.head_scores`
check_ablation(fn)           fn(model, layer, head) -> a context manager inside which that head
                             writes nothing, done with a forward hook (or pre-hook); checked against
                             `course_lib.induction.ablate_heads`, and for leaving the model exactly
                             as it was on exit, also when the block raises

Both run on fresh random models (random sizes, sharpened random weights) and random repeating
sequences, and refuse an answer that only calls the library's own function (`checker`; the
ablation's context manager runs after the learner's function has returned, so its `with` block is
watched here as well).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import torch
from torch import Tensor

from ..induction import (
    AttentionOnlyTransformer,
    InductionConfig,
    ablate_heads,
    attention_patterns,
    head_scores,
    induction_score,
    n_hooks,
)
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _random_model(g: torch.Generator, max_len: int = 32) -> AttentionOnlyTransformer:
    h = _randint(g, 1, 3)
    cfg = InductionConfig(
        vocab_size=_randint(g, 8, 40),
        d_model=h * _randint(g, 2, 6),
        n_heads=h,
        n_layers=_randint(g, 1, 3),
        max_len=max_len,
    )
    torch.manual_seed(_randint(g, 0, 2**31 - 1))
    model = AttentionOnlyTransformer(cfg).double().eval()
    with torch.no_grad():  # sharper attention than at initialisation, so that heads differ clearly
        for m in model.layers:
            m.w_q.weight.mul_(3.0)
    return model


def _repeating(g: torch.Generator, vocab_size: int, copies: int | None = None) -> tuple[Tensor, int]:
    """(B, T) ids made of `copies` (default: 2 or 3 at random) copies of a random stretch, and the
    stretch's length."""
    period = _randint(g, 3, 9)
    copies = _randint(g, 2, 3) if copies is None else copies
    first = torch.randint(0, vocab_size, (_randint(g, 1, 4), period), generator=g)
    return first.repeat(1, copies), period


class _LibraryCall(Exception):
    """The learner's code called the library function the exercise asks them to write."""


@contextlib.contextmanager
def _refuse(*functions: Callable[..., Any]) -> Iterator[None]:
    """Raise _LibraryCall if any of `functions` (however it was imported) starts running in the
    block: a profile hook watches for their code objects."""
    codes = {getattr(f, "__wrapped__", f).__code__: f.__name__ for f in functions}
    previous = sys.getprofile()
    hit: list[str] = []

    def watch(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code in codes and not hit:
            hit.append(codes[frame.f_code])
            sys.setprofile(previous)
            raise _LibraryCall(hit[0])

    sys.setprofile(watch)
    try:
        yield
    finally:
        sys.setprofile(previous)
    if hit:
        raise _LibraryCall(hit[0])


# --- exercise 1: the induction score of every head -----------------------------------------------
@checker(head_scores, induction_score, label="induction scores")
def check_induction_scores(fn: Callable[[AttentionOnlyTransformer, Tensor, int], Tensor]) -> CheckResult:
    """The (n_layers, n_heads) induction scores on fresh random models and repeating sequences of
    2 or 3 copies (so the period is not always T / 2)."""
    g = fresh_generator()

    def trial(copies: int | None = None) -> str | None:
        model = _random_model(g)
        ids, period = _repeating(g, model.cfg.vocab_size, copies)
        want = head_scores(model, ids, period)["induction"]
        got = fn(model, ids.clone(), period)
        L, h = model.cfg.n_layers, model.cfg.n_heads
        if isinstance(got, Tensor) and tuple(got.shape) == (L, ids.size(0), h):
            return f"got shape {tuple(got.shape)}: average over the batch, to (n_layers, n_heads) = {(L, h)}"
        hint = compare(got, want, f"the score table of a {L}-layer, {h}-head model", atol=1e-6, rtol=1e-5)
        if hint is not None and isinstance(got, Tensor) and got.shape == want.shape:
            w = attention_patterns(model, ids)  # (L, B, h, T, T)
            same_token = w.diagonal(offset=-period, dim1=-2, dim2=-1).mean(-1).mean(1)
            if torch.allclose(got.double(), same_token, atol=1e-6):
                return (
                    "these are the weights on the earlier copy of the current token (key t - period); "
                    "the induction score is the weight on the token after it, key t - period + 1"
                )
            if ids.size(1) != 2 * period:
                hint += f" (here T = {ids.size(1)} and the period is {period}: use the period, not T // 2)"
        return hint

    return run_trials(
        "induction scores",
        [
            lambda: trial(3),
            lambda: trial(2),
            trial,
            trial,
            trial,
        ],  # three copies at least once: T != 2 period
        "the same scores as the library on random models and repeating sequences.",
    )


# --- exercise 2: ablate a head with a forward hook -----------------------------------------------
class _Boom(Exception):
    """Raised inside the learner's context to check that it cleans up."""


@checker(ablate_heads, label="ablation hook")
def check_ablation(fn: Callable[[AttentionOnlyTransformer, int, int], Any]) -> CheckResult:
    """fn(model, layer, head) -> context manager. Inside: the outputs of the library's ablation and
    at least one forward hook; afterwards: no hooks, the same weights, the same outputs, also when
    the block raised."""
    g = fresh_generator()

    def trial(raise_inside: bool) -> str | None:
        model = _random_model(g)
        ids, _ = _repeating(g, model.cfg.vocab_size)
        layer = _randint(g, 0, model.cfg.n_layers - 1)
        head = _randint(g, 0, model.cfg.n_heads - 1)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            before = model(ids)
            with ablate_heads(model, [(layer, head)]):
                want = model(ids)
        hooks_inside = -1
        cm = fn(model, layer, head)
        if not (hasattr(cm, "__enter__") and hasattr(cm, "__exit__")):
            return (
                f"return a context manager (for `with`), got {type(cm).__name__}: "
                "decorate a generator function with @contextlib.contextmanager"
            )
        try:
            with _refuse(ablate_heads), torch.no_grad(), cm:
                hooks_inside = n_hooks(model)
                got = model(ids)
                if raise_inside:
                    raise _Boom
        except _LibraryCall as e:
            return f"your function calls the library's {e}: write it yourself"
        except _Boom:
            pass
        if raise_inside and n_hooks(model):
            return (
                f"after an error inside the `with` block, {n_hooks(model)} hook(s) are still on the model: "
                "remove them in a `finally:` clause"
            )
        if hooks_inside == 0:
            return "no forward hook was registered inside the block: use register_forward_pre_hook (or _hook)"
        if not raise_inside:
            hint = compare(
                got, want, f"the output with layer {layer}, head {head} zeroed", atol=1e-8, rtol=1e-7
            )
            if hint is not None:
                return hint
        if n_hooks(model):
            return (
                f"after the `with` block {n_hooks(model)} hook(s) are still on the model: remove them on exit"
            )
        for k, v in model.state_dict().items():
            if not torch.equal(v, state[k]):
                return f"the weights changed ({k}): ablate with a hook and leave the weights alone"
        with torch.no_grad():
            after = model(ids)
        if not torch.equal(after, before):
            return "after the `with` block the model's outputs differ from before: restore it on exit"
        return None

    trials = [lambda: trial(False)] * 4 + [lambda: trial(True)] * 2
    return run_trials(
        "ablation hook",
        trials,
        "the head is zeroed inside the block, and the model is restored afterwards, even after an error.",
    )


__all__ = ["check_ablation", "check_induction_scores"]
