"""The exercises as nbgrader assignments: mark the lessons, and write the student copies with nbgrader.

    python -m course_lib.student notebooks student        (or: make student)
    python -m course_lib.student mark notebooks/NN_name.ipynb [...]

**Layout of an exercise** (nbgrader's own format, so that a teacher can use `nbgrader
generate_assignment`, `autograde` and `generate_feedback` unchanged; see docs/grading.md):

* a markdown *Your turn* cell that states the task and its points;
* an **answer cell** (nbgrader `solution`, grade_id `lNN-exK-answer`; also tagged `solution`): the
  function(s) to write, each body inside `### BEGIN SOLUTION` / `### END SOLUTION`, which nbgrader
  replaces by `raise NotImplementedError()` in the student copy. The regions sit inside function
  bodies, so an unwritten answer only fails when its checker calls it, and Run All goes on;
* an **autograded test cell** (nbgrader `grade`, locked, grade_id `lNN-exK-check`, the points):
  the checker from `course_lib.exercises.lessonNN`, once with more trials between
  `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`, and once visibly. A checker prints one line;
  under nbgrader a failed check raises AssertionError with that line (course_lib.exercises.checker).

`mark` turns the older layout (an untagged stub cell followed by a code cell tagged `solution`
that defines the function(s) and calls the checker) into this one. It is idempotent: cells that
already carry nbgrader metadata are left alone. It prints what it cannot fix itself: top-level
statements in a solution, later cells that use the learner's function, and `show_source` calls
above an exercise that display the function it asks for.

`make student` builds a throwaway nbgrader course folder, copies each lesson in as its own
assignment, runs nbgrader's generate_assignment and copies the released notebooks to student/.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

SOLUTION_TAG = "solution"
COURSE_ID = "transformer-course"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_REPEAT = 2  # the hidden check: this many more independent checks on fresh inputs

NBGRADER_CONFIG = f'''\
# nbgrader configuration of the course (written by course_lib/student.py; see docs/grading.md)
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "{COURSE_ID}"
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}
# Students keep the saved outputs of the demonstrations (plots, tables, measured numbers), as in
# the lessons; only the outputs of the graded cells (answers and checks) are cleared, so that no
# "✅" line or printed result of the solution reaches them. This replaces nbgrader's ClearOutput.
c.GenerateAssignment.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells",
    "nbgrader.preprocessors.ClearSolutions",
    "course_lib.student.ClearGradedOutputs",
    "nbgrader.preprocessors.CheckCellMetadata",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# a lesson's cell may train a small model for up to a minute on a slow CPU
c.Execute.timeout = 600
'''


# ------------------------------------------------------------------------------------------------
# reading the exercises of a lesson
@dataclass
class Exercise:
    number: int
    answer: int  # cell index of the answer cell
    check: int  # cell index of the test cell
    checkers: list[str] = field(default_factory=list)  # names of the check_* functions called
    defines: list[str] = field(default_factory=list)  # names the answer cell defines
    points: float = 0


def lesson_id(path: Path | str) -> str:
    """'01' for notebooks/01_why_not_rnns.ipynb."""
    m = re.match(r"(\d+)_", Path(path).name)
    if not m:
        raise ValueError(f"expected a lesson notebook named NN_name.ipynb, got {Path(path).name}")
    return m.group(1)


def _nbg(cell) -> dict:  # noqa: ANN001
    return cell.get("metadata", {}).get("nbgrader", {})


def _defined_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return re.findall(r"^(?:def|class) (\w+)", source, re.M)
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]


def _checker_calls(source: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\b(check_\w+)\(", re.sub(r"#.*", "", source))))


def exercises(nb: nbformat.NotebookNode) -> list[Exercise]:
    """The nbgrader exercises of a marked lesson: each answer cell with the test cell after it."""
    out: list[Exercise] = []
    answer = None
    for i, c in enumerate(nb.cells):
        m = _nbg(c)
        if m.get("solution") and not m.get("grade"):
            answer = i
        elif m.get("grade") and c.cell_type == "code":
            ex = Exercise(len(out) + 1, answer if answer is not None else i, i)
            ex.checkers = _checker_calls(c.source)
            ex.points = float(m.get("points", 0))
            if answer is not None:
                ex.defines = _defined_names(nb.cells[answer].source)
            out.append(ex)
            answer = None
    return out


def refused_objects(checker_names: list[str], lesson: str) -> list[object]:
    """The library objects that the lesson's checkers refuse and that may not be shown above them."""
    mod = importlib.import_module(f"course_lib.exercises.lesson{lesson}")
    objs: list[object] = []
    for name in checker_names:
        check = getattr(mod, name, None)
        allowed = getattr(check, "shown_before", ())
        objs.extend(r for r in getattr(check, "refuses", ()) if not any(r is a for a in allowed))
    return objs


