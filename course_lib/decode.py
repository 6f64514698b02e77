"""Inference: turning a trained encoder-decoder into output sequences.

The encoder runs once per source; the decoder then runs once per generated token, each
step choosing the next token from the distribution p(y_t | y_<t, x) = softmax(generator(h_t)).
How the next token is chosen is the decoding strategy:

  greedy_decode  the most probable token at every step
  beam_search    keep the `beam_size` best partial outputs, rank the finished ones by
                 length-normalised log-probability (the paper: beam 4, alpha 0.6, section 6.1)
  sample         draw from the distribution, reshaped by temperature, top-k and top-p

All of them return generated ids (B, L) *without* the start token: EOS is included where it
was produced and every position after it holds `model.cfg.pad_id`.

With `use_cache=True` (the default) the decoder feeds only the newest token at each step:
its self-attention appends one key/value per layer to a `DecoderCache`, and cross-attention
projects the encoder output into keys/values once and reuses them. With `use_cache=False`
the whole prefix is run again at every step: slower, the same tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .device import device_of
from .masks import causal_mask, padding_mask
from .validate import (
    InputTypeError,
    check_logits,
    check_mask,
    check_number,
    check_tensor,
    check_token_ids,
    inputs_checked,
)
from .validate import check_int as _check_int

# --- checks -------------------------------------------------------------------------


def _check_model(model: object) -> None:
    for attr in ("encode", "decode", "generator", "new_cache", "cfg"):
        if not hasattr(model, attr):
            raise InputTypeError(
                f"model must be a course_lib Transformer (with encode, decode, generator, new_cache "
                f"and cfg), got {type(model).__name__} without {attr!r}"
            )


def _prepare(
    model: nn.Module,
    src: Tensor,
    sos_id: int,
    eos_id: int | None,
    max_len: int,
    src_mask: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Validate the common arguments; return src (B, S) and its mask (B, 1, 1, S)."""
    _check_model(model)
    cfg = model.cfg
    src = check_tensor(src, "src", ndim=(1, 2))
    if src.dim() == 1:
        src = src[None]  # one source: (S,) -> (1, S)
    src = check_token_ids(src, "src", cfg.src_vocab_size)
    V = cfg.tgt_vocab_size
    _check_int(sos_id, "sos_id", 0, V - 1)
    if eos_id is not None:
        _check_int(eos_id, "eos_id", 0, V - 1)
    _check_int(max_len, "max_len", 1, cfg.max_len)
    if src_mask is None:
        src_mask = padding_mask(src, cfg.pad_id)  # (B, 1, 1, S)
    else:
        check_mask(src_mask, (src.size(0), cfg.n_heads, 1, src.size(1)), "src_mask")
    return src, src_mask


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Decode with dropout off, and give the model back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


# --- the token-by-token loop all strategies share -----------------------------------


def _check_choice(nxt: object, B: int, V: int) -> None:
    """What a strategy returns must be B ids of the vocabulary (the next step trusts them)."""
    if not isinstance(nxt, Tensor) or nxt.shape != (B,) or nxt.is_floating_point():
        got = tuple(nxt.shape) if isinstance(nxt, Tensor) else type(nxt).__name__
        raise ValueError(f"choose must return integer ids of shape ({B},), got {got}")
    if bool(((nxt < 0) | (nxt >= V)).any()):
        raise ValueError(f"choose must return ids in [0, {V - 1}], got {nxt.tolist()}")


