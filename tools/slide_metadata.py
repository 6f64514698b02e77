"""Slide types for the lessons' cells (`metadata.slideshow.slide_type`), derived from each lesson's
structure so that a reveal.js deck follows its arc: objectives, intuition, build, verify, explore,
exercises, recap.

The rules, in order (the first that applies wins):

1. a tag overrides everything: `solution` -> "skip" (a deck never gives an exercise's answer away),
   `slides-skip`, `slides-notes`, `slides-slide`, `slides-subslide`, `slides-fragment` -> that type;
2. the lesson's first cell -> "slide" (the title slide);
3. a markdown cell that starts with `# ` or `## ` (the lesson's sections) -> "slide";
   one that starts with `### ` or `#### ` (a step inside a section, a "Your turn") -> "subslide";
4. a code cell without output that is mostly imports (set-up, not content) -> "skip";
5. any other cell continues the current (sub)slide ("-") while the estimated height of the
   (sub)slide stays within `BUDGET` lines, else it starts a new subslide below it ("subslide").

Heights are estimates in lines: markdown wrapped at about 90 characters, code at about 80, an image
counts as `IMAGE_LINES`. Outputs of cells marked `# NBVAL_IGNORE_OUTPUT` (timings, which vary from
run to run) count at most `VARYING_OUTPUT_LINES` lines, so re-executing a lesson does not make its
slide types stale. Prose never goes into speaker notes: in this course the prose is the content. A
(sub)slide still taller than the screen scrolls (tools/publish.py).

    python tools/slide_metadata.py [NOTEBOOK ...]          # write the types (default: notebooks/*.ipynb)
    python tools/slide_metadata.py --check [NOTEBOOK ...]  # exit 1 if a notebook lacks them or has stale ones

Idempotent: the types depend on the cells' sources, outputs and tags only, never on the types already
stored, and a notebook whose types are already right is not rewritten.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SLIDE_TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")
TAG_TYPES = {"solution": "skip"} | {f"slides-{t}": t for t in SLIDE_TYPES if t != "-"}
BUDGET = 24  # lines on one (sub)slide of the deck (reveal at 1100 x 800, 20 px prose, 19 px code)
IMAGE_LINES = 16
VARYING_OUTPUT_LINES = 8
MARKDOWN_WIDTH = 90
CODE_WIDTH = 80
_IMPORT = re.compile(r"^(import\s|from\s+\S+\s+import\s)")


def _wrapped_lines(text: str, width: int) -> int:
    return sum(max(1, math.ceil(len(line) / width)) for line in text.splitlines())


def _output_lines(output: dict) -> int:
    """Estimated height of one output, in lines."""
    if output.get("output_type") == "stream":
        return _wrapped_lines(output.get("text", ""), CODE_WIDTH)
    if output.get("output_type") == "error":
        return 10
    data = output.get("data", {})
    if any(k.startswith("image/") for k in data):
        return IMAGE_LINES
    if "application/vnd.jupyter.widget-view+json" in data:
        return 3  # the site and the slides show a one-line note in its place
    for mime in ("text/markdown", "text/html", "text/plain"):
        if mime in data:
            return _wrapped_lines(data[mime], MARKDOWN_WIDTH)
    return 1


def cell_height(cell: dict) -> int:
    """Estimated height of a cell (source and outputs) on a slide, in lines."""
    source = cell.get("source", "")
    if cell.get("cell_type") == "markdown":
        return _wrapped_lines(source, MARKDOWN_WIDTH)
    height = _wrapped_lines(source, CODE_WIDTH)
    outputs = sum(_output_lines(o) for o in cell.get("outputs", []))
    if "NBVAL_IGNORE_OUTPUT" in source:
        outputs = min(outputs, VARYING_OUTPUT_LINES)
    return height + outputs


def _is_setup(cell: dict) -> bool:
    """A code cell without output that is mostly imports (the lesson's set-up, not its content)."""
    if cell.get("cell_type") != "code" or cell.get("outputs"):
        return False
    lines = [ln.split("#")[0].strip() for ln in cell.get("source", "").splitlines()]
    code = [ln for ln in lines if ln]
    imports, in_import = 0, False  # in_import: inside the brackets of `from x import (a, b,`
    for ln in code:
        if in_import or _IMPORT.match(ln):
            imports += 1
            in_import = ln.endswith("(") or (in_import and not ln.endswith(")"))
    return bool(code) and imports >= 0.6 * len(code)


def slide_types(nb: dict) -> list[str]:
    """The slide type of every cell of `nb` (a notebook as read by nbformat), by the rules above."""
    types: list[str] = []
    used = 0  # estimated lines on the current (sub)slide
    for i, cell in enumerate(nb["cells"]):
        tagged = [TAG_TYPES[t] for t in cell.get("metadata", {}).get("tags", []) if t in TAG_TYPES]
        source = cell.get("source", "").lstrip()
        h = cell_height(cell)
        if tagged:
            t = tagged[0]
        elif i == 0:
            t = "slide"
        elif cell.get("cell_type") == "markdown" and re.match(r"##? ", source):
            t = "slide"
        elif cell.get("cell_type") == "markdown" and re.match(r"####? ", source):
            t = "subslide"
        elif _is_setup(cell):
            t = "skip"
        elif used > 0 and used + h > BUDGET:
            t = "subslide"
        else:
            t = "-"
        if t in ("slide", "subslide"):
            used = h
        elif t in ("-", "fragment"):
            used += h
        types.append(t)
    return types


def apply(nb: dict) -> int:
    """Write the slide types into `nb`'s cells in memory; return how many cells changed."""
    changed = 0
    for cell, t in zip(nb["cells"], slide_types(nb), strict=True):
        meta = cell.setdefault("metadata", {})
        if meta.get("slideshow", {}).get("slide_type") != t:
            meta["slideshow"] = nbformat.from_dict({**meta.get("slideshow", {}), "slide_type": t})
            changed += 1
    return changed


def stale_cells(nb: dict) -> list[int]:
    """Indices of the cells whose stored slide type is missing or differs from the rules'."""
    return [
        i
        for i, (cell, t) in enumerate(zip(nb["cells"], slide_types(nb), strict=True))
        if cell.get("metadata", {}).get("slideshow", {}).get("slide_type") != t
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any type is stale")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        parser.error("no notebooks given and none found in notebooks/")
    bad = 0
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            parser.error(f"expected an existing .ipynb file, got {path}")
        nb = nbformat.read(path, as_version=4)
        if args.check:
            stale = stale_cells(nb)
            if stale:
                bad += 1
                print(f"{path}: {len(stale)} cell(s) lack or have stale slide types (cells {stale[:8]}...)")
        elif apply(nb):
            from course_lib.atomic import atomic_write_text

            atomic_write_text(path, nbformat.writes(nb) + "\n")
            print(f"{path}: slide types written")
    if args.check and bad:
        print(f"{bad} notebook(s) need `python tools/slide_metadata.py`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