def _shown_names(source: str) -> list[str]:
    """The names displayed by show_source(...) calls in a cell: `show_source(A.b)` gives 'A.b'."""
    out = []
    for m in re.finditer(r"show_source\(([^()]*)\)", re.sub(r"#.*", "", source)):
        for arg in m.group(1).split(","):
            arg = arg.strip()
            if arg and "=" not in arg:
                out.append(arg.split(".", 1)[-1] if arg.count(".") > 1 else arg)
    return out


def _matches(shown: str, obj: object) -> bool:
    qual = getattr(obj, "__qualname__", "") or ""
    name = getattr(obj, "__name__", "") or ""
    last = shown.rsplit(".", 1)[-1]
    if shown == qual or (shown.endswith("." + qual)) or (name and last == name and "." not in qual):
        return True
    if "." in qual and (shown == qual or shown.endswith(qual)):
        return True
    cls = qual.split(".")[0] if "." in qual else None
    return bool(cls) and shown == cls  # show_source(Class) displays its methods too


def leaks(nb: nbformat.NotebookNode, lesson: str) -> list[str]:
    """Exercises whose asked-for library function is displayed by a show_source call above them."""
    problems = []
    for ex in exercises(nb):
        refused = refused_objects(ex.checkers, lesson)
        for i in range(ex.answer):
            c = nb.cells[i]
            if c.cell_type != "code":
                continue
            for shown in _shown_names(c.source):
                for obj in refused:
                    if _matches(shown, obj):
                        problems.append(
                            f"lesson {lesson}, exercise {ex.number} ({', '.join(ex.checkers)}): cell {i} "
                            f"shows show_source({shown}) above it, the library's answer"
                        )
    return problems


# ------------------------------------------------------------------------------------------------
# marking: stub cell + solution cell -> answer cell + autograded test cell
def _solution_regions(source: str, hints: dict[str, list[str]] | None = None) -> tuple[str, list[str]]:
    """Wrap the body of every top-level function (and method) in a solution region.

    `hints`: comment lines (from the old stub) to keep above the region of the function so named."""
    lines = source.split("\n")
    notes: list[str] = []
    tree = ast.parse(source)
    funcs: list[ast.FunctionDef] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            funcs.append(node)
        elif isinstance(node, ast.ClassDef):
            funcs.extend(n for n in node.body if isinstance(n, ast.FunctionDef))
    inserts: list[tuple[int, str]] = []  # (line index, text) to insert before that index
    for f in funcs:
        body = f.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
            and len(body) > 1
        ):
            body = body[1:]  # keep the docstring outside the region
        first, last = body[0].lineno - 1, f.end_lineno - 1
        if first == f.lineno - 1:
            notes.append(f"{f.name}: its body is on the def line; put it on lines of its own")
            continue
        indent = " " * body[0].col_offset
        while first - 1 > f.lineno - 1 and lines[first - 1].strip().startswith("#"):
            first -= 1  # comments just above the first statement belong to the solution
        keep = [h for h in (hints or {}).get(f.name, []) if h not in source]
        inserts += [
            (first, "\n".join([*(indent + h for h in keep), indent + BEGIN])),
            (last + 1, indent + END),
        ]
    for idx, text in sorted(inserts, key=lambda t: t[0], reverse=True):
        lines.insert(idx, text)
    return "\n".join(lines), notes