def generate(
    model: nn.Module,
    src: Tensor,
    sos_id: int,
    eos_id: int | None,
    max_len: int,
    choose: Callable[[Tensor], Tensor],
    src_mask: Tensor | None = None,
    use_cache: bool = True,
) -> Tensor:
    """The loop every strategy shares: the encoder once, then the decoder once per token.

    `choose` is the strategy: it maps the last position's logits (B, V) to the next ids (B,)
    (argmax for greedy, a draw for sampling). Returns ids (B, L) without the start token,
    `cfg.pad_id` after each row's EOS; stops when every row has produced EOS."""
    if not callable(choose):
        raise InputTypeError(
            f"choose must be a function logits (B, V) -> ids (B,), got {type(choose).__name__}"
        )
    src, src_mask = _prepare(model, src, sos_id, eos_id, max_len, src_mask)
    pad = model.cfg.pad_id
    B, device = src.size(0), src.device
    with _eval_mode(model):
        memory = model.encode(src, src_mask)  # (B, S, d_model): the encoder runs once
        ys = torch.full((B, 1), sos_id, dtype=torch.long, device=device)  # decoder input so far
        done = torch.zeros(B, dtype=torch.bool, device=device)
        cache = model.new_cache() if use_cache else None
        out = []
        with inputs_checked():  # checked above; from here on the model reads only its own outputs
            for _ in range(max_len):
                if use_cache:
                    h = model.decode(ys[:, -1:], memory, src_mask, cache=cache)  # (B, 1, d_model)
                else:  # the slow reference: the whole prefix again, causal mask only
                    T = ys.size(1)
                    h = model.decode(ys, memory, src_mask, tgt_mask=causal_mask(T, device))  # (B, T, d_model)
                logits = model.generator(h[:, -1]).float()  # (B, V)
                nxt = choose(logits)
                _check_choice(nxt, B, logits.size(-1))
                nxt = nxt.masked_fill(done, pad)  # finished rows only pad
                out.append(nxt)
                ys = torch.cat([ys, nxt[:, None]], dim=1)
                if eos_id is not None:
                    done |= nxt == eos_id
                    if bool(done.all()):
                        break
    return torch.stack(out, dim=1)  # (B, L), L <= max_len


