"""`python -m course_lib.train ...`: the course's training command.

The shipped checkpoint assets/dates_model.pt was made with this command (its size, accuracy and
the time it took are in the README, "Training the final model from the shell", and in the file):

    python -m course_lib.train --task dates --steps 3000 --out assets/dates_model.pt \\
        --d-model 128 --layers 2 --heads 4 --d-ff 256 --dropout 0.0 --batch-size 128 \\
        --warmup 400 --lr-scale 0.5 --label-smoothing 0.1 --seed 0 --threads 1 --no-optimizer

The sizes and the recipe are also the command's defaults. Leave out --no-optimizer to keep
Adam's state in the file (8 MB) and continue exactly with --resume.

The same command runs unchanged on a GPU (`--device cuda`, or no `--device` at all).

Equation (3) was made for 100,000 steps: after its peak it decays as 1/sqrt(step), so a run of a
few hundred steps ends with a learning rate that still moves the weights. For short runs,
`--schedule linear` warms up linearly for --warmup steps (default 50 with this schedule) to
--peak-lr (default 3e-3) and decays linearly to 2% of it at the last step; the same model then
reaches 99% held-out exact match on the dates in about 300-350 steps instead of about 850-950
(docs/benchmarks.md, row 2):

    python -m course_lib.train --task dates --steps 400 --schedule linear --out dates_fast.pt

Long runs, interrupts and resuming (the command line):
  * every argument is checked before any work, with argparse's one-line message and exit code 2
    (`--clip-norm 0`, `--steps -5`, `--eval-n 0`, an --out that is a folder or cannot be written, ...);
    `TrainConfig` and `evaluate` refuse the same values with a ValueError;
  * with --out, the run also saves every --save-every steps (default 500; 0: only at the end), with
    the optimiser, atomically (course_lib.checkpoint): killing the process never damages the file;
  * Ctrl-C (SIGINT) or SIGTERM stops between two steps, saves to --out with the optimiser and prints
    one line with the command that resumes; the exit code is then 128 + the signal (130 for Ctrl-C,
    143 for SIGTERM), as for any program stopped by a signal, so that `train && next` does not go on;
  * a NaN or infinite loss stops the run with exit code 1 and saves nothing, so --out keeps its
    last good checkpoint;
  * `--resume run.pt` continues with the checkpoint's task, model and training settings: a flag
    given explicitly that differs from them (`--d-model 64` for a d_model=128 run) is an error
    naming both values. --steps is the total to reach (default: the run's planned total). The
    linear schedule is planned for its run's --steps (its decay ends there), so a linear run
    resumes up to that total and no further: asking for more is an error, never a silently
    stretched schedule. Equation (3) does not depend on the total, so a paper run can be extended.
    Either way the resumed run ends bit for bit where an uninterrupted run of the same total would.

In parallel (lesson 15, course_lib.distributed):
  * `torchrun --nproc_per_node=N -m course_lib.train ...` trains with DistributedDataParallel: the
    command joins the process group torchrun describes (gloo on the CPU, nccl on CUDA, one GPU per
    process), rank r trains on rows r::N of each step's global batch (--batch-size is the global
    batch), and each rank's summed token loss is divided by the global token count (all-reduced)
    times N, so DDP's average of the gradients is the single-process gradient of the whole batch.
    Only rank 0 prints, evaluates and saves (atomically); a stop signal on any rank stops all of
    them at the same step; --resume works the same way, with any number of processes. Across
    machines: the same command on each, with --nnodes, --node_rank and --master_addr/--master_port
    (or --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT);
  * `--accum-steps K` splits each (per-rank) batch into K micro-batches and adds their gradients
    (each micro-batch's token sum divided by the global token count): the same step with the
    activations of one micro-batch in memory. It is saved in the checkpoint and may be changed on
    --resume (the same gradients, to round-off).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from .cli import check_out_path, fraction, nonneg_int, positive_float, positive_int
from .data import TASKS
from .device import describe_device, pick_device
from .distributed import info as dist_info
from .distributed import launched_by_torchrun
from .schedule import SCHEDULES
from .train import NonFiniteLossError, TrainConfig, Trainer, evaluate, model_for_task

# Defaults of the flags that define the run. They are None in the parser so that a flag given
# explicitly can be told apart from a default: with --resume, an explicit one that differs from
# the checkpoint is an error.
MODEL_DEFAULTS = {"task": "dates", "d_model": 128, "layers": 2, "heads": 4, "d_ff": 256, "dropout": 0.0}
RUN_DEFAULTS = {
    "steps": 3000,
    "batch_size": 128,
    "schedule": "paper",
    "lr_scale": 0.5,
    "peak_lr": 3e-3,
    "label_smoothing": 0.1,
    "clip_norm": 1.0,
    "seed": 0,
}
WARMUP_DEFAULTS = {"paper": 400, "linear": 50}
SAVE_EVERY_DEFAULT = 500  # when --out is given


def _parser() -> argparse.ArgumentParser:
    m, r = MODEL_DEFAULTS, RUN_DEFAULTS
    p = argparse.ArgumentParser(
        prog="python -m course_lib.train",
        description="Train the course's Transformer from the shell. Ctrl-C (or SIGTERM) stops between two "
        "steps, saves to --out with the optimiser and prints the command that resumes the run (exit code "
        "130, or 143 for SIGTERM). With --resume, the model and training settings come from the "
        "checkpoint: a flag given that contradicts it is an error.",
    )
    p.add_argument("--task", default=None, choices=sorted(TASKS), help=f"default {m['task']}")
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help=f"total optimisation steps (default {r['steps']}; with --resume, the run's planned total). "
        "A --schedule linear run resumes up to its planned total, never beyond: its decay ends there.",
    )
    p.add_argument("--out", default=None, help="where to save the checkpoint (.pt)")
    p.add_argument(
        "--save-every",
        type=nonneg_int,
        default=None,
        help=f"also save to --out every N steps, with the optimiser (default {SAVE_EVERY_DEFAULT} when "
        "--out is given; 0: only at the end)",
    )
    p.add_argument("--resume", default=None, help="a checkpoint saved with its optimiser to continue from")
    p.add_argument("--d-model", type=positive_int, default=None, help=f"default {m['d_model']}")
    p.add_argument(
        "--layers",
        type=positive_int,
        default=None,
        help=f"encoder layers = decoder layers (default {m['layers']})",
    )
    p.add_argument("--heads", type=positive_int, default=None, help=f"default {m['heads']}")
    p.add_argument("--d-ff", type=positive_int, default=None, help=f"default {m['d_ff']}")
    p.add_argument("--dropout", type=fraction, default=None, help=f"default {m['dropout']}")
    p.add_argument("--batch-size", type=positive_int, default=None, help=f"default {r['batch_size']}")
    p.add_argument(
        "--accum-steps",
        type=positive_int,
        default=None,
        help="gradient accumulation: split each batch into K micro-batches whose gradients add up to the "
        "whole batch's (default 1; with --resume, the checkpoint's)",
    )
    p.add_argument(
        "--schedule",
        default=None,
        choices=SCHEDULES,
        help="paper (default): equation (3); linear: warm-up to --peak-lr, linear decay to the last step",
    )
    p.add_argument(
        "--warmup",
        type=positive_int,
        default=None,
        help=f"warm-up steps (default {WARMUP_DEFAULTS['paper']} for paper, {WARMUP_DEFAULTS['linear']} for linear)",
    )
    p.add_argument(
        "--lr-scale",
        type=positive_float,
        default=None,
        help=f"factor on equation (3) (paper schedule; default {r['lr_scale']})",
    )
    p.add_argument(
        "--peak-lr",
        type=positive_float,
        default=None,
        help=f"the linear schedule's peak (default {r['peak_lr']})",
    )
    p.add_argument("--label-smoothing", type=fraction, default=None, help=f"default {r['label_smoothing']}")
    p.add_argument(
        "--clip-norm",
        type=positive_float,
        default=None,
        help=f"gradient-norm clipping (default {r['clip_norm']})",
    )
    p.add_argument("--seed", type=nonneg_int, default=None, help=f"default {r['seed']}")
    p.add_argument("--device", default=None, choices=["cpu", "cuda", "mps"])
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument(
        "--eval-every",
        type=nonneg_int,
        default=None,
        help="held-out evaluation every N steps (default 250; 0: none)",
    )
    p.add_argument(
        "--eval-n", type=positive_int, default=1000, help="held-out examples for the final evaluation"
    )
    p.add_argument("--no-optimizer", action="store_true", help="save the model only (a smaller file)")
    p.add_argument("--no-progress", action="store_true")
    return p


# flag -> (its attribute in the namespace, how to read the checkpoint's value from a Trainer)
_STORED: dict[str, tuple[str, Callable[[Trainer], object]]] = {
    "--task": ("task", lambda t: t.task.name),
    "--d-model": ("d_model", lambda t: t.model.cfg.d_model),
    "--layers": ("layers", lambda t: t.model.cfg.n_encoder_layers),
    "--heads": ("heads", lambda t: t.model.cfg.n_heads),
    "--d-ff": ("d_ff", lambda t: t.model.cfg.d_ff),
    "--dropout": ("dropout", lambda t: t.model.cfg.dropout),
    "--batch-size": ("batch_size", lambda t: t.config.batch_size),
    "--schedule": ("schedule", lambda t: t.config.schedule),
    "--warmup": ("warmup", lambda t: t.config.warmup),
    "--lr-scale": ("lr_scale", lambda t: t.config.lr_scale),
    "--peak-lr": ("peak_lr", lambda t: t.config.peak_lr),
    "--label-smoothing": ("label_smoothing", lambda t: t.config.label_smoothing),
    "--clip-norm": ("clip_norm", lambda t: t.config.clip_norm),
    "--seed": ("seed", lambda t: t.config.seed),
}


class _StopRequest:
    """A signal handler that only records the signal: the loop checks it between two steps."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum


