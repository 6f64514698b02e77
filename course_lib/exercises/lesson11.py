"""Checkers for lesson 11 (the complete model): training compute, a device picker,
and a checkpoint round trip."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from ..device import pick_device
from ..flops import approx_training_flops
from ..model import Transformer, TransformerConfig
from . import CheckResult, checker, fresh_generator, run_trials


def reference_training_hours(
    n_params: float, n_tokens: float, n_gpus: int, flops_per_gpu: float, utilisation: float
) -> float:
    """Hours to train: C = 6 N D FLOPs, done at n_gpus x flops_per_gpu x utilisation FLOP/s."""
    return 6 * n_params * n_tokens / (n_gpus * flops_per_gpu * utilisation) / 3600


@checker(approx_training_flops)
def check_training_hours(fn: Callable[[float, float, int, float, float], float]) -> CheckResult:
    """fn(n_params, n_tokens, n_gpus, flops_per_gpu, utilisation) -> hours of training."""
    g = fresh_generator()

    def trial() -> str | None:
        u = torch.rand(5, generator=g).tolist()
        N, D = 10 ** (6 + 5 * u[0]), 10 ** (8 + 4 * u[1])
        gpus, peak, util = 1 + int(u[2] * 1000), 10 ** (13 + 2 * u[3]), 0.2 + 0.5 * u[4]
        expected = reference_training_hours(N, D, gpus, peak, util)
        got = fn(N, D, gpus, peak, util)
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            try:
                got = float(got)
            except Exception:
                return f"return a number of hours, got {type(got).__name__}"
        if math.isclose(got, expected, rel_tol=1e-6):
            return None
        ratio = got / expected if expected else float("inf")
        hints = {
            1
            / 3: "that is forward passes only: training costs 6 N FLOPs per token (2 N forward, 4 N backward)",
            3600.0: "that looks like seconds: divide by 3600 to get hours",
            1 / 60: "check the unit: 3600 seconds in an hour",
            60.0: "check the unit: 3600 seconds in an hour",
        }
        for r, hint in hints.items():
            if math.isclose(ratio, r, rel_tol=1e-3):
                return hint
        if math.isclose(ratio, util * util, rel_tol=1e-3) or math.isclose(
            ratio, 1 / (util * util), rel_tol=1e-3
        ):
            return "the GPUs sustain flops_per_gpu x utilisation: divide by it once"
        if math.isclose(ratio, util, rel_tol=1e-3) or math.isclose(ratio, 1 / util, rel_tol=1e-3):
            return "the GPUs reach only a fraction `utilisation` of their peak: divide by n_gpus x flops_per_gpu x utilisation"
        return f"expected {expected:.4g} hours for N={N:.3g}, D={D:.3g}, {gpus} GPUs, got {got:.4g}"

    return run_trials(
        "training time", [trial] * 6, "6 N D FLOPs over the cluster's sustained speed, in hours."
    )


def reference_choose_device(cuda: bool, mps: bool, prefer: str | None = None) -> str:
    """The rule of `course_lib.device.pick_device`, on plain flags."""
    if prefer is not None:
        if prefer not in ("cpu", "cuda", "mps"):
            raise ValueError(f"prefer must be 'cpu', 'cuda' or 'mps', got {prefer!r}")
        if (prefer == "cuda" and not cuda) or (prefer == "mps" and not mps):
            raise ValueError(f"prefer={prefer!r} but that device is not available")
        return prefer
    return "cuda" if cuda else "mps" if mps else "cpu"


@checker(pick_device)
def check_choose_device(fn: Callable[..., str]) -> CheckResult:
    """fn(cuda: bool, mps: bool, prefer: str | None = None) -> 'cuda' | 'mps' | 'cpu'; a
    preference that cannot be met (or is no device name) raises ValueError."""
    g = fresh_generator()
    cases = [
        (c, m, p) for c in (False, True) for m in (False, True) for p in (None, "cpu", "cuda", "mps", "tpu")
    ]
    order = torch.randperm(len(cases), generator=g).tolist()  # a fresh order every time

    def trial_for(cuda: bool, mps: bool, prefer: str | None) -> Callable[[], str | None]:
        def trial() -> str | None:
            call = f"choose_device(cuda={cuda}, mps={mps}, prefer={prefer!r})"
            try:
                expected = reference_choose_device(cuda, mps, prefer)
            except ValueError:
                try:
                    got = fn(cuda, mps, prefer)
                except ValueError:
                    return None
                return f"{call} returned {got!r}: it should raise ValueError (that device cannot be used)"
            got = fn(cuda, mps, prefer)
            if got != expected:
                why = (
                    " (CUDA first, then MPS, then the CPU)" if prefer is None else " (honour the preference)"
                )
                return f"{call} returned {got!r}, expected {expected!r}{why}"
            return None

        return trial

    return run_trials(
        "device picker",
        [trial_for(*cases[i]) for i in order],
        "CUDA, then MPS, then the CPU, and impossible requests refused.",
    )


@checker()
def check_checkpoint_roundtrip(fn: Callable[[Transformer, Path], Transformer]) -> CheckResult:
    """fn(model, path) -> a NEW model rebuilt from a file written at `path`, which must load
    with torch.load(path, weights_only=True)."""
    g = fresh_generator()

    def trial() -> str | None:
        r = torch.randint(0, 10**6, (6,), generator=g).tolist()
        cfg = TransformerConfig(
            8 + r[0] % 12,
            8 + r[1] % 9,
            d_model=8 * (1 + r[2] % 3),
            n_heads=2,
            n_encoder_layers=1 + r[3] % 2,
            n_decoder_layers=1 + r[4] % 2,
            d_ff=32,
            dropout=0.0,
            max_len=32,
            norm_first=bool(r[5] % 2),
        )
        with torch.random.fork_rng():
            torch.manual_seed(r[0] * 7 + r[5])
            model = Transformer(cfg).eval()
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "model.pt"
            new = fn(model, path)
            if not path.is_file():
                return f"nothing was written at {path.name}: save the checkpoint at the path you are given"
            try:
                torch.load(path, weights_only=True)
            except Exception as e:
                return (
                    "the file does not load with torch.load(weights_only=True): save plain data only "
                    f"(cfg.to_dict() and model.state_dict()), not objects ({type(e).__name__})"
                )
        if new is model:
            return "you returned the same model object: build a new Transformer from the file"
        if not isinstance(new, Transformer):
            return f"return a course_lib Transformer, got {type(new).__name__}"
        if new.cfg != model.cfg:
            return "the rebuilt model has a different config: save cfg.to_dict() and rebuild TransformerConfig(**d)"
        src = torch.randint(1, cfg.src_vocab_size, (2, 5), generator=g)
        tgt = torch.randint(1, cfg.tgt_vocab_size, (2, 4), generator=g)
        new.eval()
        with torch.no_grad():
            if not torch.equal(new(src, tgt), model(src, tgt)):
                return "the rebuilt model computes different outputs: load the saved state_dict into it"
        return None

    return run_trials(
        "checkpoint round trip", [trial] * 3, "saved as plain data, loaded safely, same outputs."
    )
