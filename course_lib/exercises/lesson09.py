"""Checkers for lesson 09, training.

check_teacher_forcing(fn)   fn(targets (B, T) padded with PAD, no specials) -> (tgt_in, tgt_out), each (B, T+1):
                            tgt_in = SOS + target (the right shift), tgt_out = target + EOS, padded with PAD
check_label_smoothing(fn)   fn(logits (N, V), target (N,), epsilon) -> scalar: the label-smoothed
                            cross-entropy averaged over the positions whose target is not PAD, with
                            epsilon spread over all V classes (epsilon / V each, the correct one
                            included), as Szegedy et al. (2016) define it and F.cross_entropy computes;
                            the epsilon / (V - 1) convention gets a hint of its own
check_train_step(fn)        fn(model, optimizer, src, tgt_in, tgt_out, epsilon, clip_norm) -> loss: one
                            training step (teacher-forced forward, label-smoothed loss over real tokens,
                            backward, clipping, Adam), against a reference step on a copy of the model
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import EOS, PAD, SOS, make_batch
from ..losses import cross_entropy, label_smoothing_loss
from ..model import Transformer, TransformerConfig
from ..train import Trainer
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _padded_targets(g: torch.Generator, B: int, T: int, V: int) -> tuple[Tensor, list[int]]:
    """(B, T) target ids in [3, V) with rows of random lengths 1..T, PAD after: the first row full and,
    when B > 1 and T > 1, the last one shorter, so that every batch holds padding."""
    lengths = [T] + [_randint(g, 1, T) for _ in range(B - 1)]
    if B > 1 and T > 1:
        lengths[-1] = _randint(g, 1, T - 1)
    ids = torch.randint(3, V, (B, T), generator=g)
    for i, n in enumerate(lengths):
        ids[i, n:] = PAD
    return ids, lengths


def _reference_io(targets: Tensor, lengths: list[int]) -> tuple[Tensor, Tensor]:
    B, T = targets.shape
    tgt_in = torch.full((B, T + 1), PAD, dtype=torch.long)
    tgt_out = torch.full((B, T + 1), PAD, dtype=torch.long)
    for i, n in enumerate(lengths):
        tgt_in[i, 0] = SOS
        tgt_in[i, 1 : n + 1] = targets[i, :n]
        tgt_out[i, :n] = targets[i, :n]
        tgt_out[i, n] = EOS
    return tgt_in, tgt_out


@checker(make_batch)
def check_teacher_forcing(fn: Callable[[Tensor], tuple[Tensor, Tensor]]) -> CheckResult:
    """The decoder's input and output for teacher forcing, on fresh padded batches."""
    g = fresh_generator()

    def trial() -> str | None:
        B, T, V = _randint(g, 2, 5), _randint(g, 2, 9), _randint(g, 6, 30)
        targets, lengths = _padded_targets(g, B, T, V)
        want_in, want_out = _reference_io(targets, lengths)
        got = fn(targets.clone())
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return f"return two tensors (tgt_in, tgt_out), got {type(got).__name__}"
        got_in, got_out = (torch.as_tensor(t) for t in got)
        shape = (B, T + 1)
        for name, t in (("tgt_in", got_in), ("tgt_out", got_out)):
            if tuple(t.shape) != shape:
                return f"{name} has shape {tuple(t.shape)} for targets of shape {(B, T)}; expected {shape} (one more position for SOS or EOS)"
        if torch.equal(got_in, want_out) and torch.equal(got_out, want_in):
            return "tgt_in and tgt_out are swapped: the decoder reads SOS + target and predicts target + EOS"
        if not (got_in[:, 0] == SOS).all():
            return "every row of tgt_in must start with SOS (id 1): the decoder's first input, when nothing is written yet"
        if not torch.equal(got_in, want_in):
            row = int((got_in != want_in).any(1).nonzero()[0])
            return (
                f"tgt_in differs in row {row} (length {lengths[row]}): expected {want_in[row].tolist()}, got "
                f"{got_in[row].tolist()} (SOS, the target's real tokens, then PAD; no EOS in the input)"
            )
        if not torch.equal(got_out, want_out):
            row = int((got_out != want_out).any(1).nonzero()[0])
            hint = ""
            if (got_out[row] == EOS).sum() == 1 and int((got_out[row] == EOS).nonzero()) == T:
                hint = " EOS goes right after the last real token, not at the very end of the padded row."
            return (
                f"tgt_out differs in row {row} (length {lengths[row]}): expected {want_out[row].tolist()}, "
                f"got {got_out[row].tolist()}.{hint}"
            )
        return None

    return run_trials(
        "teacher forcing",
        [trial for _ in range(4)],
        "SOS + target in, target + EOS out, padding kept in place, on 4 fresh random batches.",
    )


