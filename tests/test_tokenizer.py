"""course_lib.tokenizer: byte-level BPE. Training, encoding, files, and the reference library."""

from __future__ import annotations

import json
import os
import time
from collections import Counter

import numpy as np
import pytest
import torch

from course_lib import data
from course_lib.corpus import load_corpus, python_reference_corpus
from course_lib.exercises.lesson12 import _vocabulary, random_text
from course_lib.tokenizer import (
    FORMAT,
    N_BASE,
    BPETokenizer,
    ReferenceBPE,
    byte_level_chars,
    main,
    merge_pair,
    merges_bytes,
    pretokenize,
    to_byte_ids,
)
from course_lib.validate import InputTypeError


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.fixture(scope="module")
def tok(corpus) -> BPETokenizer:
    """The lesson's tokenizer: 1000 ids learned from the training split of the frozen corpus."""
    return BPETokenizer.train(corpus.split("train"), 1000)


# --- random unicode -------------------------------------------------------------------------------
RANGES = [
    (0x20, 0x7E),  # printable ASCII
    (0x01, 0x1F),  # control characters (never NUL)
    (0x7F, 0x9F),  # DEL and the C1 controls
    (0xA0, 0xFF),  # Latin-1
    (0x0300, 0x036F),  # combining marks
    (0x0370, 0x04FF),  # Greek, Cyrillic
    (0x0590, 0x06FF),  # Hebrew, Arabic
    (0x0900, 0x097F),  # Devanagari
    (0x3040, 0x30FF),  # kana
    (0x4E00, 0x9FFF),  # CJK
    (0x1F300, 0x1FAFF),  # emoji
    (0x200B, 0x200F),  # zero-width characters, joiners, direction marks
    (0xFE00, 0xFE0F),  # variation selectors
    (0x10000, 0x10FFFF),  # anywhere above the BMP
]


def random_unicode(rng: np.random.Generator, max_len: int = 40) -> str:
    """A random string of valid Unicode (no surrogates, no NUL) mixing many scripts and symbols."""
    out = []
    for _ in range(int(rng.integers(0, max_len + 1))):
        lo, hi = RANGES[int(rng.integers(len(RANGES)))]
        out.append(chr(int(rng.integers(lo, hi + 1))))
        if rng.random() < 0.2:
            out.append(" ")
    return "".join(out)


def naive_train(text: str, vocab_size: int, min_frequency: int = 2):
    """The reference: recount every pair of every chunk after each merge; the most frequent pair
    wins, a tie goes to the smaller pair of ids. Returns merges, tokens after each merge, and
    the merged pairs' counts."""
    words = [to_byte_ids(c) for c in pretokenize(text)]  # every chunk occurrence, no counting trick
    merges, n_tokens, counts = [], [sum(map(len, words))], []
    while N_BASE + len(merges) < vocab_size:
        pairs = Counter(p for w in words for p in zip(w, w[1:]))
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < min_frequency:
            break
        new_id = N_BASE + len(merges)
        words = [merge_pair(w, best, new_id) for w in words]
        merges.append(best)
        n_tokens.append(sum(map(len, words)))
        counts.append(pairs[best])
    return merges, n_tokens, counts


def naive_encode(text: str, merges) -> list[int]:
    """Apply every merge, in rank order, to each chunk's bytes."""
    out = []
    for chunk in pretokenize(text):
        ids = to_byte_ids(chunk)
        for r, pair in enumerate(merges):
            ids = merge_pair(ids, pair, N_BASE + r)
        out += ids
    return out


# --- ids and specials -----------------------------------------------------------------------------
def test_specials_are_the_ones_of_course_lib_data(tok):
    assert (tok.pad_id, tok.sos_id, tok.eos_id) == (data.PAD, data.SOS, data.EOS) == (0, 1, 2)
    assert tok.tokens([0, 1, 2]) == list(data.SPECIALS)
    ids = tok.encode("attention", add_sos=True, add_eos=True)
    assert ids[0] == data.SOS and ids[-1] == data.EOS and data.PAD not in ids
    assert tok.encode("", add_sos=True, add_eos=True) == [data.SOS, data.EOS]
    # the names of the specials in a text are plain text, never special ids
    assert not {0, 1, 2} & set(tok.encode("<pad> <s> </s>"))


