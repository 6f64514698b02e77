"""The exercises as a whole: nbgrader layout, points, no answer shown above them, the library refused.

Runs over every lesson in notebooks/ whose exercises are marked for nbgrader (a lesson that still
has the old stub + solution layout is skipped, with the command that marks it).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import nbformat
import pytest

from course_lib.exercises import NOT_WRITTEN, checker, fail, library_calls, ok
from course_lib.student import (
    BEGIN,
    BEGIN_HIDDEN,
    END,
    END_HIDDEN,
    exercises,
    leaks,
    lesson_id,
    mark_notebook,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# exercises with no course_lib implementation of the thing asked for (nothing to refuse)
NOTHING_TO_REFUSE = {
    ("00", "check_d_k"),
    ("00", "check_weights_shape"),
    ("08", "check_cross_attention_shapes"),
}


def _marked(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    if not exercises(nb):
        pytest.skip(f"{path.name} is not marked for nbgrader yet: python -m course_lib.student mark {path}")
    return nb


def _checkers(path: Path):
    nb = _marked(path)
    mod = importlib.import_module(f"course_lib.exercises.lesson{lesson_id(path)}")
    return nb, mod


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_nbgrader_layout(path):
    nb = _marked(path)
    lesson = lesson_id(path)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader")]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate grade_ids"
    for ex in exercises(nb):
        answer, check = nb.cells[ex.answer], nb.cells[ex.check]
        a, t = answer.metadata["nbgrader"], check.metadata["nbgrader"]
        assert ex.check == ex.answer + 1, f"{path.name}: the check must follow its answer cell"
        assert a == {**a, "solution": True, "grade": False, "locked": False, "schema_version": 3}
        assert t == {**t, "solution": False, "grade": True, "locked": True, "schema_version": 3}
        assert (
            a["grade_id"] == f"l{lesson}-ex{ex.number}-answer"
            and t["grade_id"] == f"l{lesson}-ex{ex.number}-check"
        )
        assert 1 <= t["points"] <= 3
        # solution regions only inside function bodies: the stub raises only when called
        lines = answer.source.splitlines()
        assert any(ln.strip() == BEGIN for ln in lines), (
            f"{path.name}: answer {ex.number} has no solution region"
        )
        for ln in lines:
            if ln.strip() in (BEGIN, END):
                assert ln.startswith(" "), f"{path.name}: a solution region outside a function body"
        assert "check_" not in re.sub(r"#.*", "", answer.source), (
            f"{path.name}: a checker call in answer cell"
        )
        # hidden, then visible checks, with the same checkers
        src = check.source
        assert BEGIN_HIDDEN in src and END_HIDDEN in src
        hidden = src.split(BEGIN_HIDDEN)[1].split(END_HIDDEN)[0]
        visible = src.split(END_HIDDEN)[1]
        assert "repeat=" in hidden and re.search(r"^check_\w+\(", visible, re.M)
        assert ex.checkers and all(c.startswith("check_") for c in ex.checkers)
        # the points are stated in the exercise's text
        md = next(nb.cells[j] for j in range(ex.answer - 1, -1, -1) if nb.cells[j].cell_type == "markdown")
        n = t["points"]
        assert f"({n:g} point{'s' if n != 1 else ''})" in md.source, f"{path.name}: exercise {ex.number}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_no_library_answer_shown_above_an_exercise(path):
    nb = _marked(path)
    assert leaks(nb, lesson_id(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_no_later_cell_uses_the_learners_functions(path):
    nb = _marked(path)
    graded = {i for ex in exercises(nb) for i in (ex.answer, ex.check)}
    first = min(ex.answer for ex in exercises(nb))
    names = {n for ex in exercises(nb) for n in ex.defines}
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and i > first and i not in graded:
            for name in names:
                assert not re.search(rf"(?<![\w.]){re.escape(name)}\b", c.source), (
                    f"{path.name}: cell {i} calls the learner's {name}; in a student copy it is unwritten"
                )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_marking_again_changes_nothing(path):
    nb = _marked(path)
    again, notes = mark_notebook(nb, lesson_id(path))
    assert nbformat.writes(again) == nbformat.writes(nb) and notes == []


def _cheats(obj):
    """Answers that only call the library object `obj` (the object itself, and wrappers of it)."""
    yield obj
    name = getattr(obj, "__name__", "")
    if isinstance(obj, type) or "." not in getattr(obj, "__qualname__", "."):
        yield lambda *a, **k: obj(*a, **k)  # noqa: B023  (a closure over the library's object)
    if name and name not in ("forward", "__call__", "encode"):
        yield eval(f"lambda x, *a, **k: x.{name}(*a, **k)")  # an attribute of the same name


def _lesson_checkers():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for ex in exercises(nb):
            for name in ex.checkers:
                yield pytest.param(lesson_id(path), name, id=f"{lesson_id(path)}-{name}")


@pytest.mark.parametrize("lesson,name", list(_lesson_checkers()))
def test_checker_refuses_the_library(lesson, name):
    check = getattr(importlib.import_module(f"course_lib.exercises.lesson{lesson}"), name)
    refuses = getattr(check, "refuses", None)
    assert refuses is not None, f"{name} is not decorated with course_lib.exercises.checker"
    if (lesson, name) in NOTHING_TO_REFUSE:
        assert refuses == ()
        return
    assert refuses, f"lesson {lesson}: {name} refuses nothing; name the course_lib objects it must refuse"
    for obj in refuses:
        for cheat in _cheats(obj):
            args = [cheat, cheat] if name == "check_split_merge" else [cheat]
            r = check(*args)
            assert not r.passed and "write it yourself" in r.message, (name, obj, r)


# --- the grading mode and the stub's message ---------------------------------------------------
def _lib_double(x):
    return 2 * x


@checker(_lib_double)
def check_double(fn):
    return ok("double: right.") if fn(3) == 6 else fail("double: wrong.")


def test_checker_prints_in_a_session_and_raises_under_nbgrader(monkeypatch):
    def stub(x):
        raise NotImplementedError()

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    r = check_double(stub)
    assert not r.passed and str(r) == f"❌ double: {NOT_WRITTEN}"
    assert str(check_double(lambda x: x + x)).startswith("✅")
    assert not check_double(lambda x: x)
    for mode in ("autograde", "validate"):
        monkeypatch.setenv("NBGRADER_EXECUTION", mode)
        with pytest.raises(AssertionError) as e:
            check_double(stub)
        assert str(e.value) == f"❌ double: {NOT_WRITTEN}" and "\n" not in str(e.value)
        assert check_double(lambda x: x + x).passed  # a right answer never raises
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(AssertionError, match="calls the library's _lib_double: write it yourself"):
        check_double(lambda x: _lib_double(x))


def test_refusal_looks_through_closures_nesting_partials_and_runtime():
    import functools

    def nested(x):
        def inner(y):
            return _lib_double(y)

        return inner(x)

    f = _lib_double
    assert library_calls(nested, [_lib_double]) == ["_lib_double"]
    assert library_calls(lambda x: f(x), [_lib_double]) == ["_lib_double"]
    assert library_calls(functools.partial(_lib_double), [_lib_double]) == ["_lib_double"]
    assert library_calls(lambda x: 2 * x, [_lib_double]) == []


# --- class answers, and a stub called by another answer ---------------------------------------
def _norm_checker():
    import torch
    import torch.nn.functional as F

    from course_lib.layers import LayerNorm

    # (a checker of the course lives in course_lib, where its own reference calls are allowed; this
    # one lives in tests/, so its reference is written out)
    @checker(LayerNorm, F.layer_norm, label="norm")
    def check_norm(cls):
        x = torch.randn(3, 4, dtype=torch.float64)
        got = cls(4).double()(x)
        want = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
        return ok("norm: right.") if torch.allclose(got, want) else fail("norm: wrong.")

    return check_norm


def test_a_class_answer_is_refused_when_it_is_built_on_or_calls_the_library():
    import torch
    import torch.nn.functional as F
    from torch import nn

    import course_lib.layers as layers
    from course_lib.layers import LayerNorm

    check_norm = _norm_checker()

    class Right(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.d = d

        def forward(self, x):
            mean = x.mean(-1, keepdim=True)
            return (x - mean) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)

    class Inherits(LayerNorm):
        pass

    class CallsIt(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.norm = LayerNorm(d)

        def forward(self, x):
            return self.norm(x)

    def helper(d):  # the library reached through a helper of the learner's own
        return LayerNorm(d)

    class ViaHelper(CallsIt):
        def __init__(self, d):
            nn.Module.__init__(self)
            self.norm = helper(d)

    class Hidden(nn.Module):  # invisible to the static look: only the run-time watch sees it
        def __init__(self, d):
            super().__init__()
            self.norm = getattr(layers, "Layer" + "Norm")(d)

        def forward(self, x):
            return self.norm(x)

    class OwnMethodNamedLikeTheLibrary(Right):  # its own `layer_norm`, not F.layer_norm
        def layer_norm(self, x):
            return Right.forward(self, x)

        def forward(self, x):
            return self.layer_norm(x)

    assert check_norm(Right).passed
    assert check_norm(OwnMethodNamedLikeTheLibrary).passed
    assert check_norm(lambda d: lambda x: F.layer_norm(x, (d,))).message.endswith("write it yourself")
    expected = {
        LayerNorm: "you passed the library's LayerNorm itself",
        Inherits: "your class is built on the library's LayerNorm",
        CallsIt: "your class calls the library's LayerNorm",
        ViaHelper: "your class calls the library's LayerNorm",
        Hidden: "your class calls the library's LayerNorm",
    }
    for cls, why in expected.items():
        r = check_norm(cls)
        assert not r.passed and why in r.message and r.message.endswith("write it yourself"), (cls, r)


def test_a_stub_called_by_another_answer_is_named():
    def my_softmax(x):
        raise NotImplementedError()

    def my_attention(x):  # written, but it calls the unwritten exercise above
        return my_softmax(x) * 2

    def stub(x):
        raise NotImplementedError()

    r = check_double(my_attention)
    assert not r.passed and "not written yet: `my_softmax`, which your answer calls" in r.message
    assert str(check_double(stub)) == f"❌ double: {NOT_WRITTEN}"