def _smoothed_over_wrong_classes(logits: Tensor, target: Tensor, eps: float) -> Tensor:
    """The other convention: 1 - eps on the target, eps / (V - 1) on each of the V - 1 others;
    mean over the positions whose target is not PAD. logits (N, V), target (N,) -> scalar."""
    logp = logits.log_softmax(-1)  # (N, V)
    V = logits.size(-1)
    q = torch.full_like(logp, eps / (V - 1)).scatter(-1, target[:, None], 1 - eps)  # (N, V)
    return -(q * logp).sum(-1)[target != PAD].mean()


@checker(label_smoothing_loss, cross_entropy, F.cross_entropy)
def check_label_smoothing(fn: Callable[[Tensor, Tensor, float], Tensor]) -> CheckResult:
    """Against `F.cross_entropy(label_smoothing=eps, ignore_index=PAD)`, with padding and a
    class whose probability underflows to 0."""
    g = fresh_generator()

    def case(extreme: bool) -> Callable[[], str | None]:
        def run() -> str | None:
            N, V = _randint(g, 5, 20), _randint(g, 5, 40)
            eps = float(torch.empty(1).uniform_(0.05, 0.3, generator=g))
            logits = torch.randn(N, V, generator=g) * 3
            target = torch.randint(3, V, (N,), generator=g)
            target[torch.randperm(N, generator=g)[: N // 3]] = PAD
            if extreme:
                logits[:, 2] = -200.0  # a probability of exactly 0 in float32
            expected = F.cross_entropy(logits, target, ignore_index=PAD, label_smoothing=eps)
            got = fn(logits.clone(), target.clone(), eps)
            got_t = torch.as_tensor(got, dtype=torch.float64) if not isinstance(got, Tensor) else got
            if got_t.numel() != 1:
                return f"return one number (the mean over real tokens), got shape {tuple(got_t.shape)}"
            got_f = float(got_t)
            if not math.isfinite(got_f):
                return (
                    "the loss is not finite when one probability is 0: compute log p with "
                    "torch.log_softmax, not torch.log(softmax(...))"
                )
            if abs(got_f - float(expected)) <= 1e-4 + 1e-4 * abs(float(expected)):
                return None  # right (the hints below are for answers that differ from it)
            plain = float(F.cross_entropy(logits, target, ignore_index=PAD))
            if abs(got_f - plain) < 1e-5 * max(1, abs(plain)):
                return "this is the plain cross-entropy: the epsilon * mean(-log p) term is missing"
            wrong_only = float(_smoothed_over_wrong_classes(logits, target, eps))
            if abs(got_f - wrong_only) < 1e-4 * max(1, abs(wrong_only)) and not torch.isclose(
                got_t.reshape(()).double(), expected.double(), atol=1e-4, rtol=1e-4
            ):
                return (
                    "you spread epsilon over the V - 1 wrong classes (epsilon / (V - 1) each), a convention some "
                    "implementations use. The course spreads it over all V classes, as Szegedy et al. (2016) "
                    "define label smoothing and F.cross_entropy(label_smoothing=) computes: epsilon / V each, "
                    "the correct class included, i.e. (1 - eps) * (-log p_y) + eps * mean over c of (-log p_c)"
                )
            moved = logits.clone()  # other logits where the target is PAD: the loss must not move
            pad = target == PAD
            moved[pad] = torch.randn(int(pad.sum()), V, generator=g) * 3
            again = float(torch.as_tensor(fn(moved, target.clone(), eps)).reshape(()))
            if abs(again - got_f) > 1e-6 * max(1, abs(got_f)):
                return "positions whose target is PAD (id 0) must count for nothing, in the sum and the mean"
            return compare(
                got_t.reshape(()), expected, f"the loss (N={N}, V={V}, epsilon={eps:.3f})", atol=1e-4
            )

        return run

    return run_trials(
        "label smoothing",
        [case(False), case(False), case(True)],
        "equal to F.cross_entropy(label_smoothing=eps, ignore_index=PAD) on fresh logits, finite when a probability is 0.",
    )


def _step_case(g: torch.Generator) -> tuple[Transformer, tuple[Tensor, Tensor, Tensor], float]:
    """A small random float64 model (no dropout) and a padded batch (src, tgt_in, tgt_out)."""
    V = _randint(g, 8, 16)
    cfg = TransformerConfig(
        V, V, d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, dropout=0.0, max_len=16
    )
    with torch.random.fork_rng():
        torch.manual_seed(_randint(g, 0, 2**31 - 2))
        model = Transformer(cfg).double()
    B, S, T = _randint(g, 2, 4), _randint(g, 3, 7), _randint(g, 2, 6)
    src, _ = _padded_targets(g, B, S, V)
    tgt_in, tgt_out = _reference_io(*_padded_targets(g, B, T, V))
    eps = round(float(torch.empty(1).uniform_(0.05, 0.3, generator=g)), 3)
    return model, (src, tgt_in, tgt_out), eps


def _adam(model: nn.Module) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9)


def _reference_step(model, optimizer, batch, eps: float, clip_norm: float) -> tuple[float, list[Tensor]]:  # noqa: ANN001
    """The step as Trainer.train_step takes it; returns the loss and the gradients before clipping."""
    src, tgt_in, tgt_out = batch
    model.train()
    loss = label_smoothing_loss(model(src, tgt_in), tgt_out, eps)  # masks built from PAD, causal
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    raw = [p.grad.clone() for p in model.parameters()]
    nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return loss.item(), raw


def _loss_hint(got: float, logits: Tensor, tgt_out: Tensor, eps: float) -> str | None:
    """Name the usual slip when the returned loss is one of the known wrong ones."""
    flat, y = logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1)

    def near(value: Tensor) -> bool:
        return abs(got - float(value)) < 1e-7 * max(1.0, abs(float(value)))

    if near(F.cross_entropy(flat, y, ignore_index=PAD)):
        return "the loss is the plain cross-entropy: smooth the target with epsilon"
    if near(F.cross_entropy(flat, y, label_smoothing=eps)):
        return "the positions whose target is PAD count in your loss: average over the real tokens only"
    keep = y != PAD
    if near(_smoothed_over_wrong_classes(flat[keep], y[keep], eps)):
        return (
            "spread epsilon over all V classes (epsilon / V each, the correct one included), as in exercise 2"
        )
    return None