def _stub_hints(stub: str, name: str) -> list[str]:
    """Comment lines inside the stub's def `name` (shapes, hints), without 'your code here'."""
    try:
        tree = ast.parse(stub)
    except SyntaxError:
        return []
    lines = stub.split("\n")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            seg = lines[node.lineno : node.end_lineno]
            return [
                ln.strip()
                for ln in seg
                if ln.strip().startswith("#") and "your code" not in ln.lower() and "todo" not in ln.lower()
            ]
    return []


def _split_solution(source: str) -> tuple[str, list[str], list[str]]:
    """(answer source without checker calls and exercise imports, checker call lines, other top-level lines)."""
    tree = ast.parse(source)
    lines = source.split("\n")
    drop: set[int] = set()
    calls: list[str] = []
    others: list[str] = []
    for node in tree.body:
        span = range(node.lineno - 1, node.end_lineno)
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id.startswith("check_")
        ):
            calls.append(ast.get_source_segment(source, node))
            drop.update(span)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_lib.exercises"):
            drop.update(span)
        elif not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom):
            others.append(ast.get_source_segment(source, node).split("\n")[0])
    kept = [ln for i, ln in enumerate(lines) if i not in drop]
    text = "\n".join(kept).strip("\n")
    text = re.sub(r"\n{3,}", "\n\n\n", text)
    return text, calls, others


def _points_for(answer: str) -> int:
    body = [
        ln
        for ln in answer.split("\n")
        if ln.startswith(" ") and ln.strip() and not ln.strip().startswith("#")
    ]
    return 1 if len(body) <= 3 else 2 if len(body) <= 10 else 3


def _set_points(md: str, points: float) -> str:
    """Write '(N points)' at the end of the exercise's heading (or its bold '**N.**' item)."""
    label = f"({points:g} point{'s' if points != 1 else ''})"
    lines = md.split("\n")
    idx = None
    for i, ln in enumerate(lines):
        if re.match(r"^#+ .*Your turn", ln) or re.match(r"^\*\*\d+\.\*\*", ln):
            idx = i
    if idx is None:
        return md
    ln = re.sub(r"\s*\(\d+(?:\.\d+)? points?\)", "", lines[idx])
    if ln.startswith("**"):
        ln = re.sub(r"^(\*\*\d+\.\*\*)", rf"\1 {label}", ln)
    else:
        ln = f"{ln} {label}"
    lines[idx] = ln
    return "\n".join(lines)


def _is_unmarked_solution(c) -> bool:  # noqa: ANN001
    return c.cell_type == "code" and SOLUTION_TAG in c.metadata.get("tags", []) and not _nbg(c)


def _is_stub(c) -> bool:  # noqa: ANN001
    return (
        c.cell_type == "code"
        and not _nbg(c)
        and SOLUTION_TAG not in c.metadata.get("tags", [])
        and bool(re.search(r"NotImplementedError|^\s*(def .*:\s*)?\.\.\.", c.source, re.M))
    )


