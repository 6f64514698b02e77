"""The benchmark table: one line per figure, grouped by the issue's row numbers 1-7."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Line:
    """One figure of the table.

    row: the benchmark's number (1-7); what: what was measured; measured: the figure, as
    text; target: the goal, as text ("" when the line has none); met: True / False, or
    None when there is no target or nothing was measured.
    """

    row: int
    what: str
    measured: str
    target: str = ""
    met: bool | None = None


def verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[met]


def markdown_table(lines: list[Line]) -> str:
    out = ["| row | benchmark | measured | target | met |", "|---|---|---|---|---|"]
    for ln in lines:
        cells = [str(ln.row), ln.what, ln.measured, ln.target or "-", verdict(ln.met)]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out)