def test_bytes_come_after_the_specials():
    t = BPETokenizer()
    assert t.vocab_size == N_BASE == 259
    assert t.encode("a") == [ord("a") + 3]
    assert t.encode("é") == [0xC3 + 3, 0xA9 + 3]
    assert [t.token_bytes(i) for i in range(3, 259)] == [bytes([b]) for b in range(256)]


# --- pre-tokenisation -----------------------------------------------------------------------------
def test_pretokenize_by_hand():
    got = pretokenize("Hello, world!  It's 2017.\n\nNew   line 12345 x_y 😀!")
    want = ["Hello", ",", " world", "!", " ", " It", "'", "s", " 201", "7", ".", "\n\n", "New", "  ",
            " line", " 123", "45", " x", "_", "y", " 😀!"]  # fmt: skip
    assert got == want


def test_pretokenize_covers_any_text(rng):
    for _ in range(300):
        s = random_unicode(rng)
        chunks = pretokenize(s)
        assert "".join(chunks) == s
        assert all(chunks)


# --- training -------------------------------------------------------------------------------------
def test_merges_by_hand():
    # "banana bandana" -> chunks "banana" and " bandana"; ids: a=100, b=101, d=103, n=113, space=35.
    # Pair counts: (a,n) 2+2 = 4, (n,a) 2+1 = 3, (b,a) 2, the others 1.
    #   merge 0: (a, n) -> 259 "an".    banana = b an an a;  bandana = _ b an d an a
    #   now (b,an) 1+1 = 2 and (an,a) 1+1 = 2 tie: the smaller pair (101, 259) wins
    #   merge 1: (b, an) -> 260 "ban".  banana = ban an a;   bandana = _ ban d an a
    #   merge 2: (an, a) -> 261 "ana" (count 2).  banana = ban ana; bandana = _ ban d ana
    # every pair left occurs once: with min_frequency = 2 training stops at 262 ids. With 1:
    #   candidates (260,261) (35,260) (260,103) (103,261): merge 3: (35, 260) -> 262 " ban"
    #   candidates (260,261) (262,103) (103,261):          merge 4: (103, 261) -> 263 "dana"
    #   candidates (260,261) (262,263):                    merge 5: (260, 261) -> 264 "banana"
    #                                                      merge 6: (262, 263) -> 265 " bandana"
    text = "banana bandana"
    t = BPETokenizer.train(text, 300)
    assert t.merges == [(100, 113), (101, 259), (259, 100)]
    assert t.log.pair_counts == [4, 2, 2]
    assert t.log.n_tokens == [14, 10, 8, 6]  # 6 + 8 bytes; then 4 + 6, 3 + 5, 2 + 4
    t1 = BPETokenizer.train(text, 300, min_frequency=1)
    assert t1.merges == [(100, 113), (101, 259), (259, 100), (35, 260), (103, 261), (260, 261), (262, 263)]
    assert t1.vocab_size == 266 and t1.log.n_tokens[-1] == 2
    assert t1.encode(text) == [264, 265]
    assert t1.tokens([264, 265]) == ["banana", "·bandana"]
    assert t1.encode("bandanas") == [260, 263, ord("s") + 3]  # "ban" "dana" "s": a word never seen


def test_incremental_training_equals_a_recount_after_every_merge(gen):
    for _ in range(4):
        words = _vocabulary(gen)
        text = random_text(gen, words, 800)
        vocab = N_BASE + int(torch.randint(50, 400, (1,), generator=gen))
        m = int(torch.randint(1, 4, (1,), generator=gen))
        t = BPETokenizer.train(text, vocab, min_frequency=m)
        merges, n_tokens, counts = naive_train(text, vocab, min_frequency=m)
        assert t.merges == merges
        assert t.log.n_tokens == n_tokens
        assert t.log.pair_counts == counts


