"""Sentence pairs from a file you bring: TSV or JSONL, checked line by line.

Real parallel data cannot be downloaded at run time, but a file on disk can be read. Two formats:

  * TSV (.tsv, .txt): one pair per line, fields separated by tabs; by default field 0 is the
    source and field 1 the target. A Tatoeba export ("id<TAB>English<TAB>id<TAB>German") is read
    with `columns=(1, 3)`.
  * JSONL (.jsonl, .json): one JSON object per line, by default {"src": ..., "tgt": ...};
    Multi30k converted to JSONL as {"en": ..., "de": ...} is read with `keys=("en", "de")`.

Blank lines are skipped. Anything else that is not a pair (a missing field, an empty sentence,
invalid JSON, a value that is not a string, bytes that are not UTF-8) raises a ValueError naming
the file and the line number, so a broken line is found in seconds, not after an hour of training.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .corpus import shown_path
from .validate import InputTypeError

FORMATS = ("tsv", "jsonl")


def guess_format(path: str | os.PathLike) -> str:
    """The format, "tsv" or "jsonl", from the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix in (".tsv", ".txt"):
        return "tsv"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    raise ValueError(
        f"cannot tell the format of {shown_path(Path(path))} from its extension {suffix!r}: expected .tsv or "
        f".jsonl (or pass fmt='tsv' / fmt='jsonl')"
    )


def _clean(value: str, where: str, what: str) -> str:
    text = " ".join(value.split())  # one space between words, none at the ends
    if not text:
        raise ValueError(f"{where}: the {what} sentence is empty")
    return text


def load_pairs(
    path: str | os.PathLike,
    fmt: str | None = None,
    columns: tuple[int, int] = (0, 1),
    keys: tuple[str, str] = ("src", "tgt"),
    max_pairs: int | None = None,
) -> list[tuple[str, str]]:
    """(source, target) pairs from a TSV or JSONL file (see the module docstring).

    Whitespace inside a sentence is normalised to single spaces. max_pairs stops after that many."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"expected the path of a TSV or JSONL file, got {type(path).__name__}")
    p = Path(path)
    name = shown_path(p)
    fmt = fmt or guess_format(p)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if not p.is_file():
        raise ValueError(f"pairs file {name} does not exist or is not a file")
    if len(columns) != 2 or len(set(columns)) != 2 or min(columns) < 0:
        raise ValueError(f"columns must be two different field numbers >= 0, got {columns!r}")
    pairs: list[tuple[str, str]] = []
    with p.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"{name}, line {number}"
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{where}: byte 0x{raw[e.start]:02x} is not UTF-8; save the file as UTF-8"
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark
            if not line.strip():
                continue
            if fmt == "tsv":
                fields = line.split("\t")
                need = max(columns) + 1
                if len(fields) < need:
                    raise ValueError(
                        f"{where}: expected at least {need} tab-separated fields (source in field {columns[0]}, "
                        f"target in field {columns[1]}), got {len(fields)}"
                    )
                src, tgt = fields[columns[0]], fields[columns[1]]
            else:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise ValueError(
                        f"{where}: expected a JSON object with keys {list(keys)}, got {type(obj).__name__}"
                    )
                for k in keys:
                    if k not in obj:
                        raise ValueError(f"{where}: the object has no key {k!r} (keys: {sorted(obj)})")
                    if not isinstance(obj[k], str):
                        raise ValueError(f"{where}: {k!r} must be a string, got {type(obj[k]).__name__}")
                src, tgt = obj[keys[0]], obj[keys[1]]
            pairs.append((_clean(src, where, "source"), _clean(tgt, where, "target")))
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
    if not pairs:
        raise ValueError(f"pairs file {name} holds no sentence pairs")
    return pairs
