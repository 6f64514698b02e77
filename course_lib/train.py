"""Training the Transformer (section 5 of the paper): loss, schedule, optimiser, loop, CLI.

  * `cross_entropy` ignores padding; `label_smoothing_loss` is the paper's label
    smoothing (epsilon_ls = 0.1, section 5.4), written by hand from `log_softmax`
    (never log(softmax), which gives -inf where a probability underflows to 0);
  * `transformer_lr` is equation (3): lrate = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5);
    `linear_lr` is the alternative for short runs (linear warm-up to a peak, linear decay to a
    floor at the run's last step); `make_scheduler` wraps either in a `LambdaLR`;
    `make_optimizer` is Adam(0.9, 0.98, 1e-9);
  * `Trainer` runs the loop: teacher forcing on batches made on the fly, gradient clipping,
    bf16 autocast on CUDA, a `tqdm.auto` progress bar and, in a notebook, a live loss curve;
    `evaluate` measures exact match with greedy decoding and the perplexity.
  * The batch of step k depends only on (task, seed, k) and the RNG state is saved in the
    checkpoint, so a run resumed from a checkpoint ends with the same parameters as one
    that never stopped.

The shipped checkpoint assets/dates_model.pt (2.9 MB, 672,128 parameters, 100% exact match
on 1000 held-out dates) was made with this command, in 642 s of CPU time on one thread
(3,000 steps of 128 dates; 23 minutes of wall time on a heavily shared 2-core machine):

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
reaches 99% held-out exact match on the dates in about 300-400 steps instead of about 950
(docs/benchmarks.md, row 2):

    python -m course_lib.train --task dates --steps 400 --schedule linear --out dates_fast.pt
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import PAD, Batch, CharVocab, Task, batch_at, get_task, make_batch
from .device import autocast, describe_device, pick_device, set_seed
from .model import Transformer, TransformerConfig


# --- loss ------------------------------------------------------------------------------
def _flatten(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if logits.dim() != target.dim() + 1 or logits.shape[:-1] != target.shape:
        raise ValueError(
            f"logits must have shape target.shape + (V,), got logits {tuple(logits.shape)} "
            f"and target {tuple(target.shape)}"
        )
    return logits.reshape(-1, logits.size(-1)), target.reshape(-1)


def label_smoothing_loss(
    logits: Tensor,
    target: Tensor,
    epsilon: float = 0.1,
    ignore_index: int = PAD,
    reduction: str = "mean",
) -> Tensor:
    """Cross-entropy against the smoothed target q = (1 - eps) * one_hot(y) + eps * uniform.

        loss = -sum_c q_c log p_c = (1 - eps) * (-log p_y) + eps * mean_c(-log p_c)

    logits (..., V), target (...) of class ids; positions equal to `ignore_index` count
    for nothing ("mean" divides by the number of real tokens). Equal to
    `F.cross_entropy(logits, target, label_smoothing=eps, ignore_index=ignore_index)`.
    log p comes from `log_softmax`, so a probability that underflows to 0 gives a large
    finite -log p, never inf. A class whose logit is -inf (forbidden outright) gets no
    smoothing mass, so the loss stays finite where torch's would be inf.
    """
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    flat_logits, flat_target = _flatten(logits, target)
    keep = flat_target != ignore_index  # (N,) real tokens
    x = flat_logits[keep]
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # bf16 under autocast
    logp = F.log_softmax(x, dim=-1)  # (n, V), log p_c, finite unless logit=-inf
    nll = -logp.gather(-1, flat_target[keep, None]).squeeze(-1)  # (n,)  -log p_y
    loss = nll
    if epsilon > 0:
        allowed = torch.isfinite(logp)  # classes that can receive probability
        smooth = -(logp.masked_fill(~allowed, 0.0)).sum(-1) / allowed.sum(-1)  # (n,) mean_c(-log p_c)
        loss = (1.0 - epsilon) * nll + epsilon * smooth
    if reduction == "none":
        out = torch.zeros(flat_target.shape, dtype=loss.dtype, device=loss.device)
        return out.masked_scatter(keep, loss).view(target.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / keep.sum().clamp(min=1)


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = PAD, reduction: str = "mean") -> Tensor:
    """-log p(target), averaged over the real (non-padding) tokens."""
    return label_smoothing_loss(logits, target, 0.0, ignore_index, reduction)


def perplexity(mean_cross_entropy: float) -> float:
    """exp(mean token cross-entropy): the model is as unsure as a fair choice among this many tokens."""
    return math.exp(min(mean_cross_entropy, 700.0))


# --- schedule and optimiser ---------------------------------------------------------------
def transformer_lr(step: int, d_model: int = 512, warmup: int = 4000, scale: float = 1.0) -> float:
    """Equation (3): lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5).

    Rises linearly for `warmup` steps, peaks at step = warmup with d_model^-0.5 * warmup^-0.5,
    then decays as 1/sqrt(step). Steps count from 1 (step 0 is treated as step 1).
    """
    if d_model < 1 or warmup < 1:
        raise ValueError(f"d_model and warmup must be >= 1, got {d_model} and {warmup}")
    step = max(int(step), 1)
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def linear_lr(step: int, peak: float, warmup: int, total: int, floor: float = 0.02) -> float:
    """Linear warm-up over `warmup` steps to `peak`, then linear decay to `floor * peak` at
    step `total`, and `floor * peak` after it. Steps count from 1, as in `transformer_lr`."""
    if not (peak > 0 and 1 <= warmup < total and 0 <= floor <= 1):
        raise ValueError(
            f"linear_lr needs peak > 0, 1 <= warmup < total and 0 <= floor <= 1; "
            f"got peak={peak}, warmup={warmup}, total={total}, floor={floor}"
        )
    step = max(int(step), 1)
    if step <= warmup:
        return peak * step / warmup
    return peak * max(floor, (total - step) / (total - warmup) * (1 - floor) + floor)


def make_optimizer(model: nn.Module, lr: float = 1.0) -> torch.optim.Adam:
    """Adam with the paper's beta1 = 0.9, beta2 = 0.98, eps = 1e-9 (section 5.3).

    lr = 1.0 because `make_scheduler` multiplies it by the schedule's rate at every step."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)


