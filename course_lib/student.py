"""Write student copies of the lessons: every cell tagged `solution` is removed.

    python -m course_lib.student notebooks student     (or: make student)

The rest of each notebook, outputs included, is kept, so students still see the saved results
of the demonstrations. The *Your turn* cells stay, with their checkers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

SOLUTION_TAG = "solution"


def strip_solutions(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """Return the notebook without its solution cells, and how many were removed."""
    keep = [c for c in nb.cells if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
    removed = len(nb.cells) - len(keep)
    nb = nbformat.from_dict(dict(nb))
    nb.cells = keep
    return nb, removed


def make_student_copies(src: Path, dst: Path) -> dict[str, int]:
    """Copy every notebook of `src` to `dst` without solutions; returns removed counts by name."""
    if not src.is_dir():
        raise ValueError(f"expected a folder of notebooks, got {src}")
    dst.mkdir(parents=True, exist_ok=True)
    counts = {}
    for path in sorted(src.glob("*.ipynb")):
        nb, removed = strip_solutions(nbformat.read(path, as_version=4))
        nbformat.validate(nb)
        nbformat.write(nb, dst / path.name)
        counts[path.name] = removed
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path, nargs="?", default=Path("notebooks"))
    p.add_argument("dst", type=Path, nargs="?", default=Path("student"))
    args = p.parse_args(argv)
    try:
        counts = make_student_copies(args.src, args.dst)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, n in counts.items():
        print(f"{name}: {n} solution cell(s) removed")
    print(f"student copies written to {args.dst}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
