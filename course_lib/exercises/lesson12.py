"""Checkers for lesson 12, "Tokens: byte-pair encoding".

check_merge(fn)    fn(ids: list[int], pair: (a, b), new_id: int) -> list[int]: every occurrence of
                   the pair replaced by new_id, left to right, without overlaps; the input untouched
check_encode(fn)   fn(text: str, merges: list[(a, b)]) -> list[int]: the ids of the text, with merge
                   number r (rank r) making id 259 + r; compared with `BPETokenizer(merges).encode`

Both run on fresh random inputs: id sequences full of repeats (so overlapping pairs such as
(5, 5) in 5 5 5 occur), and random text with words never seen in training, long numbers, runs
of spaces, accents, other scripts and emoji, encoded with merge tables learned from other
random text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..data import EOS, SOS
from ..tokenizer import N_BASE, BPETokenizer, merge_pair, pretokenize, to_byte_ids
from . import CheckResult, checker, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _choice(g: torch.Generator, items: Sequence):
    return items[_randint(g, 0, len(items) - 1)]


# ------------------------------------------------------------------------------- one merge step


def _right_to_left(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    return merge_pair(ids[::-1], pair[::-1], new_id)[::-1]


def _first_only(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def _as_list(got: object) -> list[int] | None:
    try:
        out = [int(x) for x in got]  # a list, a tuple or a 1-D tensor
    except (TypeError, ValueError):
        return None
    return out


def _first_difference(got: list[int], want: list[int]) -> str:
    i = next((k for k, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
    g = got[i] if i < len(got) else "nothing"
    w = want[i] if i < len(want) else "nothing"
    return f"first difference at position {i}: got {g}, expected {w}"


@checker(merge_pair)
def check_merge(fn: Callable[[list[int], tuple[int, int], int], list[int]]) -> CheckResult:
    """One merge step on fresh random id sequences, overlapping pairs included."""
    g = fresh_generator()

    def trial(kind: str) -> Callable[[], str | None]:
        def run() -> str | None:
            alphabet = list(range(3, 3 + _randint(g, 2, 4)))  # few ids: many repeats
            n = {"empty": 0, "one": 1}.get(kind, _randint(g, 8, 30))
            ids = [_choice(g, alphabet) for _ in range(n)]
            if kind == "run":  # an odd run of one id: the pair (x, x) overlaps itself
                x, y = alphabet[0], alphabet[1]
                k, length = _randint(g, 0, n - 6), _choice(g, [3, 5])
                ids[k : k + length] = [x] * length
                ids[k + length] = y  # the run ends here ...
                if k > 0:
                    ids[k - 1] = y  # ... and starts here
                pair = (x, x)
            elif kind == "absent":
                pair = (ids[0], 99)
            elif n >= 2:  # a pair of two different ids that occurs (there is one: the alphabet has >= 2)
                j = _randint(g, 0, n - 2)
                ids[j : j + 2] = alphabet[:2]
                starts = [i for i in range(n - 1) if ids[i] != ids[i + 1]]
                i = _choice(g, starts)
                pair = (ids[i], ids[i + 1])
            else:
                pair = (3, 4)
            new_id = N_BASE + _randint(g, 0, 500)
            given = list(ids)
            got = fn(given, pair, new_id)
            want = merge_pair(ids, pair, new_id)
            got_list = _as_list(got)
            where = f"for ids={ids}, pair={pair}, new_id={new_id}"
            if got_list is None:
                return f"return a list of ids, got {type(got).__name__} {where}"
            if given != ids and got_list == want:
                return (
                    "the result is right but your function changed the list it was given: build a new list "
                    "(training still needs the old sequence to update its pair counts)"
                )
            if got_list == want:
                return None
            if got_list == _right_to_left(ids, pair, new_id):
                return (
                    f"{where} you merged from the right: go left to right, so in {pair[0]} {pair[0]} {pair[0]} "
                    f"the first two ids merge and the third stays"
                )
            if got_list == _first_only(ids, pair, new_id) and got_list != want:
                return f"{where} only the first occurrence was replaced: replace every occurrence"
            if pair[0] != pair[1] and got_list == merge_pair(ids, pair[::-1], new_id):
                return f"{where} you merged {pair[::-1]}: the pair is ordered, ({pair[0]}, {pair[1]}) means {pair[0]} then {pair[1]}"
            if len(got_list) != len(want):
                more = len(got_list) > len(want)
                return (
                    f"{where} expected {want}, got {got_list}: {'more' if more else 'fewer'} ids than expected; "
                    + (
                        "after replacing a pair, move on past both of its ids"
                        if more
                        else "each id belongs to at most one merged pair (no overlaps)"
                    )
                )
            return f"{where} expected {want}, got {got_list} ({_first_difference(got_list, want)})"

        return run

    kinds = ["random", "run", "random", "absent", "run", "empty", "one", "random"]
    return run_trials(
        "check_merge",
        [trial(k) for k in kinds],
        f"every occurrence replaced, left to right, no overlaps, on {len(kinds)} fresh sequences.",
    )


# ------------------------------------------------------------------------------------ encoding

_SCRIPTS = list("éüßñøłçıαλжшהع注意力語") + ["😀", "🤖", "🎉"]  # accents, other scripts, emoji


_SEPARATORS = [
    (0.1, ". "),
    (0.18, ", "),
    (0.22, "  "),
    (0.28, "   "),
    (0.31, "\n"),
    (0.32, "!? "),
    (1.0, " "),
]


def _random_word(g: torch.Generator, syllables: list[str]) -> str:
    return "".join(_choice(g, syllables) for _ in range(_randint(g, 1, 3)))


def random_text(g: torch.Generator, words: list[str], n_words: int, unseen: bool = False) -> str:
    """Random 'sentences' from a word list, with punctuation, numbers, runs of spaces and newlines;
    with `unseen`, also new words, accented letters, other scripts and emoji."""
    out: list[str] = []
    for _ in range(n_words):
        r = float(torch.rand(1, generator=g))
        if unseen and r < 0.12:
            w = "".join(_choice(g, _SCRIPTS) for _ in range(_randint(g, 1, 3)))
            w = w + _choice(g, words) if r < 0.06 else w
        elif unseen and r < 0.2:
            w = "".join(chr(_randint(g, 97, 122)) for _ in range(_randint(g, 3, 8)))  # a word never seen
        elif r < 0.27:
            w = str(_randint(g, 0, 10 ** _randint(g, 1, 7)))  # numbers up to seven digits
        else:
            w = _choice(g, words)
            if r > 0.93:
                w = w.capitalize()
        out.append(w)
        r = float(torch.rand(1, generator=g))
        # separators; runs of three spaces teach a merge of two spaces, which a text cut into
        # chunks never applies across a chunk boundary (that is what pre-tokenisation is for)
        r = float(torch.rand(1, generator=g))
        out.append(next(sep for p, sep in _SEPARATORS if r < p))
    return "".join(out).strip()


def _vocabulary(g: torch.Generator) -> list[str]:
    letters = "abcdefghiklmnoprstuvw"
    syllables = [
        _choice(g, letters) + _choice(g, "aeiou") + ("" if _randint(g, 0, 1) else _choice(g, letters))
        for _ in range(_randint(g, 8, 14))
    ]
    return [_random_word(g, syllables) for _ in range(_randint(g, 30, 60))]


def _merge_by_rank(ids: list[int], merges: list[tuple[int, int]], first_only: bool = False) -> list[int]:
    for r, pair in enumerate(merges):
        ids = _first_only(ids, pair, N_BASE + r) if first_only else merge_pair(ids, pair, N_BASE + r)
    return ids


def _apply_in_order(ids: list[int], ranked: list[tuple[int, tuple[int, int]]]) -> list[int]:
    """Apply (rank, pair) merges in the order given; merge r makes id 259 + r."""
    for r, pair in ranked:
        ids = merge_pair(ids, pair, N_BASE + r)
    return ids


def _wrong_encodings(text: str, merges: list[tuple[int, int]]) -> dict[str, list[int]]:
    """What common mistakes produce (each has a hint in _HINTS)."""
    chunks = [to_byte_ids(c) for c in pretokenize(text)]
    backwards = list(enumerate(merges))[::-1]
    return {
        "without pre-tokenisation": _merge_by_rank(to_byte_ids(text), merges),
        "first only": [i for c in chunks for i in _merge_by_rank(c, merges, first_only=True)],
        "reverse ranks": [i for c in chunks for i in _apply_in_order(c, backwards)],
        "no offset": list(text.encode("utf-8")),
        "code points": [ord(ch) + 3 for ch in text],
    }


_HINTS = {
    "without pre-tokenisation": (
        "you merged across chunk boundaries: cut the text with pretokenize(text) first and encode each "
        "chunk on its own (here a long number or a run of spaces gave it away)"
    ),
    "first only": "in each chunk only the first occurrence of a pair was merged: a merge replaces every occurrence",
    "reverse ranks": (
        "you applied the merges from the last to the first: apply them by rank, the merge learned first (rank 0) first"
    ),
    "no offset": "these are raw byte values: byte b has id b + 3, because PAD, SOS and EOS take ids 0, 1 and 2",
    "code points": (
        "these are characters, not bytes: encode the text to UTF-8 first (text.encode('utf-8')), "
        "since 'é' is two bytes and an emoji four"
    ),
}


@checker(BPETokenizer.encode, BPETokenizer.encode_chunk)
def check_encode(fn: Callable[[str, list[tuple[int, int]]], list[int]]) -> CheckResult:
    """Encoding with a given merge table, against the library, on fresh random text."""
    g = fresh_generator()

    def trial(kind: int | str) -> Callable[[], str | None]:
        def run() -> str | None:
            words = _vocabulary(g)
            if kind == "spaces":  # one merge, of two spaces: encoding across chunks shows at once
                merges = [(ord(" ") + 3, ord(" ") + 3)]
            elif kind > N_BASE:
                merges = BPETokenizer.train(random_text(g, words, 600), kind).merges
            else:
                merges = []
            text = random_text(g, words, _randint(g, 15, 40), unseen=True)
            text += f"   {_choice(g, words)}  {_choice(g, words)}"  # runs of spaces: chunks matter
            want = BPETokenizer(merges).encode(text)
            got = _as_list(fn(text, list(merges)))
            shown = text if len(text) <= 70 else text[:67] + "..."
            if got is None:
                return f"return a list of ids for {shown!r}"
            if got == want:
                return None
            if got[:1] == [SOS] or got[-1:] == [EOS]:
                return "leave out SOS and EOS: encode returns only the text's own ids"
            for name, ids in _wrong_encodings(text, list(merges)).items():
                if got == ids:
                    return f"on {shown!r} ({len(merges)} merges): {_HINTS[name]}"
            i = next((k for k, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
            at = len(BPETokenizer(merges).decode(want[:i]))
            return (
                f"on {shown!r} ({len(merges)} merges) you returned {len(got)} ids, expected {len(want)}; "
                f"{_first_difference(got, want)}, where the text reads {text[at : at + 12]!r}"
            )

        return run

    kinds: list[int | str] = [N_BASE, "spaces", 320, 400, 500]
    return run_trials(
        "check_encode",
        [trial(k) for k in kinds],
        "the same ids as the library on fresh random text (unseen words, numbers, accents, emoji), "
        f"with {len(kinds)} merge tables of 0 to {kinds[-1] - N_BASE} merges.",
    )
