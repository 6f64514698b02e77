"""Checkers for lesson 07, masking. Every mask uses the course convention: boolean, True = may attend.

check_masked_softmax(fn)         fn(scores, mask) -> weights; masked keys get 0, a fully masked row is all 0
check_masked_self_attention(fn)  fn(mha, x, ids, pad_id) -> (B, T, d_model): causal self-attention over a
                                 padded batch (no query reads a padding key), every head, then w_o;
                                 against torch's nn.MultiheadAttention and the course's rule for empty rows
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import MultiHeadAttention, _safe_mask, copy_mha_to_torch, scaled_dot_product_attention
from ..masks import causal_mask, combine_masks, decoder_mask, padding_mask
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


# --- 1. a softmax that survives fully masked rows -------------------------------------------------
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


# --- 2. decoder self-attention over a padded batch --------------------------------------------------
def padded_ids(g: torch.Generator, lengths: list[int], T: int, pad_id: int, left: bool) -> Tensor:
    """(B, T) random token ids, never pad_id, each row padded with pad_id to length T (left or right)."""
    ids = torch.randint(0, 30, (len(lengths), T), generator=g)
    ids = ids + (ids >= pad_id).long()  # real tokens skip pad_id
    for b, n in enumerate(lengths):
        if left:
            ids[b, : T - n] = pad_id
        else:
            ids[b, n:] = pad_id
    return ids


def reference_attention(
    mha: MultiHeadAttention,
    x: Tensor,
    mask: Tensor,
    scale: bool = True,
    use_w_o: bool = True,
    split_right: bool = True,
) -> Tensor:
    """Masked multi-head self-attention with the course's rule for empty rows (weights 0).

    mask: boolean, True = may attend, broadcastable to (B, h, T, T). The flags switch on the typical
    mistakes (no 1/sqrt(d_k), no w_o, heads split by a plain reshape), to recognise them."""
    B, T, d_model = x.shape
    h = mha.n_heads
    d_k = d_model // h

    def split(t: Tensor) -> Tensor:  # (B, T, d_model) -> (B, h, T, d_k)
        return t.view(B, T, h, d_k).transpose(1, 2) if split_right else t.reshape(B, h, T, d_k)

    q, k, v = split(mha.w_q(x)), split(mha.w_k(x)), split(mha.w_v(x))
    scores = q @ k.transpose(-2, -1)  # (B, h, T, T)
    if scale:
        scores = scores / math.sqrt(d_k)
    heads = masked_softmax(scores, mask.expand(B, h, T, T)) @ v  # (B, h, T, d_k)
    merged = heads.transpose(1, 2).reshape(B, T, d_model) if split_right else heads.reshape(B, T, d_model)
    return mha.w_o(merged) if use_w_o else merged


def torch_reference(
    mha: MultiHeadAttention, theirs: nn.MultiheadAttention, x: Tensor, ids: Tensor, pad_id: int
) -> Tensor:
    """torch's nn.MultiheadAttention with its own masks (True = blocked); a query with no allowed key
    (torch gives NaN there) gets the course's output instead: w_o applied to zeros, i.e. w_o's bias."""
    T = x.size(1)
    blocked = ~torch.ones(T, T, dtype=torch.bool).tril()  # (T, T): the future
    out, _ = theirs(x, x, x, attn_mask=blocked, key_padding_mask=ids == pad_id, need_weights=False)
    empty = ~(ids != pad_id).cumsum(-1).bool()  # (B, T): no real key at or before this position
    return torch.where(empty[..., None], mha.w_o.bias.expand_as(out), out)  # (B, T, d_model)


def _rows(mask: Tensor, B: int, T: int) -> Tensor:
    """(B, T): the queries that have at least one allowed key under `mask` (broadcastable to (B, 1, T, T))."""
    return mask.expand(B, 1, T, T).any(-1)[:, 0]


def _close_on(got: Tensor, expected: Tensor, rows: Tensor) -> bool:
    """got equals expected (no NaN) on the queries `rows` (B, T), and there is at least one such query."""
    return bool(rows.any()) and torch.allclose(got[rows], expected[rows], atol=1e-9, rtol=1e-7)


@checker(
    MultiHeadAttention,
    scaled_dot_product_attention,
    _safe_mask,
    causal_mask,
    padding_mask,
    decoder_mask,
    combine_masks,
    nn.MultiheadAttention,
    F.multi_head_attention_forward,
    F.scaled_dot_product_attention,
    label="masked self-attention",
    shown_before=(padding_mask, combine_masks),
)
def check_masked_self_attention(
    fn: Callable[[MultiHeadAttention, Tensor, Tensor, int], Tensor],
) -> CheckResult:
    """fn(mha, x (B, T, d_model), ids (B, T), pad_id) -> (B, T, d_model) on fresh left- and right-padded
    batches, against torch's nn.MultiheadAttention on copied weights (rows with an allowed key) and the
    course's rule (a query with no allowed key outputs w_o's bias)."""
    g = fresh_generator()

    def trial(B: int, T: int, h: int, d_k: int, lengths: list[int], left: bool) -> Callable[[], str | None]:
        def run() -> str | None:
            d_model, pad_id = h * d_k, _randint(g, 0, 5)
            with torch.random.fork_rng():
                torch.manual_seed(_randint(g, 0, 2**31 - 2))
                mha = MultiHeadAttention(d_model, h).double().eval()
                theirs = nn.MultiheadAttention(d_model, h, batch_first=True, dtype=torch.float64).eval()
            copy_mha_to_torch(mha, theirs)
            ids = padded_ids(g, lengths, T, pad_id, left)
            x = torch.randn(B, T, d_model, generator=g, dtype=torch.float64)
            where = f"(B={B}, T={T}, h={h}, d_k={d_k}, pad_id={pad_id}, {'left' if left else 'right'}-padded)"
            with torch.no_grad():
                expected = torch_reference(mha, theirs, x, ids, pad_id)
                got = fn(mha, x.clone(), ids.clone(), pad_id)
            if not isinstance(got, Tensor):
                return f"return the output tensor (B, T, d_model), got {type(got).__name__}"
            if got.shape != expected.shape:
                return (
                    f"the output has shape {tuple(got.shape)}, expected (B, T, d_model) = {tuple(expected.shape)} "
                    f"{where}: merge the heads back (transpose(1, 2), then reshape) and apply w_o"
                )
            got = got.detach().double()
            everywhere = torch.ones(B, T, dtype=torch.bool)
            if _close_on(got, expected, everywhere):
                return None

            keys = (ids != pad_id)[:, None, None, :]  # (B, 1, 1, T): real keys
            queries = (ids != pad_id)[:, None, :, None]  # (B, 1, T, 1): real queries
            causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T)
            allowed = causal & keys  # (B, 1, T, T)
            with torch.no_grad():
                mistakes = [  # (the mask the learner used, how it attends, the hint): first match wins
                    (
                        ~allowed,
                        {},
                        "the mask is read the wrong way round: in this course True means *may attend*, so fill "
                        "the scores where the mask is False with -inf (torch's nn.MultiheadAttention masks "
                        "mean *blocked*)",
                    ),
                    (
                        keys,
                        {},
                        "the causal part is missing: the output at position i changes when a later token "
                        "changes. AND the padding mask with the lower triangle (key j <= query i)",
                    ),
                    (
                        causal,
                        {},
                        f"queries read the padding keys (pad_id={pad_id}): AND the causal mask with "
                        "(ids != pad_id) laid along the keys axis, shape (B, 1, 1, T)",
                    ),
                    (
                        causal & queries,
                        {},
                        "you masked the padding *queries* (a (B, 1, T, 1) mask); mask the padding *keys* "
                        "instead, (ids != pad_id)[:, None, None, :] of shape (B, 1, 1, T), so that no query "
                        "reads a pad",
                    ),
                    (
                        allowed,
                        {"split_right": False},
                        "the heads mix positions: reshaping straight to (B, h, T, d_k) cuts across tokens. "
                        "View as (B, T, h, d_k), then transpose(1, 2) (and back before merging)",
                    ),
                    (
                        allowed,
                        {"scale": False},
                        "the scores are not divided by sqrt(d_k) (equation 1): scores = q @ k.transpose(-2, -1) "
                        "/ math.sqrt(d_k)",
                    ),
                    (
                        allowed,
                        {"use_w_o": False},
                        "the heads are concatenated but w_o is missing: return mha.w_o(concatenated heads)",
                    ),
                ]
                for mask, how, hint in mistakes:
                    if _close_on(got, reference_attention(mha, x, mask, **how), _rows(mask, B, T)):
                        return f"{hint} {where}"

            ok_rows = _rows(allowed, B, T)  # (B, T): queries with an allowed key
            if _close_on(got, expected, ok_rows):  # only the queries with no allowed key are wrong
                n = int((~ok_rows).sum())
                empty = got[~ok_rows]  # (n, d_model)
                if torch.isnan(empty).any():
                    return (
                        f"the {n} queries with no allowed key (left padding at the front) gave NaN: a softmax "
                        "over a row of only -inf is 0/0, as in torch's nn.MultiheadAttention. The course's rule: "
                        "their weights are 0, so their output is w_o applied to zeros, i.e. w_o's bias "
                        f"(your my_masked_softmax does it) {where}"
                    )
                if (empty.abs() < 1e-12).all():
                    return (
                        f"the {n} queries with no allowed key output 0; with weights 0 their heads are 0 and the "
                        "output is w_o applied to zeros, which is w_o's bias: zero the weights, not the output "
                        f"{where}"
                    )
                return (
                    f"the {n} queries with no allowed key still attend to something (a large negative number "
                    "instead of -inf spreads their weight evenly): give them weights 0, so that their output "
                    f"is w_o's bias {where}"
                )

            t = T // 2  # change the tokens from t on: the outputs before t must not move
            x2 = x.clone()
            x2[:, t:] = torch.randn(B, T - t, d_model, generator=g, dtype=torch.float64)
            with torch.no_grad():
                got2 = fn(mha, x2, ids.clone(), pad_id)
            if isinstance(got2, Tensor) and got2.shape == got.shape:
                if not torch.allclose(got2.detach().double()[:, :t], got[:, :t], atol=1e-12, equal_nan=True):
                    return (
                        f"the output at positions 0..{t - 1} changed when only tokens {t}.. changed: query i "
                        f"may read keys j <= i only (the lower triangle, tril) {where}"
                    )
            return compare(got, expected, f"the output {where}", atol=1e-9, rtol=1e-7)

        return run

    trials = [
        trial(3, 6, 2, 3, [4, 6, 5], left=True),  # fixed first: queries with no key, every mistake shows
        trial(3, 6, 3, 2, [6, 3, 5], left=False),
    ]
    for _ in range(2):
        B, T = _randint(g, 2, 4), _randint(g, 3, 9)
        lengths = [_randint(g, 1, T - 1)] + [_randint(g, 1, T) for _ in range(B - 1)]
        h, d_k, left = (
            _randint(g, 2, 4),
            _randint(g, 2, 5),
            _randint(g, 0, 1) == 1,
        )  # h >= 2: a head mix-up shows
        trials.append(trial(B, T, h, d_k, lengths, left))
    return run_trials(
        "masked self-attention",
        trials,
        "causal, no padding key read, every head and w_o: equal to torch's nn.MultiheadAttention on 4 fresh "
        "batches padded left and right, and a query with no allowed key gives w_o's bias. Well done!",
    )