@contextlib.contextmanager
def _deferred_stop_signals() -> Iterator[_StopRequest]:
    """SIGINT and SIGTERM set a flag instead of stopping Python anywhere (e.g. halfway through a save).

    Only in the main thread (where Python delivers signals); a signal ignored by the parent shell
    (SIG_IGN, e.g. `nohup`) stays ignored. The previous handlers come back on exit."""
    stop = _StopRequest()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, stop)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_shares(p: argparse.ArgumentParser, batch_size: int, accum_steps: int) -> None:
    """Every process and every micro-batch needs at least one row of the batch."""
    world = dist_info().world_size
    if batch_size < world * accum_steps:
        flag = "--accum-steps" if accum_steps > 1 else "--batch-size"
        p.error(
            f"argument {flag}: a batch of {batch_size} rows shared by {world} process(es) x {accum_steps} "
            f"micro-batch(es) leaves some without a row; expected --batch-size >= {world * accum_steps}"
        )


def _resume_command(a: argparse.Namespace, steps: int) -> str:
    """The shell command that continues this run from --out."""
    d = dist_info()
    start = ["python", "-m"]
    if d.world_size > 1:
        start = ["torchrun", f"--nproc_per_node={os.environ.get('LOCAL_WORLD_SIZE', d.world_size)}", "-m"]
    parts = [*start, "course_lib.train", "--resume", a.out, "--steps", str(steps), "--out", a.out]
    for flag in ("--save-every", "--accum-steps", "--device", "--threads"):
        value = getattr(a, flag[2:].replace("-", "_"))
        if value is not None:
            parts += [flag, str(value)]
    if a.eval_n != 1000:
        parts += ["--eval-n", str(a.eval_n)]
    parts += [f for f, on in (("--no-optimizer", a.no_optimizer), ("--no-progress", a.no_progress)) if on]
    return shlex.join(parts)