def test_incremental_training_on_real_text(corpus):
    text = corpus.text[:30_000]
    t = BPETokenizer.train(text, N_BASE + 150)
    merges, n_tokens, _ = naive_train(text, N_BASE + 150)
    assert t.merges == merges and t.log.n_tokens == n_tokens


def test_training_on_several_texts_counts_them_all():
    a, b = "the cat sat", "the mat sat on the cat"
    together = BPETokenizer.train([a, b], 280)
    assert together.merges == naive_train(a + "\n" + b, 280)[0]  # "\n" is its own chunk, as a boundary


def test_vocab_size_is_reached_or_training_stops(tok, corpus):
    assert tok.vocab_size == 1000 and len(tok.merges) == 741
    assert tok.log.vocab_sizes == list(range(N_BASE, 1001))
    n = tok.log.n_tokens
    assert all(x > y for x, y in zip(n, n[1:])), "every merge shortens the text"
    assert all(c >= 2 for c in tok.log.pair_counts)
    assert n[0] == len(corpus.split("train").encode("utf-8"))
    tiny = BPETokenizer.train("abab", 10_000)
    assert tiny.merges == [(100, 101)]  # (a,b) twice; then (ab,ab) once < min_frequency


def test_truncated_equals_training_with_the_smaller_size(tok, corpus):
    assert tok.truncated(600) == BPETokenizer.train(corpus.split("train"), 600)
    assert tok.truncated(N_BASE) == BPETokenizer()


def test_training_is_fast(corpus):
    t0 = time.perf_counter()
    BPETokenizer.train(corpus.split("train"), 1000)
    seconds = time.perf_counter() - t0
    assert seconds < 10, f"training 1000 ids took {seconds:.1f} s (about 0.2 s expected)"


# --- encoding and decoding -----------------------------------------------------------------------
def test_round_trip_on_random_unicode(tok, rng):
    assert tok.encode("") == [] and tok.decode([]) == ""
    for _ in range(300):
        s = random_unicode(rng)
        ids = tok.encode(s)
        assert tok.decode(ids) == s
        assert tok.decode_bytes(ids) == s.encode("utf-8")
        assert tok.decode(tok.encode(s, add_sos=True, add_eos=True)) == s
        assert all(0 <= i < tok.vocab_size for i in ids)


def test_round_trip_of_words_never_seen(tok, corpus):
    for s in [
        "Transformerification",
        "Ünïcödé naïveté",
        "注意力机制",
        "🤖🎉👩🏽‍💻",
        "e\u0301",
        "\t\r\x01\x7f",
    ]:
        assert s not in corpus.text
        assert tok.decode(tok.encode(s)) == s


def test_encode_equals_applying_every_merge_in_rank_order(gen):
    for _ in range(4):
        words = _vocabulary(gen)
        t = BPETokenizer.train(random_text(gen, words, 800), N_BASE + 300)
        for _ in range(5):
            s = random_text(gen, words, 40, unseen=True)
            assert t.encode(s) == naive_encode(s, t.merges)


def test_encode_of_the_training_text_is_what_training_ended_with(tok, corpus):
    assert len(tok.encode(corpus.split("train"))) == tok.log.n_tokens[-1]


def test_cache_never_changes_the_result(tok, rng, monkeypatch):
    import course_lib.tokenizer as module

    texts = [random_unicode(rng, 80) + " the attention of the model" for _ in range(50)]
    fresh = [BPETokenizer(tok.merges).encode(s) for s in texts]
    monkeypatch.setattr(module, "_CACHE_LIMIT", 7)
    small = BPETokenizer(tok.merges)
    assert [small.encode(s) for s in texts + texts] == fresh + fresh
    assert len(small._cache) <= 7


def test_encoding_is_fast(tok, corpus):
    text = corpus.text
    t = BPETokenizer(tok.merges)  # a cold cache
    t0 = time.perf_counter()
    t.encode(text)
    per_100kb = (time.perf_counter() - t0) / len(text.encode("utf-8")) * 100_000
    assert per_100kb < 1.0, f"{per_100kb:.2f} s per 100 KB (about 0.02 s expected)"


