"""Checkers for lesson 06, residuals, LayerNorm and the feed-forward block.

check_sublayer_connection(fn)  fn(x, sublayer, norm, norm_first) -> post-LN or pre-LN residual step
check_ffn_sublayer(cls)        cls(d_model, d_ff, dropout, norm_first, eps): the whole feed-forward
                               sublayer, with its own LayerNorm parameters gamma, beta and its own
                               w_1, w_2; cls(...)(x (B, T, d_model)) -> (B, T, d_model), post-LN
                               LN(x + Dropout(FFN(x))) or pre-LN x + Dropout(FFN(LN(x)))
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import EncoderLayer, FeedForward, LayerNorm
from . import (
    CheckResult,
    checker,
    compare,
    fail,
    fresh_generator,
    run_trials,
)

D = torch.float64


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _close(got: object, expected: Tensor) -> bool:
    return compare(got, expected, "x", atol=1e-7, rtol=1e-6) is None


# --- 1. post-LN and pre-LN --------------------------------------------------------------------
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


# --- 2. the feed-forward sublayer, whole ------------------------------------------------------
_FFN = "FFN sublayer"
_REFUSED = (LayerNorm, FeedForward, EncoderLayer, nn.LayerNorm, F.layer_norm, nn.TransformerEncoderLayer)
_PARAMS = ("gamma", "beta", "w_1.weight", "w_1.bias", "w_2.weight", "w_2.bias")
P_HIGH = 1 - 1e-12  # train-mode trials: every entry dropped (a survivor: about 1 in 1e12), so where
# dropout acts is plain to see; below 1, so that a dropout written out as mask / (1 - p) stays finite
_EPS = 1e-5

_HINT_SWAP = (
    "you computed the other arrangement: post-LN (norm_first=False, the paper) is LN(x + Dropout(FFN(x))), "
    "pre-LN (norm_first=True) is x + Dropout(FFN(LN(x)))"
)
_HINT_LN_ON_FFN = {
    False: "you applied LN to the FFN's output instead of the sum: post-LN normalises x + Dropout(FFN(x)) "
    "as a whole",
    True: "in pre-LN the norm goes before the FFN, on its input: x + Dropout(FFN(LN(x)))",
}
_HINT_LN_RESIDUAL = "in pre-LN the residual adds x itself, not LN(x): x + Dropout(FFN(LN(x)))"
_HINT_EXTRA_NORM = "pre-LN has no norm after the sum: x + Dropout(FFN(LN(x))) leaves the residual path alone"
_HINT_NO_RESIDUAL = "the residual is missing: add the input x back"
_HINT_UNBIASED = (
    "use the biased variance (divide by d_model, not d_model - 1), as LayerNorm does: "
    "x.var(dim=-1, unbiased=False)"
)
_HINT_EPS = "eps goes inside the square root: (x - mean) / sqrt(var + eps)"
_HINT_AFFINE = (
    "after standardising, scale by gamma and shift by beta: gamma * (x - mean) / sqrt(var + eps) + beta"
)
_HINT_EPS_ARG = "use the eps passed to __init__, not a fixed 1e-5"
_HINT_RELU = (
    "the ReLU is missing: FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 (equation 2), relu between w_1 and w_2"
)
_HINT_DROP_SUM = (
    "you applied dropout to the residual sum too: drop only the FFN's output, before adding x (section 5.4)"
)
_HINT_DROP_HIDDEN = (
    "you dropped the FFN's hidden units (after the ReLU) instead of its output: the paper's dropout acts on "
    "the sublayer's output, after w_2 and before the residual sum (section 5.4)"
)
_HINT_DROP_NONE = (
    "in training mode dropout did nothing: create nn.Dropout(dropout) in __init__ and apply it to the FFN's "
    "output in forward"
)
_HINT_DROP_EVAL = (
    "in eval mode two calls on the same input gave different outputs: use nn.Dropout, which model.eval() "
    "switches off (F.dropout needs training=self.training)"
)


def _structure(module: nn.Module, d_model: int, d_ff: int) -> str | None:
    """None when the parts are named and shaped as asked (and gamma, beta start at ones, zeros)."""
    for n, init in (("gamma", "ones"), ("beta", "zeros")):
        p = getattr(module, n, None)
        if not isinstance(p, nn.Parameter):
            return (
                f"the sublayer needs its own LayerNorm parameters as nn.Parameter attributes: "
                f"self.{n} = nn.Parameter(torch.{init}(d_model)) (found {type(p).__name__})"
            )
        if tuple(p.shape) != (d_model,):
            return f"self.{n} has shape {tuple(p.shape)}, expected (d_model,) = ({d_model},)"
    if not (torch.all(module.gamma == 1) and torch.all(module.beta == 0)):
        return "LayerNorm starts as the plain standardisation: gamma = ones(d_model), beta = zeros(d_model)"
    for n, (i, o) in (("w_1", (d_model, d_ff)), ("w_2", (d_ff, d_model))):
        lin = getattr(module, n, None)
        want = f"nn.Linear({'d_model, d_ff' if n == 'w_1' else 'd_ff, d_model'}) = nn.Linear({i}, {o})"
        if not isinstance(lin, nn.Linear):
            return f"self.{n} should be {want}, found {type(lin).__name__}"
        if (lin.in_features, lin.out_features) != (i, o):
            return f"self.{n} maps {lin.in_features} -> {lin.out_features} features, expected {want}"
        if lin.bias is None:
            return f"self.{n} needs its bias (b_{n[-1]} in equation 2): leave nn.Linear's bias=True"
    extra = sorted(set(dict(module.named_parameters())) - set(_PARAMS))
    if extra:
        return f"your sublayer has parameters besides gamma, beta, w_1 and w_2: {', '.join(extra)}"
    return None


def _ln(
    h: Tensor,
    gamma: Tensor,
    beta: Tensor,
    eps: float,
    unbiased: bool = False,
    outside: bool = False,
    affine: bool = True,
) -> Tensor:
    """LayerNorm over the last axis, and its slips: unbiased variance, eps outside the root, no gamma/beta."""
    mean = h.mean(-1, keepdim=True)  # (..., 1)
    var = h.var(-1, unbiased=unbiased, keepdim=True)  # (..., 1)
    z = (h - mean) / (var.sqrt() + eps if outside else torch.sqrt(var + eps))
    return gamma * z + beta if affine else z


def _ffn(h: Tensor, p: dict[str, Tensor], relu: bool = True) -> Tensor:
    """Equation (2) with the trial's parameters (and without its ReLU)."""
    a = h @ p["w_1.weight"].T + p["w_1.bias"]  # (..., d_ff)
    return (a.relu() if relu else a) @ p["w_2.weight"].T + p["w_2.bias"]  # (..., d_model)


