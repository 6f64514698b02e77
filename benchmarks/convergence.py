"""Row 2: training time to 99% exact match on the validation split, the course's recipe against
a plain one, several seeds.

Rules (the same for every contender):
* each contender trains on the task's train split and is evaluated every `eval_every` steps
  on a fixed set of the *validation* split (greedy decoding, exact match); it stops when it
  reaches the target there, or at its cap;
* each contender has two clocks: training (making batches and the steps) and evaluation; the
  figure compared is the training clock, and the evaluation clock is reported beside it;
* the contenders of one seed train in the same process, in turns of `eval_every` steps (the
  order flipped every turn), so a burst of load from another process falls on all of them;
* the test split is touched once per run, after it stops.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_lib.data import PAD, Task, batch_at, get_task
from course_lib.train import predict

from .timing import fmt_seconds


def exact_match(model: nn.Module, task: Task, pairs: list[tuple[str, str]], use_cache: bool) -> float:
    """Share of pairs whose greedy output equals the target exactly (course_lib.train.predict)."""
    was_training = model.training
    model.eval()
    got = predict(
        model,
        [s for s, _ in pairs],
        task.src_vocab,
        task.tgt_vocab,
        task.max_tgt_len + 1,
        use_cache=use_cache,
    )
    model.train(was_training)
    return sum(g == t for g, (_, t) in zip(got, pairs)) / len(pairs)


class Contender:
    """One side of the race: a model, how it trains a few steps, how it is evaluated."""

    name: str
    model: nn.Module
    use_cache: bool  # greedy evaluation with the KV cache? (changes the evaluation clock only)

    def train_steps(self, n: int) -> None:
        raise NotImplementedError


class PlainRecipe(Contender):
    """The plain recipe: Adam at a constant learning rate (1e-3, the common default), plain
    cross-entropy (no label smoothing), no warm-up, no clipping."""

    def __init__(
        self, name: str, model: nn.Module, task: Task, batch_size: int, seed: int, use_cache: bool, lr=1e-3
    ):
        self.name, self.model, self.task, self.use_cache = name, model, task, use_cache
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


class CourseRecipe(Contender):
    """The course's recipe: course_lib.train.Trainer (label smoothing, warm-up and decay,
    Adam(0.9, 0.98, 1e-9), gradient clipping) with its TrainConfig."""

    def __init__(self, name: str, trainer) -> None:  # trainer: course_lib.train.Trainer
        self.name, self.trainer, self.model, self.use_cache = name, trainer, trainer.model, True

    def train_steps(self, n: int) -> None:
        t = self.trainer
        for _ in range(n):
            t.train_step(batch_at(t.task, "train", t.config.batch_size, t.config.seed, t.step))


@dataclass
class Run:
    """A contender's progress in one seed: its two clocks and its validation accuracy."""

    contender: Contender
    seed: int
    steps: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    reached_s: float | None = None  # training seconds when validation exact match reached the target
    reached_step: int | None = None
    test: float | None = None  # exact match on the test split, measured once at the end
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, train s, valid acc)

    @property
    def best(self) -> float:
        return max((a for _, _, a in self.history), default=0.0)


def race(
    contenders: list[Contender],
    task: Task | str,
    valid: list[tuple[str, str]],
    test: list[tuple[str, str]],
    target: float,
    cap_steps: int,
    eval_every: int,
    seed: int,
) -> list[Run]:
    """Train the contenders in turns of `eval_every` steps plus one validation evaluation each,
    until each reaches `target` or `cap_steps`; then score each once on `test`."""
    task = get_task(task)
    runs = [Run(c, seed) for c in contenders]
    bar = tqdm(total=len(runs), desc=f"row 2: {task.name}, seed {seed}", leave=False)
    for turn in itertools.count():
        live = [r for r in runs if r.reached_s is None and r.steps < cap_steps]
        if not live:
            break
        for run in live if turn % 2 == 0 else live[::-1]:  # nobody always goes first
            c = run.contender
            t0 = time.perf_counter()
            c.train_steps(eval_every)
            t1 = time.perf_counter()
            acc = exact_match(c.model, task, valid, c.use_cache)
            run.train_s += t1 - t0
            run.eval_s += time.perf_counter() - t1
            run.steps += eval_every
            run.history.append((run.steps, run.train_s, acc))
            if acc >= target:
                run.reached_s, run.reached_step = run.train_s, run.steps
            if run.reached_s is not None or run.steps >= cap_steps:
                bar.update(1)
            bar.set_postfix_str(" ".join(f"{r.contender.name} {r.best:.0%}" for r in runs))
    bar.close()
    for run in runs:  # the test split, once per run
        run.test = exact_match(run.contender.model, task, test, run.contender.use_cache)
    return runs


def _spread(values: list[float], fmt) -> str:
    return f"{fmt(statistics.median(values))} (range {fmt(min(values))}-{fmt(max(values))})"


def summary(runs: list[Run]) -> str:
    """Median and range over the seeds of one contender's training time and steps."""
    done = [r for r in runs if r.reached_s is not None]
    if len(done) < len(runs):
        missed = ", ".join(
            f"seed {r.seed}: best {r.best:.1%} in {r.steps} steps" for r in runs if r not in done
        )
        head = f"{len(done)} of {len(runs)} seeds reached it ({missed})"
        if not done:
            return head
        head += "; those that did: "
    else:
        head = ""
    return head + (
        f"{_spread([r.reached_s for r in done], fmt_seconds)}, "
        f"{_spread([float(r.reached_step) for r in done], lambda s: f'{s:.0f}')} steps"
    )


def ratio_line(ours: list[Run], base: list[Run]) -> tuple[float | None, str]:
    """The median over seeds of ours / base training time (seed by seed); None if a run missed."""
    pairs = [(o, b) for o, b in zip(ours, base) if o.reached_s is not None and b.reached_s is not None]
    if len(pairs) < len(ours):
        return None, "unmeasured: a run did not reach the target (see the details)"
    ratios = [o.reached_s / b.reached_s for o, b in pairs]
    r = statistics.median(ratios)
    return r, f"{r:.2f}x (seeds: {', '.join(f'{x:.2f}' for x in ratios)})"


def history_lines(runs: list[Run]) -> list[str]:
    out = []
    for run in runs:
        curve = ", ".join(f"({s}, {t:.0f} s, {a:.1%})" for s, t, a in run.history)
        out.append(
            f"* {run.contender.name}, seed {run.seed}: training {fmt_seconds(run.train_s)}, "
            f"evaluation {fmt_seconds(run.eval_s)}, test exact match {run.test:.1%}; {curve}"
        )
    return out