def _resume(p: argparse.ArgumentParser, a: argparse.Namespace, device: torch.device) -> tuple[Trainer, int]:
    """Load --resume, refuse flags that contradict it, and decide the total number of steps."""
    try:
        trainer = Trainer.load(a.resume, device)
    except ValueError as e:
        p.error(f"argument --resume: {e}")
    conflicts = []
    for flag, (attr, stored) in _STORED.items():
        given, saved = getattr(a, attr), stored(trainer)
        if given is not None and given != saved:
            conflicts.append(f"{flag} {given} but the checkpoint has {saved}")
    if trainer.model.cfg.n_decoder_layers != trainer.model.cfg.n_encoder_layers and a.layers is not None:
        conflicts.append(
            f"--layers {a.layers} but the checkpoint has {trainer.model.cfg.n_decoder_layers} decoder layers"
        )
    if conflicts:
        p.error(
            f"argument --resume: {a.resume} continues a saved run with its own model and training settings; "
            f"{'; '.join(conflicts)} (leave these flags out, or start a new run without --resume)"
        )
    c = trainer.config
    steps = a.steps if a.steps is not None else c.total_steps
    if steps < 1:
        p.error(
            f"argument --steps: {a.resume} records no planned total, expected --steps N with N >= {trainer.step}"
        )
    if steps < trainer.step:
        p.error(f"argument --steps: expected at least the checkpoint's step {trainer.step}, got {steps}")
    if c.schedule == "linear" and steps > c.total_steps:
        p.error(
            f"argument --steps: {a.resume} follows a linear schedule that decays to its floor at step "
            f"{c.total_steps} (the run's planned --steps); expected at most {c.total_steps}, got {steps} "
            "(a resumed run keeps its schedule: start a new run for a longer one)"
        )
    if c.schedule == "paper":
        c.total_steps = steps  # equation (3) does not depend on it: recorded for the next resume
    if a.eval_every is not None:
        c.eval_every = a.eval_every  # evaluation does not change the training
    if a.accum_steps is not None:
        c.accum_steps = a.accum_steps  # the same gradient, to round-off
    _check_shares(p, c.batch_size, c.accum_steps)
    return trainer, steps


