"""Row 2: wall time to reach 99% held-out exact match, the course's final model and recipe
against a plain `nn.Transformer` of the same size with a plain recipe (Adam at 1e-3, no
warm-up, no label smoothing, greedy evaluation without a cache).

The two trainings run in the same process, interleaved a few steps at a time, and each
contender's clock runs only while it works, so a burst of load from another process
falls on both. Each clock counts what a user waits for: making batches, training steps
and the periodic evaluations on the held-out set (greedy decoding of every example).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_lib.data import EOS, PAD, SOS, Task, batch_at, get_task, make_batch
from course_lib.decode import greedy_decode

from .table import Line
from .timing import fmt_seconds


@torch.no_grad()
def exact_match(
    model: nn.Module, task: Task, pairs: list[tuple[str, str]], use_cache: bool, chunk: int = 500
) -> float:
    """Share of held-out pairs whose greedy output equals the target exactly."""
    model.eval()
    right = 0
    for i in range(0, len(pairs), chunk):
        part = pairs[i : i + chunk]
        batch = make_batch(part, task.src_vocab, task.tgt_vocab)
        out = greedy_decode(
            model, batch.src, SOS, EOS, task.max_tgt_len + 1, src_mask=batch.src_mask, use_cache=use_cache
        )
        right += sum(task.tgt_vocab.decode(row) == tgt for row, (_, tgt) in zip(out.tolist(), part))
    model.train()
    return right / len(pairs)


class Contender:
    """One side of the race: a model, how it trains a few steps, how it is evaluated."""

    name: str
    model: nn.Module
    use_cache: bool  # greedy evaluation with the KV cache?

    def train_steps(self, n: int) -> None:
        raise NotImplementedError


class PlainRecipe(Contender):
    """The baseline's recipe: Adam at a constant 1e-3, plain cross-entropy (no label
    smoothing), no warm-up, no clipping; evaluation reruns the prefix (no cache)."""

    def __init__(self, name: str, model: nn.Module, task: Task, batch_size: int, seed: int, lr: float = 1e-3):
        self.name, self.model, self.task, self.use_cache = name, model, task, False
        self.batch_size, self.seed, self.step = batch_size, seed, 0
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def train_steps(self, n: int) -> None:
        self.model.train()
        for _ in range(n):
            b = batch_at(self.task, "train", self.batch_size, self.seed, self.step)
            logits = self.model(b.src, b.tgt_in, b.src_mask, None)  # causal + padding masks inside
            loss = F.cross_entropy(logits.flatten(0, 1), b.tgt_out.flatten(), ignore_index=PAD)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1


@dataclass
class Run:
    """A contender's progress: its clock, its accuracy after each evaluation."""

    contender: Contender
    steps: int = 0
    seconds: float = 0.0
    reached: float | None = None  # seconds on its clock when it reached the target
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, seconds, accuracy)

    @property
    def best(self) -> float:
        return max((a for _, _, a in self.history), default=0.0)


class CourseRecipe(Contender):
    """The course's final recipe: course_lib.train.Trainer (label smoothing, the paper's
    warm-up schedule, Adam(0.9, 0.98, 1e-9), gradient clipping) with its TrainConfig;
    evaluation decodes with the KV cache."""

    def __init__(self, name: str, trainer) -> None:  # trainer: course_lib.train.Trainer
        self.name, self.trainer, self.model, self.use_cache = name, trainer, trainer.model, True

    def train_steps(self, n: int) -> None:
        t = self.trainer
        for _ in range(n):
            t.train_step(batch_at(t.task, "train", t.config.batch_size, t.config.seed, t.step))


def race(
    contenders: list[Contender],
    task: Task | str,
    eval_pairs: list[tuple[str, str]],
    target: float,
    cap_s: float,
    eval_every: int,
) -> list[Run]:
    """Train the contenders in turns of `eval_every` steps plus one evaluation each, until
    each reaches `target` exact match or spends `cap_s` seconds on its own clock."""
    task = get_task(task)
    runs = [Run(c) for c in contenders]
    bar = tqdm(total=len(runs), desc=f"row 2: {task.name}", leave=False)
    for turn in itertools.count():
        live = [r for r in runs if r.reached is None and r.seconds < cap_s]
        if not live:
            break
        for run in live if turn % 2 == 0 else live[::-1]:  # nobody always goes first
            c = run.contender
            t0 = time.perf_counter()
            c.train_steps(eval_every)
            acc = exact_match(c.model, task, eval_pairs, c.use_cache)
            run.seconds += time.perf_counter() - t0
            run.steps += eval_every
            run.history.append((run.steps, run.seconds, acc))
            if acc >= target:
                run.reached = run.seconds
            if run.reached is not None or run.seconds >= cap_s:
                bar.update(1)
            bar.set_postfix_str(" ".join(f"{r.contender.name} {r.best:.0%}" for r in runs))
    bar.close()
    return runs


def describe(run: Run, target: float) -> str:
    if run.reached is not None:
        return f"{fmt_seconds(run.reached)} ({run.steps} steps)"
    return (
        f"did not reach {target:.0%} in {fmt_seconds(run.seconds)} ({run.steps} steps, best {run.best:.1%})"
    )


def race_lines(
    label: str, ours: Run, base: Run, target: float, quick: bool, comparison: bool = False
) -> list[Line]:
    """One table line: our time / the baseline's, target <= 0.5 (none for a comparison line)."""
    what = f"time to {target:.0%} held-out exact match, {label} / plain nn.Transformer"
    detail = f"ours {describe(ours, target)}; baseline {describe(base, target)}"
    if ours.reached is not None and base.reached is not None:
        r = ours.reached / base.reached
        measured, met = f"{r:.2f}x ({detail})", r <= 0.5
    elif ours.reached is not None:  # the baseline ran out of time: its time is at least its clock
        r = ours.reached / base.seconds
        measured, met = f"< {r:.2f}x ({detail})", r <= 0.5
    else:
        measured, met = f"unmeasured ({detail})", False
    if quick:
        measured, met = f"quick mode, lowered target: {measured}", None
    if comparison:
        return [Line(2, what, measured, "(for comparison)", None)]
    return [Line(2, what, measured, "<= 0.5x", met)]
