"""The synthetic English -> German grammar: deterministic, split-consistent, grammatical where we
can check it, and every pair round-trips through the byte-level BPE tokenizer."""

from __future__ import annotations

import random

import pytest

from course_lib import grammar
from course_lib.grammar import HELDOUT_SUB_VERBS, SPLITS, sample_labelled, sample_pairs, sentence, split_of
from course_lib.tokenizer import BPETokenizer


def test_deterministic_for_a_seed(rng):
    seed = int(rng.integers(0, 10_000))
    assert sample_pairs(50, "train", seed) == sample_pairs(50, "train", seed)
    assert sample_pairs(50, "train", seed) != sample_pairs(50, "train", seed + 1)
    assert sample_pairs(20, "test", seed) == sample_pairs(30, "test", seed)[:20]


def test_splits_are_disjoint_and_consistent(rng):
    seed = int(rng.integers(0, 10_000))
    by_split = {s: sample_pairs(100 if s == "train" else 40, s, seed) for s in SPLITS}
    english = {s: {en for en, _ in pairs} for s, pairs in by_split.items()}
    for a in SPLITS:
        assert len(english[a]) == len(by_split[a])  # distinct sentences
        for b in SPLITS:
            if a < b:
                assert not english[a] & english[b], (a, b)


def test_compositional_sentences_hold_a_heldout_combination(rng):
    r = random.Random(int(rng.integers(0, 10_000)))
    seen_kinds = set()
    for _ in range(3000):
        en, de, combos = sentence(r)
        held = {c for c in combos if c[0] == "rel-subject"}
        held |= {c for c in combos if c[0] == "sub-verb" and c[1] in HELDOUT_SUB_VERBS}
        held |= {c for c in combos if c[0] == "adj-noun" and (c[1], c[2]) in grammar._HELDOUT_PAIRS}
        assert (split_of(en, combos) == "compositional") == bool(held)
        seen_kinds |= {c[0] for c in held}
    assert seen_kinds == {"rel-subject", "sub-verb", "adj-noun"}


def test_labelled_pairs_are_the_same_pairs(rng):
    seed = int(rng.integers(0, 10_000))
    labelled = sample_labelled(60, "compositional", seed)
    assert [(en, de) for en, de, _ in labelled] == sample_pairs(60, "compositional", seed)
    assert all(kinds for _, _, kinds in labelled)  # each holds at least one held-out combination
    assert not any(kinds for _, _, kinds in sample_labelled(60, "test", seed))


def test_every_pair_round_trips_through_the_tokenizer(rng):
    pairs = sample_pairs(300, "train", int(rng.integers(0, 10_000)))
    tok = BPETokenizer.train([s + "\n" + t for s, t in pairs[:150]], 400)
    for s, t in pairs + sample_pairs(50, "compositional", 0):
        for text in (s, t):
            ids = tok.encode(text)
            assert tok.decode(ids) == text
            assert all(0 <= i < tok.vocab_size for i in ids)


def test_sentences_look_right(rng):
    pairs = sample_pairs(400, "train", int(rng.integers(0, 10_000)))
    for en, de in pairs:
        assert (en[0].isupper() or en[0].isdigit()) and (de[0].isupper() or de[0].isdigit()), (en, de)
        assert en[-1] in ".?" and de[-1] == en[-1], (en, de)
        assert "  " not in en and "  " not in de and " ," not in de
        assert "ee " not in de.replace("Fee ", ""), de  # no doubled adjective ending (müdee)
        assert " in dem " not in de and " zu dem " not in de and " von dem " not in de  # contracted
    # the word order really changes: subordinate and relative clauses end with their finite verb
    assert any(", dass " in de for _, de in pairs)
    assert any(", der " in de or ", die " in de or ", das " in de for _, de in pairs)
    for _, de in pairs:
        assert ",," not in de and ",." not in de and ",?" not in de


def test_known_pairs_of_seed_0():
    """A few pairs checked by hand (agreement, cases, verb-final clauses, zum, kein): they pin the
    generator, so that a change to the grammar shows here."""
    assert sample_pairs(6, "train", 0) == [
        (
            "90 expensive bakers hear four strong sisters if the duck has visited a teacher.",
            "90 teure Bäcker hören vier starke Schwestern, wenn die Ente einen Lehrer besucht hat.",
        ),
        (
            "The woman thanks nine farmers if warm farmers help the mother.",
            "Die Frau dankt neun Landwirten, wenn warme Landwirte der Mutter helfen.",
        ),
        (
            "Many sisters will send ducks her loud bag.",
            "Viele Schwestern werden Enten ihre laute Tasche schicken.",
        ),
        ("A fox wrote many books.", "Ein Fuchs schrieb viele Bücher."),
        (
            "Has your hungry man told her new sisters her song that was cold?",
            "Hat dein hungriger Mann ihren neuen Schwestern ihr Lied, das kalt war, erzählt?",
        ),
        ("Now many women play.", "Jetzt spielen viele Frauen."),
    ]


def test_noun_forms():
    kind = next(n for n in grammar.NOUNS if n.en == "child")
    assert kind.de_form("pl", "dat") == "Kindern" and kind.de_form("pl", "acc") == "Kinder"
    auto = next(n for n in grammar.NOUNS if n.en == "car")
    assert auto.de_form("pl", "dat") == "Autos"


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        sample_pairs(3, "dev")
    with pytest.raises(ValueError, match="n"):
        sample_pairs(-1)
