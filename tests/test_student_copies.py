"""The student copies, made and graded by nbgrader itself, as a teacher would.

One nbgrader course folder per grading run, built once per session (the `graded` fixture):

* the student copies come from `nbgrader generate_assignment` (course_lib.student);
* the instructor's lessons (the solutions) are submitted and autograded: full marks;
* the unsolved student copies are submitted and autograded: 0 points, each check cell failing with
  its checker's one line ("not written yet"), which nbgrader's feedback shows; no other cell may
  fail, which proves that a student copy runs from top to bottom.

The two autograde runs execute every lesson once each, in parallel (two processes, two course
folders, so the two gradebooks never lock each other). They take minutes: they are marked `slow`
(skip them locally with `-m "not slow"`; `make test` runs them). COURSE_GRADE_LESSONS=00,13 limits
the run to some lessons.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.student import exercises, make_course, nbgrader_command, nbgrader_env, run_nbgrader

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted((ROOT / "notebooks").glob("*.ipynb"))
_only = {s.strip() for s in os.environ.get("COURSE_GRADE_LESSONS", "").split(",") if s.strip()}
NOTEBOOKS = [p for p in ALL if not _only or p.name[:2] in _only]
MARKED = [p for p in NOTEBOOKS if exercises(nbformat.read(p, as_version=4))]

pytestmark = pytest.mark.slow


def _need_marked(path: Path) -> None:
    if path not in MARKED:
        pytest.skip(f"{path.name} is not marked for nbgrader yet: python -m course_lib.student mark {path}")


def _course(root: Path) -> Path:
    make_course(ROOT / "notebooks", root, MARKED)
    run_nbgrader(root, "generate_assignment", "*", "--force")
    return root


def _submit(root: Path, student: str, version: str) -> None:
    for p in MARKED:
        src = root / ("source" if version == "source" else "release") / p.stem / p.name
        dst = root / "submitted" / student / p.stem / p.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _scores(root: Path, student: str) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for p in MARKED:
            sub = gb.find_submission_notebook(p.stem, p.stem, student)
            out[p.name] = (sub.score, sub.max_score)
    return out


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    if not MARKED:
        pytest.skip("no lesson is marked for nbgrader")
    base = tmp_path_factory.mktemp("nbgrader")
    t0 = time.perf_counter()
    inst, stud = _course(base / "instructor-course"), _course(base / "student-course")
    _submit(inst, "instructor", "source")
    _submit(stud, "student", "release")
    cmd = [*nbgrader_command(), "autograde", "*", "--create", "--force"]
    runs = [
        subprocess.Popen(
            cmd, cwd=c, env=nbgrader_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for c in (inst, stud)
    ]
    logs = [r.communicate()[0] for r in runs]
    for r, log in zip(runs, logs):
        assert r.returncode == 0, f"nbgrader autograde failed:\n{log[-5000:]}"
    run_nbgrader(stud, "generate_feedback", "*", "--force")
    print(
        f"\ngenerate + autograde of {len(MARKED)} lessons, twice in parallel: {time.perf_counter() - t0:.0f} s"
    )
    return {"instructor": inst, "student": stud, "logs": logs}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_student_copy_has_stubs_and_live_checks(graded, path):
    _need_marked(path)
    nb = nbformat.read(graded["student"] / "release" / path.stem / path.name, as_version=4)
    exs = exercises(nb)
    assert exs, f"{path.name}: no exercises in the student copy"
    for ex in exs:
        answer, check = nb.cells[ex.answer], nb.cells[ex.check]
        assert "raise NotImplementedError()" in answer.source and "BEGIN SOLUTION" not in answer.source
        assert not answer.outputs and not check.outputs, f"{path.name}: graded cells keep outputs"
        live = [ln for ln in check.source.splitlines() if re.match(r"check_\w+\(", ln)]
        assert live, f"{path.name}, exercise {ex.number}: no live checker call"
        assert "HIDDEN" not in check.source and "repeat=" not in check.source
    assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells)
    # the demonstrations keep their saved outputs
    demo = [c for c in nb.cells if c.cell_type == "code" and not c.metadata.get("nbgrader")]
    assert any(c.outputs for c in demo), f"{path.name}: the demonstrations lost their outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_instructor_version_gets_full_marks(graded, path):
    _need_marked(path)
    score, top = _scores(graded["instructor"], "instructor")[path.name]
    assert top > 0 and score == top, f"{path.name}: {score} of {top} for the solutions"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_unsolved_copy_gets_zero_with_the_checkers_messages(graded, path):
    _need_marked(path)
    root = graded["student"]
    score, top = _scores(root, "student")[path.name]
    assert top > 0 and score == 0, f"{path.name}: {score} of {top} for an unsolved copy"
    nb = nbformat.read(root / "autograded" / "student" / path.stem / path.name, as_version=4)
    checks = {ex.check for ex in exercises(nb)}
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        errors = [o for o in c.outputs if o.output_type == "error"]
        if i in checks:
            assert errors, f"{path.name}: check cell {i} did not fail"
            assert errors[0].ename == "AssertionError", f"{path.name}: cell {i}: {errors[0].ename}"
            assert errors[0].evalue.startswith("❌") and "not written yet" in errors[0].evalue, errors[
                0
            ].evalue
        else:  # the unsolved copy runs top to bottom: only the graded checks fail
            assert not errors, f"{path.name}: cell {i} failed: {errors[0].ename}: {errors[0].evalue}"
    feedback = (root / "feedback" / "student" / path.stem / f"{path.stem}.html").read_text()
    assert "not written yet" in feedback and f"0 / {top:g}" in feedback.replace(".0", "")
