"""Checkers for lesson 10 (inference): greedy decoding, top-p, beam search."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..decode import (
    beam_hypotheses,
    beam_search,
    generate,
    greedy_decode,
    length_penalty,
    next_token_distribution,
    sample,
)
from ..model import Transformer, TransformerConfig
from . import CheckResult, checker, compare, fresh_generator, run_trials

SOS, EOS, PAD = 1, 2, 0


def _random_model(g: torch.Generator) -> Transformer:
    """A small randomly initialised model with fresh sizes and weights."""
    src_v, tgt_v = (int(torch.randint(8, 20, (1,), generator=g)) for _ in range(2))
    cfg = TransformerConfig(
        src_v,
        tgt_v,
        d_model=16,
        n_heads=2,
        n_encoder_layers=int(torch.randint(1, 3, (1,), generator=g)),
        n_decoder_layers=int(torch.randint(1, 3, (1,), generator=g)),
        d_ff=32,
        dropout=0.0,
        max_len=32,
        tie_output=False,  # an untied output layer: random weights then give varied outputs
    )
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        model = Transformer(cfg)
        torch.nn.init.normal_(model.generator.weight, std=1.0)  # clear winners, no near-ties
    return model.eval()


def _until_eos(row: list[int], eos: int) -> list[int]:
    return row[: row.index(eos) + 1] if eos in row else row


@checker(greedy_decode, generate)
def check_greedy_decode(fn: Callable[..., Tensor]) -> CheckResult:
    """fn(model, src, sos_id, eos_id, max_len) -> ids (B, L): the tokens after SOS, row by
    row up to and including EOS (what comes after a row's EOS is not checked)."""
    g = fresh_generator()

    def trial() -> str | None:
        for _ in range(50):  # a random model whose greedy output is not one token repeated
            model = _random_model(g)
            B, S = int(torch.randint(2, 5, (1,), generator=g)), int(torch.randint(3, 9, (1,), generator=g))
            src = torch.randint(3, model.cfg.src_vocab_size, (B, S), generator=g)
            src[0, S - 1 :] = PAD  # one row shorter than the others
            max_len = int(torch.randint(5, 12, (1,), generator=g))
            expected = greedy_decode(model, src, SOS, EOS, max_len)
            rows = [_until_eos(row, EOS) for row in expected.tolist()]
            # varied outputs, and never PAD or SOS generated (padding masks would then disagree)
            if any(len(set(r)) > 2 for r in rows) and not any(PAD in r or SOS in r for r in rows):
                break
        calls = {"encoder": 0}
        hook = model.encoder_layers[0].register_forward_hook(
            lambda *_: calls.__setitem__("encoder", calls["encoder"] + 1)
        )
        try:
            with torch.no_grad():
                got = fn(model, src.clone(), SOS, EOS, max_len)
        finally:
            hook.remove()
        if not isinstance(got, Tensor):
            return f"return a tensor of ids (B, L), got {type(got).__name__}"
        if got.dim() != 2 or got.size(0) != B:
            return f"return ids of shape (B, L) = ({B}, L), got shape {tuple(got.shape)}"
        if calls["encoder"] != 1:
            return (
                f"the encoder ran {calls['encoder']} times for one batch: encode the source once, "
                f"before the loop, and reuse the memory at every step"
            )
        if got.size(1) > 0 and bool((got[:, 0] == SOS).all()) and not bool((expected[:, 0] == SOS).all()):
            return "leave the start token out of the result: return only the generated tokens"
        for b in range(B):
            want = _until_eos(expected[b].tolist(), EOS)
            have = _until_eos(got[b].tolist(), EOS)[: len(want)] if got.size(1) else []
            if have != want:
                t = next((i for i, (x, y) in enumerate(zip(have, want)) if x != y), min(len(have), len(want)))
                return (
                    f"row {b} differs from greedy decoding at step {t}: expected {want}, got {have} "
                    f"(take the argmax of the LAST position's logits, append it, repeat)"
                )
        return None

    return run_trials(
        "greedy decoding", [trial] * 3, "the encoder runs once and every token is the argmax. Well done!"
    )


@checker(next_token_distribution, sample)
def check_top_p_filter(fn: Callable[[Tensor, float], Tensor]) -> CheckResult:
    """fn(probs (V,), p) -> the distribution restricted to the smallest set of most probable
    tokens whose total mass is >= p, renormalised to sum to 1."""
    g = fresh_generator()

    def trial() -> str | None:
        V = int(torch.randint(4, 15, (1,), generator=g))
        probs = (torch.randn(V, generator=g) * 1.5).softmax(-1)
        p = float(torch.empty(1).uniform_(0.2, 0.95, generator=g))
        got = fn(probs.clone(), p)
        expected = next_token_distribution(probs.log(), top_p=p)
        if not isinstance(got, Tensor) or got.shape != expected.shape:
            return compare(got, expected, "the filtered distribution")
        k_got, k_exp = int((got > 0).sum()), int((expected > 0).sum())
        if k_got == k_exp - 1:
            return (
                f"with p = {p:.2f} you keep {k_got} tokens, but their mass is below p: keep the token "
                f"that crosses p too ({k_exp} tokens)"
            )
        if k_got != k_exp:
            return f"with p = {p:.2f} keep the {k_exp} most probable tokens, you kept {k_got}"
        if abs(float(got.sum()) - 1.0) > 1e-4:
            return f"renormalise what you keep so it sums to 1 (yours sums to {float(got.sum()):.3f})"
        return compare(got, expected, f"the top-p distribution with p = {p:.2f}")

    return run_trials("top-p", [trial] * 8, "you keep the smallest nucleus whose mass reaches p.")


def _beam_model(g: torch.Generator) -> Transformer:
    """A random model whose end-of-sequence token competes with the others: outputs of varied lengths."""
    model = _random_model(g)
    with torch.no_grad():  # flatter distributions and a likelier EOS
        out = torch.nn.Linear(model.cfg.d_model, model.cfg.tgt_vocab_size)
        out.weight.copy_(model.generator.weight * 0.5)
        out.bias.zero_()
        out.bias[EOS] = 1.0
        out.bias[PAD] = out.bias[SOS] = -30.0  # never generated (a PAD would be masked as padding)
        model.generator = out
    return model


def _next_log_probs(model: Transformer, src: Tensor) -> Callable[[Tensor], Tensor]:
    src_mask = torch.ones(1, 1, 1, src.size(1), dtype=torch.bool)
    with torch.no_grad():
        memory = model.encode(src, src_mask)  # (1, S, d_model)

    def next_log_probs(prefixes: Tensor) -> Tensor:
        """prefixes (n, t) of ids, each starting with SOS -> log-probabilities of the next token (n, V)."""
        if not isinstance(prefixes, Tensor) or prefixes.dim() != 2 or prefixes.dtype != torch.long:
            raise ValueError("next_log_probs takes the live prefixes as a LongTensor of ids (n, t)")
        if not bool((prefixes[:, 0] == SOS).all()):
            raise ValueError("every prefix given to next_log_probs must start with sos_id")
        with torch.no_grad():
            h = model.decode(prefixes, memory.expand(prefixes.size(0), -1, -1), src_mask)  # (n, t, d)
            return F.log_softmax(model.generator(h[:, -1]).float(), dim=-1)  # (n, V)

    return next_log_probs


def _alpha_that_matters(model: Transformer, src: Tensor, kw: dict) -> float | None:
    """An alpha for which the length penalty changes the winner (the search itself does not
    depend on alpha: only the final ranking of the finished hypotheses does)."""
    hyps = beam_hypotheses(model, src, SOS, EOS, kw["max_len"], kw["beam_size"], 0.0)
    done = [h for h in hyps if h.finished]
    for alpha in (0.6, 1.0, 1.5, 2.0, 3.0):
        scores = sorted(
            ((h.logprob / length_penalty(len(h.tokens), alpha), h.tokens) for h in done), reverse=True
        )
        if len(scores) > 1 and scores[0][1] != done[0].tokens and scores[0][0] - scores[1][0] > 1e-3:
            return alpha
    return None


def _best(model: Transformer, src: Tensor, kw: dict) -> list[int]:
    return beam_hypotheses(model, src, SOS, EOS, kw["max_len"], kw["beam_size"], kw["alpha"])[0].tokens


@checker(beam_hypotheses, beam_search, length_penalty, label="beam search")
def check_beam_search(fn: Callable[..., list[int]]) -> CheckResult:
    """fn(next_log_probs, sos_id, eos_id, max_len, beam_size, alpha) -> the best output's ids
    (a list, without SOS, ending with EOS when finished), ranked by GNMT's length penalty."""
    g = fresh_generator()

    def make_trial(alpha_matters: bool) -> Callable[[], str | None]:
        def trial() -> str | None:
            for _ in range(60 if alpha_matters else 1):  # first trial: alpha changes the winner
                model = _beam_model(g)
                S = int(torch.randint(3, 9, (1,), generator=g))
                src = torch.randint(3, model.cfg.src_vocab_size, (1, S), generator=g)
                kw = {
                    "max_len": int(torch.randint(4, 11, (1,), generator=g)),
                    "beam_size": int(torch.randint(2, 5, (1,), generator=g)),
                    "alpha": round(float(torch.empty(1).uniform_(0.5, 2.0, generator=g)), 2),
                }
                if alpha_matters:
                    alpha = _alpha_that_matters(model, src, kw)
                    if alpha is None:
                        continue
                    kw["alpha"] = alpha
                break
            expected = _best(model, src, kw)
            got = fn(_next_log_probs(model, src), SOS, EOS, kw["max_len"], kw["beam_size"], kw["alpha"])
            if isinstance(got, Tensor):
                got = got.flatten().tolist()
            if not isinstance(got, (list, tuple)) or not all(isinstance(t, int) for t in got):
                return f"return the best output as a list of ids, got {type(got).__name__}"
            got = list(got)
            if got == expected:
                return None
            setting = f"(beam_size={kw['beam_size']}, alpha={kw['alpha']}, max_len={kw['max_len']})"
            if got[:1] == [SOS] and got[1:] == expected:
                return "leave the start token out of the result: return only the generated tokens"
            if got == _best(model, src, {**kw, "alpha": 0.0}):
                return (
                    f"your output {got} is the best by the raw log P; with the length penalty the best is "
                    f"{expected} {setting}: rank finished hypotheses by log P / ((5 + |Y|) / 6) ** alpha"
                )
            if got == _best(model, src, {**kw, "beam_size": 1}):
                return (
                    f"your output {got} is greedy decoding's; beam search finds {expected} {setting}: keep the "
                    f"beam_size best candidates over all live hypotheses at every step"
                )
            return f"the best output should be {expected}, yours is {got} {setting}"

        return trial

    return run_trials(
        "beam search",
        [make_trial(True), make_trial(False), make_trial(False)],
        "the same best output as the library's beam search, length penalty included. Well done!",
    )