def _arrangements(
    x: Tensor, ln: Callable[[Tensor], Tensor], ffn: Callable[[Tensor], Tensor], norm_first: bool
) -> list[tuple[str | None, Tensor]]:
    """The right arrangement first, then the slips, each with its hint (eval mode: no dropout)."""
    out: list[tuple[str | None, Tensor]] = [
        (None, x + ffn(ln(x)) if norm_first else ln(x + ffn(x))),
        (_HINT_SWAP, ln(x + ffn(x)) if norm_first else x + ffn(ln(x))),
        (_HINT_LN_ON_FFN[norm_first], x + ln(ffn(x))),
    ]
    if norm_first:
        out += [(_HINT_LN_RESIDUAL, ln(x) + ffn(ln(x))), (_HINT_EXTRA_NORM, ln(x + ffn(ln(x))))]
    out += [(_HINT_NO_RESIDUAL, v) for v in (ln(ffn(x)), ffn(ln(x)), ffn(x))]
    return out


def _named_slip(got: Tensor, x: Tensor, p: dict[str, Tensor], eps: float, norm_first: bool) -> str | None:
    """The hint(s) of the first combination of slips that gives exactly `got`, if one does."""
    g_, b_ = p["gamma"], p["beta"]
    norms: list[tuple[str | None, Callable[[Tensor], Tensor]]] = [
        (None, lambda h: _ln(h, g_, b_, eps)),
        (_HINT_UNBIASED, lambda h: _ln(h, g_, b_, eps, unbiased=True)),
        (_HINT_EPS, lambda h: _ln(h, g_, b_, eps, outside=True)),
        (_HINT_AFFINE, lambda h: _ln(h, g_, b_, eps, affine=False)),
    ]
    if eps != _EPS:
        norms.append((_HINT_EPS_ARG, lambda h: _ln(h, g_, b_, _EPS)))
    ffns: list[tuple[str | None, Callable[[Tensor], Tensor]]] = [
        (None, lambda h: _ffn(h, p)),
        (_HINT_RELU, lambda h: _ffn(h, p, relu=False)),
    ]
    # one slip first (the likeliest), then two or three at once
    combos = []
    for ln_hint, ln in norms:
        for ffn_hint, ffn in ffns:
            for arr_hint, value in _arrangements(x, ln, ffn, norm_first):
                hints = [h for h in (arr_hint, ln_hint, ffn_hint) if h is not None]
                if hints:
                    combos.append((len(hints), hints, value))
    for _, hints, value in sorted(combos, key=lambda c: c[0]):
        if _close(got, value):
            return "; also ".join(hints)
    return None


