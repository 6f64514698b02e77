"""Exercise checkers: each tells the learner, in one friendly line, whether an answer is right.

A checker calls the learner's function on *fresh* random inputs (never one fixed example),
compares with the library's reference, and returns a `CheckResult` whose printed form is
"✅ ..." or "❌ ... (what differs)". Lesson-specific checkers live in `lessonNN` modules
next to this one and are built from the helpers here.
"""

from __future__ import annotations

import dis
import functools
import inspect
import os
import random
import sys
import sysconfig
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return ("✅ " if self.passed else "❌ ") + self.message

    __str__ = __repr__


def ok(message: str) -> CheckResult:
    return CheckResult(True, message)


def fail(message: str) -> CheckResult:
    return CheckResult(False, message)


# None: seeds come from the OS. The test suite sets a random.Random seeded with the test's seed,
# so that a checker's inputs in a failing test can be drawn again.
seed_source: random.Random | None = None


def fresh_generator() -> torch.Generator:
    """A generator with a new seed: every check sees new inputs."""
    g = torch.Generator()
    if seed_source is None:
        g.seed()
    else:
        g.manual_seed(seed_source.getrandbits(63))
    return g


def compare(got: object, expected: Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """None when `got` matches `expected`; otherwise one sentence saying what differs."""
    if not isinstance(got, Tensor):
        try:
            got = torch.as_tensor(got)
        except Exception:
            return f"{what} should be a tensor, got {type(got).__name__}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    got = got.detach().to(torch.float64)
    exp = expected.detach().to(torch.float64)
    if torch.isnan(got).any() and not torch.isnan(exp).any():
        return f"{what} contains NaN"
    if not torch.allclose(got, exp, atol=atol, rtol=rtol, equal_nan=True):
        diff = (got - exp).abs().nan_to_num(nan=float("inf")).max().item()
        return f"{what} differs from the expected values (largest difference {diff:.3g})"
    return None


def run_trials(
    name: str,
    trials: Iterable[Callable[[], str | None]],
    success: str,
) -> CheckResult:
    """Run each trial (a function returning None or a hint); stop at the first hint.

    Exceptions raised by the learner's code become a friendly failure, never a traceback.
    """
    for trial in trials:
        try:
            hint = trial()
        except NotImplementedError as e:  # the stub, not written yet
            return fail(f"{name}: {not_written(e)}")
        except Exception as e:  # the learner's code failed: say how, in one line
            return fail(f"{name}: your code raised {type(e).__name__}: {e}")
        if hint is not None:
            return fail(f"{name}: {hint}")
    return ok(f"{name}: {success}")


# --- grading and refusing the library -------------------------------------------------------------
#
# Every lesson's checker is wrapped by `checker(...)`, which adds three things to the plain check:
#   1. an answer that only calls the course's own implementation of the asked-for thing is refused,
#      statically (the names its code loads) and at run time (the library's code running on behalf
#      of the learner's code, e.g. `block(x)` on a library module that was passed in); a class answer
#      is looked at whole: its bases, its methods and the learner's helpers they call;
#   2. an unwritten exercise (the stub's `raise NotImplementedError()`) gets a friendly line;
#   3. under nbgrader (NBGRADER_EXECUTION is "autograde" or "validate") a failed check raises
#      AssertionError with the same one line, so that the graded test cell scores 0 and the line
#      becomes the feedback. In a learner's own session a checker never raises.

GRADING_MODES = ("autograde", "validate")
NOT_WRITTEN = "not written yet: replace `raise NotImplementedError()` with your code, then run the cell again"
# method names too common to refuse by name alone (they are refused at run time instead)
_GENERIC_NAMES = frozenset({"forward", "__call__", "__init__", "train", "encode", "decode", "step"})
_LIB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../course_lib
_THIRD_PARTY = tuple(
    {os.path.abspath(p) for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"])}
    | {os.path.abspath(p) for p in (sysconfig.get_paths()["platlib"], os.path.dirname(torch.__file__))}
)


# the names of the functions (and a class answer's methods) that the running check was given
_answer_names: set[str] = set()


def not_written(e: NotImplementedError) -> str:
    """The "not written yet" line; when the stub that raised is another of the learner's functions
    (an earlier exercise that this answer calls), it names that function."""
    tb, frame = e.__traceback__, None
    while tb is not None:
        frame, tb = tb.tb_frame, tb.tb_next
    if frame is not None and _answer_names:
        code = frame.f_code
        own = not os.path.abspath(code.co_filename).startswith((_LIB_DIR + os.sep, *_THIRD_PARTY))
        if own and code.co_name.isidentifier() and code.co_name not in _answer_names:
            return (
                f"not written yet: `{code.co_name}`, which your answer calls, still raises "
                "NotImplementedError: write it first, then run this cell again"
            )
    return NOT_WRITTEN


def _names_of(answer: object) -> set[str]:
    while isinstance(answer, functools.partial):
        answer = answer.func
    if isinstance(answer, type):
        return {
            getattr(v, "__name__", "")
            for c in answer.__mro__
            if _own(c) and c is not object
            for v in vars(c).values()
        }
    name = getattr(answer, "__name__", None)
    return {name} if name else set()


def grading() -> bool:
    """True when nbgrader runs the notebook (autograde or validate)."""
    return os.environ.get("NBGRADER_EXECUTION", "") in GRADING_MODES


def _label(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    if name.startswith("_VariableFunctions"):  # torch.softmax and friends
        return "torch." + obj.__name__
    module = getattr(obj, "__module__", None) or ""
    return f"{module}.{name}" if module.startswith("torch") else name


def _codes_of(obj: object) -> list[types.CodeType]:
    """The code objects that run when `obj` (a function, method or class) does its work."""
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if isinstance(obj, type):
        out = []
        for v in vars(obj).values():
            v = getattr(v, "__func__", v)
            if isinstance(v, types.FunctionType):
                out.append(v.__code__)
        return out
    obj = getattr(obj, "__func__", obj)
    code = getattr(obj, "__code__", None)
    return [code] if isinstance(code, types.CodeType) else []


def _nested_codes(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _nested_codes(c)


def _same(a: object, b: object) -> bool:
    a, b = getattr(a, "__func__", a), getattr(b, "__func__", b)
    return a is b


def library_calls(fn: object, refused: Iterable[object], own_names: Iterable[str] = ()) -> list[str]:
    """Names of the `refused` library objects that `fn` is, or that its code refers to.

    Looks at `fn` itself (also through functools.partial and bound methods), the globals and
    closure variables its code loads, and the attribute names it uses (`mha.split_heads`), in
    nested functions too. `own_names`: attribute names the learner's own class defines (its
    `self.layer_norm` is not `F.layer_norm`), never matched by name.
    """
    refused = list(refused)
    found: list[str] = []

    def note(obj: object) -> None:
        name = _label(obj)
        if name not in found:
            found.append(name)

    while isinstance(fn, functools.partial):
        fn = fn.func
    for r in refused:
        if _same(fn, r):
            note(r)
    func = getattr(fn, "__func__", fn)
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType):
        return found
    glob = getattr(func, "__globals__", {})
    builtins_ = glob.get("__builtins__", {})
    builtins_ = vars(builtins_) if isinstance(builtins_, types.ModuleType) else builtins_
    for cell in func.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        for r in refused:
            if _same(value, r):
                note(r)
    by_name = {}
    for r in refused:
        name = getattr(r, "__name__", None)
        if name and name not in _GENERIC_NAMES and name not in own_names:
            by_name.setdefault(name, r)
    for c in _nested_codes(code):
        for ins in dis.get_instructions(c):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                name = ins.argval
                value = glob.get(name, builtins_.get(name))
                for r in refused:
                    if value is not None and _same(value, r):
                        note(r)
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM") and ins.argval in by_name:
                note(by_name[ins.argval])
    return found


# modules whose code is not the learner's (a class answer's bases and helpers are followed only
# into the learner's own code)
_NOT_OWN = frozenset({"torch", "course_lib", "builtins", "typing", "math", "numpy", "functools", "abc"})


def _own(obj: object) -> bool:
    """True for the learner's own code: not torch's, not the course's, not Python's."""
    module = getattr(obj, "__module__", None) or "builtins"
    return module.split(".")[0] not in _NOT_OWN


def learner_functions(cls: type) -> list[types.FunctionType]:
    """The functions a learner's class runs: its methods (its own bases' too, properties included)
    and, followed by global name, the learner's other functions and classes they use."""
    todo: list[object] = [c for c in cls.__mro__ if _own(c) and c is not object]
    seen: set[int] = set()
    out: list[types.FunctionType] = []
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, type):
            for v in vars(obj).values():
                v = v.fget if isinstance(v, property) else getattr(v, "__func__", v)
                if isinstance(v, types.FunctionType):
                    todo.append(v)
            continue
        if not isinstance(obj, types.FunctionType):
            continue
        out.append(obj)
        for code in _nested_codes(obj.__code__):
            for ins in dis.get_instructions(code):
                if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                    value = obj.__globals__.get(ins.argval)
                    if isinstance(value, types.FunctionType | type) and _own(value):
                        todo.append(value)
    return out


def class_refusal(cls: type, refused: Iterable[object]) -> str | None:
    """Why a learner's class answer is refused (it is, or is built on, or calls a refused library
    object), or None."""
    refused = list(refused)
    for base in cls.__mro__:
        for r in refused:
            if base is r:
                if base is cls:
                    return f"you passed the library's {_label(r)} itself"
                return f"your class is built on the library's {_label(r)}"
    own = {n for c in cls.__mro__ if _own(c) for n in vars(c)}
    for fn in learner_functions(cls):
        used = library_calls(fn, refused, own)
        if used:
            return f"your class calls the library's {used[0]}"
    return None


class _RunTimeWatch:
    """Records refused library code that the learner's code runs directly (not via other library code)."""

    def __init__(self, refused: Iterable[object]):
        self.codes = {c: r for r in refused for c in _codes_of(r)}
        self.hits: list[str] = []
        self.depth = 0

    def _profile(self, frame, event, arg):  # noqa: ANN001
        if event != "call" or frame.f_code not in self.codes:
            return
        f = frame.f_back
        while f is not None and (
            f.f_code.co_filename.startswith(_THIRD_PARTY) or f.f_code.co_filename.startswith("<")
        ):
            f = f.f_back  # torch's module machinery, functools, ...
        if f is None or os.path.abspath(f.f_code.co_filename).startswith(_LIB_DIR + os.sep):
            return  # the library's own code (or the checker's) using it: allowed
        name = _label(self.codes[frame.f_code])
        if name not in self.hits:
            self.hits.append(name)

    def wrap(self, fn: Callable) -> Callable:
        if not self.codes:
            return fn

        @functools.wraps(fn)
        def watched(*args, **kwargs):
            previous = sys.getprofile()
            self.depth += 1
            if self.depth == 1:
                sys.setprofile(self._profile)
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    sys.setprofile(previous)

        return watched


def checker(
    *refuses: object, label: str | None = None, shown_before: tuple[object, ...] = ()
) -> Callable[[Callable[..., CheckResult]], Callable]:
    """Decorate a lesson's checker: refuse the library, greet a stub, raise when nbgrader grades.

    `refuses` are the course_lib objects (functions, methods, classes) that implement what the
    exercise asks for. The decorated checker takes the learner's function(s) and, as a keyword,
    `repeat` (how many independent checks on fresh inputs to run: the hidden tests use more).
    `shown_before`: refused objects whose source the lesson may show above the exercise, because
    the exercise asks for something they do not do (tests/test_exercises_meta.py checks the rest).
    """

    def decorate(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
        name = label or check.__name__.removeprefix("check_").replace("_", " ")

        @functools.wraps(check)
        def wrapper(*args, repeat: int = 1, **kwargs) -> CheckResult:
            result = _checked(check, name, refuses, args, kwargs, repeat)
            if not result.passed and grading():
                raise AssertionError(str(result)) from None
            return result

        wrapper.refuses = refuses  # type: ignore[attr-defined]
        wrapper.shown_before = shown_before  # type: ignore[attr-defined]
        wrapper.label = name  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _checked(check, name, refuses, args, kwargs, repeat) -> CheckResult:  # noqa: ANN001
    for a in args:
        if isinstance(a, type):
            why = class_refusal(a, refuses)
            if why:
                return fail(f"{name}: {why}: write it yourself")
        elif callable(a):
            used = library_calls(a, refuses)
            if used:
                return fail(f"{name}: your function calls the library's {used[0]}: write it yourself")
    watch = _RunTimeWatch(refuses)
    watched = [watch.wrap(a) if callable(a) and not isinstance(a, type) else a for a in args]
    # a class answer's methods run whenever the checker uses its instances: watch the whole check
    run = watch.wrap(check) if any(isinstance(a, type) for a in args) else check
    result = ok(f"{name}: passed.")
    _answer_names.clear()
    _answer_names.update(n for a in args if callable(a) for n in _names_of(a))
    for _ in range(max(1, repeat)):
        try:
            result = run(*watched, **kwargs)
        except NotImplementedError as e:
            return fail(f"{name}: {not_written(e)}")
        except Exception as e:  # the learner's code failed outside the trials: one line, no traceback
            return fail(f"{name}: your code raised {type(e).__name__}: {e}")
        if watch.hits:
            what = "class" if run is not check else "function"
            return fail(f"{name}: your {what} calls the library's {watch.hits[0]}: write it yourself")
        if not result.passed:
            return result
    return result
