"""The models and batches the rows measure: the course's final model (the one the training
command in course_lib/train.py makes for assets/dates_model.pt) and real batches of its
tasks, plus tiny stand-ins for the quick run."""

from __future__ import annotations

import statistics

import torch

from course_lib.data import batch_at, get_task, make_batch
from course_lib.model import TransformerConfig
from course_lib.train import TrainConfig, Trainer, model_for_task

from .baseline import TorchSeq2Seq
from .convergence import CourseRecipe, PlainRecipe, Run, history_lines, race, ratio_line, summary
from .speed import StepBatch
from .table import Line
from .timing import fmt_seconds

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


def linear_trainer(model, task: str, batch_size: int, seed: int = 0) -> Trainer:
    """course_lib's Trainer with the linear schedule (LINEAR); `seed` picks the batches."""
    return Trainer(model, TrainConfig(task=task, batch_size=batch_size, seed=seed, **LINEAR), "cpu")


SEEDS = (1, 2, 3)  # fresh seeds: the recipe was chosen earlier with seed 0


def convergence_lines(quick: bool, cap_steps: int) -> tuple[list[Line], str]:
    """Row 2 for the dates task and reversal (V=10, length 16), three seeds each: the course's
    model and recipe against (a) the same model, with the same initial weights, trained with the
    plain recipe, and (b) a stock nn.Transformer of the same size with the plain recipe."""
    target = 0.01 if quick else 0.99
    eval_every = 2 if quick else 50
    eval_n = 50 if quick else 1000
    batch = 8 if quick else FINAL_BATCH
    seeds = SEEDS[:1] if quick else SEEDS
    lines, details = [], []
    for name, label in (("dates", "dates"), ("reversal", "reversal (V=10, length 16)")):
        task = get_task(name)
        valid, test = task.eval_pairs(eval_n, "valid"), task.eval_pairs(eval_n, "test")
        by_name: dict[str, list[Run]] = {}
        for seed in seeds:
            torch.manual_seed(seed)
            stock = TorchSeq2Seq(final_model(name, quick, seed=seed).cfg)
            contenders = [
                CourseRecipe(
                    "course", linear_trainer(final_model(name, quick, seed=seed), name, batch, seed)
                ),
                PlainRecipe(
                    "plain, same model", final_model(name, quick, seed=seed), task, batch, seed, True
                ),
                PlainRecipe("plain nn.Transformer", stock, task, batch, seed, False),
            ]
            for run in race(contenders, task, valid, test, target, cap_steps, eval_every, seed):
                by_name.setdefault(run.contender.name, []).append(run)
        ours = by_name["course"]
        for base_name, what, role in (
            ("plain, same model", "the same model and initial weights, plain recipe", "the recipe"),
            ("plain nn.Transformer", "stock nn.Transformer of the same size, plain recipe", "model + recipe"),
        ):
            base = by_name[base_name]
            r, measured = ratio_line(ours, base)
            med_eval = statistics.median
            detail = (
                f"{measured}; course {summary(ours)}; baseline {summary(base)}; evaluation (not counted) "
                f"{fmt_seconds(med_eval([x.eval_s for x in ours]))} vs {fmt_seconds(med_eval([x.eval_s for x in base]))}; "
                f"test exact match {med_eval([x.test for x in ours]):.1%} vs {med_eval([x.test for x in base]):.1%}"
            )
            lines.append(
                Line(
                    2,
                    f"training time to {target:.0%} validation exact match, {label}: course model and "
                    f"recipe / {what} (measures {role}; median of {len(seeds)} seeds)",
                    f"quick mode, lowered target: {detail}" if quick else detail,
                    "<= 0.5x",
                    None if quick or r is None else r <= 0.5,
                )
            )
        for runs in by_name.values():
            details += history_lines(runs)
    tc, p = TrainConfig(), LINEAR
    details.append(
        f"\nModel: {describe_config(final_config('dates', quick))} (reversal: the same sizes); batch {batch}. "
        f"Course recipe: course_lib.train.Trainer with schedule='linear': warm-up over {p['warmup']} steps to "
        f"{p['peak_lr']:g}, then linear decay to 2% of it at step {p['total_steps']}; label smoothing "
        f"{tc.label_smoothing}, Adam(0.9, 0.98, 1e-9), clipping {tc.clip_norm}. Plain recipe: Adam at a constant "
        f"1e-3, plain cross-entropy, untuned. Validation every {eval_every} steps on {eval_n} examples of the "
        f"validation split; test: {eval_n} examples of the test split, once per run; each run capped at "
        f"{cap_steps} steps. Seeds {', '.join(map(str, seeds))} set the initial weights and the batches."
    )
    return lines, "\n".join(details)
