"""Data for the course's sequence-to-sequence tasks, generated offline with a fixed seed.

Two tasks, both made on the fly (no downloads):
  * ``dates``: a date written in one of many human formats -> ISO 8601
    ("Sunday, 22 November 2026" -> "2026-11-22"). Dates run from 1900-01-01 to
    2099-12-31; a hash of the date puts about 10% of the *days* in the test split and
    another 10% in the validation split, so neither holds a date the model saw in
    training, in any format.
  * ``reversal``: 16 digits -> the same digits reversed (V = 10), the simplest task
    where the decoder must attend to a different source position at each step (split
    by a hash of the digits in the same way).

Three splits: "train" for training, "valid" for choosing recipes and for the evaluations
during training, "test" for the final score of a run, looked at once.

Conventions of the dates task (so that no string is ambiguous):
  * slashes put the month first, as in the US ("11/22/2026"), unless the year comes
    first ("2026/11/22");
  * dots and dashes put the day first ("22.11.2026", "22-Nov-2026");
  * two-digit years ("22.11.26") are only used for 1950-2049 and read with a pivot at 50:
    50-99 -> 19xx, 00-49 -> 20xx.

Every vocabulary starts with the special tokens PAD = 0, SOS = 1 ("start of sequence",
the first input of the decoder) and EOS = 2 ("end of sequence", the last target).
`make_batch` pads a list of (source, target) strings into tensors with the right shift
for teacher forcing (section 3 of the paper: the decoder's input is the target shifted
one position to the right) and the masks in the course's convention (True = may attend).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import Tensor

PAD, SOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<s>", "</s>")


# --- vocabulary -----------------------------------------------------------------------
class CharVocab:
    """A character vocabulary: ids 0, 1, 2 are PAD, SOS, EOS; then one id per character."""

    pad_id, sos_id, eos_id = PAD, SOS, EOS

    def __init__(self, chars: str) -> None:
        if not isinstance(chars, str):
            raise ValueError(f"CharVocab expects a string of characters, got {type(chars).__name__}")
        unique = list(dict.fromkeys(chars))  # first appearance order, no duplicates
        self.itos: list[str] = list(SPECIALS) + unique
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(unique, start=len(SPECIALS))}

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} ids: 3 specials + {''.join(self.itos[3:])!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.itos == other.itos

    @property
    def chars(self) -> str:
        return "".join(self.itos[len(SPECIALS) :])

    def encode(self, text: str, add_sos: bool = False, add_eos: bool = False) -> list[int]:
        """'2026' -> [ids]; optionally with SOS first and EOS last."""
        if not isinstance(text, str):
            raise ValueError(f"encode expects a string, got {type(text).__name__}")
        unknown = [c for c in dict.fromkeys(text) if c not in self.stoi]
        if unknown:
            shown = ", ".join(repr(c) for c in unknown)
            raise ValueError(
                f"characters not in the vocabulary: {shown} (in {text!r}); "
                f"the vocabulary holds {self.chars!r}"
            )
        ids = [self.stoi[c] for c in text]
        return ([SOS] if add_sos else []) + ids + ([EOS] if add_eos else [])

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """ids -> text: stops at the first EOS, skips PAD and SOS."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, SOS):
                continue
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is outside the vocabulary (ids 0..{len(self.itos) - 1})")
            out.append(self.itos[i])
        return "".join(out)

    def tokens(self, ids: Iterable[int] | Tensor) -> list[str]:
        """Display labels for plots: '<s>', '</s>', '<pad>', and '·' for a space."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return ["·" if self.itos[int(i)] == " " else self.itos[int(i)] for i in ids]

    def to_dict(self) -> dict:
        """Plain data (safe for `torch.load(weights_only=True)`)."""
        return {"chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> CharVocab:
        if not isinstance(d, dict) or not isinstance(d.get("chars"), str):
            raise ValueError(f"CharVocab.from_dict expects {{'chars': str}}, got {d!r}")
        return cls(d["chars"])


# --- the dates task --------------------------------------------------------------------
MONTHS = [dt.date(2000, m, 1).strftime("%B") for m in range(1, 13)]  # January ...
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2099, 12, 31)
HELDOUT_PERCENT = 10  # the test split
VALID_PERCENT = 10  # the validation split; training uses the other 80%
SPLITS = ("train", "valid", "test")


def _split_of_hash(h: int) -> str:
    """A hash value in [0, 100) -> its split: test below 10, valid below 20, train above."""
    if h < HELDOUT_PERCENT:
        return "test"
    return "valid" if h < HELDOUT_PERCENT + VALID_PERCENT else "train"


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 22 -> '22nd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _short_year_ok(d: dt.date) -> bool:
    return 1950 <= d.year <= 2049


# name -> (formatter, applies to this date?)
DATE_FORMATS: dict[str, tuple[Callable[[dt.date], str], Callable[[dt.date], bool] | None]] = {
    "weekday_long": (lambda d: f"{WEEKDAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year}", None),
    "dots_short_year": (lambda d: f"{d.day:02d}.{d.month:02d}.{d.year % 100:02d}", _short_year_ok),
    "abbr_us": (lambda d: f"{MONTHS[d.month - 1][:3]} {d.day} {d.year}", None),
    "ordinal_of": (lambda d: f"the {ordinal(d.day)} of {MONTHS[d.month - 1]}, {d.year}", None),
    "us_slash": (lambda d: f"{d.month}/{d.day}/{d.year}", None),
    "lower_abbr": (lambda d: f"{d.day} {MONTHS[d.month - 1][:3].lower()} {d.year}", None),
    "us_long": (lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}", None),
    "dots": (lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}", None),
    "dash_abbr": (lambda d: f"{d.day:02d}-{MONTHS[d.month - 1][:3]}-{d.year}", None),
    "weekday_short": (
        lambda d: f"{WEEKDAYS[d.weekday()][:3]} {d.day} {MONTHS[d.month - 1][:3]} {d.year}",
        None,
    ),
    "compact": (lambda d: f"{d.year}{d.month:02d}{d.day:02d}", None),
    "upper_long": (lambda d: f"{d.day} {MONTHS[d.month - 1].upper()} {d.year}", None),
    "abbr_ordinal": (lambda d: f"{MONTHS[d.month - 1][:3]}. {ordinal(d.day)}, {d.year}", None),
    "year_first_slash": (lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}", None),
    "long": (lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}", None),
    "us_slash_short_year": (lambda d: f"{d.month}/{d.day}/{d.year % 100:02d}", _short_year_ok),
}


def format_date(d: dt.date, fmt: str) -> str:
    """Write `d` in the named format (a key of DATE_FORMATS)."""
    if fmt not in DATE_FORMATS:
        raise ValueError(f"unknown date format {fmt!r}; expected one of {sorted(DATE_FORMATS)}")
    fn, applies = DATE_FORMATS[fmt]
    if applies is not None and not applies(d):
        raise ValueError(f"format {fmt!r} (two-digit year) is only used for 1950-2049, got {d}")
    return fn(d)


def split_of_day(d: dt.date) -> str:
    """'train', 'valid' or 'test' for a day, from a hash of the date: the split is the same on
    every machine and no held-out day ever appears in training."""
    h = hashlib.sha256(b"course-dates:" + d.isoformat().encode()).digest()
    return _split_of_hash(int.from_bytes(h[:4], "big") % 100)


@cache
def split_days(split: str) -> np.ndarray:
    """Ordinals (`date.toordinal()`) of every day of a split: 'train', 'valid' or 'test'."""
    _check_split(split)
    first, last = FIRST_DAY.toordinal(), LAST_DAY.toordinal()
    days = [o for o in range(first, last + 1) if split_of_day(dt.date.fromordinal(o)) == split]
    return np.asarray(days, dtype=np.int64)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _chars_of_dates() -> str:
    """Every character any date format can produce (a year covers all months, weekdays, ordinals)."""
    seen = dict.fromkeys("0123456789")
    for o in range(dt.date(2026, 1, 1).toordinal(), dt.date(2026, 12, 31).toordinal() + 1):
        for fmt in DATE_FORMATS:
            seen.update(dict.fromkeys(DATE_FORMATS[fmt][0](dt.date.fromordinal(o))))
    return "".join(sorted(seen))


# --- tasks -----------------------------------------------------------------------------
class Task:
    """A sequence-to-sequence task: vocabularies, and `sample(rng, n, split)` -> pairs."""

    name: str
    src_vocab: CharVocab
    tgt_vocab: CharVocab
    max_src_len: int
    max_tgt_len: int  # target characters, without SOS/EOS

    def sample(self, rng: np.random.Generator, n: int, split: str = "train") -> list[tuple[str, str]]:
        raise NotImplementedError

    def eval_pairs(self, n: int = 1000, split: str = "test") -> list[tuple[str, str]]:
        """A fixed evaluation set (the same on every call and machine)."""
        return self.sample(np.random.default_rng([2017, n]), n, split)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(src {len(self.src_vocab)} ids, tgt {len(self.tgt_vocab)} ids)"


class DatesTask(Task):
    """Human-written dates -> ISO 8601. See the module docstring for the conventions."""

    name = "dates"

    def __init__(self, formats: Sequence[str] | None = None) -> None:
        self.formats = list(formats or DATE_FORMATS)
        for f in self.formats:
            if f not in DATE_FORMATS:
                raise ValueError(f"unknown date format {f!r}; expected one of {sorted(DATE_FORMATS)}")
        if all(DATE_FORMATS[f][1] is not None for f in self.formats):
            raise ValueError("DatesTask needs at least one format with a four-digit year")
        self.src_vocab = CharVocab(_chars_of_dates())
        self.tgt_vocab = CharVocab("0123456789-")
        self.max_src_len = 28  # "Wednesday, 30 September 2026"
        self.max_tgt_len = 10  # "2026-09-30"

    def sample(self, rng: np.random.Generator, n: int, split: str = "train") -> list[tuple[str, str]]:
        days = split_days(split)
        every = [DATE_FORMATS[f][0] for f in self.formats]
        four_digit = [DATE_FORMATS[f][0] for f in self.formats if DATE_FORMATS[f][1] is None]
        pairs = []
        for o, r in zip(rng.choice(days, size=n).tolist(), rng.random(n).tolist()):
            d = dt.date.fromordinal(o)
            fmts = every if _short_year_ok(d) else four_digit
            pairs.append((fmts[int(r * len(fmts))](d), d.isoformat()))
        return pairs


class ReversalTask(Task):
    """`length` random digits -> the same digits reversed (V = 10 characters)."""

    name = "reversal"

    def __init__(self, length: int = 16) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.length = length
        self.src_vocab = self.tgt_vocab = CharVocab("0123456789")
        self.max_src_len = self.max_tgt_len = length

    def sample(self, rng: np.random.Generator, n: int, split: str = "train") -> list[tuple[str, str]]:
        # the split is by a hash of the sequence: train and test never share one
        _check_split(split)
        pairs: list[tuple[str, str]] = []
        while len(pairs) < n:
            digits = rng.integers(0, 10, size=(2 * n, self.length)) + ord("0")
            for row in digits.astype(np.uint8):
                s = row.tobytes().decode()
                bucket = _split_of_hash(hashlib.sha256(row.tobytes()).digest()[0] % 100)
                if bucket == split and len(pairs) < n:
                    pairs.append((s, s[::-1]))
        return pairs


TASKS: dict[str, Callable[[], Task]] = {"dates": DatesTask, "reversal": ReversalTask}


@cache
def _named_task(name: str) -> Task:
    return TASKS[name]()


def get_task(task: str | Task) -> Task:
    """'dates' or 'reversal' (or a Task, returned as is)."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    return _named_task(task)