def greedy_decode(
    model: nn.Module,
    src: Tensor,
    sos_id: int,
    eos_id: int | None,
    max_len: int,
    src_mask: Tensor | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Greedy decoding: at every step the single most probable next token.

    src: ids (B, S) (or (S,) for one source). Stops when every row has produced `eos_id`
    (never, with eos_id=None) or after `max_len` tokens. Returns ids (B, L) without the
    start token, pad after EOS. `use_cache=False` recomputes the whole prefix each step.
    """
    return generate(model, src, sos_id, eos_id, max_len, lambda z: z.argmax(-1), src_mask, use_cache)


# --- sampling ----------------------------------------------------------------------


def _check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """temperature: a finite number > 0; top_k: None or an int >= 1; top_p: None or a number in (0, 1]."""
    check_number(temperature, "temperature", "a finite number > 0")
    if not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if top_k is not None:
        _check_int(top_k, "top_k", 1, why=" (None = off)")
    if top_p is not None:
        check_number(top_p, "top_p", "a number in (0, 1] (None = off)")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be a number in (0, 1] (None = off), got {top_p!r}")


def next_token_distribution(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Tensor:
    """The distribution a sampler draws the next token from, over the last axis (..., V).

    Applied in this order:
      temperature  p_i proportional to exp(z_i / T): T < 1 sharpens, T > 1 flattens, T -> 0 is argmax
      top_k        keep the k most probable tokens (Fan et al., 2018)
      top_p        keep the smallest set of most probable tokens whose mass is >= p
                   ("nucleus sampling", Holtzman et al., 2020)
    then renormalise. Removed tokens get probability exactly 0. Returns (..., V), rows sum to 1.
    """
    check_logits(logits)  # float (..., V); no NaN or +inf; every row keeps a finite score
    _check_sampling(temperature, top_k, top_p)
    V = logits.size(-1)
    z = logits.float() / temperature  # (..., V)
    if top_k is not None and top_k < V:
        kth = z.topk(top_k, dim=-1).values[..., -1:]  # (..., 1) the k-th largest
        z = z.masked_fill(z < kth, float("-inf"))
    probs = z.softmax(dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        mass_before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of the strictly more probable tokens
        keep_sorted = mass_before < top_p  # the first token is always kept
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = probs * keep
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample(
    model: nn.Module,
    src: Tensor,
    sos_id: int,
    eos_id: int | None,
    max_len: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: torch.Generator | None = None,
    src_mask: Tensor | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Draw each next token from `next_token_distribution(logits, temperature, top_k, top_p)`.

    Pass a seeded `torch.Generator` as `rng` (on the model's device) for reproducible draws.
    top_k=1 (or temperature -> 0) gives greedy decoding. Returns ids (B, L) like greedy_decode.
    """
    _check_sampling(temperature, top_k, top_p)

    def choose(logits: Tensor) -> Tensor:
        probs = next_token_distribution(logits, temperature, top_k, top_p)  # (B, V)
        return torch.multinomial(probs, 1, generator=rng).squeeze(-1)  # (B,)

    return generate(model, src, sos_id, eos_id, max_len, choose, src_mask, use_cache)


# --- beam search -------------------------------------------------------------------


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's length penalty lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al., 2016).

    A hypothesis is ranked by log P(Y | X) / lp(Y). alpha = 0 ranks by the raw sum of
    log-probabilities (which favours short outputs: every token adds a negative term);
    larger alpha favours longer outputs; the paper used alpha = 0.6.
    """
    return ((5.0 + length) / 6.0) ** alpha


@dataclass
class Hypothesis:
    """One beam-search output: generated ids (EOS included when finished), the total
    log-probability log P(Y | X), and the length-normalised score it is ranked by."""

    tokens: list[int]
    logprob: float
    score: float
    finished: bool


def _reorder_cache(cache: list, index: Tensor) -> None:
    """Keep the cached keys/values of the beams that survive, in their new order."""
    for layer in cache:
        for kv in (layer.self_kv, layer.cross_kv):
            if kv.k is not None:
                kv.k, kv.v = kv.k.index_select(0, index), kv.v.index_select(0, index)


def beam_hypotheses(
    model: nn.Module,
    src: Tensor,
    sos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 4,
    alpha: float = 0.6,
    src_mask: Tensor | None = None,
) -> list[Hypothesis]:
    """Beam search for ONE source (S,) or (1, S); returns hypotheses, best first.

    At each step every live hypothesis is extended by every token; the candidates with the
    highest total log-probability fill the free slots (live hypotheses all have the same
    length, so ranking them by the raw sum or by the normalised score is the same). A
    candidate that ends in EOS is finished and keeps its slot; the search stops when
    `beam_size` hypotheses are finished or after `max_len` tokens. Finished hypotheses are
    ranked by log P / length_penalty(|Y|, alpha), before any unfinished one.
    beam_size=1 is greedy decoding.
    """
    _check_int(beam_size, "beam_size", 1)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise ValueError(f"alpha (the length penalty exponent) must be a number >= 0, got {alpha!r}")
    if eos_id is None:
        raise ValueError("beam search needs an eos_id to know when a hypothesis is finished")
    src, src_mask = _prepare(model, src, sos_id, eos_id, max_len, src_mask)
    if src.size(0) != 1:
        raise ValueError(f"beam_hypotheses takes one source, shape (1, S), got {tuple(src.shape)}")
    V, device = model.cfg.tgt_vocab_size, src.device
    finished: list[Hypothesis] = []
    with _eval_mode(model):
        memory = model.encode(src, src_mask)  # (1, S, d_model), once
        cache = model.new_cache()
        seqs: list[list[int]] = [[]]  # the live hypotheses
        logp = torch.zeros(1, device=device)  # (n,) their total log-probabilities
        last = torch.full((1, 1), sos_id, dtype=torch.long, device=device)  # (n, 1)
        for _ in range(max_len):
            n = len(seqs)
            h = model.decode(last, memory.expand(n, -1, -1), src_mask[:1], cache=cache)  # (n, 1, d)
            step = F.log_softmax(model.generator(h[:, -1]).float(), dim=-1)  # (n, V)
            total = (logp[:, None] + step).view(-1)  # (n * V,)
            slots = beam_size - len(finished)
            top, idx = total.topk(min(slots, total.numel()))
            keep_beam, keep_tok, keep_lp, keep_seq = [], [], [], []
            for s, i in zip(top.tolist(), idx.tolist()):
                b, w = divmod(i, V)
                seq = seqs[b] + [w]
                if w == eos_id:
                    finished.append(Hypothesis(seq, s, s / length_penalty(len(seq), alpha), True))
                else:
                    keep_beam.append(b)
                    keep_tok.append(w)
                    keep_lp.append(s)
                    keep_seq.append(seq)
            if not keep_seq:
                seqs = []
                break
            index = torch.tensor(keep_beam, device=device)
            _reorder_cache(cache, index)
            seqs = keep_seq
            logp = torch.tensor(keep_lp, device=device)
            last = torch.tensor(keep_tok, device=device)[:, None]
    live = [
        Hypothesis(seq, s, s / length_penalty(len(seq), alpha), False) for seq, s in zip(seqs, logp.tolist())
    ]
    return sorted(finished + live, key=lambda hyp: (hyp.finished, hyp.score), reverse=True)


def beam_search(
    model: nn.Module,
    src: Tensor,
    sos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 4,
    alpha: float = 0.6,
    src_mask: Tensor | None = None,
) -> Tensor:
    """Beam search for each source in the batch (one after the other).

    `alpha` is GNMT's length-penalty exponent (0.6 in the paper, section 6.1): finished outputs are ranked by
    log P(Y | X) / ((5 + |Y|) / 6) ** alpha; 0 means the plain sum of log-probabilities.
    Returns the best output per source as ids (B, L), like greedy_decode.
    """
    src, src_mask = _prepare(model, src, sos_id, eos_id, max_len, src_mask)
    if src_mask.size(0) != src.size(0):
        src_mask = src_mask.expand(src.size(0), *src_mask.shape[1:])
    best = [
        beam_hypotheses(
            model, src[i : i + 1], sos_id, eos_id, max_len, beam_size, alpha, src_mask[i : i + 1]
        )[0].tokens
        for i in range(src.size(0))
    ]
    L = max(len(t) for t in best)
    out = torch.full((len(best), L), model.cfg.pad_id, dtype=torch.long, device=src.device)
    for i, t in enumerate(best):
        out[i, : len(t)] = torch.tensor(t, dtype=torch.long)
    return out


# --- scoring a given output ------------------------------------------------------------


def next_token_logits(
    model: nn.Module,
    src: Tensor,
    prefix: Tensor | Sequence[int],
    sos_id: int,
    src_mask: Tensor | None = None,
) -> Tensor:
    """The logits (B, V) of the token that would follow `prefix` (the generated ids so far,
    without the start token; (B, L), (L,) or a list, possibly empty)."""
    if not isinstance(prefix, Tensor):
        prefix = torch.tensor(list(prefix), dtype=torch.long)
    if prefix.dim() == 1:
        prefix = prefix[None]
    src, src_mask = _prepare(model, src, sos_id, None, model.cfg.max_len, src_mask)
    prefix = prefix.to(src.device).long()
    if prefix.size(0) not in (1, src.size(0)):
        raise ValueError(f"prefix must have 1 or {src.size(0)} rows (one per source), got {prefix.size(0)}")
    prefix = prefix.expand(src.size(0), -1)
    ys = torch.cat([torch.full((src.size(0), 1), sos_id, dtype=torch.long, device=src.device), prefix], 1)
    if ys.size(1) > model.cfg.max_len:
        raise ValueError(f"prefix of {prefix.size(1)} tokens is too long for max_len={model.cfg.max_len}")
    ys = check_token_ids(ys, "prefix", model.cfg.tgt_vocab_size)
    with _eval_mode(model):
        memory = model.encode(src, src_mask)
        h = model.decode(ys, memory, src_mask, tgt_mask=causal_mask(ys.size(1), src.device))
        return model.generator(h[:, -1]).float()  # (B, V)


def sequence_logprob(
    model: nn.Module,
    src: Tensor,
    tokens: Tensor,
    sos_id: int,
    eos_id: int | None = None,
    src_mask: Tensor | None = None,
    per_token: bool = False,
) -> Tensor:
    """log P(Y | X) = sum_t log p(y_t | y_<t, X) for given outputs `tokens` (B, L), by teacher
    forcing (one decoder pass). With eos_id, tokens after each row's first EOS do not count.
    Returns (B,), or with per_token=True the terms log p(y_t | y_<t, X) themselves (B, L)
    (0 after EOS)."""
    tokens = check_tensor(tokens, "tokens", ndim=(1, 2))
    if tokens.dim() == 1:
        tokens = tokens[None]
    src, src_mask = _prepare(model, src, sos_id, eos_id, model.cfg.max_len, src_mask)
    tokens = check_token_ids(tokens, "tokens", model.cfg.tgt_vocab_size)
    if tokens.size(0) != src.size(0):
        raise ValueError(
            f"src and tokens must have the same batch size, got {src.size(0)} and {tokens.size(0)}"
        )
    B, L = tokens.shape
    tgt_in = torch.cat(
        [torch.full((B, 1), sos_id, dtype=torch.long, device=tokens.device), tokens[:, :-1]], 1
    )
    with _eval_mode(model):
        logits = model(src, tgt_in, src_mask, causal_mask(L, tokens.device))  # (B, L, V)
        lp = F.log_softmax(logits.float(), dim=-1).gather(-1, tokens[..., None]).squeeze(-1)  # (B, L)
    if eos_id is not None:
        is_eos = (tokens == eos_id).long()
        after_eos = (is_eos.cumsum(1) - is_eos) > 0  # strictly after the first EOS
        lp = lp.masked_fill(after_eos, 0.0)
    return lp if per_token else lp.sum(-1)


# --- text in, text out ---------------------------------------------------------------


def _specials(vocab: object) -> tuple[int, int]:
    sos = getattr(vocab, "sos_id", getattr(vocab, "SOS", 1))
    eos = getattr(vocab, "eos_id", getattr(vocab, "EOS", 2))
    return int(sos), int(eos)


def translate(
    model: nn.Module,
    text: str,
    src_vocab: object,
    tgt_vocab: object,
    method: str = "greedy",
    max_len: int | None = None,
    beam_size: int = 4,
    alpha: float = 0.6,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: torch.Generator | None = None,
) -> str:
    """Source text -> output text with the chosen method: "greedy", "beam" or "sample".

    The vocabularies need `encode(text) -> list[int]` and `decode(ids) -> str`; their
    start/end ids are read from `sos_id`/`eos_id` (or SOS/EOS), default 1 and 2.
    """
    if not isinstance(text, str):
        raise InputTypeError(f"text must be a string, got {type(text).__name__}")
    if method not in ("greedy", "beam", "sample"):
        raise ValueError(f"method must be 'greedy', 'beam' or 'sample', got {method!r}")
    _check_model(model)
    device = device_of(model)
    ids = list(src_vocab.encode(text))
    if not ids:
        raise ValueError("text is empty: nothing to translate")
    src = torch.tensor([ids], dtype=torch.long, device=device)  # (1, S)
    sos, eos = _specials(tgt_vocab)
    max_len = model.cfg.max_len if max_len is None else max_len
    if method == "greedy":
        out = greedy_decode(model, src, sos, eos, max_len)
    elif method == "beam":
        out = beam_search(model, src, sos, eos, max_len, beam_size, alpha)
    else:
        out = sample(model, src, sos, eos, max_len, temperature, top_k, top_p, rng)
    return tgt_vocab.decode(strip_special(out[0].tolist(), eos, model.cfg.pad_id, sos))


def strip_special(ids: Sequence[int], eos_id: int, pad_id: int = 0, sos_id: int | None = None) -> list[int]:
    """Generated ids up to (not including) the first EOS, with padding and a start token removed."""
    out = []
    for i in ids:
        if i == eos_id:
            break
        if i != pad_id and i != sos_id:
            out.append(int(i))
    return out
