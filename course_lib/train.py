"""Training the Transformer (section 5 of the paper): the loop, its configuration and evaluation.

  * `Trainer` runs the loop: teacher forcing on batches made on the fly, the loss of
    course_lib.losses (label smoothing), Adam and the schedule of course_lib.schedule, gradient
    clipping, bf16 autocast on CUDA, a `tqdm.auto` progress bar and, in a notebook, a live loss
    curve; with several processes (torchrun) it wraps the model in DistributedDataParallel;
  * `evaluate` measures exact match with greedy decoding and the perplexity;
  * the batch of step k depends only on (task, seed, k) and the RNG state is saved in the
    checkpoint, so a run resumed from a checkpoint ends with the same parameters as one
    that never stopped.

The command line (`python -m course_lib.train ...`) lives in course_lib.train_cli.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from .data import PAD, TASKS, Batch, CharVocab, Task, batch_at, get_task, make_batch
from .device import autocast, device_of, pick_device, set_seed
from .distributed import info as dist_info
from .distributed import launched_by_torchrun
from .losses import cross_entropy, label_smoothing_loss, perplexity
from .model import Transformer, TransformerConfig
from .schedule import SCHEDULES, make_optimizer, make_scheduler
from .validate import check_sizes


# --- models for the tasks -----------------------------------------------------------------
def model_for_task(
    task: str | Task,
    d_model: int = 128,
    n_heads: int = 4,
    layers: int = 2,
    d_ff: int | None = None,
    dropout: float = 0.0,
    seed: int | None = 0,
    **kw,
) -> Transformer:
    """A small Transformer sized for a task's vocabularies (`layers` encoder and decoder layers)."""
    task = get_task(task)
    if seed is not None:
        set_seed(seed)
    max_len = max(task.max_src_len, task.max_tgt_len + 1)
    cfg = TransformerConfig(
        src_vocab_size=len(task.src_vocab),
        tgt_vocab_size=len(task.tgt_vocab),
        d_model=d_model,
        n_heads=n_heads,
        n_encoder_layers=kw.pop("n_encoder_layers", layers),
        n_decoder_layers=kw.pop("n_decoder_layers", layers),
        d_ff=4 * d_model if d_ff is None else d_ff,
        dropout=dropout,
        max_len=kw.pop("max_len", 2 * max_len),
        pad_id=PAD,
        **kw,
    )
    return Transformer(cfg)


# --- evaluation ---------------------------------------------------------------------------
@torch.no_grad()
def batch_loss(model: Transformer, batch: Batch, epsilon: float = 0.0) -> tuple[float, int]:
    """(sum of the per-token losses, number of real target tokens) on one batch, no gradient."""
    device = device_of(model)
    b = batch.to(device)
    with autocast(device):
        logits = model(b.src, b.tgt_in, b.src_mask, b.tgt_mask)  # (B, T, V)
    return float(label_smoothing_loss(logits, b.tgt_out, epsilon, reduction="sum")), b.n_tokens


def predict(
    model: Transformer,
    sources: list[str],
    src_vocab: CharVocab,
    tgt_vocab: CharVocab,
    max_len: int | None = None,
    batch_size: int = 500,
    use_cache: bool = True,
) -> list[str]:
    """Greedy outputs for a list of source strings (batched, with the KV cache by default)."""
    from .decode import greedy_decode

    device = device_of(model)
    max_len = max_len or model.cfg.max_len
    out: list[str] = []
    for i in range(0, len(sources), batch_size):
        chunk = sources[i : i + batch_size]
        b = make_batch([(s, "") for s in chunk], src_vocab, tgt_vocab, device)
        with autocast(device):
            ids = greedy_decode(
                model, b.src, tgt_vocab.sos_id, tgt_vocab.eos_id, max_len, b.src_mask, use_cache=use_cache
            )
        out += [tgt_vocab.decode(row) for row in ids.tolist()]
    return out


