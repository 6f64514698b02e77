"""The models and batches the rows measure: the course's final model (the one the training
command in course_lib/train.py makes for assets/dates_model.pt) and real batches of its
tasks, plus tiny stand-ins for the quick run."""

from __future__ import annotations

import torch

from course_lib.data import batch_at, get_task, make_batch
from course_lib.model import TransformerConfig
from course_lib.train import TrainConfig, Trainer, model_for_task

from .baseline import TorchSeq2Seq
from .convergence import CourseRecipe, PlainRecipe, race, race_lines
from .speed import StepBatch
from .table import Line

# The final model's sizes: course_lib.train's command-line defaults, which made the shipped
# checkpoint (`python -m course_lib.train --task dates ...` in that module's docstring).
FINAL_MODEL = {"d_model": 128, "n_heads": 4, "layers": 2, "d_ff": 256, "dropout": 0.0}
QUICK_MODEL = {"d_model": 32, "n_heads": 2, "layers": 1, "d_ff": 64, "dropout": 0.0}
FINAL_BATCH = TrainConfig().batch_size


def final_model(task: str, quick: bool = False, seed: int = 0):
    return model_for_task(task, **(QUICK_MODEL if quick else FINAL_MODEL), seed=seed)


def final_config(task: str, quick: bool = False) -> TransformerConfig:
    return final_model(task, quick).cfg


def describe_config(cfg: TransformerConfig) -> str:
    return (
        f"d_model {cfg.d_model}, {cfg.n_encoder_layers}+{cfg.n_decoder_layers} layers, "
        f"h {cfg.n_heads}, d_ff {cfg.d_ff}, dropout {cfg.dropout}"
    )


def step_batch(quick: bool, device: torch.device) -> tuple[str, TransformerConfig, StepBatch]:
    """The final dates model and one real training batch of the dates task."""
    cfg = final_config("dates", quick)
    B = 16 if quick else FINAL_BATCH
    b = batch_at("dates", "train", B, 0, 0)
    label = (
        f"final dates model: {describe_config(cfg)}; batch {B} x {b.src.size(1)}+{b.tgt_in.size(1)} tokens"
    )
    return label, cfg, StepBatch(b.src.to(device), b.tgt_in.to(device), b.tgt_out.to(device))


def generation_setups(quick: bool) -> list[tuple[str, TransformerConfig, torch.Tensor]]:
    """The final dates model with one source (a demo) and with 8 held-out sources at once
    (evaluation and beam search decode several sequences together)."""
    task = get_task("dates")
    cfg = final_config("dates", quick)
    one = torch.tensor([task.src_vocab.encode("Sunday, 22 November 2026")])  # (1, S)
    eight = make_batch(task.eval_pairs(8), task.src_vocab, task.tgt_vocab).src  # (8, S), padded
    what = f"final dates model ({describe_config(cfg)})"
    return [(f"{what}, batch 1", cfg, one), (f"{what}, batch 8", cfg, eight)]


# The course's recipe for short runs (`python -m course_lib.train --schedule linear`, see
# docs/benchmarks.md): the course's Trainer (Adam(0.9, 0.98, 1e-9), label smoothing 0.1,
# clipping 1.0, batch 128) with a linear warm-up over 50 steps to 3e-3, then a linear decay to
# 2% of it at step 400. Equation (3) decays as 1/sqrt(step), too slowly for a run of a few
# hundred steps: the weights keep moving and exact match hovers below 99%.
LINEAR = {"schedule": "linear", "peak_lr": 3e-3, "warmup": 50, "total_steps": 400}


def linear_trainer(model, task: str, batch_size: int) -> Trainer:
    """course_lib's Trainer with the linear schedule (LINEAR)."""
    return Trainer(model, TrainConfig(task=task, batch_size=batch_size, **LINEAR), "cpu")


def convergence_lines(quick: bool, cap_s: float) -> tuple[list[Line], str]:
    """Row 2 for the dates task and reversal (V=10, length 16): the final model with the
    linear schedule and with the paper's (course_lib.train's default), against the plain baseline."""
    target = 0.01 if quick else 0.99
    eval_every = 2 if quick else 50
    eval_n = 50 if quick else 1000
    batch = 8 if quick else FINAL_BATCH
    lines, details = [], []
    for name, label in (("dates", "dates"), ("reversal", "reversal (V=10, length 16)")):
        task = get_task(name)
        base_model = final_model(name, quick, seed=0)
        torch.manual_seed(0)
        base = TorchSeq2Seq(base_model.cfg)
        contenders = [
            CourseRecipe("linear", linear_trainer(final_model(name, quick, seed=0), name, batch)),
            CourseRecipe(
                "default",
                Trainer(final_model(name, quick, seed=0), TrainConfig(task=name, batch_size=batch), "cpu"),
            ),
            PlainRecipe("baseline", base, task, batch, TrainConfig().seed),
        ]
        runs = race(contenders, task, task.eval_pairs(eval_n, "test"), target, cap_s, eval_every)
        lines += race_lines(
            f"{label}: final model, course_lib.train --schedule linear", runs[0], runs[2], target, quick
        )
        lines += race_lines(
            f"{label}: final model, course_lib.train --schedule paper (equation 3, the default)",
            *(runs[1], runs[2], target, quick),
            comparison=True,
        )
        for run in runs:
            hist = ", ".join(f"({s}, {t:.0f} s, {a:.1%})" for s, t, a in run.history)
            details.append(f"* {label}, {run.contender.name}: {hist}")
    tc, p = TrainConfig(), LINEAR
    details.append(
        f"\nModel for all three: {describe_config(base_model.cfg)}; batch {batch}. "
        f"Linear: course_lib.train.Trainer with schedule='linear': warm-up over {p['warmup']} steps to "
        f"{p['peak_lr']:g}, then linear decay to 2% of it at step {p['total_steps']}. "
        f"Defaults: equation (3) with warm-up {tc.warmup} (lr scale {tc.lr_scale}); both with label "
        f"smoothing {tc.label_smoothing}, Adam(0.9, 0.98, 1e-9), clipping {tc.clip_norm}. Baseline: Adam at "
        f"1e-3, plain cross-entropy. Evaluation every {eval_every} steps on {eval_n} held-out examples; "
        f"each training capped at {cap_s:.0f} s on its own clock."
    )
    return lines, "\n".join(details)
