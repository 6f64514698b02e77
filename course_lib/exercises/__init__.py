"""Exercise checkers: each tells the learner, in one friendly line, whether an answer is right.

A checker calls the learner's function on *fresh* random inputs (never one fixed example),
compares with the library's reference, and returns a `CheckResult` whose printed form is
"✅ ..." or "❌ ... (what differs)". Lesson-specific checkers live in `lessonNN` modules
next to this one and are built from the helpers here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return ("✅ " if self.passed else "❌ ") + self.message

    __str__ = __repr__


def ok(message: str) -> CheckResult:
    return CheckResult(True, message)


def fail(message: str) -> CheckResult:
    return CheckResult(False, message)


# None: seeds come from the OS. The test suite sets a random.Random seeded with the test's seed,
# so that a checker's inputs in a failing test can be drawn again.
seed_source: random.Random | None = None


def fresh_generator() -> torch.Generator:
    """A generator with a new seed: every check sees new inputs."""
    g = torch.Generator()
    if seed_source is None:
        g.seed()
    else:
        g.manual_seed(seed_source.getrandbits(63))
    return g


def compare(got: object, expected: Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """None when `got` matches `expected`; otherwise one sentence saying what differs."""
    if not isinstance(got, Tensor):
        try:
            got = torch.as_tensor(got)
        except Exception:
            return f"{what} should be a tensor, got {type(got).__name__}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    got = got.detach().to(torch.float64)
    exp = expected.detach().to(torch.float64)
    if torch.isnan(got).any() and not torch.isnan(exp).any():
        return f"{what} contains NaN"
    if not torch.allclose(got, exp, atol=atol, rtol=rtol, equal_nan=True):
        diff = (got - exp).abs().nan_to_num(nan=float("inf")).max().item()
        return f"{what} differs from the expected values (largest difference {diff:.3g})"
    return None


def run_trials(
    name: str,
    trials: Iterable[Callable[[], str | None]],
    success: str,
) -> CheckResult:
    """Run each trial (a function returning None or a hint); stop at the first hint.

    Exceptions raised by the learner's code become a friendly failure, never a traceback.
    """
    for trial in trials:
        try:
            hint = trial()
        except Exception as e:  # the learner's code failed: say how, in one line
            return fail(f"{name}: your code raised {type(e).__name__}: {e}")
        if hint is not None:
            return fail(f"{name}: {hint}")
    return ok(f"{name}: {success}")
