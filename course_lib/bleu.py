"""BLEU (Papineni, Roukos, Ward and Zhu, 2002), as sacreBLEU computes it (Post, 2018).

The paper's Table 2 reports BLEU on newstest2014. For a corpus of hypotheses h and references r:

  * tokenise both with `tokenize_13a` (the WMT script mteval-v13a's rules: punctuation split off,
    except a full stop or comma between two digits, or a dash after a digit);
  * modified n-gram precision, n = 1..4 (equation 1 of Papineni et al.): every n-gram of a
    hypothesis counts at most as often as it occurs in its reference ("clipping"), so repeating
    a correct word gains nothing; numerators and denominators are summed over the whole corpus
    before dividing:  p_n = sum_s sum_g min(count_h(g), count_r(g)) / sum_s sum_g count_h(g);
  * brevity penalty: BP = 1 if c > r else exp(1 - r / c), with c and r the corpus's total
    hypothesis and reference lengths in tokens (precision alone would reward saying little);
  * BLEU = BP * exp(mean_n log p_n), reported x 100.

Corpus level, not a mean of sentence scores: one empty or short hypothesis does not zero the
score. sacreBLEU's default smoothing ("exp", from mteval) applies when an order n has no match at
all: its p_n becomes 1 / (2^k * total_n), k counting such orders (k = 1 for the first); a corpus with
no matching unigram at all scores 0. `corpus_bleu(hyps, refs)` equals
`sacrebleu.corpus_bleu(hyps, [refs]).score` (checked in tests/test_bleu.py).

BLEU is computed on detokenised text, the sentences as a reader sees them, tokenised by this
one fixed rule: a score computed on a model's own subword tokens would change with the tokenizer
(more, shorter tokens match more easily), so two systems could not be compared.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .validate import InputTypeError

MAX_ORDER = 4

_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # symbols and most punctuation
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # a full stop or comma not after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... or not before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # a dash after a digit
)


def tokenize_13a(line: str) -> list[str]:
    """mteval-v13a's tokenisation (sacreBLEU's default "13a"), as a list of tokens."""
    line = line.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, repl in _RULES:
        line = pattern.sub(repl, line)
    return line.split()


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    """How often each n-gram (a tuple of n tokens) occurs."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def modified_precision_counts(hyp: Sequence[str], ref: Sequence[str], n: int) -> tuple[int, int]:
    """(clipped matches, total) of the n-grams of one hypothesis against one reference."""
    h, r = ngram_counts(hyp, n), ngram_counts(ref, n)
    return sum(min(c, r[g]) for g, c in h.items()), max(len(hyp) - n + 1, 0)


@dataclass
class BLEUScore:
    """A corpus BLEU and what it is made of (precisions in %, as sacreBLEU prints them)."""

    score: float
    precisions: list[float]
    brevity_penalty: float
    hyp_len: int
    ref_len: int
    matches: list[int]
    totals: list[int]

    def __str__(self) -> str:
        p = "/".join(f"{x:.1f}" for x in self.precisions)
        return (
            f"BLEU = {self.score:.2f} {p} (BP = {self.brevity_penalty:.3f} "
            f"ratio = {self.hyp_len / max(self.ref_len, 1):.3f} hyp_len = {self.hyp_len} ref_len = {self.ref_len})"
        )


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    for name, xs in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(xs, str) or not isinstance(xs, Sequence):
            raise InputTypeError(f"{name} must be a list of strings, got {type(xs).__name__}")
        for i, x in enumerate(xs):
            if not isinstance(x, str):
                raise InputTypeError(f"{name}[{i}] must be a string, got {type(x).__name__}")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"one reference per hypothesis: got {len(hypotheses)} hypotheses and {len(references)} references"
        )
    if not hypotheses:
        raise ValueError("BLEU needs at least one sentence")


def bleu_from_counts(matches: Sequence[int], totals: Sequence[int], hyp_len: int, ref_len: int) -> BLEUScore:
    """BLEU from the corpus's sufficient statistics, with sacreBLEU's default "exp" smoothing."""
    bp = 1.0 if hyp_len > ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0)
    order = len(matches)
    precisions = [0.0] * order
    if not any(matches):
        return BLEUScore(0.0, precisions, bp, hyp_len, ref_len, list(matches), list(totals))
    smooth = 1.0
    for n in range(order):
        if totals[n] == 0:
            break
        if matches[n] == 0:
            smooth *= 2
            precisions[n] = 100.0 / (smooth * totals[n])
        else:
            precisions[n] = 100.0 * matches[n] / totals[n]
    logs = [math.log(p) if p > 0 else -9999999999 for p in precisions]  # sacreBLEU's floor for log 0
    score = bp * math.exp(sum(logs) / order)
    return BLEUScore(score, precisions, bp, hyp_len, ref_len, list(matches), list(totals))


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[str], max_order: int = MAX_ORDER
) -> BLEUScore:
    """Corpus BLEU of detokenised hypotheses against one reference each (13a tokenisation)."""
    _check(hypotheses, references)
    matches, totals = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for h, r in zip(hypotheses, references):
        ht, rt = tokenize_13a(h), tokenize_13a(r)
        hyp_len, ref_len = hyp_len + len(ht), ref_len + len(rt)
        for n in range(1, max_order + 1):
            m, t = modified_precision_counts(ht, rt, n)
            matches[n - 1] += m
            totals[n - 1] += t
    return bleu_from_counts(matches, totals, hyp_len, ref_len)