def test_decode_follows_the_conventions_of_char_vocab(tok):
    ids = tok.encode("hello")
    assert tok.decode([data.SOS, *ids, data.EOS, *tok.encode(" not this")]) == "hello"
    assert tok.decode([data.PAD, *ids, data.PAD]) == "hello"
    assert tok.decode(torch.tensor(ids)) == "hello"
    half = BPETokenizer().encode("é")[:1]
    assert tok.decode(half) == "\ufffd" and tok.decode_bytes(half) == b"\xc3"
    with pytest.raises(ValueError, match=r"id 1000 is outside the vocabulary: expected ids 0\.\.999"):
        tok.decode([5, 1000])
    with pytest.raises(ValueError, match="integer token ids"):
        tok.decode([1.5])
    with pytest.raises(ValueError, match="sequence of token ids"):
        tok.decode("hello")


def test_bad_input_gets_one_line_errors(tok):
    cases = [
        (lambda: BPETokenizer.train("abc", 100), "vocab_size"),
        (lambda: BPETokenizer.train("abc", 500.0), "vocab_size"),
        (lambda: BPETokenizer.train("abc", 500, min_frequency=0), "min_frequency"),
        (lambda: BPETokenizer.train(["abc", 3], 500), "item 1"),
        (lambda: tok.encode(b"bytes"), "a str"),
        (lambda: tok.encode("ok \ud800 no"), "lone surrogate"),
        (lambda: tok.truncated(2000), "vocab_size"),
        (lambda: tok.token_bytes(-1), "token id"),
    ]
    for fn, word in cases:
        with pytest.raises(ValueError) as e:
            fn()
        assert word in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputTypeError):
        tok.encode(None)


# --- files ----------------------------------------------------------------------------------------
def test_save_and_load_round_trip(tok, tmp_path, rng):
    path = tmp_path / "tok.json"
    tok.save(path)
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["format"] == FORMAT and d["vocab_size"] == 1000 and len(d["merges"]) == 741
    assert d["tokens"][0] == tok.token_bytes(N_BASE).decode()
    back = BPETokenizer.load(path)
    assert back == tok and back.vocab_size == tok.vocab_size
    for _ in range(20):
        s = random_unicode(rng)
        assert back.encode(s) == tok.encode(s)
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"], "no temporary file left behind"
    BPETokenizer().save(path)  # overwrite with an empty merge table
    assert BPETokenizer.load(path) == BPETokenizer()


def test_save_is_atomic(tok, tmp_path, monkeypatch):
    path = tmp_path / "tok.json"
    BPETokenizer().save(path)
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        tok.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]


def _write(tmp_path, d_or_text) -> str:
    p = tmp_path / "bad.json"
    p.write_text(d_or_text if isinstance(d_or_text, str) else json.dumps(d_or_text), encoding="utf-8")
    return p