SCHEDULES = ("paper", "linear")


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    d_model: int,
    warmup: int,
    scale: float = 1.0,
    schedule: str = "paper",
    peak_lr: float = 3e-3,
    total_steps: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR`: the k-th `optimizer.step()` (k = 1, 2, ...) uses lrate(k) times the
    optimiser's initial lr (1.0 from `make_optimizer`). schedule="paper" is equation (3)
    (times `scale`); schedule="linear" is `linear_lr(k, peak_lr, warmup, total_steps)`."""
    if schedule == "paper":
        transformer_lr(1, d_model, warmup, scale)  # validate once
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: transformer_lr(s + 1, d_model, warmup, scale)
        )
    if schedule == "linear":
        linear_lr(1, peak_lr, warmup, total_steps)  # validate once
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: linear_lr(s + 1, peak_lr, warmup, total_steps)
        )
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


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
        d_ff=d_ff or 4 * d_model,
        dropout=dropout,
        max_len=kw.pop("max_len", 2 * max_len),
        pad_id=PAD,
        **kw,
    )
    return Transformer(cfg)


# --- evaluation ---------------------------------------------------------------------------
def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def batch_loss(model: Transformer, batch: Batch, epsilon: float = 0.0) -> tuple[float, int]:
    """(sum of the per-token losses, number of real target tokens) on one batch, no gradient."""
    device = _device_of(model)
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
) -> list[str]:
    """Greedy outputs for a list of source strings (batched, with the KV cache)."""
    from .decode import greedy_decode

    device = _device_of(model)
    max_len = max_len or model.cfg.max_len
    out: list[str] = []
    for i in range(0, len(sources), batch_size):
        chunk = sources[i : i + batch_size]
        b = make_batch([(s, "") for s in chunk], src_vocab, tgt_vocab, device)
        with autocast(device):
            ids = greedy_decode(model, b.src, tgt_vocab.sos_id, tgt_vocab.eos_id, max_len, b.src_mask)
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _new_history() -> dict:
    keys = ("step", "loss", "cross_entropy", "perplexity", "lr", "grad_norm", "tokens", "seconds")
    return {**{k: [] for k in keys}, "eval": []}


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
        self.optimizer = make_optimizer(self.model)
        c = self.config
        self.scheduler = make_scheduler(
            self.optimizer, model.cfg.d_model, c.warmup, c.lr_scale, c.schedule, c.peak_lr, c.total_steps
        )
        self.step = 0
        self.history = _new_history()

    # one optimisation step --------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict:
        """Forward all target positions at once (teacher forcing), backward, clip, Adam, schedule."""
        c, model = self.config, self.model
        model.train()
        b = batch.to(self.device)
        with autocast(self.device, c.amp):
            logits = model(b.src, b.tgt_in, b.src_mask, b.tgt_mask)  # (B, T, V): every position at once
        loss = label_smoothing_loss(logits, b.tgt_out, c.label_smoothing)  # float32
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = c.clip_norm if c.clip_norm is not None else float("inf")
        grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), max_norm))  # the norm before clipping
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        with torch.no_grad():
            ce = float(cross_entropy(logits.detach(), b.tgt_out))
        return {
            "loss": loss.item(),
            "cross_entropy": ce,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": b.n_tokens,
        }

    def run(
        self,
        steps: int,
        progress: bool = True,
        live_plot: bool = False,
        plot_every: int = 25,
        callback: Callable[[Trainer, dict], None] | None = None,
    ) -> dict:
        """Train `steps` more steps; returns the history (lists indexed like history['step'])."""
        from tqdm.auto import tqdm

        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        c, h = self.config, self.history
        plot = LivePlot(f"training on {self.task.name}") if live_plot else None
        bar = tqdm(total=steps, desc=f"{self.task.name}", disable=not progress, unit="step")
        t_start = time.perf_counter()
        for _ in range(steps):
            batch = batch_at(self.task, "train", c.batch_size, c.seed, self.step)
            t0 = time.perf_counter()
            rec = self.train_step(batch)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            rec["seconds"] = time.perf_counter() - t0
            rec["step"] = self.step
            rec["perplexity"] = perplexity(rec["cross_entropy"])
            for k in ("step", "loss", "cross_entropy", "perplexity", "lr", "grad_norm", "tokens", "seconds"):
                h[k].append(rec[k])
            if c.eval_every and self.step % c.eval_every == 0:
                ev = evaluate(self.model, self.task, "test", c.eval_n)
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
            bar.set_postfix(loss=f"{rec['loss']:.3f}", ppl=f"{rec['perplexity']:.2f}", lr=f"{rec['lr']:.2e}")
            if plot is not None and (self.step % plot_every == 0):
                plot.update(h)
            if callback is not None:
                callback(self, rec)
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
    def save(self, path: str | Path, include_optimizer: bool = True, metrics: dict | None = None) -> None:
        """Everything needed to resume: model, optimiser, schedule, step, RNG states, history."""
        from .checkpoint import save_checkpoint

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


# --- command line -------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m course_lib.train", description="Train the course's Transformer from the shell."
    )
    p.add_argument("--task", default="dates", choices=["dates", "reversal"])
    p.add_argument("--steps", type=int, default=3000, help="total optimisation steps")
    p.add_argument("--out", default=None, help="where to save the checkpoint (.pt)")
    p.add_argument("--resume", default=None, help="a checkpoint saved with its optimiser to continue from")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=2, help="encoder layers = decoder layers")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--schedule",
        default="paper",
        choices=SCHEDULES,
        help="paper: equation (3); linear: warm-up to --peak-lr, linear decay to the last step",
    )
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (400 for paper, 50 for linear)")
    p.add_argument("--lr-scale", type=float, default=0.5, help="factor on equation (3) (paper schedule)")
    p.add_argument("--peak-lr", type=float, default=3e-3, help="the linear schedule's peak")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, choices=["cpu", "cuda", "mps"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-n", type=int, default=1000, help="held-out examples for the final evaluation")
    p.add_argument("--no-optimizer", action="store_true", help="save the model only (a smaller file)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    if a.resume:
        trainer = Trainer.load(a.resume, a.device)
        print(f"resumed from {a.resume} at step {trainer.step}")
    else:
        model = model_for_task(a.task, a.d_model, a.heads, a.layers, a.d_ff, a.dropout, seed=a.seed)
        cfg = TrainConfig(
            task=a.task,
            batch_size=a.batch_size,
            warmup=a.warmup if a.warmup is not None else (400 if a.schedule == "paper" else 50),
            lr_scale=a.lr_scale,
            schedule=a.schedule,
            peak_lr=a.peak_lr,
            total_steps=a.steps,
            label_smoothing=a.label_smoothing,
            clip_norm=a.clip_norm,
            seed=a.seed,
            eval_every=a.eval_every,
            eval_n=200,
        )
        trainer = Trainer(model, cfg, a.device)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    print(f"task {a.task} | device {describe_device(trainer.device)} | {n_params:,} parameters")
    t0, cpu0 = time.perf_counter(), time.process_time()
    trainer.run(max(a.steps - trainer.step, 0), progress=not a.no_progress)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
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
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        trainer.save(a.out, include_optimizer=not a.no_optimizer, metrics=metrics)
        print(f"saved {a.out} ({Path(a.out).stat().st_size / 1e6:.2f} MB)")
    return metrics


if __name__ == "__main__":
    main()
