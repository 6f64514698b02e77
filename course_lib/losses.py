"""The training loss (section 5.4 of the paper).

`cross_entropy` averages over the target positions and ignores padding; `label_smoothing_loss` is
the paper's label smoothing (epsilon_ls = 0.1), written by hand from `log_softmax` (never
log(softmax), which gives -inf where a probability underflows to 0) and checked against
`F.cross_entropy(label_smoothing=)` in the tests; `perplexity` is exp of the mean cross-entropy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import PAD


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