def test_corrupt_or_mismatched_files(tok, tmp_path):
    good = BPETokenizer.train("banana bandana", 300).to_dict()  # 3 merges: 259, 260, 261

    def edit(**kw):
        return {**good, **kw}

    cases = [
        ('{"format": "course_lib.bpe/1", "merges": [[3, 4]', "is not valid JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
        (edit(format="gpt2"), "format tag is 'gpt2': expected 'course_lib.bpe/1'"),
        (edit(pretokenizer="other"), "pretokenizer is 'other'"),
        (edit(specials=["<s>", "<pad>", "</s>"]), "PAD = 0, SOS = 1, EOS = 2"),
        (edit(merges="3 4"), "merges must be a list"),
        (edit(merges=[[100, 113], [101]]), "merge 1 is [101]: expected a pair of token ids"),
        (
            edit(merges=[[100, 113], [101, 260]], tokens=None),
            "refers to id 260, which does not exist before it",
        ),
        (edit(merges=[[0, 113]], tokens=None), "refers to id 0"),
        (edit(merges=[[100, 113], [100, 113]], tokens=None), "merge 1 ([100, 113]) repeats merge 0"),
        (edit(vocab_size=1000), "vocab_size is 1000 but 3 specials + 256 bytes + 3 merges make 262"),
        (edit(vocab_size="262"), "vocab_size is '262'"),
        (edit(tokens=["an", "ban", "anna"]), "tokens do not match the merges (first at merge 2)"),
    ]
    for content, message in cases:
        path = _write(tmp_path, content)
        with pytest.raises(ValueError) as e:
            BPETokenizer.load(path)
        text = str(e.value)
        assert message in text, text
        assert "bad.json" in text and "\n" not in text
    assert BPETokenizer.load(_write(tmp_path, good)).merges == [(100, 113), (101, 259), (259, 100)]
    assert BPETokenizer.load(_write(tmp_path, edit(tokens=None))).vocab_size == 262  # tokens are optional


def test_missing_or_empty_tokenizer_files(tmp_path):
    with pytest.raises(ValueError, match="tokenizer file .*nope.json does not exist"):
        BPETokenizer.load(tmp_path / "nope.json")
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        BPETokenizer.load(tmp_path / "empty.json")


def test_command_line(tmp_path, capsys):
    src = tmp_path / "text.txt"
    src.write_text("the model attends to the tokens of the text\n" * 50, encoding="utf-8")
    out = tmp_path / "tok.json"
    assert (
        main(["train", "--corpus", str(src), "--split", "all", "--vocab-size", "270", "--out", str(out)]) == 0
    )
    assert BPETokenizer.load(out).vocab_size == 270
    assert main(["encode", "--tokenizer", str(out), "the tokens"]) == 0
    printed = capsys.readouterr().out
    assert "BPETokenizer(270 ids" in printed
    assert "".join(printed.splitlines()[-1].split()) == "the·tokens"  # the labels of the tokens
    assert main(["encode", "--tokenizer", str(tmp_path / "missing.json"), "x"]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- the reference: Hugging Face tokenizers -------------------------------------------------------
def test_byte_level_alphabet_is_the_one_of_the_reference():
    chars = byte_level_chars()
    assert len(set(chars)) == 256 and chars[ord("a")] == "a" and chars[ord(" ")] == "Ġ"
    tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers is not installed")
    assert set(chars) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())


@pytest.mark.parametrize("vocab_size", [500, 1000, 2000])
def test_compression_matches_the_reference_library(corpus, vocab_size):
    """Trained on the same text with the same vocabulary size, our tokenizer needs at most 3% more
    (or fewer) tokens than Hugging Face's ByteLevel BPE on the held-out split (measured: 0.995x)."""
    pytest.importorskip("tokenizers", reason="Hugging Face tokenizers is not installed")
    train, test = corpus.split("train"), corpus.split("test")
    ours = BPETokenizer.train(train, vocab_size)
    ref = ReferenceBPE(train, vocab_size)
    assert ref.vocab_size == ours.vocab_size == vocab_size
    n_ours, n_ref = len(ours.encode(test)), len(ref.encode(test))
    assert abs(n_ours / n_ref - 1) < 0.03, (n_ours, n_ref)
    assert ref.decode(ref.encode(test)) == test
    # most merges agree: the differences come from ties and from the two pre-tokenisers
    same = set(merges_bytes(ours)) & set(ref.merges_bytes())
    assert len(same) >= 0.95 * len(ours.merges)


def test_compression_on_the_python_reference_manual():
    """A larger text that differs between Python versions: only the ratio is asserted. Ours may
    need at most 3% more tokens than the reference, and not suspiciously fewer (at most 10%);
    measured with Python 3.11: 2.2% fewer."""
    pytest.importorskip("tokenizers", reason="Hugging Face tokenizers is not installed")
    docs = python_reference_corpus()
    train, test = docs.split("train"), docs.split("test")
    ours, ref = BPETokenizer.train(train, 2000), ReferenceBPE(train, 2000)
    n_ours, n_ref = len(ours.encode(test)), len(ref.encode(test))
    assert 0.90 < n_ours / n_ref < 1.03, (n_ours, n_ref)
    assert ours.decode(ours.encode(test)) == test
    assert len(test.encode("utf-8")) / n_ours > 3.0  # well over three bytes per token
