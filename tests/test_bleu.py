"""BLEU (course_lib.bleu) against sacrebleu.corpus_bleu with its defaults (13a tokenisation, "exp"
smoothing), on random corpora with empty, short and repetitive hypotheses, and on the grammar's text."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sacrebleu
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from course_lib.bleu import bleu_from_counts, corpus_bleu, modified_precision_counts, tokenize_13a
from course_lib.grammar import sample_pairs

WORDS = "the a dog Hund der sees . , ? 3.5 1,000 4-5 x-y &amp; ( )".split()
WORDS += ['"', "don't", "Grüße", "A.B", "-", "ß", "<b>", "$", "10%"]


def random_corpus(rng: np.random.Generator, n: int, max_len: int, vocab: list[str]) -> list[str]:
    return [" ".join(rng.choice(vocab, size=int(rng.integers(0, max_len + 1)))) for _ in range(n)]


def sacre(hyps: list[str], refs: list[str]) -> float:
    return sacrebleu.corpus_bleu(hyps, [refs]).score


def test_equals_sacrebleu_on_random_corpora(rng):
    for _ in range(300):
        n = int(rng.integers(1, 8))
        vocab = WORDS[: int(rng.integers(3, len(WORDS) + 1))]  # small vocabularies: many repeated n-grams
        hyps, refs = random_corpus(rng, n, 14, vocab), random_corpus(rng, n, 14, vocab)
        assert corpus_bleu(hyps, refs).score == pytest.approx(sacre(hyps, refs), abs=1e-9), (hyps, refs)


def test_equals_sacrebleu_on_edge_cases(rng):
    cases = [
        (["", ""], ["the dog", "a cat sleeps ."]),  # every hypothesis empty: 0
        (["the"], ["the dog sleeps in the garden ."]),  # one word: brevity penalty, no 2-grams
        (["the the the the the the"], ["the dog sleeps ."]),  # repetition is clipped
        (["dog sleeps"], ["dog sleeps"]),  # too short for 3- and 4-grams, yet identical
        (["a b c d e"], ["a b c d e"]),  # perfect: 100
        (["a b x d e", ""], ["a b c d e", "f g"]),  # some orders without any match: exp smoothing
        (["Der Hund, der 3.5 m springt."], ["Der Hund , der 3.5 m springt ."]),  # 13a splits , and .
    ]
    for hyps, refs in cases:
        assert corpus_bleu(hyps, refs).score == pytest.approx(sacre(hyps, refs), abs=1e-9), (hyps, refs)
    assert corpus_bleu(["a b c d e"], ["a b c d e"]).score == pytest.approx(100.0)
    assert corpus_bleu(["", ""], ["the dog", "x"]).score == 0.0


def test_equals_sacrebleu_on_grammar_text_with_noise(rng):
    refs = [de for _, de in sample_pairs(60, "test", seed=int(rng.integers(0, 1000)))]
    hyps = []
    for r in refs:  # drop, repeat or swap words, as a half-trained model would
        words = r.split()
        keep = [w for w in words if rng.random() > 0.2]
        if keep and rng.random() < 0.3:
            keep.insert(int(rng.integers(0, len(keep))), keep[0])
        hyps.append(" ".join(keep))
    assert corpus_bleu(hyps, refs).score == pytest.approx(sacre(hyps, refs), abs=1e-9)
    assert corpus_bleu(refs, refs).score == pytest.approx(100.0)


def test_tokenize_13a_matches_sacrebleu(rng):
    tok = Tokenizer13a()
    for line in random_corpus(rng, 200, 10, WORDS) + ["Hello,world. 3,5 und 1.000-2", "a&quot;b &amp; <c>"]:
        assert " ".join(tokenize_13a(line)) == tok(line.rstrip()), line


def test_modified_precision_clips_repeated_ngrams():
    assert modified_precision_counts("the the the the".split(), "the cat".split(), 1) == (1, 4)
    assert modified_precision_counts("a b a b".split(), "a b a b".split(), 2) == (3, 3)
    assert modified_precision_counts("a".split(), "a b".split(), 2) == (0, 0)


def test_brevity_penalty():
    assert bleu_from_counts([5, 4, 3, 2], [5, 4, 3, 2], 5, 10).brevity_penalty == pytest.approx(
        math.exp(1 - 2)
    )
    assert bleu_from_counts([5, 4, 3, 2], [5, 4, 3, 2], 12, 10).brevity_penalty == 1.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        corpus_bleu(["a"], ["a", "b"])
    with pytest.raises(TypeError, match="hypotheses must be a list"):
        corpus_bleu("a b", ["a b"])
    with pytest.raises(TypeError, match=r"references\[1\] must be a string"):
        corpus_bleu(["a", "b"], ["a", 3])
    with pytest.raises(ValueError, match="at least one"):
        corpus_bleu([], [])