@checker(
    Trainer, Trainer.train_step, label_smoothing_loss, cross_entropy, F.cross_entropy, nn.CrossEntropyLoss
)
def check_train_step(fn: Callable[..., float]) -> CheckResult:
    """fn(model, optimizer, src, tgt_in, tgt_out, epsilon, clip_norm) -> the loss (a number), with
    the clipped gradients left in .grad and the weights updated by optimizer.step(); compared with
    a reference step on a copy of the same model, after one earlier step (so Adam has a state)."""
    g = fresh_generator()

    def trial() -> str | None:
        model, batch, eps = _step_case(g)
        ref = copy.deepcopy(model)
        opt, ref_opt = _adam(model), _adam(ref)
        for m, o in ((model, opt), (ref, ref_opt)):  # one earlier step, identical on both
            _reference_step(m, o, batch, eps, clip_norm=1.0)
        before = [p.detach().clone() for p in model.parameters()]
        probe = copy.deepcopy(ref)  # a clip threshold below the gradient norm, so that clipping matters
        logits = probe(*batch[:2])  # (B, T, V) before the step
        loss = label_smoothing_loss(logits, batch[2], eps)
        grads = torch.autograd.grad(loss, list(probe.parameters()), allow_unused=True)
        norm = float(torch.sqrt(sum((gr**2).sum() for gr in grads if gr is not None)))
        clip_norm = round(norm * float(torch.empty(1).uniform_(0.3, 0.7, generator=g)), 4)
        stale = [p.grad.clone() for p in model.parameters()]  # the earlier step's gradients
        src, tgt_in, tgt_out = (t.clone() for t in batch)
        got = fn(model, opt, src, tgt_in, tgt_out, eps, clip_norm)
        expected, raw = _reference_step(ref, ref_opt, batch, eps, clip_norm)
        where = f"(epsilon={eps}, clip_norm={clip_norm})"
        try:
            got = float(got)
        except (TypeError, ValueError):
            return f"return the loss as a number (loss.item()), got {type(got).__name__}"
        if not math.isclose(got, expected, rel_tol=1e-7, abs_tol=1e-9):
            hint = _loss_hint(got, logits.detach(), batch[2], eps)
            return hint or f"the loss should be {expected:.6f}, yours is {got:.6f} {where}"
        params = list(model.parameters())
        if any(p.grad is None for p in params):
            return (
                "some gradients are missing after your step: zero the old ones before loss.backward() "
                "(not after optimizer.step()), so that the clipped gradients stay in .grad"
            )
        ref_grads = [p.grad for p in ref.parameters()]

        def same(xs: list[Tensor], ys: list[Tensor]) -> bool:
            return all(torch.allclose(x, y, atol=1e-10, rtol=1e-7) for x, y in zip(xs, ys))

        got_grads = [p.grad for p in params]
        if not same(got_grads, ref_grads):
            if same(got_grads, raw):
                return f"the gradients are not clipped: scale them so that their total norm is at most {clip_norm}"
            summed = [a + b for a, b in zip(raw, stale)]
            total = float(torch.sqrt(sum((s**2).sum() for s in summed)))
            clipped = [s * min(1.0, clip_norm / (total + 1e-6)) for s in summed]
            if same(got_grads, summed) or same(got_grads, clipped):
                return (
                    "the earlier step's gradients were added to this step's: call optimizer.zero_grad() first"
                )
            return f"the gradients in .grad differ from the reference step's {where}"
        if same([p.detach() for p in params], before):
            return "the weights did not change: finish with optimizer.step()"
        if not same([p.detach() for p in params], [p.detach() for p in ref.parameters()]):
            return f"the weights after your step differ from the reference step's {where}"
        return None

    return run_trials(
        "training step",
        [trial] * 2,
        "same loss, same clipped gradients and same weights after Adam as the reference step. Well done!",
    )