def mark_notebook(nb: nbformat.NotebookNode, lesson: str) -> tuple[nbformat.NotebookNode, list[str]]:
    """Turn every (stub, solution) pair into (answer, autograded test) cells; returns notes."""
    notes: list[str] = []
    done = exercises(nb)
    number = len(done)
    cells = list(nb.cells)
    out: list = []
    for c in cells:
        if not _is_unmarked_solution(c):
            out.append(c)
            continue
        number += 1
        stub = out.pop() if out and _is_stub(out[-1]) else None
        answer, calls, others = _split_solution(c.source)
        if stub is not None:  # the stub's imports other than the checkers', and its hints
            s_answer, _, s_others = _split_solution(stub.source)
            for line in s_answer.split("\n"):
                if line.startswith(("import ", "from ")) and line not in answer:
                    answer = line + "\n" + answer
        if others:
            notes.append(
                f"lesson {lesson}, exercise {number}: top-level statements in the solution "
                f"({'; '.join(others)}): make them part of a function, or move them after the check"
            )
        hints = {n: _stub_hints(stub.source, n) for n in _defined_names(answer)} if stub is not None else {}
        answer, n2 = _solution_regions(answer, hints)
        notes += [f"lesson {lesson}, exercise {number}: {n}" for n in n2]
        if not calls:
            notes.append(f"lesson {lesson}, exercise {number}: no checker call in the solution cell")
        names = sorted({re.match(r"(check_\w+)", x).group(1) for x in calls})
        hidden = [re.sub(r"\)\s*$", f", repeat={HIDDEN_REPEAT})", x) for x in calls]
        test = (
            f"from course_lib.exercises.lesson{lesson} import {', '.join(names)}\n\n"
            + BEGIN_HIDDEN
            + "\n"
            + "\n".join(hidden)
            + "\n"
            + END_HIDDEN
            + "\n"
            + "\n".join(calls)
        )
        points = _points_for(answer)
        a = nbformat.v4.new_code_cell(answer)
        a.metadata = {
            "tags": [SOLUTION_TAG],
            "nbgrader": {
                "grade": False,
                "solution": True,
                "locked": False,
                "grade_id": f"l{lesson}-ex{number}-answer",
                "schema_version": 3,
            },
        }
        t = nbformat.v4.new_code_cell(test)
        t.metadata = {
            "nbgrader": {
                "grade": True,
                "solution": False,
                "locked": True,
                "points": points,
                "grade_id": f"l{lesson}-ex{number}-check",
                "schema_version": 3,
            },
        }
        for j in range(len(out) - 1, -1, -1):  # the exercise's "Your turn" text gets the points
            if out[j].cell_type == "markdown":
                out[j].source = _set_points(out[j].source, points)
                break
        out += [a, t]
    nb = nbformat.from_dict(dict(nb))
    nb.cells = out
    # later cells that use the learner's functions would stop Run All in the student copy
    defined: dict[str, int] = {}
    for ex in exercises(nb):
        for name in ex.defines:
            defined[name] = ex.number
    graded = {i for ex in exercises(nb) for i in (ex.answer, ex.check)}
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code" or i in graded:
            continue
        for name, k in defined.items():
            if re.search(rf"(?<![\w.]){re.escape(name)}\b", c.source) and i > min(
                e.answer for e in exercises(nb) if e.number == k
            ):
                notes.append(
                    f"lesson {lesson}: cell {i} uses the learner's {name} (exercise {k}): use the library's"
                )
    try:
        notes += leaks(nb, lesson)
    except ModuleNotFoundError:
        notes.append(f"lesson {lesson}: no course_lib.exercises.lesson{lesson} module")
    return nb, notes


