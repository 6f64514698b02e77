"""The optimiser and the learning-rate schedule (section 5.3 of the paper).

`transformer_lr` is equation (3): lrate = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5);
`linear_lr` is the alternative for short runs (linear warm-up to a peak, linear decay to a floor at
the run's last step); `make_scheduler` wraps either in a `LambdaLR`; `make_optimizer` is
Adam(beta1 = 0.9, beta2 = 0.98, epsilon = 1e-9).
"""

from __future__ import annotations

import torch
from torch import nn


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
