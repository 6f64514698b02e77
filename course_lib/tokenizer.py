"""Byte-level byte-pair encoding (BPE): the tokenizer of lesson 12.

Ids. The first three ids are the special tokens of course_lib.data: PAD = 0, SOS = 1,
EOS = 2. The next 256 are the bytes: byte b has id b + 3, so every string (any script, emoji,
words never seen) can be written with them. Merge number r (rank r, counting from 0) makes id
259 + r from a pair of older ids. A tokenizer with V ids has V - 259 merges.

Pre-tokenisation. Before any merging the text is cut into chunks by `CHUNK_PATTERN`, our own
regular expression: a word (letters) with the single space before it, a number of at most three
digits with the space before it, a run of punctuation or symbols with the space before it, and
runs of whitespace. Merges are learned and applied inside chunks only, so a token never spans
two words, a word and its full stop, or a word and the space after it.

Training (Sennrich, Haddow and Birch, 2016, after Gage, 1994). Count every chunk of the text
once, with its frequency. Repeat: find the adjacent pair of ids that occurs most often (each
adjacent position counts, weighted by the chunk's frequency; a tie goes to the pair with the
smaller ids), give it a new id, and replace it in every chunk, left to right, without overlaps.
Only the chunks that hold the pair change, so only their pairs are recounted (`BPETokenizer.train`);
the best pair comes from a heap whose stale entries are skipped. The result is exactly what a
full recount after every merge gives, much faster.

Encoding. Cut the text into chunks; in each chunk, start from its bytes and merge the present
pair of lowest rank until no pair of the chunk has a rank. That is the same as applying every
merge, in rank order, to the chunk. Repeated chunks come from a cache.

Files. `save` writes plain JSON atomically; `load` checks everything and raises a one-line
ValueError for a file that is not JSON, has another format tag, refers to ids that do not exist,
or whose vocabulary size does not match its merges.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_write_text
from .corpus import load_corpus, read_text_file, shown_path
from .data import EOS, PAD, SOS, SPECIALS
from .validate import InputTypeError, check_int

N_SPECIAL = len(SPECIALS)  # 3: PAD, SOS, EOS
BYTE_OFFSET = N_SPECIAL  # byte b has id b + 3
N_BASE = N_SPECIAL + 256  # 259: the ids that exist before any merge
FORMAT = "course_lib.bpe/1"
PRETOKENIZER = "course_lib.chunks/1"  # the name of CHUNK_PATTERN's version, stored in files

CHUNK_PATTERN = re.compile(
    r"""
      [ ]?[^\W\d_]+           # a word: letters of any script, with the one space before it
    | [ ]?\d{1,3}             # a number: at most three digits per chunk, with the space before it
    | [ ]?(?:[^\w\s]|_)+      # punctuation and symbols (emoji, combining marks), with the space before it
    | \s+(?=[ ]\S)           # whitespace, leaving its last space to the chunk that follows
    | \s+                     # any other whitespace (newlines, trailing spaces)
    """,
    re.VERBOSE,
)

_CACHE_LIMIT = 200_000  # chunks remembered by `encode`; the cache is emptied when it is full


def pretokenize(text: str) -> list[str]:
    """Cut text into the chunks that merges never cross. Joining the chunks gives the text back."""
    if not isinstance(text, str):
        raise InputTypeError(f"expected text (a str), got {type(text).__name__}")
    return CHUNK_PATTERN.findall(text)


def to_byte_ids(chunk: str) -> list[int]:
    """The ids of a string's UTF-8 bytes (byte b -> id b + 3)."""
    try:
        return [b + BYTE_OFFSET for b in chunk.encode("utf-8")]
    except UnicodeEncodeError as e:
        raise ValueError(
            f"text holds {chunk[e.start]!r} at position {e.start} of chunk {chunk!r}, a lone surrogate that "
            f"UTF-8 cannot write: expected valid Unicode text"
        ) from None


def count_pairs(seqs: Iterable[Sequence[int]], counts: Iterable[int] | None = None) -> Counter:
    """How often each adjacent pair occurs: every position counts, weighted by the sequence's count."""
    pairs: Counter = Counter()
    for seq, n in zip(seqs, counts if counts is not None else iter(lambda: 1, None)):
        for p in zip(seq, seq[1:]):
            pairs[p] += n
    return pairs