def mark_file(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    nb, notes = mark_notebook(nb, lesson_id(path))
    nbformat.validate(nb)
    if nbformat.writes(nb) != before:
        nbformat.write(nb, path)
    return notes


# ------------------------------------------------------------------------------------------------
# the student copies, by nbgrader
try:  # the preprocessor that make student's nbgrader_config.py names
    from nbgrader.preprocessors.base import NbGraderPreprocessor as _Base
except ImportError:  # nbgrader is installed with the test and teach extras
    _Base = object  # type: ignore[assignment,misc]


class ClearGradedOutputs(_Base):  # type: ignore[misc,valid-type]
    """Clear the outputs of the graded cells (answers and checks) only, and drop their `solution` tag."""

    def preprocess_cell(self, cell, resources, cell_index):  # noqa: ANN001, ANN201
        if _nbg(cell) and cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        tags = cell.get("metadata", {}).get("tags")
        if tags and SOLUTION_TAG in tags:
            cell.metadata.tags = [t for t in tags if t != SOLUTION_TAG]
            if not cell.metadata.tags:
                del cell.metadata["tags"]
        return cell, resources


def nbgrader_command() -> list[str]:
    return [sys.executable, "-m", "nbgrader"]


def make_course(src: Path, root: Path, notebooks: list[Path] | None = None) -> list[str]:
    """An nbgrader course folder at `root`: the config, and each lesson as an assignment in source/."""
    if not src.is_dir():
        raise ValueError(f"expected a folder of notebooks, got {src}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    ids = []
    for path in notebooks or sorted(src.glob("*.ipynb")):
        aid = path.stem
        (root / "source" / aid).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / "source" / aid / path.name)
        ids.append(aid)
    return ids


def nbgrader_env() -> dict[str, str]:
    """The environment for nbgrader: it runs `alembic` (its database migrations) from PATH, so the
    folder of this Python's scripts (the virtual environment's bin/) goes first."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run nbgrader in the course folder `root`; raises with its log when it fails."""
    p = subprocess.run(
        [*nbgrader_command(), *args], cwd=root, capture_output=True, text=True, env=nbgrader_env()
    )
    if p.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


def make_student_copies(src: Path, dst: Path, course: Path | None = None) -> dict[str, int]:
    """Student copies of every lesson of `src` in `dst`, made by nbgrader's generate_assignment.

    Returns, by notebook name, how many exercises (answer cells) it has. `course` keeps the
    nbgrader course folder there (a temporary one otherwise)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(course) if course is not None else Path(tmp) / "course"
        marked = [p for p in sorted(src.glob("*.ipynb")) if exercises(nbformat.read(p, as_version=4))]
        skipped = sorted(set(sorted(src.glob("*.ipynb"))) - set(marked))
        for p in skipped:  # nbgrader would copy their solutions as they are
            print(
                f"skipped {p.name}: its exercises are not marked for nbgrader yet "
                f"(python -m course_lib.student mark {p})",
                file=sys.stderr,
            )
        if not marked:
            raise ValueError(f"no lesson in {src} has nbgrader exercises")
        ids = make_course(src, root, marked)
        run_nbgrader(root, "generate_assignment", "*", "--force")
        dst.mkdir(parents=True, exist_ok=True)
        counts = {}
        for aid in ids:
            released = root / "release" / aid / f"{aid}.ipynb"
            if not released.exists():
                raise RuntimeError(f"nbgrader did not release {aid}")
            shutil.copyfile(released, dst / released.name)
            nb = nbformat.read(released, as_version=4)
            counts[released.name] = sum(1 for c in nb.cells if _nbg(c).get("solution"))
    return counts


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mark"]:
        p = argparse.ArgumentParser(
            prog="python -m course_lib.student mark", description="mark exercises for nbgrader"
        )
        p.add_argument("notebooks", type=Path, nargs="+")
        args = p.parse_args(argv[1:])
        status = 0
        for path in args.notebooks:
            notes = mark_file(path)
            n = len(exercises(nbformat.read(path, as_version=4)))
            print(f"{path.name}: {n} exercise(s) marked")
            for note in notes:
                print(f"  to fix by hand: {note}")
                status = 1
        return status
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path, nargs="?", default=Path("notebooks"))
    p.add_argument("dst", type=Path, nargs="?", default=Path("student"))
    p.add_argument("--course", type=Path, default=None, help="keep the nbgrader course folder here")
    args = p.parse_args(argv)
    try:
        counts = make_student_copies(args.src, args.dst, args.course)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, n in counts.items():
        print(f"{name}: {n} exercise(s)")
    print(f"student copies written to {args.dst}/ by nbgrader generate_assignment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