@dataclass
class EvalResult:
    exact_match: float  # fraction of outputs equal to the target, character for character
    cross_entropy: float  # mean -log p(target token), teacher forcing
    perplexity: float
    n: int
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (source, expected, got)

    def __str__(self) -> str:
        return (
            f"exact match {self.exact_match:.2%} on {self.n} examples, "
            f"cross-entropy {self.cross_entropy:.4f}, perplexity {self.perplexity:.3f}"
        )


def evaluate(
    model: Transformer,
    task: str | Task,
    split: str = "test",
    n: int = 1000,
    batch_size: int = 500,
) -> EvalResult:
    """Exact match (greedy decoding) and perplexity on the task's fixed evaluation set."""
    check_sizes(n=n, batch_size=batch_size)
    task = get_task(task)
    pairs = task.eval_pairs(n, split)
    was_training = model.training
    model.eval()
    try:
        got = predict(
            model, [s for s, _ in pairs], task.src_vocab, task.tgt_vocab, task.max_tgt_len + 1, batch_size
        )
        total, count = 0.0, 0
        for i in range(0, n, batch_size):
            loss, k = batch_loss(model, make_batch(pairs[i : i + batch_size], task.src_vocab, task.tgt_vocab))
            total, count = total + loss, count + k
    finally:
        model.train(was_training)
    errors = [(s, t, g) for (s, t), g in zip(pairs, got) if g != t]
    ce = total / max(count, 1)
    return EvalResult(1 - len(errors) / n, ce, perplexity(ce), n, errors)


# --- live loss curve ----------------------------------------------------------------------
class LivePlot:
    """A matplotlib figure redrawn in place in a Jupyter output (no-op outside IPython)."""

    def __init__(self, title: str = "training") -> None:
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        try:
            from IPython import get_ipython
            from IPython.display import display

            self.active = get_ipython() is not None
        except ImportError:  # pragma: no cover
            self.active = False
        self.fig, (self.ax_loss, self.ax_ppl) = plt.subplots(1, 2, figsize=(10, 3.6))
        self.fig.suptitle(title)
        (self.l_obj,) = self.ax_loss.plot([], [], lw=1, label="training objective (label-smoothed)")
        (self.l_ce,) = self.ax_loss.plot([], [], lw=1, label="cross-entropy")
        self.ax_loss.set(xlabel="step", ylabel="loss per token (nats)", title="loss")
        self.ax_loss.legend(fontsize=10)
        (self.l_ppl,) = self.ax_ppl.plot([], [], lw=1, color="C2", label="training batches")
        (self.l_eval,) = self.ax_ppl.plot([], [], "o-", color="C3", label="_held-out")
        self.ax_ppl.set(xlabel="step", ylabel="perplexity (log scale)", title="perplexity", yscale="log")
        self.ax_ppl.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        self.ax_ppl.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        self.ax_ppl.yaxis.set_minor_formatter(NullFormatter())
        self.ax_ppl.legend(fontsize=10)
        self.fig.tight_layout()
        plt.close(self.fig)  # shown through the display handle only
        self.handle = display(self.fig, display_id=True) if self.active else None

    def update(self, history: dict) -> None:
        steps = history["step"]
        if not steps:
            return
        self.l_obj.set_data(steps, history["loss"])
        self.l_ce.set_data(steps, history["cross_entropy"])
        self.l_ppl.set_data(steps, history["perplexity"])
        ev = history["eval"]
        self.l_eval.set_data([e["step"] for e in ev], [e["perplexity"] for e in ev])
        if ev and self.l_eval.get_label().startswith("_"):
            self.l_eval.set_label("held-out dates")
            self.ax_ppl.legend(fontsize=10)
        for ax in (self.ax_loss, self.ax_ppl):
            ax.relim()
            ax.autoscale_view()
        if self.handle is not None:
            self.handle.update(self.fig)