def merge_pair(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """A new list in which every occurrence of `pair` is replaced by `new_id`, left to right,
    without overlaps: merging (5, 5) in [5, 5, 5] gives [new_id, 5]."""
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@dataclass
class TrainingLog:
    """What happened during training: after each merge, the vocabulary size, the number of
    tokens the training text then takes, and how often the merged pair occurred."""

    vocab_sizes: list[int]
    n_tokens: list[int]
    pair_counts: list[int]
    n_chunks: int  # chunks in the text
    n_unique_chunks: int  # different chunks: the words training works on
    seconds: float


class BPETokenizer:
    """A byte-level BPE tokenizer: 3 special ids, 256 byte ids, then one id per merge."""

    pad_id, sos_id, eos_id = PAD, SOS, EOS

    def __init__(self, merges: Sequence[tuple[int, int]] = ()) -> None:
        self.merges: list[tuple[int, int]] = []
        self._bytes: list[bytes] = [b""] * N_SPECIAL + [bytes([b]) for b in range(256)]
        self._ranks: dict[tuple[int, int], int] = {}
        for r, m in enumerate(merges):
            a, b = _check_merge(m, r, self._ranks)
            self.merges.append((a, b))
            self._ranks[(a, b)] = r
            self._bytes.append(self._bytes[a] + self._bytes[b])
        self._cache: dict[str, list[int]] = {}
        self.log: TrainingLog | None = None

    # --- sizes and display ------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return N_BASE + len(self.merges)

    def __len__(self) -> int:
        return self.vocab_size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPETokenizer) and self.merges == other.merges

    def __repr__(self) -> str:
        return f"BPETokenizer({self.vocab_size} ids: {N_SPECIAL} specials + 256 bytes + {len(self.merges)} merges)"

    @property
    def ranks(self) -> dict[tuple[int, int], int]:
        """pair -> rank (the merge's position in the table); the merge makes id 259 + rank."""
        return dict(self._ranks)

    def token_bytes(self, i: int) -> bytes:
        """The bytes a token stands for (b'' for the special tokens)."""
        check_int(i, "token id", 0, self.vocab_size - 1)
        return self._bytes[i]

    def token_label(self, i: int) -> str:
        """A readable label: specials by name, '·' for a space, '↵' for a newline, and bytes
        that are not whole UTF-8 characters as \\xNN."""
        check_int(i, "token id", 0, self.vocab_size - 1)
        if i < N_SPECIAL:
            return SPECIALS[i]
        s = self._bytes[i].decode("utf-8", errors="backslashreplace")
        return s.replace(" ", "·").replace("\n", "↵").replace("\t", "→")

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Readable labels of many ids (see `token_label`)."""
        return [self.token_label(int(i)) for i in _id_list(ids)]

    def truncated(self, vocab_size: int) -> BPETokenizer:
        """The tokenizer made of the first merges only: what training would have given had it
        stopped at `vocab_size`."""
        check_int(vocab_size, "vocab_size", N_BASE, self.vocab_size)
        return BPETokenizer(self.merges[: vocab_size - N_BASE])

    # --- training -----------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        text: str | Iterable[str],
        vocab_size: int,
        min_frequency: int = 2,
        progress: bool = False,
    ) -> BPETokenizer:
        """Learn merges from a text (or several) until there are `vocab_size` ids, or until no
        pair occurs at least `min_frequency` times. The returned tokenizer's `log` records the
        training. See the module docstring for the rule and its tie-break."""
        check_int(vocab_size, "vocab_size", N_BASE, why=" (3 specials + 256 bytes come first)")
        check_int(min_frequency, "min_frequency", 1)
        t0 = time.perf_counter()
        texts = [text] if isinstance(text, str) else list(text)
        chunk_counts: Counter = Counter()
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputTypeError(
                    f"expected text (a str, or an iterable of str), got item {i}: {type(t).__name__}"
                )
            chunk_counts.update(pretokenize(t))
        words = [to_byte_ids(c) for c in chunk_counts]
        freq = list(chunk_counts.values())

        # pair -> total count, pair -> the words that hold it, and a max-heap of (-count, pair)
        counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for w, (ids, f) in enumerate(zip(words, freq)):
            for p in zip(ids, ids[1:]):
                counts[p] += f
                where[p].add(w)
        heap = [(-c, p) for p, c in counts.items()]
        heapq.heapify(heap)
        n_tokens = sum(f * len(ids) for ids, f in zip(words, freq))
        log = TrainingLog([N_BASE], [n_tokens], [], sum(freq), len(words), 0.0)
        merges: list[tuple[int, int]] = []

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=vocab_size - N_BASE, desc="BPE merges", leave=False)
        while N_BASE + len(merges) < vocab_size:
            while heap and counts.get(heap[0][1], 0) != -heap[0][0]:
                heapq.heappop(heap)  # a stale entry: the pair's count has changed since
            if not heap or -heap[0][0] < min_frequency:
                break
            best_count, pair = -heap[0][0], heapq.heappop(heap)[1]
            new_id = N_BASE + len(merges)
            merges.append(pair)
            changed: set[tuple[int, int]] = set()
            for w in where.pop(pair):
                old, f = words[w], freq[w]
                new = merge_pair(old, pair, new_id)
                old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
                for p in old_pairs:
                    counts[p] -= f
                for p in new_pairs:
                    counts[p] += f
                old_set, new_set = set(old_pairs), set(new_pairs)
                for p in old_set - new_set:
                    where[p].discard(w)
                for p in new_set - old_set:
                    where[p].add(w)
                changed |= old_set | new_set
                n_tokens -= f * (len(old) - len(new))
                words[w] = new
            for p in changed:
                c = counts[p]
                if c > 0:
                    heapq.heappush(heap, (-c, p))
                else:
                    del counts[p]
                    if not where.get(p):
                        where.pop(p, None)
            log.vocab_sizes.append(N_BASE + len(merges))
            log.n_tokens.append(n_tokens)
            log.pair_counts.append(best_count)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        tok = cls(merges)
        log.seconds = time.perf_counter() - t0
        tok.log = log
        return tok

    # --- encoding and decoding ----------------------------------------------------------------
    def encode_chunk(self, chunk: str) -> list[int]:
        """One chunk's ids: its bytes, then the present pair of lowest rank merged, again and
        again, until no pair of the chunk is in the merge table."""
        ids = to_byte_ids(chunk)
        ranks = self._ranks
        while len(ids) > 1:
            rank, pair = min((ranks.get(p, math.inf), p) for p in zip(ids, ids[1:]))
            if rank == math.inf:
                break
            ids = merge_pair(ids, pair, N_BASE + int(rank))
        return ids

    def encode(self, text: str, add_sos: bool = False, add_eos: bool = False) -> list[int]:
        """Text -> ids; optionally SOS first and EOS last. Special-token names in the text
        ('<pad>', ...) are ordinary text: only `add_sos` / `add_eos` produce special ids."""
        cache = self._cache
        out = [SOS] if add_sos else []
        for chunk in pretokenize(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = self.encode_chunk(chunk)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[chunk] = ids
            out.extend(ids)
        if add_eos:
            out.append(EOS)
        return out

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> the bytes they stand for; stops at the first EOS, skips PAD and SOS."""
        out = []
        for i in _id_list(ids):
            if i == EOS:
                break
            if i in (PAD, SOS):
                continue
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary: expected ids 0..{self.vocab_size - 1}")
            out.append(self._bytes[i])
        return b"".join(out)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, as `decode_bytes`; bytes that do not form whole UTF-8 characters (a
        sequence cut in the middle of one) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # --- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain data: the format tag, the pre-tokeniser, the specials, the size and the merges
        (with each merged token's text, for people reading the file)."""
        return {
            "format": FORMAT,
            "pretokenizer": PRETOKENIZER,
            "specials": list(SPECIALS),
            "vocab_size": self.vocab_size,
            "merges": [list(m) for m in self.merges],
            "tokens": [
                self._bytes[N_BASE + r].decode("utf-8", "backslashreplace") for r in range(len(self.merges))
            ],
        }

    @classmethod
    def from_dict(cls, d: object) -> BPETokenizer:
        """The inverse of `to_dict`; a one-line ValueError for anything inconsistent."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object written by BPETokenizer.save, got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise ValueError(
                f"format tag is {d.get('format')!r}: expected {FORMAT!r} (a course_lib BPE tokenizer)"
            )
        if d.get("pretokenizer") != PRETOKENIZER:
            raise ValueError(
                f"pretokenizer is {d.get('pretokenizer')!r}: expected {PRETOKENIZER!r}, the chunking this "
                f"library applies (merges learned with another one would not fit)"
            )
        if d.get("specials") != list(SPECIALS):
            raise ValueError(
                f"specials are {d.get('specials')!r}: expected {list(SPECIALS)!r} (PAD = 0, SOS = 1, EOS = 2, "
                f"as in course_lib.data)"
            )
        merges = d.get("merges")
        if not isinstance(merges, list):
            raise ValueError(f"merges must be a list of [id, id] pairs, got {type(merges).__name__}")
        tok = cls(merges)
        size = d.get("vocab_size")
        if isinstance(size, bool) or not isinstance(size, int) or size != tok.vocab_size:
            raise ValueError(
                f"vocab_size is {size!r} but {N_SPECIAL} specials + 256 bytes + {len(merges)} merges make "
                f"{tok.vocab_size}: expected them to match"
            )
        names = d.get("tokens")
        if names is not None:
            want = tok.to_dict()["tokens"]
            if names != want:
                r = next(
                    (i for i, (x, y) in enumerate(zip(names, want)) if x != y), min(len(names), len(want))
                )
                raise ValueError(
                    f"tokens do not match the merges (first at merge {r}): expected the text each merge makes, "
                    f"e.g. {want[r] if r < len(want) else None!r}; edit merges, not tokens, or delete tokens"
                )
        return tok

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON (one merge per line), atomically."""
        d = self.to_dict()
        head = {k: v for k, v in d.items() if k not in ("merges", "tokens")}
        lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
        for key in ("merges", "tokens"):
            items = ",\n".join(f"    {json.dumps(x, ensure_ascii=False)}" for x in d[key])
            lines.append(f'  "{key}": [\n{items}\n  ]' if items else f'  "{key}": []')
            lines[-1] += "," if key == "merges" else ""
        atomic_write_text(path, "{\n" + "\n".join(lines) + "\n}\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a tokenizer written by `save`; a one-line ValueError naming the file otherwise."""
        text = read_text_file(path, "tokenizer file")
        name = shown_path(Path(path))
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"tokenizer file {name} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}): "
                f"expected a file written by BPETokenizer.save"
            ) from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"tokenizer file {name}: {e}") from None