def _fill(module: nn.Module, g: torch.Generator, d_model: int, d_ff: int, tiny: bool) -> dict[str, Tensor]:
    """Fresh random parameters, written into the learner's module; `tiny`: x + FFN(x) stays tiny too."""
    s = 1e-3 if tiny else 1.0
    p = {
        "gamma": 1 + 0.5 * torch.randn(d_model, generator=g, dtype=D),
        "beta": 0.5 * torch.randn(d_model, generator=g, dtype=D),
        "w_1.weight": torch.randn(d_ff, d_model, generator=g, dtype=D) / math.sqrt(d_model),
        "w_1.bias": 0.5 * torch.randn(d_ff, generator=g, dtype=D),
        "w_2.weight": s * torch.randn(d_model, d_ff, generator=g, dtype=D) / math.sqrt(d_ff),
        "w_2.bias": s * 0.5 * torch.randn(d_model, generator=g, dtype=D),
    }
    own = dict(module.named_parameters())
    with torch.no_grad():
        for n, v in p.items():
            own[n].copy_(v)
    return p


def _features(g: torch.Generator, B: int, T: int, d_model: int, scale: float) -> Tensor:
    """Fresh (B, T, d_model) inputs in float64, each token with a mean of its own."""
    x = 2 * torch.randn(B, T, d_model, generator=g, dtype=D) + torch.randn(B, T, 1, generator=g, dtype=D)
    return scale * x


def _reference(p: dict[str, Tensor], d_model: int, d_ff: int, eps: float, norm_first: bool) -> Callable:
    """An independent torch sublayer (eval mode) with the same parameters: nn.LayerNorm, nn.Linear, relu."""
    ln = nn.LayerNorm(d_model, eps=eps, dtype=D)
    w_1, w_2 = nn.Linear(d_model, d_ff, dtype=D), nn.Linear(d_ff, d_model, dtype=D)
    with torch.no_grad():
        for mod, prefix in ((w_1, "w_1."), (w_2, "w_2.")):
            mod.weight.copy_(p[prefix + "weight"])
            mod.bias.copy_(p[prefix + "bias"])
        ln.weight.copy_(p["gamma"])
        ln.bias.copy_(p["beta"])

    def ffn(h: Tensor) -> Tensor:
        return w_2(torch.relu(w_1(h)))  # (..., d_ff) -> (..., d_model)

    def forward(x: Tensor) -> Tensor:
        return x + ffn(ln(x)) if norm_first else ln(x + ffn(x))

    forward.params = (ln.weight, w_1.weight)  # type: ignore[attr-defined]
    return forward