def _fresh(p: argparse.ArgumentParser, a: argparse.Namespace, device: torch.device) -> tuple[Trainer, int]:
    """A new model and TrainConfig from the flags and the defaults."""
    v = {
        k: getattr(a, k) if getattr(a, k) is not None else d
        for k, d in {**MODEL_DEFAULTS, **RUN_DEFAULTS}.items()
    }
    warmup = a.warmup if a.warmup is not None else WARMUP_DEFAULTS[v["schedule"]]
    if v["schedule"] == "linear" and not warmup < v["steps"]:
        p.error(
            f"argument --warmup: the linear schedule needs warm-up < --steps ({v['steps']}), got {warmup}"
        )
    _check_shares(p, v["batch_size"], a.accum_steps or 1)
    if v["d_model"] % v["heads"]:
        p.error(f"argument --heads: expected a divisor of --d-model ({v['d_model']}), got {v['heads']}")
    model = model_for_task(
        v["task"], v["d_model"], v["heads"], v["layers"], v["d_ff"], v["dropout"], seed=v["seed"]
    )
    cfg = TrainConfig(
        task=v["task"],
        batch_size=v["batch_size"],
        warmup=warmup,
        lr_scale=v["lr_scale"],
        schedule=v["schedule"],
        peak_lr=v["peak_lr"],
        total_steps=v["steps"],
        label_smoothing=v["label_smoothing"],
        clip_norm=v["clip_norm"],
        seed=v["seed"],
        eval_every=a.eval_every if a.eval_every is not None else 250,
        eval_n=200,
        accum_steps=a.accum_steps or 1,
    )
    return Trainer(model, cfg, device), v["steps"]


def _train_and_save(
    a: argparse.Namespace, trainer: Trainer, steps: int, save_every: int, stop: _StopRequest
) -> dict:
    """Train to `steps` with the periodic saves, then either save after a stop signal and exit
    (128 + the signal) or evaluate, print and save the final checkpoint; returns the metrics."""
    from tqdm.auto import tqdm

    main_rank = trainer.dist.is_main

    def periodic(tr: Trainer, rec: dict) -> None:
        if main_rank and save_every and tr.step % save_every == 0 and tr.step < steps:
            tr.save(a.out)
            tqdm.write(f"step {tr.step}: saved {a.out}")

    t0, cpu0 = time.perf_counter(), time.process_time()
    trainer.run(
        steps - trainer.step,
        progress=not a.no_progress,
        callback=periodic,
        should_stop=lambda: stop.signum is not None,
    )
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    if stop.signum is not None or trainer.step < steps:  # stopped (several processes: agreed by all)
        signum = stop.signum if stop.signum is not None else signal.SIGTERM
        if not main_rank:
            raise SystemExit(128 + signum)
        name = signal.Signals(signum).name
        if a.out:
            trainer.save(a.out)  # with the optimiser, whatever --no-optimizer says: it is for resuming
            print(
                f"{name}: stopped at step {trainer.step} of {steps} and saved {a.out}; "
                f"resume with: {_resume_command(a, steps)}"
            )
        else:
            print(f"{name}: stopped at step {trainer.step} of {steps}; nothing saved (no --out was given)")
        sys.stdout.flush()
        raise SystemExit(128 + signum)
    if not main_rank:
        return {}  # rank 0 evaluates, prints and saves
    ev = evaluate(trainer.model, trainer.task, "test", a.eval_n)
    metrics = {
        "heldout_exact_match": ev.exact_match,
        "heldout_n": ev.n,
        "heldout_cross_entropy": ev.cross_entropy,
        "heldout_perplexity": ev.perplexity,
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "tokens_per_second": trainer.tokens_per_second(),
        "device": describe_device(trainer.device),
        "torch": str(torch.__version__),
    }
    print(
        f"trained to step {trainer.step} in {seconds:.0f} s wall, {cpu_seconds:.0f} s CPU "
        f"({metrics['tokens_per_second']:,.0f} target tokens/s)"
    )
    print(f"held-out: {ev}")
    for s, t, g in ev.errors[:5]:
        print(f"  error: {s!r} -> {g!r} (expected {t!r})")
    if a.out:
        trainer.save(a.out, include_optimizer=not a.no_optimizer, metrics=metrics)
        print(f"saved {a.out} ({Path(a.out).stat().st_size / 1e6:.2f} MB)")
    sys.stdout.flush()
    return metrics