def _check_merge(m: object, r: int, ranks: dict[tuple[int, int], int]) -> tuple[int, int]:
    """Merge number r must be a pair of ids that exist before it, and a pair not merged yet."""
    if (
        not isinstance(m, (list, tuple))
        or len(m) != 2
        or any(isinstance(x, bool) or not isinstance(x, int) for x in m)
    ):
        raise ValueError(f"merge {r} is {m!r}: expected a pair of token ids [id, id]")
    a, b = int(m[0]), int(m[1])
    for x in (a, b):
        if not N_SPECIAL <= x < N_BASE + r:
            raise ValueError(
                f"merge {r} ({[a, b]}) refers to id {x}, which does not exist before it: expected ids "
                f"{N_SPECIAL}..{N_BASE + r - 1} (bytes and earlier merges; specials are never merged)"
            )
    if (a, b) in ranks:
        raise ValueError(f"merge {r} ({[a, b]}) repeats merge {ranks[(a, b)]}: expected each pair once")
    return a, b


def _id_list(ids: Iterable[int]) -> list[int]:
    """Ids as Python ints, from a list, a tuple or a 1-D tensor."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise InputTypeError(f"expected a sequence of token ids, got {type(ids).__name__}")
    out = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise InputTypeError(f"expected integer token ids, got {i!r} (a {type(i).__name__})")
        out.append(i)
    return out


# --- the reference: Hugging Face `tokenizers`, trained the same way ------------------------------------


def byte_level_chars() -> list[str]:
    """The printable stand-in character of each byte in GPT-2-style byte-level tokenizers (as in
    Hugging Face's ByteLevel): printable Latin-1 bytes stand for themselves, the other 68 bytes
    (controls, space, ...) take the characters 256, 257, ... in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    kept = set(keep)
    out, extra = [], 0
    for b in range(256):
        if b in kept:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


class ReferenceBPE:
    """Hugging Face `tokenizers`' byte-level BPE, trained like ours: the same texts, the same
    256-byte alphabet, the same number of merges (so the same vocabulary size once our three
    specials are counted) and min_frequency. The specials are left out of its vocabulary on
    purpose: it would find their names ('<s>', ...) in a text and turn them into special ids,
    while ours treats them as plain text. Its ids differ from ours; what compares is the
    number of tokens and the merged byte strings."""

    def __init__(self, texts: str | Iterable[str], vocab_size: int, min_frequency: int = 2) -> None:
        try:
            from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        except ImportError:
            raise ImportError(
                "the reference tokenizer needs Hugging Face's `tokenizers` package: pip install tokenizers"
            ) from None
        check_int(vocab_size, "vocab_size", N_BASE)
        texts = [texts] if isinstance(texts, str) else list(texts)
        t0 = time.perf_counter()
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - N_SPECIAL,  # 256 bytes + merges; our 3 specials come on top
            min_frequency=min_frequency,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer)
        self.seconds = time.perf_counter() - t0
        self.tokenizer = tok
        self.vocab_size = tok.get_vocab_size() + N_SPECIAL  # counted as ours: specials + bytes + merges

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    def merges_bytes(self) -> list[tuple[bytes, bytes]]:
        """The merge table as pairs of byte strings, in rank order."""
        to_byte = {c: bytes([b]) for b, c in enumerate(byte_level_chars())}
        merges = json.loads(self.tokenizer.to_str())["model"]["merges"]
        out = []
        for m in merges:
            a, b = m.split(" ") if isinstance(m, str) else m
            out.append((b"".join(to_byte[c] for c in a), b"".join(to_byte[c] for c in b)))
        return out


