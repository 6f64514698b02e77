"""The notebooks as files: all lessons present, saved executed, all collected by the nbval run."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.student import exercises, make_student_copies

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LESSONS = [f"{i:02d}" for i in range(18)]


def test_every_lesson_exists():
    numbers = {p.name[:2] for p in NOTEBOOKS}
    assert set(LESSONS) <= numbers, f"missing lessons: {sorted(set(LESSONS) - numbers)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_executed_in_order_without_errors(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c.get("execution_count") for c in code]
    assert None not in counts, f"{path.name}: {counts.count(None)} code cell(s) never executed"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not run top to bottom in a fresh kernel"
    for i, c in enumerate(code):
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: code cell {i + 1} saved with an error"
            text = json.dumps(out.get("text", "")) + json.dumps(out.get("data", {}).get("text/plain", ""))
            assert not re.search(r"/(root|work|tmp|home|Users)/", text), (
                f"{path.name}: cell {i + 1} shows a local path"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_structure(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Your turn" in text, f"{path.name} has no exercises"
    assert re.search(r"^#+ .*Recap", text, re.M), f"{path.name} has no recap"
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) >= (1 if path.name.startswith("00") else 2), f"{path.name}: too few solution cells"


def test_every_notebook_is_collected_by_nbval():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "--nbval",
            "--nbval-current-env",
            "notebooks",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    collected = {line.split("::")[0] for line in out.splitlines() if "::Cell" in line}
    expected = {f"notebooks/{p.name}" for p in NOTEBOOKS}
    assert expected == collected, f"not collected by nbval: {sorted(expected - collected)}"


def test_student_copies_have_no_solutions(tmp_path):
    """`make student`: nbgrader's generate_assignment replaces every solution region by a stub."""
    counts = make_student_copies(ROOT / "notebooks", tmp_path / "student", tmp_path / "course")
    marked = {p.name for p in NOTEBOOKS if exercises(nbformat.read(p, as_version=4))}
    assert set(counts) == marked and {f"{n}_" for n in LESSONS} <= {m[:3] for m in marked}
    for name in marked:
        nb = nbformat.read(tmp_path / "student" / name, as_version=4)
        solved = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        assert counts[name] == len(exercises(solved)) > 0
        for ex in exercises(nb):
            answer = nb.cells[ex.answer]
            assert "raise NotImplementedError()" in answer.source and "SOLUTION" not in answer.source
            body = solved.cells[ex.answer].source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            assert body.strip() not in answer.source
        assert all("solution" not in c.metadata.get("tags", []) for c in nb.cells)
        assert any("Your turn" in c.source for c in nb.cells if c.cell_type == "markdown")
