"""Checkers for lesson 11, the complete model.

check_training_hours(fn)        fn(n_params, n_tokens, n_gpus, flops_per_gpu, utilisation) -> hours, by C = 6ND
check_choose_device(fn)         fn(cuda, mps, prefer=None) -> "cuda" | "mps" | "cpu", impossible requests refused
check_resume(save_fn, load_fn)  save_fn(path, model, optimizer, scheduler, step) writes everything a run needs
                                to continue, as plain data, atomically; load_fn(path, model, optimizer,
                                scheduler) -> step restores it into fresh objects. A run stopped, saved,
                                reloaded and continued must end with the same weights as one never stopped
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from ..atomic import atomic_write
from ..checkpoint import atomic_torch_save, load_checkpoint, read_model_file, save_checkpoint, save_model_file
from ..data import EOS, SOS
from ..device import one_thread, pick_device
from ..flops import approx_training_flops
from ..losses import label_smoothing_loss
from ..model import Transformer, TransformerConfig
from ..schedule import make_optimizer, make_scheduler, transformer_lr
from ..train import Trainer
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


# --- a checkpoint you can resume from ------------------------------------------------------------------
CopyBatch = tuple[Tensor, Tensor, Tensor]  # src (B, T), tgt_in (B, T + 1), tgt_out (B, T + 1)


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _copy_batches(g: torch.Generator, n: int, V: int, B: int, T: int) -> list[CopyBatch]:
    """n batches of a toy copy task: src (B, T) ids in [3, V), tgt_in = SOS + src, tgt_out = src + EOS."""
    batches = []
    for _ in range(n):
        src = torch.randint(3, V, (B, T), generator=g)  # (B, T), no padding
        tgt_in = torch.cat([torch.full((B, 1), SOS), src], dim=1)  # (B, T + 1)
        tgt_out = torch.cat([src, torch.full((B, 1), EOS)], dim=1)  # (B, T + 1)
        batches.append((src, tgt_in, tgt_out))
    return batches


def _fresh_run(
    cfg: TransformerConfig, warmup: int, seed: int
) -> tuple[Transformer, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """A new model (initialised from `seed`), Adam(0.9, 0.98, 1e-9) and the warm-up of equation (3)."""
    torch.manual_seed(seed)
    model = Transformer(cfg)
    optimizer = make_optimizer(model)  # section 5.3
    return model, optimizer, make_scheduler(optimizer, cfg.d_model, warmup)


def _train_step(
    model: Transformer,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    b: CopyBatch,
) -> None:
    """One step as in lesson 09: teacher forcing with dropout on, label-smoothed loss, Adam, schedule."""
    src, tgt_in, tgt_out = b
    model.train()
    loss = label_smoothing_loss(model(src, tgt_in), tgt_out, 0.1)  # (B, T + 1, V) logits -> scalar
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()


@contextlib.contextmanager
def _renames() -> Iterator[list[tuple[str, Path, Path]]]:
    """Record (kind, source, target) of every os.replace and os.rename (Path.replace and Path.rename
    use them) made while the context is open."""
    calls: list[tuple[str, Path, Path]] = []
    real = {"replace": os.replace, "rename": os.rename}

    def spy(kind: str) -> Callable:
        def call(src, dst, *args, **kwargs):  # noqa: ANN001, ANN202
            with contextlib.suppress(TypeError, ValueError, OSError):
                calls.append((kind, Path(os.fsdecode(src)).resolve(), Path(os.fsdecode(dst)).resolve()))
            return real[kind](src, dst, *args, **kwargs)

        return call

    os.replace, os.rename = spy("replace"), spy("rename")
    try:
        yield calls
    finally:
        os.replace, os.rename = real["replace"], real["rename"]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, modification time, size) of a file, to tell whether a save changed it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _after_save(path: Path, calls: list[tuple[str, Path, Path]], which: str) -> str | None:
    """What is wrong with the folder and the file after a save, or None."""
    if not path.is_file():
        return f"after {which} there is no file at `path`: write the checkpoint there"
    others = sorted(p.name for p in path.parent.iterdir() if p.name != path.name)
    if others:
        return (
            f"after {which} the folder also holds {others[0]!r}: a temporary file was left behind. "
            "os.replace(tmp, path) moves it onto `path`, leaving nothing else"
        )
    into = [(kind, src) for kind, src, dst in calls if dst == path.resolve()]
    if not into:
        return (
            f"{which} wrote the file in place, so a crash halfway would leave a truncated checkpoint "
            "and no old one: write to a temporary file in the same folder, then os.replace(tmp, path)"
        )
    kind, src = into[-1]
    if src.parent != path.parent.resolve():
        return (
            f"{which} moved a temporary file from another folder onto `path`: make it in the folder of "
            "`path`, where os.replace is atomic (across file systems it fails)"
        )
    if kind == "rename":
        return (
            f"{which} used os.rename (or Path.rename): use os.replace, which replaces an existing file on "
            "every system (os.rename refuses to on Windows)"
        )
    try:
        torch.load(path, weights_only=True)
    except Exception as e:
        return (
            f"after {which} the file does not load with torch.load(path, weights_only=True) "
            f"({type(e).__name__}): save plain data only (the state_dict()s, the step as an int, the "
            "RNG state tensor), never the model or optimiser objects themselves"
        )
    return None


def _as_step(got: object) -> int | None:
    if isinstance(got, bool):
        return None
    if isinstance(got, int):
        return got
    if isinstance(got, Tensor) and got.numel() == 1 and not got.is_floating_point():
        return int(got)
    return None


@checker(
    save_checkpoint,
    load_checkpoint,
    atomic_torch_save,
    atomic_write,
    save_model_file,
    read_model_file,
    Trainer,
    label="resumable checkpoint",
)
def check_resume(
    save_fn: Callable[..., None],
    load_fn: Callable[..., int],
) -> CheckResult:
    """save_fn(path, model, optimizer, scheduler, step); load_fn(path, model, optimizer, scheduler) -> step.

    Run A trains a small Transformer (dropout > 0, Adam, the warm-up schedule) for n steps in one go.
    Run B trains the same for k1 steps, saves, trains to k, saves again over the file, then scrambles
    the global RNG, builds a fresh model, optimiser and scheduler (another initialisation), loads the
    file into them and trains to n. The weights must equal run A's bit for bit (the CPU is
    deterministic), and each forgotten piece of the state is named by its symptom first."""
    g = fresh_generator()

    def trial_for(fixed: bool) -> Callable[[], str | None]:
        def trial() -> str | None:
            if fixed:  # the first trial: every piece of the state matters after k = 2 of n = 4 steps
                k1, k, n, dropout = 1, 2, 4, 0.1
                d_model, d_ff, V, B, T = 8, 16, 10, 2, 4
            else:
                n = _randint(g, 4, 7)
                k = _randint(g, 2, n - 1)
                k1 = _randint(g, 1, k - 1)
                dropout = (1 + _randint(g, 0, 2)) / 10
                d_model, d_ff = 4 * _randint(g, 2, 4), 8 * _randint(g, 2, 4)
                V, B, T = _randint(g, 6, 16), _randint(g, 2, 4), _randint(g, 3, 6)
            warmup = n + _randint(g, 2, 8)  # the whole run stays in the warm-up
            init, run = _randint(g, 0, 2**31 - 2), _randint(g, 0, 2**31 - 2)
            other = init + 1 + _randint(g, 0, 1000)  # another initialisation for the fresh objects
            cfg = TransformerConfig(
                V,
                V,
                d_model=d_model,
                n_heads=2,
                n_encoder_layers=1,
                n_decoder_layers=1,
                d_ff=d_ff,
                dropout=dropout,
                max_len=16,
            )
            batches = _copy_batches(g, n, V, B, T)
            where = f"(stopped after step {k} of {n}, dropout {dropout})"
            with torch.random.fork_rng(devices=[]):
                # run A: n steps in one go
                model, optimizer, scheduler = _fresh_run(cfg, warmup, init)
                torch.manual_seed(run)
                for b in batches:
                    _train_step(model, optimizer, scheduler, b)
                final = {name: t.clone() for name, t in model.state_dict().items()}

                # run B: k1 steps, save; on to k, save over the same file; then load into fresh objects
                model, optimizer, scheduler = _fresh_run(cfg, warmup, init)
                torch.manual_seed(run)
                with tempfile.TemporaryDirectory() as folder:
                    path = Path(folder) / "run.pt"
                    for b in batches[:k1]:
                        _train_step(model, optimizer, scheduler, b)
                    with _renames() as calls:
                        save_fn(path, model, optimizer, scheduler, k1)
                    hint = _after_save(path, calls, "the first save")
                    if hint:
                        return hint
                    for b in batches[k1:k]:
                        _train_step(model, optimizer, scheduler, b)
                    weights = {name: t.clone() for name, t in model.state_dict().items()}
                    adam = copy.deepcopy(optimizer.state_dict()["state"])  # {param index: moments, step}
                    lr, rng = optimizer.param_groups[0]["lr"], torch.get_rng_state()
                    before = _stamp(path)
                    with _renames() as calls:
                        try:
                            save_fn(path, model, optimizer, scheduler, k)
                        except NotImplementedError:
                            raise
                        except Exception as e:
                            return (
                                f"saving over an existing checkpoint raised {type(e).__name__}: {e} "
                                "(os.replace replaces the old file)"
                            )
                    if _stamp(path) == before:
                        return (
                            "the second save left the first file as it was: saving again must replace "
                            "the checkpoint with the newer state"
                        )
                    hint = _after_save(path, calls, "the second save (over the first file)")
                    if hint:
                        return hint
                    # fresh objects from another initialisation, and the global RNG scrambled
                    model, optimizer, scheduler = _fresh_run(cfg, warmup, other)
                    torch.rand(_randint(g, 1, 100))
                    got = load_fn(path, model, optimizer, scheduler)
                    rng_after = torch.get_rng_state()

                step = _as_step(got)
                if got is None:
                    return (
                        f"load_training_state returned None: return the step that was saved ({k}), so that "
                        "the training loop goes on counting from there"
                    )
                if step is None:
                    return f"load_training_state should return the step as an int, got {type(got).__name__}"
                if step == k1 and k1 != k:
                    return (
                        f"load_training_state returned {k1}, the step of the first save, not {k}: the "
                        "second save must replace the file"
                    )
                if step != k:
                    return f"load_training_state returned step {step}, expected {k}, the step that was saved"
                state = model.state_dict()
                if state.keys() != weights.keys() or not all(
                    torch.equal(state[w], weights[w]) for w in weights
                ):
                    return (
                        "after loading, the model's weights are not the saved ones: load the saved "
                        "state_dict into the model you are given (model.load_state_dict)"
                    )
                moments = optimizer.state_dict()["state"]
                if not moments:
                    return (
                        "after loading, Adam's moments restart from zero (the optimiser's state is empty), so "
                        "the next steps differ: save optimizer.state_dict() and load it with "
                        "optimizer.load_state_dict"
                    )
                for i, saved in adam.items():
                    for key, t in saved.items():
                        mine = moments.get(i, {}).get(key)
                        if not (isinstance(mine, Tensor) and torch.equal(mine, t)):
                            return (
                                f"after loading, the optimiser's {key!r} of parameter {i} differs from the "
                                "saved one: load the saved optimizer.state_dict() as it is"
                            )
                if scheduler.last_epoch != k:
                    e = scheduler.last_epoch
                    counted = f"after loading, the schedule has counted {e} steps instead of {k}"
                    if e > k:
                        return f"{counted}: load the saved scheduler.state_dict() as it is"
                    return (
                        f"the learning rate restarts its warm-up: {counted}, so its rates start again from "
                        f"{transformer_lr(e + 2, d_model, warmup):.3g} instead of going on from "
                        f"{transformer_lr(k + 2, d_model, warmup):.3g}: save scheduler.state_dict() "
                        "and load it with scheduler.load_state_dict"
                    )
                lr_after = optimizer.param_groups[0]["lr"]
                if lr_after != lr:
                    return f"after loading, the learning rate is {lr_after:.3g}, expected {lr:.3g} {where}"
                if not torch.equal(rng_after, rng):
                    return (
                        "the random generator's state was not restored: after resuming, dropout draws "
                        "other masks than the uninterrupted run, and the weights drift apart (with "
                        "dropout > 0). Save torch.get_rng_state() and restore it with torch.set_rng_state"
                    )
                with torch.random.fork_rng(devices=[]):
                    torch.set_rng_state(rng_after)
                    for b in batches[k:]:
                        _train_step(model, optimizer, scheduler, b)
                state = model.state_dict()
                if not all(torch.equal(state[w], final[w]) for w in final):
                    diff = max(float((state[w].double() - final[w].double()).abs().max()) for w in final)
                    return (
                        f"the resumed run ends with other weights than the uninterrupted one {where}, "
                        f"largest difference {diff:.3g}"
                    )
            return None

        return trial

    with one_thread():  # a tiny model: one thread is fastest, and a busy machine does not slow it down
        return run_trials(
            "resumable checkpoint",
            [trial_for(True), trial_for(False), trial_for(False)],
            "stopped, saved twice, loaded into fresh objects and continued: the same weights, bit for bit, "
            "as a run never stopped.",
        )
