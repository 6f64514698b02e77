"""Checkers for lesson 14, "Translation and the paper's results".

check_modified_precision(fn)   fn(hyp_tokens, ref_tokens, n) -> (clipped matches, total n-grams) of one
                               sentence, compared with course_lib.bleu on fresh random token lists
                               (repeats, short and empty hypotheses included)
check_average(fn)              fn(list of state dicts) -> their element-wise mean, compared with the
                               mean on fresh random "checkpoints" (integer tensors kept as they are)
check_corpus_bleu(fn)          fn(hypotheses, references) -> corpus BLEU (0..100) of detokenised
                               text, compared with sacrebleu.corpus_bleu on fresh random corpora

Each refuses an answer that calls course_lib's own implementation (course_lib.bleu,
course_lib.translation): the exercise is to write it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .. import bleu, translation
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


_WORDS = "der die das Hund Katze sieht , . und nicht ein einen dem mit".split()


def _tokens(g: torch.Generator, lo: int, hi: int, vocab: int) -> list[str]:
    return [_WORDS[_randint(g, 0, vocab - 1)] for _ in range(_randint(g, lo, hi))]


@checker(bleu.modified_precision_counts, bleu.ngram_counts, label="modified precision")
def check_modified_precision(fn: Callable[[list[str], list[str], int], Any]) -> CheckResult:
    """Clipped n-gram matches and the number of hypothesis n-grams, on fresh random sentences."""
    g = fresh_generator()

    def trial(lo: int, fixed: tuple[list[str], list[str]] | None = None) -> Callable[[], str | None]:
        def run() -> str | None:
            vocab = _randint(g, 2, len(_WORDS))  # few words: many repeated n-grams to clip
            hyp, ref = fixed or (_tokens(g, lo, 12, vocab), _tokens(g, 1, 12, vocab))
            for n in range(1, 5):
                want = bleu.modified_precision_counts(hyp, ref, n)
                got = fn(list(hyp), list(ref), n)
                if not isinstance(got, (tuple, list)) or len(got) != 2:
                    return f"return a pair (matches, total), got {got!r}"
                if tuple(int(x) for x in got) != want:
                    return (
                        f"for n={n}, hypothesis {' '.join(hyp)!r} and reference {' '.join(ref)!r} "
                        f"expected {want}, got {tuple(got)}"
                    )
            return None

        return run

    return run_trials(
        "modified n-gram precision",
        # first a case that needs clipping ("der" 3 times against once), then random ones
        [
            trial(0, ("der der der Hund sieht".split(), "der Hund".split())),
            trial(0),
            trial(1),
            trial(3),
            trial(5),
        ],
        "clipped matches and totals agree on random sentences, repeats and empty hypotheses included.",
    )


@checker(translation.average_state_dicts, translation.average_checkpoints, label="checkpoint averaging")
def check_average(fn: Callable[[list[dict]], Any]) -> CheckResult:
    """The element-wise mean of random state dicts (float tensors averaged, integer ones kept)."""
    g = fresh_generator()

    def trial(k_min: int = 2) -> str | None:
        k = _randint(g, k_min, 5)
        shapes = {"w_q.weight": (_randint(g, 1, 4), _randint(g, 1, 4)), "bias": (_randint(g, 1, 5),)}
        steps = torch.tensor([_randint(g, 0, 9)])
        states = [
            {name: torch.randn(*s, generator=g, dtype=torch.float32) for name, s in shapes.items()}
            | {"count": steps}
            for _ in range(k)
        ]
        copies = [{n: t.clone() for n, t in s.items()} for s in states]
        got = fn(copies)
        if not isinstance(got, dict) or set(got) != set(states[0]):
            return f"return a dict with the keys {sorted(states[0])}, got {type(got).__name__}"
        for name in shapes:
            want = torch.stack([s[name].double() for s in states]).mean(0)
            hint = compare(got[name], want, f"the average of {name!r} over {k} checkpoints", atol=1e-6)
            if hint:
                return hint
            if got[name].dtype != states[0][name].dtype:
                return f"{name!r} should keep its dtype {states[0][name].dtype}, got {got[name].dtype}"
        if not torch.equal(torch.as_tensor(got["count"]), steps):
            return "an integer tensor (like a step counter) should be kept as it is, not averaged"
        for before, after in zip(states, copies):
            if any(not torch.equal(before[n], after[n]) for n in before):
                return "your function changed the checkpoints it was given: build a new dict"
        return None

    return run_trials(
        "checkpoint averaging",
        [trial, trial, trial, lambda: trial(1)],  # one trial may hold a single checkpoint
        "the mean of every weight, on random checkpoints.",
    )


_SHORT_REFS = ["der Hund sieht die Katze nicht .", "die Katze sieht den Hund und der Hund sieht die Katze ."]
_SHORT_HYPS = ["der Hund sieht die Katze", "die Katze sieht den Hund ."]


@checker(bleu.corpus_bleu, bleu.bleu_from_counts, bleu.modified_precision_counts, label="corpus BLEU")
def check_corpus_bleu(fn: Callable[[list[str], list[str]], Any]) -> CheckResult:
    """Corpus BLEU of detokenised sentences against sacrebleu.corpus_bleu (its defaults)."""
    import sacrebleu

    g = fresh_generator()

    def trial(fixed: tuple[list[str], list[str]] | None = None) -> str | None:
        n = _randint(g, 1, 6)
        vocab = _randint(g, 3, len(_WORDS))
        refs = [" ".join(_tokens(g, 1, 14, vocab)) for _ in range(n)]
        hyps = [" ".join(_tokens(g, 0, 14, vocab)) for _ in range(n)]
        if fixed is not None:
            hyps, refs = fixed
            n = len(hyps)
        want = sacrebleu.corpus_bleu(hyps, [refs]).score
        got = fn(list(hyps), list(refs))
        try:
            got = float(got)
        except (TypeError, ValueError):
            return f"return the score as a number between 0 and 100, got {type(got).__name__}"
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6):
            return f"for {n} random sentence(s) sacrebleu gives {want:.4f}, your function {got:.4f}"
        return None

    def perfect() -> str | None:
        text = ["der Hund sieht die Katze .", "die Katze sieht den Hund nicht ."]
        got = float(fn(text, text))
        return (
            None
            if math.isclose(got, 100.0, rel_tol=1e-9)
            else f"identical text should score 100, got {got:.4f}"
        )

    return run_trials(
        "corpus BLEU",
        # shorter than the references (brevity penalty), and the sentence scores' mean is not the corpus score
        [perfect, lambda: trial((_SHORT_HYPS, _SHORT_REFS))] + [trial] * 5,
        "equal to sacrebleu.corpus_bleu on random corpora.",
    )
