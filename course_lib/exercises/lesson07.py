"""Checkers for lesson 07, masking. Every mask uses the course convention: boolean, True = may attend.

check_causal_mask(fn)     fn(T) -> (T, T) bool, query i may see keys j <= i
check_decoder_mask(fn)    fn(ids, pad_id) -> (B, 1, T, T) bool, causal and no padding keys
check_masked_softmax(fn)  fn(scores, mask) -> weights; masked keys get 0, a fully masked row is all 0
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..attention import _safe_mask, scaled_dot_product_attention
from ..masks import causal_mask, decoder_mask, padding_mask
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _equal(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def _mask_hint(got: object, expected: Tensor, what: str) -> str | None:
    """Type, dtype and shape problems of a mask, in one sentence (None when all three are right)."""
    if not isinstance(got, Tensor):
        return f"{what} should be a torch tensor, got {type(got).__name__}"
    if got.dtype != torch.bool:
        return (
            f"{what} should be boolean (True = may attend), got dtype {got.dtype}; "
            "compare with >=, == or use .bool()"
        )
    if got.shape != expected.shape:
        return f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    return None


# --- 1. the causal mask ---------------------------------------------------------------------
@checker(causal_mask)
def check_causal_mask(fn: Callable[[int], Tensor]) -> CheckResult:
    """fn(T) for fresh random T, against `course_lib.masks.causal_mask`."""
    g = fresh_generator()

    def trial(T: int) -> Callable[[], str | None]:
        def run() -> str | None:
            expected = causal_mask(T)
            got = fn(T)
            hint = _mask_hint(got, expected, f"the mask for T={T}")
            if hint:
                return hint
            if _equal(got, expected):
                return None
            if _equal(got, ~expected):
                return (
                    "the convention is inverted: in this course True means *may attend* "
                    "(you built torch's 'True = blocked' mask)"
                )
            if _equal(got, expected.T):
                return (
                    "each query may see the past, not the future: keep the lower triangle (key j <= query i)"
                )
            if _equal(got, expected.tril(-1)):
                return "a token may attend to itself: keep the diagonal (j <= i, not j < i)"
            if _equal(got, ~expected.T):
                return "that blocks the past and the present; True must mark keys j <= i"
            wrong = int((got != expected).sum())
            return f"for T={T}, {wrong} of the {T * T} entries differ from the lower-triangular mask"

        return run

    sizes = [5] + [_randint(g, 2, 16) for _ in range(3)]
    return run_trials(
        "causal mask",
        [trial(T) for T in sizes],
        "query i may attend to keys 0..i, True = may attend, on 4 fresh sizes.",
    )


# --- 2. padding and causal, for a batch ----------------------------------------------------------
def _random_batch(g: torch.Generator) -> tuple[Tensor, int]:
    """Right-padded ids (B, T) with at least one padded and one full-length sentence."""
    B, T = _randint(g, 2, 4), _randint(g, 4, 9)
    pad_id = _randint(g, 0, 3)
    lengths = [T, _randint(g, 1, T - 1)] + [_randint(g, 1, T) for _ in range(B - 2)]
    ids = torch.randint(4, 20, (B, T), generator=g)
    for b, n in enumerate(lengths):
        ids[b, n:] = pad_id
    return ids, pad_id


@checker(decoder_mask)
def check_decoder_mask(fn: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """fn(ids, pad_id) on fresh right-padded batches, against `course_lib.masks.decoder_mask`."""
    g = fresh_generator()

    def run() -> str | None:
        ids, pad_id = _random_batch(g)
        B, T = ids.shape
        expected = decoder_mask(ids, pad_id)  # (B, 1, T, T)
        got = fn(ids.clone(), pad_id)
        if isinstance(got, Tensor) and got.dtype == torch.bool and got.shape == (B, T, T):
            return (
                f"the mask has shape {(B, T, T)}; keep an axis for the heads, (B, 1, T, T), "
                "so that it broadcasts over them"
            )
        hint = _mask_hint(got, expected, f"the mask for ids of shape {(B, T)}")
        if hint:
            return hint
        if _equal(got, expected):
            return None
        causal = causal_mask(T).expand(B, 1, T, T)
        pad = padding_mask(ids, pad_id).expand(B, 1, T, T)
        real_queries = (ids != pad_id)[:, None, :, None]  # (B, 1, T, 1)
        if _equal(got, ~expected):
            return "the convention is inverted: True must mean *may attend*"
        if _equal(got, causal):
            return f"padding keys are not masked (pad_id={pad_id}): combine the causal mask with the padding mask"
        if _equal(got, pad):
            return "the causal part is missing: query i must not see keys after i"
        if _equal(got, causal & real_queries) or _equal(got, causal & real_queries & pad):
            return (
                "mask the padding *keys* (columns), so that no query reads a pad; "
                "the shape of padding_mask is (B, 1, 1, T)"
            )
        if _equal(got, causal.transpose(-1, -2) & pad):
            return "the causal part is transposed: keep key j <= query i (the lower triangle)"
        return f"for ids {ids.tolist()} (pad_id={pad_id}) {int((got != expected).sum())} entries differ"

    return run_trials(
        "decoder mask",
        [run] * 4,
        "causal and padding combined, (B, 1, T, T), right on 4 fresh padded batches.",
    )


# --- 3. a softmax that survives fully masked rows -------------------------------------------------
def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """The reference: softmax over the keys of the allowed entries; a row with no allowed key is all 0."""
    mask = mask.expand_as(scores)
    row_ok = mask.any(dim=-1, keepdim=True)
    weights = scores.masked_fill(~(mask | ~row_ok), float("-inf")).softmax(dim=-1)
    return weights * row_ok


@checker(_safe_mask, scaled_dot_product_attention)
def check_masked_softmax(fn: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """fn(scores, mask) on fresh scores (B, T_q, T_k) and masks with at least one fully masked row."""
    g = fresh_generator()

    def run() -> str | None:
        B, T_q, T_k = _randint(g, 1, 3), _randint(g, 2, 6), _randint(g, 2, 6)
        scores = 3 * torch.randn(B, T_q, T_k, generator=g, dtype=torch.float64)
        mask = torch.rand(B, T_q, T_k, generator=g) < 0.6
        mask[0, 0] = True  # one full row
        mask[0, 1] = False  # one fully masked row
        expected = masked_softmax(scores, mask)
        got = fn(scores.clone(), mask.clone())
        if not isinstance(got, Tensor):
            return f"return a tensor of weights, got {type(got).__name__}"
        if got.shape != expected.shape:
            return f"the weights have shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        got = got.double()
        if torch.isnan(got).any():
            rows = torch.isnan(got).any(-1)
            if (~mask.any(-1))[rows].all():
                return (
                    "a fully masked row gave NaN (softmax of all -inf is 0/0): give such a row weights 0, "
                    "for instance by multiplying by mask.any(dim=-1, keepdim=True)"
                )
            if mask.all(-1)[rows].all():
                return "the mask is read the wrong way round: True = may attend, False entries get weight 0"
            return "the weights contain NaN"
        if compare(got, masked_softmax(scores, ~mask), "w", atol=1e-9, rtol=1e-7) is None:
            return "the mask is read the wrong way round: True = may attend, so False entries get weight 0"
        leaked = (got.abs() > 1e-9) & ~mask  # weight on masked keys
        if leaked.any():
            empty_rows = ~mask.any(-1, keepdim=True)  # (B, T_q, 1)
            if (leaked <= empty_rows).all():
                return (
                    "a fully masked row got weights (a large negative number instead of -inf makes every "
                    "key equal): such a query attends to nothing, give it weights 0"
                )
            return "masked keys (mask False) still get weight: fill their scores with -inf before the softmax"
        return compare(got, expected, "the weights", atol=1e-9, rtol=1e-7)

    return run_trials(
        "masked softmax",
        [run] * 4,
        "masked keys get weight 0, other rows sum to 1, and a fully masked row is all 0 instead of NaN.",
    )