@checker(*_REFUSED, label=_FFN, shown_before=(FeedForward,))
def check_ffn_sublayer(cls: type[nn.Module]) -> CheckResult:
    """cls(d_model, d_ff, dropout, norm_first, eps) -> a module with parameters gamma, beta (d_model,) and
    parts w_1, w_2 (nn.Linear); module(x (B, T, d_model)) -> (B, T, d_model). Eval-mode outputs and the
    gradients w.r.t. x, gamma and w_1.weight against an independent torch sublayer in float64, on fresh
    sizes and weights, both arrangements; train mode with dropout near 1 shows where dropout acts."""
    if not isinstance(cls, type):
        return fail(f"{_FFN}: pass the class itself, MyFFNSublayer, not {type(cls).__name__}")
    g = fresh_generator()

    def build(d_model: int, d_ff: int, dropout: float, norm_first: bool, eps: float) -> nn.Module | str:
        try:
            module = cls(d_model, d_ff, dropout=dropout, norm_first=norm_first, eps=eps)
        except TypeError as e:
            return (
                f"MyFFNSublayer({d_model}, {d_ff}, dropout={dropout}, norm_first={norm_first}, eps={eps}) raised "
                f"TypeError: {e}; keep __init__(self, d_model, d_ff, dropout=0.1, norm_first=False, eps=1e-5)"
            )
        except AttributeError as e:
            if "Module.__init__()" in str(e):
                return "call super().__init__() first in __init__, before creating the parts"
            raise
        if not isinstance(module, nn.Module):
            return (
                f"MyFFNSublayer should be an nn.Module (class MyFFNSublayer(nn.Module)), got {type(module)}"
            )
        hint = _structure(module, d_model, d_ff)
        return hint if hint is not None else module.double()

    def eval_trial(
        B: int, T: int, d: int, f: int, norm_first: bool, eps: float = _EPS, tiny: bool = False
    ) -> Callable[[], str | None]:
        def run() -> str | None:
            with torch.random.fork_rng(devices=[]):  # leave the notebook's global RNG alone
                torch.manual_seed(_randint(g, 0, 2**31 - 2))
                module = build(d, f, 0.5, norm_first, eps)
                if isinstance(module, str):
                    return module
                p = _fill(module, g, d, f, tiny)
                module.eval()
                x = _features(g, B, T, d, 1e-3 if tiny else 1.0)  # tiny: where eps sits matters
                where = f"(d_model={d}, d_ff={f}, norm_first={norm_first}, x of shape {(B, T, d)})"
                ref = _reference(p, d, f, eps, norm_first)
                with torch.no_grad():
                    got, again = module(x.clone()), module(x.clone())
                    expected = ref(x)
                if isinstance(got, Tensor) and isinstance(again, Tensor) and not torch.equal(got, again):
                    return _HINT_DROP_EVAL
                hint = compare(got, expected, f"the output {where}", atol=1e-7, rtol=1e-6)
                if hint is not None:
                    if isinstance(got, Tensor) and got.shape == expected.shape:
                        with torch.no_grad():
                            slip = _named_slip(got.detach().to(D), x, p, eps, norm_first)
                        if slip is not None:
                            return f"{slip} {where}"
                    return hint
                # the gradients of a random linear function of the output
                r = torch.randn(B, T, d, generator=g, dtype=D)
                x_own, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
                try:
                    mine = torch.autograd.grad(
                        (module(x_own) * r).sum(),
                        [x_own, module.gamma, module.w_1.weight],
                        allow_unused=True,
                    )
                except RuntimeError as e:
                    if "does not require grad" not in str(e):
                        raise
                    return "the output is not connected to the autograd graph: no torch.no_grad() or .detach() in forward"
                theirs = torch.autograd.grad((ref(x_ref) * r).sum(), [x_ref, *ref.params])
                for name, a, b in zip(("the input x", "gamma", "w_1.weight"), mine, theirs):
                    if a is None:
                        return f"no gradient reaches {name}: keep every step in the graph (no .detach(), .data or .item())"
                    hint = compare(a, b, f"the gradient with respect to {name} {where}", atol=1e-7, rtol=1e-6)
                    if hint is not None:
                        return hint + ": keep every step in the graph (no .detach(), .data or .item())"
            return None

        return run

    def train_trial(B: int, T: int, d: int, f: int, norm_first: bool) -> Callable[[], str | None]:
        def run() -> str | None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_randint(g, 0, 2**31 - 2))
                module = build(d, f, P_HIGH, norm_first, _EPS)
                if isinstance(module, str):
                    return module
                p = _fill(module, g, d, f, tiny=False)
                x = _features(g, B, T, d, 1.0)
                with torch.no_grad():
                    module.train()
                    got = module(x.clone())
                    module.eval()
                    plain = module(x.clone())
                if not isinstance(got, Tensor) or got.shape != x.shape:
                    return compare(got, x, f"the output in training mode, x of shape {(B, T, d)}")
                got = got.detach().to(D)
                ln_x = _ln(x, p["gamma"], p["beta"], _EPS)

                def share(value: Tensor, rows: bool) -> float:
                    """The share of entries (or of whole rows) of `got` equal to `value`."""
                    same = torch.isclose(got, value.expand_as(got), atol=1e-9, rtol=1e-9)
                    return float((same.all(-1) if rows else same).double().mean())

                # dropout = 1 - 1e-12 drops (almost) every entry of the FFN's output: what remains is x (pre-LN)
                # or LN(x) (post-LN) where dropout acts on the sublayer's output, as it should
                right = share(x, False) if norm_first else share(ln_x, True)
                if right >= 0.9:
                    return None
                if _close(got, plain):
                    return _HINT_DROP_NONE
                dropped_sum = share(torch.zeros_like(x), False) >= 0.9 or (
                    not norm_first and share(p["beta"], True) >= 0.9
                )
                if dropped_sum:
                    return _HINT_DROP_SUM
                b_2 = p["w_2.bias"]
                hidden = x + b_2 if norm_first else _ln(x + b_2, p["gamma"], p["beta"], _EPS)
                if share(hidden, not norm_first) >= 0.9:
                    return _HINT_DROP_HIDDEN
                what = "x itself" if norm_first else "LN(x), row by row"
                return (
                    f"in training mode with dropout = 1 - 1e-12 (every entry of the FFN's output dropped) the "
                    f"output should be {what}, but only {right:.0%} of it was (norm_first={norm_first}, d_model={d}): "
                    f"apply nn.Dropout(dropout), with the rate you were given, to the FFN's output before the sum"
                )

        return run

    def fresh() -> tuple[int, int, int, int]:
        d = _randint(g, 4, 16)
        return _randint(g, 1, 3), _randint(g, 2, 6), d, _randint(g, d, 4 * d)

    nf = [bool(_randint(g, 0, 1)) for _ in range(3)]
    eps_fresh = (1e-4, 1e-3)[_randint(g, 0, 1)]  # far enough from 1e-5 to show
    trials = [
        # fixed first trials: d_model = 4 shows the unbiased variance, tiny features the place of eps,
        # dropout near 1 the place of dropout; two eval calls on 24 entries show dropout left on in eval mode
        eval_trial(2, 3, 4, 8, False),
        eval_trial(2, 3, 4, 8, True),
        eval_trial(2, 3, 6, 12, True, tiny=True),
        eval_trial(2, 3, 6, 12, False, tiny=True),
        train_trial(2, 3, 8, 16, True),
        train_trial(2, 3, 8, 16, False),
        # then fresh sizes, arrangements and eps
        eval_trial(*fresh(), nf[0]),
        eval_trial(*fresh(), nf[1], eps=eps_fresh),
        train_trial(*fresh(), nf[2]),
    ]

    return run_trials(
        _FFN,
        trials,
        "post-LN and pre-LN outputs and gradients equal torch's (nn.LayerNorm, nn.Linear, ReLU) on fresh "
        "sizes and weights, and dropout acts on the FFN's output only.",
    )


__all__ = ["check_sublayer_connection", "check_ffn_sublayer"]