def merges_bytes(tok: BPETokenizer) -> list[tuple[bytes, bytes]]:
    """Our merge table as pairs of byte strings, in rank order (comparable with `ReferenceBPE`)."""
    return [(tok.token_bytes(a), tok.token_bytes(b)) for a, b in tok.merges]


# --- command line -------------------------------------------------------------------------------


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m course_lib.tokenizer", description="Train or use a BPE tokenizer."
    )
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="learn merges from a text file and save them as JSON")
    t.add_argument("--corpus", type=Path, default=None, help="a UTF-8 text file (default: the course corpus)")
    t.add_argument("--split", choices=("train", "validation", "test", "all"), default="train")
    t.add_argument("--vocab-size", type=int, default=1000)
    t.add_argument("--min-frequency", type=int, default=2)
    t.add_argument("--out", type=Path, required=True, help="where to write the tokenizer (JSON)")
    e = sub.add_parser("encode", help="print the tokens of a text")
    e.add_argument("--tokenizer", type=Path, required=True)
    e.add_argument("text")
    args = p.parse_args(None if argv is None else list(argv))
    try:
        if args.command == "train":
            corpus = load_corpus(args.corpus)
            text = corpus.text if args.split == "all" else corpus.split(args.split)
            tok = BPETokenizer.train(text, args.vocab_size, args.min_frequency)
            tok.save(args.out)
            log = tok.log
            print(
                f"{tok!r} from {corpus.source} ({args.split}) in {log.seconds:.2f} s: "
                f"{log.n_tokens[0]:,} -> {log.n_tokens[-1]:,} tokens; saved to {args.out}"
            )
        else:
            tok = BPETokenizer.load(args.tokenizer)
            ids = tok.encode(args.text)
            print(ids)
            print(" ".join(tok.tokens(ids)))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