# --- batching --------------------------------------------------------------------------
@dataclass
class Batch:
    """One padded batch for teacher forcing.

    src     (B, S)  source ids, padded with PAD
    tgt_in  (B, T)  SOS + target: what the decoder reads (the target shifted right)
    tgt_out (B, T)  target + EOS: what it must predict at each position
    src_mask (B, 1, 1, S)  True where the source key is a real token
    tgt_mask (B, 1, T, T)  causal and no padding keys
    n_tokens: number of real (non-PAD) target tokens, the loss's denominator
    """

    src: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    src_mask: Tensor
    tgt_mask: Tensor
    n_tokens: int
    pairs: list[tuple[str, str]]

    def to(self, device: torch.device | str | None) -> Batch:
        if device is None:
            return self
        move = dict(non_blocking=True)
        return Batch(
            self.src.to(device, **move),
            self.tgt_in.to(device, **move),
            self.tgt_out.to(device, **move),
            self.src_mask.to(device, **move),
            self.tgt_mask.to(device, **move),
            self.n_tokens,
            self.pairs,
        )

    def __len__(self) -> int:
        return self.src.size(0)


def _pad(seqs: Sequence[Sequence[int]], pad_id: int = PAD) -> np.ndarray:
    if len(seqs) == 0:
        raise ValueError("cannot pad an empty list of sequences")
    T = max(len(s) for s in seqs)
    if T == 0:
        raise ValueError("every sequence is empty: need at least one token")
    out = np.full((len(seqs), T), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def make_batch(
    pairs: Sequence[tuple[str, str]],
    src_vocab: CharVocab,
    tgt_vocab: CharVocab,
    device: torch.device | str | None = None,
) -> Batch:
    """(source, target) strings -> a padded `Batch` with the right shift and the masks.

    The masks are those of `course_lib.masks` (padding_mask for the source, decoder_mask
    for the target), computed here with numpy because many tiny torch ops are slow on a CPU.
    """
    if len(pairs) == 0:
        raise ValueError("make_batch needs at least one (source, target) pair")
    src = _pad([src_vocab.encode(s) for s, _ in pairs])  # (B, S)
    tgt = [tgt_vocab.encode(t) for _, t in pairs]
    tgt_in = _pad([[SOS] + t for t in tgt])  # (B, T): the target shifted right
    tgt_out = _pad([t + [EOS] for t in tgt])  # (B, T): what to predict
    T = tgt_in.shape[1]
    causal = np.tril(np.ones((T, T), dtype=bool))  # (T, T), query i sees keys <= i
    batch = Batch(
        src=torch.from_numpy(src),
        tgt_in=torch.from_numpy(tgt_in),
        tgt_out=torch.from_numpy(tgt_out),
        src_mask=torch.from_numpy(src != PAD)[:, None, None, :],  # (B, 1, 1, S)
        tgt_mask=torch.from_numpy(causal & (tgt_in != PAD)[:, None, None, :]),  # (B, 1, T, T)
        n_tokens=int((tgt_out != PAD).sum()),
        pairs=list(pairs),
    )
    return batch.to(device)


def batch_at(task: str | Task, split: str, batch_size: int, seed: int, step: int) -> Batch:
    """The batch number `step` of the stream (task, split, batch_size, seed): it depends only on
    these numbers, so a run resumed at step k sees exactly the batches it would have seen."""
    task = get_task(task)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_split(split)
    rng = np.random.default_rng([seed, step, SPLITS.index(split)])
    return make_batch(task.sample(rng, batch_size, split), task.src_vocab, task.tgt_vocab)


def batches(
    task: str | Task,
    split: str = "train",
    batch_size: int = 64,
    seed: int = 0,
    start: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[Batch]:
    """An endless stream of fresh batches, generated on the fly, starting at step `start`."""
    step = start
    while True:
        yield batch_at(task, split, batch_size, seed, step).to(device)
        step += 1
