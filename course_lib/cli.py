"""Argument types shared by the course's commands (`python -m course_lib.train`, `... .gpt train`, ...).

Each refuses a bad value with argparse's one-line message naming what was expected.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def nonneg_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1) (a dropout rate, a label-smoothing epsilon)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def check_out_path(p: argparse.ArgumentParser, out: str) -> None:
    """Before any training: --out must be a file path in a folder we can create and write to."""
    path = Path(out)
    if path.is_dir():
        p.error(f"argument --out: expected a file path, got the folder {out!r} (add a name such as model.pt)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as e:
        p.error(
            f"argument --out: expected a path in a folder that can be written, got {out!r} ({e.strerror or e})"
        )