# --- the training loop --------------------------------------------------------------------
@dataclass
class TrainConfig:
    """How to train (the model's own sizes live in its TransformerConfig)."""

    task: str = "dates"
    batch_size: int = 128
    warmup: int = 400
    lr_scale: float = 0.5  # equation (3) halved: the shipped model's recipe
    schedule: str = "paper"  # "paper": equation (3); "linear": see linear_lr (short runs)
    peak_lr: float = 3e-3  # schedule="linear" only
    total_steps: int = 0  # schedule="linear" only: the step where the decay ends
    label_smoothing: float = 0.1  # epsilon_ls of section 5.4
    clip_norm: float | None = 1.0
    seed: int = 0  # the data stream: batch k is a function of (seed, k)
    eval_every: int = 0  # 0: no evaluation during training
    eval_n: int = 200
    amp: bool = True  # bf16 autocast on CUDA (a no-op elsewhere)
    accum_steps: int = 1  # micro-batches per step (gradient accumulation): same gradient, less memory

    def __post_init__(self) -> None:
        """Refuse values the loop cannot use, with one line naming what was expected."""

        def refuse(name: str, expected: str) -> None:
            raise ValueError(f"TrainConfig.{name} must be {expected}, got {getattr(self, name)!r}")

        if not (isinstance(self.task, Task) or self.task in TASKS):
            refuse("task", f"one of {sorted(TASKS)}")
        for name, low in (
            ("batch_size", 1),
            ("warmup", 1),
            ("total_steps", 0),
            ("seed", 0),
            ("eval_every", 0),
            ("eval_n", 1),
            ("accum_steps", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                refuse(name, f"an integer >= {low}")
        for name in ("lr_scale", "peak_lr"):
            value = getattr(self, name)
            if not _is_number(value) or not (math.isfinite(value) and value > 0):
                refuse(name, "a finite number > 0")
        if not (_is_number(self.label_smoothing) and 0.0 <= self.label_smoothing < 1.0):
            refuse("label_smoothing", "a number in [0, 1)")
        if self.clip_norm is not None and not (_is_number(self.clip_norm) and self.clip_norm > 0):
            refuse("clip_norm", "a number > 0, or None for no clipping")
        if not isinstance(self.amp, bool):
            refuse("amp", "True or False")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.accum_steps > self.batch_size:
            raise ValueError(
                f"TrainConfig.accum_steps must be at most batch_size ({self.batch_size}) so that every "
                f"micro-batch has a row, got {self.accum_steps}"
            )
        if self.schedule == "linear" and not self.warmup < self.total_steps:
            raise ValueError(
                "schedule='linear' needs 1 <= warmup < total_steps (the step where its decay ends), "
                f"got warmup={self.warmup} and total_steps={self.total_steps}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and not math.isnan(x)


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN or infinite: training diverged (the weights were not updated)."""


_RECORDED = ("step", "loss", "cross_entropy", "perplexity", "lr", "grad_norm", "tokens", "seconds")


def _new_history() -> dict:
    return {**{k: [] for k in _RECORDED}, "eval": []}


class Trainer:
    """Holds the model, optimiser, schedule, step counter and history; `run(n)` trains n more steps.

    >>> trainer = Trainer(model_for_task("dates"), TrainConfig(task="dates"))
    >>> trainer.run(500)                  # progress bar; live_plot=True in a notebook
    >>> trainer.save("run.pt"); trainer = Trainer.load("run.pt")   # resume exactly
    """

    def __init__(
        self,
        model: Transformer,
        config: TrainConfig | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.config = config or TrainConfig()
        self.task = get_task(self.config.task)
        if (
            len(self.task.src_vocab) != model.cfg.src_vocab_size
            or len(self.task.tgt_vocab) != model.cfg.tgt_vocab_size
        ):
            raise ValueError(
                f"the model's vocabularies ({model.cfg.src_vocab_size}, {model.cfg.tgt_vocab_size}) do not fit "
                f"the task {self.task.name!r} ({len(self.task.src_vocab)}, {len(self.task.tgt_vocab)})"
            )
        self.device = pick_device(device) if device is None or isinstance(device, str) else device
        self.model = model.to(self.device)
        self.dist = dist_info()  # rank 0 of 1 unless a process group is initialised (torchrun)
        if self.config.batch_size < self.dist.world_size * self.config.accum_steps:
            raise ValueError(
                f"a batch of {self.config.batch_size} rows cannot be shared by {self.dist.world_size} processes "
                f"x {self.config.accum_steps} micro-batches: expected batch_size >= "
                f"{self.dist.world_size * self.config.accum_steps}"
            )
        self.net: nn.Module = self.model  # what the step runs: the model, or DDP around it
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel  # broadcasts rank 0's weights

            ids = [self.device] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(self.model)
        c = self.config
        self.scheduler = make_scheduler(
            self.optimizer, model.cfg.d_model, c.warmup, c.lr_scale, c.schedule, c.peak_lr, c.total_steps
        )
        self.step = 0
        self.history = _new_history()

    # one optimisation step --------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict:
        """Forward all target positions at once (teacher forcing), backward, clip, Adam, schedule.

        `batch` is the step's global batch. With several processes (torchrun) each rank trains on
        its rows rank::world and DDP all-reduces the gradients; with accum_steps = K each rank's
        rows are split again into K micro-batches whose gradients add up. Either way each piece's
        summed token loss is divided by the global token count, so the step's gradient is that of
        the token mean over the whole batch, as in one process."""
        if self.dist.world_size > 1 or self.config.accum_steps > 1:
            return self._sharded_step(batch)
        c, model = self.config, self.model
        model.train()
        b = batch.to(self.device)
        with autocast(self.device, c.amp):
            logits = model(b.src, b.tgt_in, b.src_mask, b.tgt_mask)  # (B, T, V): every position at once
        loss = label_smoothing_loss(logits, b.tgt_out, c.label_smoothing)  # float32
        loss_value = loss.item()
        self.optimizer.zero_grad(set_to_none=True)
        grad_norm = math.nan
        if math.isfinite(loss_value):
            loss.backward()
            max_norm = c.clip_norm if c.clip_norm is not None else float("inf")
            grad_norm = float(
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            )  # the norm before clipping
        lr = self._update(loss_value, grad_norm)  # refuses a non-finite loss or gradient norm
        with torch.no_grad():
            ce = float(cross_entropy(logits.detach(), b.tgt_out))
        return {
            "loss": loss_value,
            "cross_entropy": ce,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": b.n_tokens,
        }

    def _update(self, loss_value: float, grad_norm: float) -> float:
        """One optimiser and schedule step, unless the loss or the gradient norm is not finite
        (then NonFiniteLossError, and the weights stay those of the last step). Returns the lr used."""
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            bad = loss_value if not math.isfinite(loss_value) else grad_norm
            what = f"the {'loss' if bad is loss_value else 'gradient norm'} is {bad}"
            raise NonFiniteLossError(
                f"training diverged at step {self.step + 1}: {what} (expected a finite number); the weights "
                f"are those after step {self.step}, not updated (try a lower learning rate)"
            )
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return lr

    def _sharded_step(self, batch: Batch) -> dict:
        """train_step over this rank's shard in accum_steps micro-batches (see train_step)."""
        from .distributed import all_reduce_sum, shard_loss_scale, shard_rows

        c, d = self.config, self.dist
        self.model.train()
        mine = shard_rows(batch, d.rank, d.world_size) if d.world_size > 1 else batch
        micro = [shard_rows(mine, j, c.accum_steps) for j in range(c.accum_steps)]
        (global_tokens,) = all_reduce_sum([mine.n_tokens], self.device)
        scale = shard_loss_scale(int(global_tokens), d.world_size)
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        ce_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        for j, mb in enumerate(micro):
            b = mb.to(self.device)
            last = j == len(micro) - 1
            # DDP all-reduces during the backward pass of the last micro-batch only
            sync = self.net.no_sync() if d.world_size > 1 and not last else contextlib.nullcontext()
            with sync:
                with autocast(self.device, c.amp):
                    logits = self.net(b.src, b.tgt_in, b.src_mask, b.tgt_mask)  # (b, T, V)
                piece = label_smoothing_loss(logits, b.tgt_out, c.label_smoothing, reduction="sum")
                (piece * scale).backward()  # every rank runs the backward pass: DDP needs all of them
            with torch.no_grad():
                loss_sum += piece.detach().double()
                ce_sum += cross_entropy(logits.detach(), b.tgt_out, reduction="sum").double()
        loss_total, ce_total = all_reduce_sum([float(loss_sum), float(ce_sum)], self.device)
        loss_value = loss_total / global_tokens
        max_norm = c.clip_norm if c.clip_norm is not None else float("inf")
        grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))  # same on every rank
        lr = self._update(loss_value, grad_norm)
        return {
            "loss": loss_value,
            "cross_entropy": ce_total / global_tokens,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": int(global_tokens),
        }

    def _agree_to_stop(self, should_stop: Callable[[], bool] | None) -> bool:
        """should_stop(), agreed by all ranks: one rank's signal stops them all at the same step."""
        flag = bool(should_stop is not None and should_stop())
        if self.dist.world_size > 1:
            from .distributed import all_reduce_sum

            flag = all_reduce_sum([float(flag)], self.device)[0] > 0
        return flag

    def run(
        self,
        steps: int,
        progress: bool = True,
        live_plot: bool = False,
        plot_every: int = 25,
        callback: Callable[[Trainer, dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict:
        """Train `steps` more steps; returns the history (lists indexed like history['step']).

        `should_stop()` is asked before every step: True ends the run early, between two steps
        (the command line's Ctrl-C). A NaN or infinite loss raises `NonFiniteLossError`.
        With several processes only rank 0 shows progress and evaluates; all ranks agree on stopping."""
        from tqdm.auto import tqdm

        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        c, h = self.config, self.history
        main_rank = self.dist.is_main
        plot = LivePlot(f"training on {self.task.name}") if live_plot and main_rank else None
        bar = tqdm(total=steps, desc=f"{self.task.name}", disable=not (progress and main_rank), unit="step")
        t_start = time.perf_counter()
        try:
            for _ in range(steps):
                if self._agree_to_stop(should_stop):
                    break
                batch = batch_at(self.task, "train", c.batch_size, c.seed, self.step)
                t0 = time.perf_counter()
                rec = self.train_step(batch)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                rec["seconds"] = time.perf_counter() - t0
                rec["step"] = self.step
                rec["perplexity"] = perplexity(rec["cross_entropy"])
                for k in _RECORDED:
                    h[k].append(rec[k])
                if c.eval_every and self.step % c.eval_every == 0 and main_rank:
                    ev = evaluate(self.model, self.task, "valid", c.eval_n)  # test: once, at the end
                    h["eval"].append(
                        {
                            "step": self.step,
                            "exact_match": ev.exact_match,
                            "cross_entropy": ev.cross_entropy,
                            "perplexity": ev.perplexity,
                        }
                    )
                    bar.write(f"step {self.step}: held-out {ev}")
                    sys.stdout.flush()
                bar.update(1)
                bar.set_postfix(
                    loss=f"{rec['loss']:.3f}", ppl=f"{rec['perplexity']:.2f}", lr=f"{rec['lr']:.2e}"
                )
                if plot is not None and (self.step % plot_every == 0):
                    plot.update(h)
                if callback is not None:
                    callback(self, rec)
        finally:
            bar.close()
        if plot is not None:
            plot.update(h)
        self.last_run_seconds = time.perf_counter() - t_start
        return h

    def tokens_per_second(self, last: int | None = None) -> float:
        """Target tokens per second of pure training steps (batch generation excluded)."""
        tok, sec = (
            self.history["tokens"][-last if last else 0 :],
            self.history["seconds"][-last if last else 0 :],
        )
        return sum(tok) / max(sum(sec), 1e-9)

    # checkpoints -------------------------------------------------------------------------
    def check_finite(self) -> float:
        """The loss of the current weights on the next training batch (eval mode, no gradient, no
        RNG used); raises `NonFiniteLossError` if it is NaN or infinite: the weights are broken."""
        batch = batch_at(self.task, "train", self.config.batch_size, self.config.seed, self.step)
        was_training = self.model.training
        self.model.eval()
        try:
            total, count = batch_loss(self.model, batch, self.config.label_smoothing)
        finally:
            self.model.train(was_training)
        if not math.isfinite(total):
            raise NonFiniteLossError(
                f"training diverged: the weights after step {self.step} give a loss of {total / count} on the "
                "next batch (expected a finite number)"
            )
        return total / count

    def save(self, path: str | Path, include_optimizer: bool = True, metrics: dict | None = None) -> None:
        """Everything needed to resume: model, optimiser, schedule, step, RNG states, history.

        Refuses (`NonFiniteLossError`, nothing written) weights whose loss is NaN or infinite, so a
        diverged run never replaces a good checkpoint."""
        from .checkpoint import save_checkpoint

        self.check_finite()

        save_checkpoint(
            path,
            self.model,
            self.task.src_vocab,
            self.task.tgt_vocab,
            optimizer=self.optimizer if include_optimizer else None,
            scheduler=self.scheduler if include_optimizer else None,
            step=self.step,
            extra={
                "task": self.task.name,
                "train_config": self.config.to_dict(),
                "history": self.history,
                "metrics": metrics or {},
            },
        )

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str | None = None) -> Trainer:
        """Rebuild a Trainer from `save`: training continues exactly where it stopped."""
        from .checkpoint import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(path)
        extra = ckpt.get("extra", {})
        if "train_config" not in extra:
            raise ValueError(f"{path} holds no training configuration: it is a model-only checkpoint")
        trainer = cls(model_from_checkpoint(ckpt), TrainConfig.from_dict(extra["train_config"]), device)
        if "optimizer" in ckpt:
            trainer.optimizer.load_state_dict(ckpt["optimizer"])
            trainer.scheduler.load_state_dict(ckpt["scheduler"])
        else:
            warnings.warn(
                f"{path} holds no optimiser state: Adam's moments and the warm-up schedule start afresh, "
                "so this is fine-tuning, not an exact resume",
                stacklevel=2,
            )
        trainer.step = int(ckpt["step"])
        trainer.history = extra.get("history") or _new_history()
        rng = ckpt.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        return trainer


def train(
    model: Transformer,
    task: str | Task = "dates",
    steps: int = 1000,
    device: torch.device | str | None = None,
    progress: bool = True,
    live_plot: bool = False,
    callback: Callable[[Trainer, dict], None] | None = None,
    **config,
) -> Trainer:
    """Train `model` on `task` for `steps` steps; keyword arguments set TrainConfig fields
    (batch_size, warmup, lr_scale, label_smoothing, clip_norm, seed, eval_every, ...)."""
    name = task.name if isinstance(task, Task) else task
    if config.get("schedule") == "linear" and not config.get("total_steps"):
        config["total_steps"] = steps  # decay over this run
    trainer = Trainer(model, TrainConfig(task=name, **config), device)
    trainer.run(steps, progress=progress, live_plot=live_plot, callback=callback)
    return trainer


def main(argv: list[str] | None = None) -> dict:
    """`python -m course_lib.train ...`: see course_lib.train_cli (and --help)."""
    from .train_cli import main as command

    return command(argv)


if __name__ == "__main__":
    main()
    if launched_by_torchrun():
        # The work is done and the process group destroyed. Leave without the interpreter's and C++'s
        # exit-time destructors: a gloo thread torn down there can abort a finished worker
        # ("terminate called without an active exception") and fail the whole torchrun.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