def main(argv: list[str] | None = None) -> dict:
    """`python -m course_lib.train ...` (see the module docstring and --help); returns the metrics.

    Every argument is checked before any work (exit code 2, argparse's one-line message). Ends with
    SystemExit(130) after Ctrl-C (143 after SIGTERM) once the run is saved, SystemExit(1) if the loss
    becomes NaN or infinite (nothing is saved: --out keeps its last good checkpoint).

    Started by torchrun (RANK and WORLD_SIZE in the environment), it joins the process group first
    and trains with DistributedDataParallel; only rank 0 prints, evaluates and saves."""
    p = _parser()
    a = p.parse_args(argv)
    if a.save_every and not a.out:
        p.error(f"argument --save-every: saving every {a.save_every} steps needs --out, which was not given")
    if a.out:
        check_out_path(p, a.out)
    try:
        device = pick_device(a.device)
    except ValueError as e:
        p.error(f"argument --device: {e}")
    if a.threads:
        torch.set_num_threads(a.threads)
    if not launched_by_torchrun():
        return _main(p, a, device)
    from .distributed import init_from_env

    _, device = init_from_env(device)  # gloo on the CPU, nccl on CUDA
    try:
        metrics = _main(p, a, device)
    except SystemExit:  # every rank ends the same way (an agreed stop, a diverged loss, a bad flag)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        raise
    torch.distributed.barrier()  # the others wait for rank 0's evaluation and save, then all leave together
    torch.distributed.destroy_process_group()
    return metrics


def _main(p: argparse.ArgumentParser, a: argparse.Namespace, device: torch.device) -> dict:
    """main() once the arguments are checked and the process group (if any) is joined."""
    from .checkpoint import NonFiniteWeightsError

    main_rank = dist_info().is_main
    say = print if main_rank else (lambda *args, **kwargs: None)
    trainer, steps = _resume(p, a, device) if a.resume else _fresh(p, a, device)
    if a.resume:
        say(f"resumed from {a.resume} at step {trainer.step}")
    save_every = (a.save_every if a.save_every is not None else SAVE_EVERY_DEFAULT) if a.out else 0
    n_params = sum(q.numel() for q in trainer.model.parameters())

    with _deferred_stop_signals() as stop:
        world = trainer.dist.world_size
        say(
            f"task {trainer.task.name} | device {describe_device(trainer.device)} | {n_params:,} parameters"
            + (
                f" | {world} processes (DDP), {trainer.config.batch_size // world}+ rows each"
                if world > 1
                else ""
            )
            + (
                f" | {trainer.config.accum_steps} micro-batches per step"
                if trainer.config.accum_steps > 1
                else ""
            )
        )
        sys.stdout.flush()
        try:
            metrics = _train_and_save(a, trainer, steps, save_every, stop)
        except (NonFiniteLossError, NonFiniteWeightsError) as e:
            kept = (
                f"{a.out} keeps its previous contents" if a.out and Path(a.out).exists() else "nothing saved"
            )
            if main_rank:
                print(f"error: {e}; not saved: {kept}", file=sys.stderr)
            raise SystemExit(1) from None
    if stop.signum is not None:  # arrived during the final evaluation or save: the run is complete
        say(f"{signal.Signals(stop.signum).name} received after the last step: the run finished")
        raise SystemExit(128 + stop.signum)
    return metrics
