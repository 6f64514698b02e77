"""Checkers for lesson 02, "Tokens, embeddings, Q/K/V".

check_softmax(fn)                   fn(x) -> softmax over the last axis, stable for large scores
check_attention(fn)                 fn(q, k, v) -> (output, weights), equation (1) with batch axes
check_self_attention_layer(cls)     cls(vocab_size, d_model, d_k)(ids (B, T)) -> (output (B, T, d_k),
                                    weights (B, T, T)): embedding, W^Q, W^K, W^V and equation (1)

References are torch's own `softmax` and `scaled_dot_product_attention`, on fresh random
inputs of several shapes (T_q != T_k and d_v != d_k, so a swapped axis cannot pass).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..attention import MultiHeadAttention, scaled_dot_product_attention
from . import CheckResult, checker, compare, fail, fresh_generator, run_trials

D = torch.float64


def _shape(g: torch.Generator, ndim: int, last: int | None = None) -> tuple[int, ...]:
    """A random shape whose last two axes differ: (..., T_q, T_k)."""
    sizes = [int(s) for s in torch.randint(2, 5, (ndim,), generator=g)]
    sizes[-2] = int(torch.randint(3, 7, (1,), generator=g))
    sizes[-1] = sizes[-2] + int(torch.randint(1, 4, (1,), generator=g)) if last is None else last
    return tuple(sizes)


def _matches(got: object, expected: Tensor) -> bool:
    return compare(got, expected, "", atol=1e-8, rtol=1e-6) is None


# ----------------------------------------------------------------------------- softmax


@checker(torch.softmax, F.softmax, torch.Tensor.softmax, torch.nn.Softmax)
def check_softmax(fn: Callable[[Tensor], Tensor]) -> CheckResult:
    """fn(x) -> softmax over the last axis (the keys), finite even for scores in the thousands."""
    g = fresh_generator()

    def trial(ndim: int, scale: float) -> Callable[[], str | None]:
        def run() -> str | None:
            x = torch.randn(*_shape(g, ndim), generator=g, dtype=D) * scale
            if scale > 100:
                x = x + 500.0  # large, positive scores: a naive exp overflows
            got = fn(x.clone())
            ref = torch.softmax(x, dim=-1)
            hint = compare(got, ref, "your softmax", atol=1e-8, rtol=1e-6)
            if hint is None or not isinstance(got, Tensor) or got.shape != ref.shape:
                return hint
            if not torch.isfinite(got).all():
                return (
                    "scores in the thousands gave inf or NaN: exp overflowed. Subtract each row's "
                    "maximum before exponentiating (softmax(x) = softmax(x - max))"
                )
            if _matches(got, torch.softmax(x, dim=-2)):
                return (
                    "you normalised over axis -2 (the queries). Softmax runs over the keys, the last axis: "
                    "for each query the weights over all keys sum to 1"
                )
            if x.dim() > 2 and _matches(got, torch.softmax(x.flatten(-2), -1).view_as(x)):
                return "you normalised over the whole grid: normalise each row (each query) on its own"
            sums = got.to(D).sum(-1)
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-6):
                return f"{hint}; each row should sum to 1 over the last axis, yours sum to e.g. {sums.flatten()[0]:.3g}"
            return hint

        return run

    return run_trials(
        "check_softmax",
        [trial(2, 1.0), trial(3, 3.0), trial(4, 1.0), trial(2, 1000.0), trial(3, 1000.0)],
        "rows sum to 1 over the keys, and it stays finite for scores in the thousands.",
    )


# -------------------------------------------------------------------------- attention


def _attention(q: Tensor, k: Tensor, v: Tensor, scale: float, dim: int = -1) -> tuple[Tensor, Tensor]:
    w = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=dim)
    return w @ v, w


@checker(scaled_dot_product_attention, F.scaled_dot_product_attention)
def check_attention(fn: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]) -> CheckResult:
    """fn(q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v)) -> (output (..., T_q, d_v), weights (..., T_q, T_k))."""
    g = fresh_generator()
    passed_2d: list[bool] = []

    def trial(ndim: int) -> Callable[[], str | None]:
        def run() -> str | None:
            lead = _shape(g, ndim)[:-2]
            T_q, T_k = (
                int(torch.randint(2, 6, (1,), generator=g)),
                int(torch.randint(6, 9, (1,), generator=g)),
            )
            d_k = int(torch.randint(4, 17, (1,), generator=g))
            d_v = d_k + int(torch.randint(1, 4, (1,), generator=g))
            q = torch.randn(*lead, T_q, d_k, generator=g, dtype=D)
            k = torch.randn(*lead, T_k, d_k, generator=g, dtype=D)
            v = torch.randn(*lead, T_k, d_v, generator=g, dtype=D)
            try:
                got = fn(q.clone(), k.clone(), v.clone())
            except Exception as e:
                if passed_2d:
                    return (
                        f"it works on (T, d) inputs but raised {type(e).__name__} with batch axes {lead}: "
                        "use k.transpose(-2, -1), not k.T, so the leading axes stay in place"
                    )
                raise
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                return "return two things, (output, weights), like the library's function"
            out, w = got
            ref_out = F.scaled_dot_product_attention(q, k, v)
            ref_w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_k), dim=-1)
            hint_w = compare(w, ref_w, "your weights", atol=1e-8, rtol=1e-6)
            hint_o = compare(out, ref_out, "your output", atol=1e-8, rtol=1e-6)
            if hint_w is None and hint_o is None:
                if ndim == 2:
                    passed_2d.append(True)
                return None
            if isinstance(w, Tensor) and w.shape == ref_w.shape:
                w = w.detach().to(D)
                if _matches(w, _attention(q, k, v, 1.0)[1]):
                    return (
                        "the weights are not scaled: divide the scores Q K^T by sqrt(d_k) before the softmax"
                    )
                if _matches(w, _attention(q, k, v, 1.0 / d_k)[1]):
                    return "you divided the scores by d_k: the paper divides by sqrt(d_k)"
                if _matches(w, _attention(q, k, v, 1.0 / math.sqrt(d_k), dim=-2)[1]):
                    return "softmax over the wrong axis: it runs over the keys (the last axis), once for each query"
            if hint_w is None:
                return f"{hint_o}: the weights are right, the output is weights @ v (one weighted sum of values per query)"
            if passed_2d and isinstance(w, Tensor) and w.shape != ref_w.shape:
                return f"{hint_w}: with batch axes use k.transpose(-2, -1), not k.T"
            return hint_w

        return run

    return run_trials(
        "check_attention",
        [trial(2), trial(3), trial(4), trial(2)],
        "softmax(Q K^T / sqrt(d_k)) V matches torch's scaled_dot_product_attention, batch axes included.",
    )


# ------------------------------------------------------------------- a self-attention layer

# what the layer must not hand over to: the course's and torch's attention (torch.softmax is allowed)
_LAYER_REFUSED = (
    scaled_dot_product_attention,
    MultiHeadAttention,
    F.scaled_dot_product_attention,
    nn.MultiheadAttention,
    F.multi_head_attention_forward,
)
_LAYER = "self-attention layer"
_NAMES = ("embed", "w_q", "w_k", "w_v")
_TOL = {"atol": 1e-6, "rtol": 1e-5}  # float64 weights; loose enough for float32 round-off


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


class _TransposeWatch(TorchFunctionMode):
    """Records whether `.T` was taken of a tensor with more than two axes (k.T on a batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.reversed_batch = False

    def __torch_function__(self, func, types_, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if getattr(func, "__self__", None) is Tensor.T and args and getattr(args[0], "ndim", 2) > 2:
            self.reversed_batch = True
        return func(*args, **(kwargs or {}))


def _used_batch_T(model: nn.Module, ids: Tensor) -> bool:
    """Run the learner's forward again, watching for `.T` on a batched tensor."""
    watch = _TransposeWatch()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            with watch:
                model(ids)
        except Exception:
            pass
    return watch.reversed_batch


def _layer_reference(
    params: dict[str, Tensor], ids: Tensor, scale: float | None = None, dim: int = -1, x_scale: float = 1.0
) -> dict[str, Tensor]:
    """Embedding lookup, then Q, K, V and equation (1): the weights, and variants with a named mistake."""
    x = F.embedding(ids, params["embed"]) * x_scale  # (B, T, d_model)
    q, k, v = (x @ params[n].T for n in ("w_q", "w_k", "w_v"))  # nn.Linear: x W^T, (B, T, d_k) each
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) * (1 / math.sqrt(d_k) if scale is None else scale)  # (B, T, T)
    weights = torch.softmax(scores, dim=dim)
    return {"x": x, "q": q, "k": k, "v": v, "weights": weights}


def _grads_reference(params: dict[str, Tensor], ids: Tensor, c: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """torch's fused attention on the same weights: the output and the gradients of sum(c * output)."""
    leaves = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
    x = F.embedding(ids, leaves["embed"])  # (B, T, d_model)
    q, k, v = (x @ leaves[n].T for n in ("w_q", "w_k", "w_v"))  # (B, T, d_k)
    out = F.scaled_dot_product_attention(q, k, v)  # (B, T, d_k)
    grads = torch.autograd.grad((out * c).sum(), list(leaves.values()))
    return out.detach(), dict(zip(leaves, grads))


def _structure(model: object, V: int, d_model: int, d_k: int) -> str | None:
    """None when the module has the asked-for parts and nothing more; otherwise what is off."""
    if not isinstance(model, nn.Module):
        return f"your class should subclass nn.Module, got a {type(model).__name__}"
    for name in _NAMES:
        part = getattr(model, name, None)
        if not isinstance(getattr(part, "weight", None), Tensor):
            return (
                f"self.{name} is missing: name the parts self.embed, self.w_q, self.w_k and self.w_v "
                "(nn.Embedding and nn.Linear), so that the checker can copy its weights into them"
            )
    shape = tuple(model.embed.weight.shape)
    if shape != (V, d_model):
        return (
            f"self.embed.weight has shape {shape}, expected (vocab_size, d_model) = {(V, d_model)}: "
            "one row of d_model numbers per token, nn.Embedding(vocab_size, d_model)"
        )
    for name in _NAMES[1:]:
        shape = tuple(getattr(model, name).weight.shape)
        if shape != (d_k, d_model):
            return (
                f"self.{name}.weight has shape {shape}, expected {(d_k, d_model)} for d_model={d_model}, "
                f"d_k={d_k}: nn.Linear(d_model, d_k) maps d_model to d_k "
                "(it stores the weight as (d_k, d_model))"
            )
    expected = V * d_model + 3 * d_model * d_k
    count = sum(p.numel() for p in model.parameters())
    biased = [n for n in _NAMES[1:] if getattr(getattr(model, n), "bias", None) is not None]
    if biased or count == expected + 3 * d_k:
        return (
            f"your projections have biases ({', '.join(biased) or 'w_q, w_k, w_v'}): W^Q, W^K and W^V are "
            "plain matrices, nn.Linear(d_model, d_k, bias=False)"
        )
    if count != expected:
        extra = [n for n, _ in model.named_parameters() if n.split(".")[0] not in _NAMES]
        return (
            f"your layer has {count:,} parameters, expected vocab_size*d_model + 3*d_model*d_k = {expected:,}"
            + (f" (extra: {', '.join(extra)})" if extra else "")
        )
    return None


def _weights_hint(w: Tensor, p: dict[str, Tensor], ids: Tensor, d_model: int) -> str | None:
    """The named mistake that gives these weights, if one does."""
    d_k = p["w_q"].shape[0]
    variants = [
        (
            {"scale": 1 / math.sqrt(d_model)},
            f"you divided the scores by sqrt(d_model) = sqrt({d_model}): equation (1) divides by sqrt(d_k) "
            f"= sqrt({d_k}), the width of the queries and keys",
        ),
        ({"scale": 1.0}, "the scores are not scaled: divide Q K^T by sqrt(d_k) before the softmax"),
        ({"scale": 1 / d_k}, "you divided the scores by d_k: equation (1) divides by sqrt(d_k)"),
        (
            {"dim": -2},
            "softmax over the queries (axis -2): it runs over the keys, the last axis, so that each "
            "query's weights sum to 1",
        ),
        (
            {"dim": 0},
            "softmax over the batch axis (axis 0): it runs over the keys, the last axis, in each sentence "
            "on its own",
        ),
        (
            {"x_scale": math.sqrt(d_model)},
            "you multiplied the embeddings by sqrt(d_model): the full model does that (section 3.4), "
            "this layer uses the plain lookup self.embed(ids)",
        ),
    ]
    for kwargs, hint in variants:
        if compare(w, _layer_reference(p, ids, **kwargs)["weights"], "", **_TOL) is None:
            return hint
    swapped = _layer_reference({**p, "w_q": p["w_k"], "w_k": p["w_q"]}, ids)["weights"]
    if compare(w, swapped, "", **_TOL) is None:
        return (
            "your scores are K Q^T: the queries come from self.w_q, the keys from self.w_k (rows = queries)"
        )
    return None


@checker(*_LAYER_REFUSED, label=_LAYER)
def check_self_attention_layer(cls: type[nn.Module]) -> CheckResult:
    """cls(vocab_size, d_model, d_k) with parts embed, w_q, w_k, w_v; cls(...)(ids (B, T)) ->
    (output (B, T, d_k), weights (B, T, T)): equation (1) on the embedded ids, its values and its
    gradients against torch's on fresh sizes and weights (d_k != d_model, B >= 2, T != d_k)."""
    if not isinstance(cls, type):
        return fail(f"{_LAYER}: pass the class itself, MySelfAttention, not {type(cls).__name__}")
    g = fresh_generator()

    def trial(V: int, d_model: int, d_k: int, B: int, T: int) -> Callable[[], str | None]:
        where = f"(vocab_size={V}, d_model={d_model}, d_k={d_k}, ids of shape {(B, T)})"

        def run() -> str | None:
            with torch.random.fork_rng():
                torch.manual_seed(_randint(g, 0, 2**31 - 2))
                try:
                    model = cls(V, d_model, d_k)
                except AttributeError as e:
                    if "Module.__init__()" in str(e):
                        return "call super().__init__() first in __init__, before creating the parts"
                    raise
            hint = _structure(model, V, d_model, d_k)
            if hint is not None:
                return hint
            model = model.double()
            params = {
                "embed": torch.randn(V, d_model, generator=g, dtype=D),
                **{
                    n: torch.randn(d_k, d_model, generator=g, dtype=D) / math.sqrt(d_model)
                    for n in _NAMES[1:]
                },
            }
            with torch.no_grad():
                for n, p in params.items():
                    getattr(model, n).weight.copy_(p)
            ids = torch.randint(0, V, (B, T), generator=g)
            c = torch.randn(B, T, d_k, generator=g, dtype=D)  # a random linear function of the output
            ref = _layer_reference(params, ids)
            ref_out, ref_grads = _grads_reference(params, ids, c)

            model.zero_grad(set_to_none=True)
            try:
                got = model(ids.clone())
            except Exception as e:
                if _used_batch_T(model, ids):
                    return (
                        f"your forward raised {type(e).__name__} {where}: k.T reverses all three axes of "
                        "(B, T, d_k); use k.transpose(-2, -1) to swap only the last two"
                    )
                raise
            if isinstance(got, Tensor) or not isinstance(got, (tuple, list)) or len(got) != 2:
                return (
                    "forward should return two things, (output, weights): the weights are part of the answer"
                )
            out, w = got
            shapes = [tuple(t.shape) if isinstance(t, Tensor) else None for t in (out, w)]
            if shapes == [(B, T, T), (B, T, d_k)]:
                return "you returned (weights, output): return (output, weights)"
            if shapes[1] is None:
                return (
                    "the second thing returned should be the weights, "
                    f"a tensor of shape (B, T, T) = {(B, T, T)}"
                )
            if shapes[1] != (B, T, T):
                hint = (
                    f"the weights have shape {shapes[1]} {where}, expected (B, T, T) = {(B, T, T)}: "
                    "one row over the keys for each query, in each sentence"
                )
                if _used_batch_T(model, ids):
                    hint += "; k.T reverses all axes of (B, T, d_k), use k.transpose(-2, -1)"
                return hint
            if shapes[0] != (B, T, d_k):
                return f"the output has shape {shapes[0]} {where}, expected (B, T, d_k) = {(B, T, d_k)}"
            hint = compare(w, ref["weights"], f"your weights {where}", **_TOL)
            if hint is not None:
                return _weights_hint(w.detach().to(D), params, ids, d_model) or hint
            hint = compare(out, ref_out, f"your output {where}", **_TOL)
            if hint is not None:
                for name in ("q", "k"):
                    if compare(out, ref["weights"] @ ref[name], "", **_TOL) is None:
                        what = "queries" if name == "q" else "keys"
                        return (
                            f"the weights are right, but the output sums the {what}: "
                            "the values are v = self.w_v(x), and the output is weights @ v"
                        )
                return f"{hint}: the weights are right, the output is weights @ v with v = self.w_v(x)"
            if not out.requires_grad:
                return (
                    "the output is right but carries no gradient: something in forward cuts it from the "
                    "weights (torch.no_grad(), .detach(), .data, .item() or numpy), so the layer cannot learn"
                )
            (out * c).sum().backward()
            for name in ("w_q", "embed", "w_k", "w_v"):
                grad = getattr(model, name).weight.grad
                if grad is None:
                    return (
                        f"self.{name}.weight got no gradient: "
                        "does forward use it, without .detach() or .data?"
                    )
                hint = compare(grad, ref_grads[name], f"the gradient of self.{name}.weight {where}", **_TOL)
                if hint is not None:
                    return (
                        f"{hint}; the output is right, so something in forward blocks part of the gradient "
                        "(.detach(), .data or a value copied out with .item() or numpy)"
                    )
            return None

        return run

    def sizes() -> tuple[int, int, int, int, int]:
        d_k = _randint(g, 2, 6)
        d_model = d_k + _randint(g, 3, 10)
        T = _randint(g, 3, 8)
        T = T + 1 if T == d_k else T  # q @ k.T must fail for the k.T mistake
        return _randint(g, 5, 20), d_model, d_k, _randint(g, 2, 4), T

    return run_trials(
        _LAYER,
        # fixed sizes first (d_k != d_model, B >= 2, T != d_k: every named mistake shows), then fresh ones
        [trial(11, 8, 3, 2, 5), trial(7, 10, 4, 3, 6), trial(*sizes()), trial(*sizes())],
        "embedding, projections and equation (1) match torch's, outputs, weights and gradients alike.",
    )
