"""Checkers for lesson 06, residuals, LayerNorm and the feed-forward block.

check_layer_norm(fn)           fn(x, gamma, beta, eps=1e-5) -> LayerNorm over the last axis
check_sublayer_connection(fn)  fn(x, sublayer, norm, norm_first) -> post-LN or pre-LN residual step
check_ffn_share(fn)            fn(d_model, d_ff) -> fraction of an encoder layer's parameters in its FFN
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..layers import EncoderLayer, FeedForward, LayerNorm
from ..params import attention_params, feed_forward_params, layer_norm_params
from . import CheckResult, checker, compare, fresh_generator, run_trials

D = torch.float64


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _close(got: object, expected: Tensor) -> bool:
    return compare(got, expected, "x", atol=1e-7, rtol=1e-6) is None


# --- 1. LayerNorm ----------------------------------------------------------------------------
def _layer_norm_variants(x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> dict[str, Tensor]:
    """Common slips, each with the hint that names it."""
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    out = {
        "use the biased variance (divide by d, not d - 1), as LayerNorm and torch do: "
        "x.var(dim=-1, unbiased=False)": gamma * (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + eps)
        + beta,
        "eps goes inside the square root: (x - mean) / sqrt(var + eps)": gamma
        * (x - mean)
        / (var.sqrt() + eps)
        + beta,
        "after standardising, scale by gamma and shift by beta (they are learned, one per feature)": (
            x - mean
        )
        / torch.sqrt(var + eps),
        "divide by the standard deviation sqrt(var + eps), not by the variance": gamma
        * (x - mean)
        / (var + eps)
        + beta,
        "LayerNorm standardises (mean 0, variance 1); it does not squeeze values into a range like [0, 1]": gamma
        * (x - x.amin(-1, keepdim=True))
        / (x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True))
        + beta,
    }
    if x.dim() >= 2:
        m0, v0 = x.mean(0, keepdim=True), x.var(0, unbiased=False, keepdim=True)
        out[
            "you normalised over the batch axis (that is BatchNorm); LayerNorm uses each token's own features, "
            "the last axis: dim=-1"
        ] = gamma * (x - m0) / torch.sqrt(v0 + eps) + beta
        ma, va = x.mean(), x.var(unbiased=False)
        out["you normalised over the whole tensor; LayerNorm uses each token's own features: dim=-1"] = (
            gamma * (x - ma) / torch.sqrt(va + eps) + beta
        )
    return out


@checker(LayerNorm, F.layer_norm, torch.nn.LayerNorm)
def check_layer_norm(fn: Callable[..., Tensor]) -> CheckResult:
    """fn(x, gamma, beta, eps=1e-5) on fresh random tensors of 2 to 4 dimensions, against
    `torch.nn.functional.layer_norm` (and so `nn.LayerNorm` and course_lib's `LayerNorm`)."""
    g = fresh_generator()

    def trial(scale: float) -> Callable[[], str | None]:
        def run() -> str | None:
            ndim = _randint(g, 2, 4)
            shape = tuple(_randint(g, 2, 5) for _ in range(ndim - 1)) + (_randint(g, 4, 24),)
            d = shape[-1]
            x = scale * torch.randn(shape, generator=g, dtype=D) + 3 * torch.randn(1, generator=g, dtype=D)
            gamma = 1 + 0.5 * torch.randn(d, generator=g, dtype=D)
            beta = 0.5 * torch.randn(d, generator=g, dtype=D)
            eps = 1e-5
            expected = F.layer_norm(x, (d,), gamma, beta, eps)
            got = fn(x.clone(), gamma.clone(), beta.clone(), eps)
            if _close(got, expected):
                return None
            if isinstance(got, Tensor) and got.shape == expected.shape:
                for hint, wrong in _layer_norm_variants(x, gamma, beta, eps).items():
                    # loosely: a second, smaller slip must not hide the first
                    if compare(got, wrong, "x", atol=1e-4, rtol=1e-3) is None:
                        return hint
            return compare(got, expected, f"layer norm of x with shape {shape}", atol=1e-7, rtol=1e-6)

        return run

    # the last trial has tiny features, where eps matters
    return run_trials(
        "layer norm",
        [trial(s) for s in (1.0, 2.0, 0.5, 1e-3)],
        "each token is standardised over its own features, then scaled by gamma and shifted by beta, "
        "equal to torch's layer_norm on 4 fresh random tensors.",
    )


# --- 2. post-LN and pre-LN --------------------------------------------------------------------
@checker(EncoderLayer.forward)
def check_sublayer_connection(fn: Callable[..., Tensor]) -> CheckResult:
    """fn(x, sublayer, norm, norm_first) against the two residual steps of `EncoderLayer`:
    post-LN (norm_first=False): norm(x + sublayer(x)); pre-LN: x + sublayer(norm(x))."""
    g = fresh_generator()

    def trial(norm_first: bool) -> Callable[[], str | None]:
        def run() -> str | None:
            B, T, d = _randint(g, 1, 3), _randint(g, 2, 6), 2 * _randint(g, 2, 8)
            with torch.random.fork_rng(devices=[]):  # leave the notebook's global RNG alone
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
                sublayer = FeedForward(d, 2 * d).double()
                norm = LayerNorm(d).double()
            with torch.no_grad():
                norm.gamma.add_(0.3 * torch.randn(d, generator=g, dtype=D))
                norm.beta.add_(0.3 * torch.randn(d, generator=g, dtype=D))
            x = 2 * torch.randn(B, T, d, generator=g, dtype=D) + 1
            with torch.no_grad():
                post = norm(x + sublayer(x))
                pre = x + sublayer(norm(x))
                got = fn(x.clone(), sublayer, norm, norm_first)
                expected, other = (pre, post) if norm_first else (post, pre)
                if _close(got, expected):
                    return None
                name = "pre-LN (norm_first=True)" if norm_first else "post-LN (norm_first=False)"
                if _close(got, other):
                    return (
                        f"for {name} you computed the other arrangement: post-LN is norm(x + sublayer(x)) "
                        "(the paper), pre-LN is x + sublayer(norm(x))"
                    )
                if (
                    _close(got, sublayer(x))
                    or _close(got, norm(sublayer(x)))
                    or _close(got, sublayer(norm(x)))
                ):
                    return f"for {name} the residual is missing: add the input x back"
                if norm_first and _close(got, x + norm(sublayer(x))):
                    return "in pre-LN the norm goes *before* the sublayer: x + sublayer(norm(x))"
                if not norm_first and _close(got, x + norm(sublayer(x))):
                    return "in post-LN the norm comes after the sum: norm(x + sublayer(x))"
            return compare(got, expected, f"{name} output for x of shape {(B, T, d)}", atol=1e-7, rtol=1e-6)

        return run

    return run_trials(
        "sublayer connection",
        [trial(nf) for nf in (False, True, True, False)],
        "post-LN is norm(x + sublayer(x)), pre-LN is x + sublayer(norm(x)): both right on fresh inputs.",
    )


# --- 3. the FFN's share of the parameters ------------------------------------------------------
def ffn_share(d_model: int, d_ff: int) -> float:
    """The reference: FFN parameters / all parameters of one encoder layer (biases and LayerNorms included)."""
    ffn = feed_forward_params(d_model, d_ff)
    return ffn / (attention_params(d_model) + ffn + 2 * layer_norm_params(d_model))


@checker()
def check_ffn_share(fn: Callable[[int, int], float]) -> CheckResult:
    """fn(d_model, d_ff) -> the fraction of one encoder layer's parameters that sit in its
    feed-forward block, on fresh random sizes (and the paper's base model)."""
    g = fresh_generator()

    def trial(d_model: int, d_ff: int) -> Callable[[], str | None]:
        def run() -> str | None:
            got = fn(d_model, d_ff)
            try:
                got = float(got)
            except (TypeError, ValueError):
                return f"return a number (a fraction between 0 and 1), got {type(got).__name__}"
            want = ffn_share(d_model, d_ff)
            if math.isclose(got, want, rel_tol=1e-9):
                return None
            if math.isclose(got, 100 * want, rel_tol=1e-9):
                return "return a fraction between 0 and 1, not a percentage"
            attn, ln = attention_params(d_model), 2 * layer_norm_params(d_model)
            ffn_nb, attn_nb = 2 * d_model * d_ff, 4 * d_model * d_model
            ffn = feed_forward_params(d_model, d_ff)
            slips = {
                "count the biases too: b_1 (d_ff) and b_2 (d_model) in the FFN, four d_model biases in attention": (
                    ffn_nb / (ffn_nb + attn_nb + ln),
                    ffn_nb / (ffn_nb + attn_nb),
                ),
                "include the encoder layer's two LayerNorms (gamma and beta: 2 x 2 x d_model)": (
                    ffn / (ffn + attn),
                ),
                "that is the decoder layer's share (two attention blocks, three LayerNorms); the encoder layer "
                "has one attention block": (ffn / (ffn + 2 * attn + 3 * layer_norm_params(d_model)),),
                "that is attention's share; the question asks for the feed-forward block's": (
                    attn / (attn + ffn + ln),
                ),
            }
            for hint, values in slips.items():
                if any(math.isclose(got, v, rel_tol=1e-9) for v in values):
                    return f"for d_model={d_model}, d_ff={d_ff}: {hint}"
            return f"for d_model={d_model}, d_ff={d_ff} you returned {got:.6f}, expected {want:.6f}"

        return run

    sizes = [(512, 2048)] + [(8 * _randint(g, 1, 64), 8 * _randint(g, 1, 256)) for _ in range(4)]
    return run_trials(
        "FFN share",
        [trial(*s) for s in sizes],
        f"right for the base model ({ffn_share(512, 2048):.1%}) and 4 fresh random sizes.",
    )


__all__ = ["check_layer_norm", "check_sublayer_connection", "check_ffn_share", "ffn_share"]
