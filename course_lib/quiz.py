"""Quizzes: multiple-choice and "predict, then run" questions, with feedback that explains why.

The logic is plain Python and needs no widgets:

    q = MultipleChoice("d01", "Which ...?", [Option("...", True, "why"), Option("...", False, "why")])
    q.check(0)            # Feedback(correct=True, message="Right: why", score=1.0, ...)
    q.check(7)            # Feedback(valid=False, message="There is no option 7 ...")  (never raises)

    p = PredictThenRun("d02", "What shape ...?", run=some_function, expected=(2, 8, 5, 64), answer="shape")
    p.check("(2, 8, 5, 64)")   # runs some_function (seeded, without touching the global RNG) and compares

    quiz = Quiz("Lesson 06: exit quiz", [q, p])
    quiz.answer(0, 1); quiz.score   # Score(points=..., total=2, answered=1): first tries count

A "predict, then run" question holds a *callable* of the course library (never a string to exec):
its source is what the learner reads, and after they commit to a prediction it runs and its result is
compared with the prediction.

Rendering, separate from the logic:
  * `Quiz.to_markdown()` (also `str(quiz)` and `_repr_markdown_`): plain text for slides, the site and
    notebook outputs that must not change between runs; `answers=True` adds the key for teachers;
  * `Quiz.widget()` -> `QuizWidget` (ipywidgets): checkboxes, a check button and a feedback line per
    question and a running score, with stable CSS classes for the browser tests (`course-quiz`,
    `course-quiz-question`, `course-quiz-option`, `course-quiz-prediction`, `course-quiz-check`,
    `course-quiz-feedback`, `course-quiz-score`). Every callback shows a message, never a traceback.
Displaying a `Quiz` in Jupyter shows the widget, with the Markdown as its text fallback: nbval compares
that text and skips the widget's random model id, so a quiz cell's saved output stays stable.
"""

from __future__ import annotations

import html
import inspect
import math
import numbers
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ANSWER_KINDS = ("choice", "integer", "number", "shape")
_SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


@dataclass(frozen=True)
class Feedback:
    """What a check says. `score` is 1 for right, a fraction for a partly right multiple choice, 0
    for wrong. `valid` is False when the answer could not be read (nothing was scored); `result`
    is what a predict-then-run question's code returned."""

    correct: bool
    message: str
    score: float = 0.0
    valid: bool = True
    result: Any = None

    def __str__(self) -> str:
        return self.message


def _invalid(message: str) -> Feedback:
    return Feedback(False, message, 0.0, valid=False)


def _kind(value: object) -> str:
    return type(value).__name__


@dataclass(frozen=True)
class Option:
    """One option of a multiple-choice question: its text, whether it is right, and why."""

    text: str
    correct: bool
    why: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"an Option needs a non-empty text, got {self.text!r}")
        if not isinstance(self.correct, bool):
            raise TypeError(f"Option.correct must be True or False, got {self.correct!r}")
        if not isinstance(self.why, str) or not self.why.strip():
            raise ValueError(f"the option {self.text!r} needs an explanation (why), got {self.why!r}")


def _letter(i: int) -> str:
    return LETTERS[i] if i < len(LETTERS) else str(i)


def _range_text(n: int) -> str:
    return f"{_letter(0)} to {_letter(n - 1)} (or 0 to {n - 1})"


def _parse_one_choice(value: object, n: int) -> int | str:
    """An option index from an int or a letter/number string; a message (str) when it cannot."""
    if isinstance(value, bool):
        return f"an answer is an option's letter or number, {_range_text(n)}; got {value!r}"
    if isinstance(value, numbers.Integral):
        i = int(value)
    elif isinstance(value, str):
        s = value.strip().rstrip(".)")
        if len(s) == 1 and s.upper() in LETTERS:
            i = LETTERS.index(s.upper())
        elif re.fullmatch(r"-?\d+", s):
            i = int(s)
        else:
            return f"an answer is an option's letter or number, {_range_text(n)}; got {value!r}"
    else:
        return (
            f"an answer is an option's letter or number, {_range_text(n)}; got {value!r} (a {_kind(value)})"
        )
    if not 0 <= i < n:
        return f"there is no option {value!r}: choose one of {_range_text(n)}"
    return i


def parse_choices(answer: object, n: int, several: bool) -> tuple[int, ...] | str:
    """The chosen option indices, or a message saying why `answer` cannot be read."""
    if answer is None:
        return "choose an option first"
    items: list[object]
    if isinstance(answer, (str, numbers.Integral)) and not isinstance(answer, bool):
        s = answer.strip() if isinstance(answer, str) else None
        items = [p for p in re.split(r"[,\s]+", s) if p] if (s and several and len(s) > 1) else [answer]
    elif isinstance(answer, Iterable) and not isinstance(answer, (bytes, dict)):
        items = list(answer)
    else:
        return (
            f"an answer is an option's letter or number, {_range_text(n)}, or a list of them; "
            f"got {answer!r} (a {_kind(answer)})"
        )
    if not items:
        return "choose an option first"
    chosen = []
    for item in items:
        i = _parse_one_choice(item, n)
        if isinstance(i, str):
            return i
        chosen.append(i)
    chosen = sorted(set(chosen))
    if not several and len(chosen) > 1:
        return "this question has one answer: choose a single option"
    return tuple(chosen)


class Question:
    """What every question has: an id, a prompt, the lesson it belongs to and, when it corrects
    one, the key of a misconception (see course_lib.quiz_bank.MISCONCEPTIONS)."""

    kind = "question"

    def __init__(self, id: str, prompt: str, lesson: str, misconception: str | None = None) -> None:
        if not isinstance(id, str) or not id:
            raise ValueError(f"a question needs a non-empty string id, got {id!r}")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"question {id!r} needs a prompt")
        self.id, self.prompt, self.lesson, self.misconception = id, prompt.strip(), lesson, misconception

    def check(self, answer: object) -> Feedback:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_markdown(self, number: int | None = None, answers: bool = False) -> str:  # pragma: no cover
        raise NotImplementedError

    def _head(self, number: int | None, tag: str = "") -> str:
        lead = f"**{number}.** " if number is not None else ""
        return f"{lead}{tag}{self.prompt}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, lesson={self.lesson!r})"


class MultipleChoice(Question):
    """Options of which one or several are right; every option says why it is right or wrong.

    With one right option the learner picks one; with several (or `select_all=True`) they tick
    every option that applies, and a partly right selection earns part of the point:
    (right ticks - wrong ticks) / right options, never below 0."""

    kind = "multiple choice"

    def __init__(
        self,
        id: str,
        prompt: str,
        options: Sequence[Option],
        lesson: str = "",
        misconception: str | None = None,
        select_all: bool | None = None,
    ) -> None:
        super().__init__(id, prompt, lesson, misconception)
        self.options = tuple(options)
        if len(self.options) < 2 or not all(isinstance(o, Option) for o in self.options):
            raise ValueError(f"question {id!r} needs at least two Option(...) options")
        self.correct_indices = tuple(i for i, o in enumerate(self.options) if o.correct)
        if not self.correct_indices:
            raise ValueError(f"question {id!r} has no correct option")
        self.several = len(self.correct_indices) > 1 if select_all is None else bool(select_all)
        if not self.several and len(self.correct_indices) > 1:
            raise ValueError(f"question {id!r} has several correct options but select_all=False")

    def _line(self, i: int) -> str:
        return f'{_letter(i)} ("{self.options[i].text.rstrip(".")}")'

    def check(self, answer: object) -> Feedback:
        """Feedback on an option index or letter (or a list of them when several apply)."""
        chosen = parse_choices(answer, len(self.options), self.several)
        if isinstance(chosen, str):
            return _invalid(chosen[0].upper() + chosen[1:] + ".")
        right = set(self.correct_indices)
        if not self.several:
            (i,) = chosen
            o = self.options[i]
            if o.correct:
                return Feedback(True, f"Right: {o.why}", 1.0)
            j = self.correct_indices[0]
            msg = f"Not quite. {_letter(i)}: {o.why}\nThe answer is {self._line(j)}. {self.options[j].why}"
            return Feedback(False, msg, 0.0)
        hits = [i for i in chosen if i in right]
        wrong = [i for i in chosen if i not in right]
        missed = [i for i in self.correct_indices if i not in chosen]
        score = max(0.0, (len(hits) - len(wrong)) / len(right))
        lines = [f"✓ {self._line(i)}. {self.options[i].why}" for i in hits]
        lines += [f"✗ {self._line(i)} does not apply. {self.options[i].why}" for i in wrong]
        lines += [f"• You missed {self._line(i)}. {self.options[i].why}" for i in missed]
        if not wrong and not missed:
            return Feedback(True, "Right, all of them.\n" + "\n".join(lines), 1.0)
        if hits:
            head = f"Partly right: {len(hits)} of the {len(right)} right options"
            if wrong:
                head += f", and {len(wrong)} {'that does' if len(wrong) == 1 else 'that do'} not apply"
            head += "."
        else:
            head = "Not quite."
        return Feedback(False, head + "\n" + "\n".join(lines), score)

    def to_markdown(self, number: int | None = None, answers: bool = False) -> str:
        tag = "*(tick every option that applies)* " if self.several else ""
        lines = [self._head(number, tag), ""]
        for i, o in enumerate(self.options):
            mark = (" ✓" if o.correct else " ✗") if answers else ""
            lines.append(f"- {_letter(i)}. {o.text}{mark}")
            if answers:
                lines.append(f"  - {o.why}")
        return "\n".join(lines)


def parse_number(value: object) -> float | str:
    """A float from a number or a string such as "6.3M", "58e9", "1,050,624"; else a message."""
    if isinstance(value, bool):
        return f"a prediction here is a number, got {value!r}"
    if isinstance(value, numbers.Real):
        x = float(value)
    elif isinstance(value, str):
        s = value.strip().replace(",", "").replace("_", "").replace(" ", "")
        scale = 1.0
        if s and s[-1] in _SUFFIXES and not re.fullmatch(r"[-+]?\d*\.?\d+[eE]", s[:-1] or "x"):
            scale, s = _SUFFIXES[s[-1]], s[:-1]
        try:
            x = float(s) * scale
        except ValueError:
            return f'a prediction here is a number (such as 64, 0.25, 1e-3 or 6.3M), got "{value}"'
    else:
        return f"a prediction here is a number, got {value!r} (a {_kind(value)})"
    if not math.isfinite(x):
        return f"a prediction here is a finite number, got {value!r}"
    return x


def parse_shape(value: object) -> tuple[int, ...] | str:
    """A shape from a tuple/list/torch.Size of ints or a string such as "(2, 8, 5, 64)" or "2x8"."""
    want = 'a prediction here is a shape such as (2, 8, 5, 64) or "2 x 8 x 5 x 64"'
    if isinstance(value, str):
        parts = [p for p in re.split(r"[\s,x×*()\[\]]+", value.strip()) if p]
        if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
            return f'{want}, got "{value}"'
        return tuple(int(p) for p in parts)
    if isinstance(value, (tuple, list, torch.Size)):
        if all(isinstance(p, numbers.Integral) and not isinstance(p, bool) and p >= 0 for p in value):
            return tuple(int(p) for p in value)
    return f"{want}, got {value!r} (a {_kind(value)})"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.4g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
    return str(value)


class PredictThenRun(Question):
    """Predict what a piece of course code returns, then run it and compare.

    `run` is a callable of the course library taking no argument; the learner reads its source
    (`code`). `expected` is the stored answer (the tests check that `run()` returns it).
    `answer` is the kind of prediction: "choice" (one of `options`, and `run` returns that option's
    text), "integer" (exact), "number" (within `rel_tol` or `abs_tol`) or "shape" (a tuple of ints).
    `explanation` says why the result is what it is; it is shown after the run, right or wrong.
    The code runs with torch's random generator forked and seeded (`seed`), so a quiz never changes
    the random numbers of the lesson around it."""

    kind = "predict, then run"

    def __init__(
        self,
        id: str,
        prompt: str,
        run: Callable[[], Any],
        expected: Any,
        answer: str,
        explanation: str,
        lesson: str = "",
        misconception: str | None = None,
        options: Sequence[str] = (),
        rel_tol: float = 0.05,
        abs_tol: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(id, prompt, lesson, misconception)
        if not callable(run):
            raise TypeError(f"question {id!r}: run must be a callable of the course library, got {run!r}")
        if answer not in ANSWER_KINDS:
            raise ValueError(f"question {id!r}: answer must be one of {ANSWER_KINDS}, got {answer!r}")
        if not isinstance(explanation, str) or not explanation.strip():
            raise ValueError(f"question {id!r} needs an explanation")
        self.run, self.expected, self.answer = run, expected, answer
        self.explanation = explanation.strip()
        self.options = tuple(options)
        if answer == "choice" and (len(self.options) < 2 or expected not in self.options):
            raise ValueError(f"question {id!r}: a choice needs >= 2 options, the expected one among them")
        self.rel_tol, self.abs_tol, self.seed = rel_tol, abs_tol, seed

    @property
    def code(self) -> str:
        """The source the learner reads: the callable itself."""
        try:
            return textwrap.dedent(inspect.getsource(self.run)).strip()
        except (OSError, TypeError):  # no source available (e.g. a builtin)
            return f"{getattr(self.run, '__qualname__', self.run)}()"

    def execute(self) -> tuple[bool, Any]:
        """Run the code: (True, result) or (False, a one-line reason). Never raises."""
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                result = self.run()
        except Exception as e:  # noqa: BLE001 -- the learner sees a message, not a traceback
            return False, f"{type(e).__name__}: {e}"
        if isinstance(result, torch.Size):
            result = tuple(result)
        return True, result

    def parse(self, prediction: object) -> tuple[bool, Any]:
        """(True, the prediction in the form of the result) or (False, why it cannot be read).
        For "choice" the prediction is an option's letter, number or text; its text is returned."""
        if prediction is None or (isinstance(prediction, str) and not prediction.strip()):
            return False, "make a prediction first: the code runs only after you commit to one"
        if self.answer == "choice":
            if isinstance(prediction, str) and prediction.strip() in self.options:
                return True, prediction.strip()
            i = parse_choices(prediction, len(self.options), several=False)
            return (False, i) if isinstance(i, str) else (True, self.options[i[0]])
        value = parse_shape(prediction) if self.answer == "shape" else parse_number(prediction)
        if isinstance(value, str):
            return False, value
        if self.answer == "integer":
            if value != int(value):
                return False, f"a prediction here is a whole number, got {prediction!r}"
            return True, int(value)
        return True, value

    def matches(self, prediction: Any, result: Any) -> bool:
        if self.answer == "number":
            try:
                return math.isclose(
                    float(prediction), float(result), rel_tol=self.rel_tol, abs_tol=self.abs_tol
                )
            except (TypeError, ValueError):
                return False
        return prediction == result

    def check(self, prediction: object) -> Feedback:
        """Read the prediction; if it can be read, run the code and compare."""
        ok, p = self.parse(prediction)
        if not ok:
            return _invalid(p[0].upper() + p[1:] + ".")
        ok, result = self.execute()
        if not ok:
            return Feedback(
                False, f"The code could not run ({result}); your prediction is not scored.", 0.0, False
            )
        got = f"The code returned {_show(result)}."
        if self.matches(p, result):
            close = " (close enough)" if self.answer == "number" and p != result else ""
            return Feedback(
                True, f"Right{close}: you predicted {_show(p)}. {got} {self.explanation}", 1.0, True, result
            )
        return Feedback(False, f"You predicted {_show(p)}. {got} {self.explanation}", 0.0, True, result)

    def hint(self) -> str:
        """What form a prediction takes, for the learner."""
        return {
            "choice": "choose one option",
            "integer": "a whole number",
            "number": "a number (such as 0.25, 1e-3 or 6.3M)"
            + (f"; within {self.rel_tol:.0%} counts as right" if self.rel_tol else ""),
            "shape": "a shape such as (2, 3)",
        }[self.answer]

    def to_markdown(self, number: int | None = None, answers: bool = False) -> str:
        lines = [self._head(number, "*Predict, then run.* "), "", "```python", self.code, "```", ""]
        if self.answer == "choice":
            lines += [
                f"- {_letter(i)}. {o}" + (" ✓" if answers and o == self.expected else "")
                for i, o in enumerate(self.options)
            ]
        else:
            lines.append(f"Your prediction: {self.hint()}.")
        if answers:
            lines += ["", f"Answer: {_show(self.expected)}. {self.explanation}"]
        return "\n".join(lines)


@dataclass(frozen=True)
class Score:
    points: float
    total: int
    answered: int

    def __str__(self) -> str:
        pts = f"{self.points:g}" if self.points == int(self.points) else f"{self.points:.2f}"
        return f"{pts} / {self.total} on first tries ({self.answered} of {self.total} answered)"


@dataclass
class Quiz:
    """Questions with a score. `answer(i, answer)` checks question i (an index or an id) and
    returns the feedback. `feedback` keeps each question's latest readable answer; `score` counts
    the *first* readable answer to each question, so a retry after reading the explanation
    teaches but does not score."""

    title: str
    questions: list[Question]
    feedback: dict[int, Feedback] = field(default_factory=dict, repr=False)
    first: dict[int, Feedback] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.questions = list(self.questions)
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"quiz {self.title!r} repeats a question id: {ids}")

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self):
        return iter(self.questions)

    def __getitem__(self, key: int | str) -> Question:
        i = self.index(key)
        if isinstance(i, str):
            raise KeyError(i)
        return self.questions[i]

    def index(self, key: object) -> int | str:
        """The position of question `key` (index or id), or a message when there is none."""
        if isinstance(key, numbers.Integral) and not isinstance(key, bool) and 0 <= key < len(self):
            return int(key)
        if isinstance(key, str):
            for i, q in enumerate(self.questions):
                if q.id == key:
                    return i
        return f"this quiz has questions 0 to {len(self) - 1} (or their ids), not {key!r}"

    def answer(self, key: int | str, answer: object) -> Feedback:
        i = self.index(key)
        if isinstance(i, str):
            return _invalid(i[0].upper() + i[1:] + ".")
        fb = self.questions[i].check(answer)
        if fb.valid:
            self.feedback[i] = fb
            self.first.setdefault(i, fb)
        return fb

    @property
    def score(self) -> Score:
        return Score(sum(f.score for f in self.first.values()), len(self), len(self.first))

    def reset(self) -> None:
        self.feedback.clear()
        self.first.clear()

    # --- rendering ---------------------------------------------------------------------
    def to_markdown(self, answers: bool = False) -> str:
        """The quiz as Markdown text: the questions (and, with answers=True, the key)."""
        n = len(self)
        how = "with the answers" if answers else "run the cell to answer in the widget"
        parts = [f"**{self.title}** ({n} question{'s' if n != 1 else ''}; {how})"]
        parts += [q.to_markdown(i + 1, answers) for i, q in enumerate(self.questions)]
        return "\n\n".join(parts)

    def __str__(self) -> str:
        return self.to_markdown()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def widget(self) -> QuizWidget:
        return QuizWidget(self)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The widget, with the Markdown text as its text/plain and text/markdown fallback."""
        text = self.to_markdown()
        bundle: dict[str, Any] = {"text/plain": text, "text/markdown": text}
        try:
            view = self.widget()
            wb = view.widget._repr_mimebundle_()
            key = "application/vnd.jupyter.widget-view+json"
            if wb and key in wb:
                bundle[key] = wb[key]
        except Exception:  # noqa: BLE001 -- no widgets here: the text stands alone
            pass
        return bundle


# --- the widget -----------------------------------------------------------------------------
def _html(text: str) -> str:
    """Message text to HTML: escaped, line breaks kept, **bold** and `code`; $math$ left for MathJax."""
    s = html.escape(text, quote=False)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return s.replace("\n", "<br>")


def _shared_looks() -> dict[str, dict]:
    """Keyword arguments (layout, style) for each kind of control, one instance per kind."""
    import ipywidgets as widgets
    from ipywidgets.widgets.widget_bool import CheckboxStyle
    from ipywidgets.widgets.widget_string import HTMLMathStyle, HTMLStyle, TextStyle

    plain = widgets.Layout()
    return {
        "math": {"layout": plain, "style": HTMLMathStyle()},
        "html": {"layout": plain, "style": HTMLStyle()},
        "checkbox": {"layout": widgets.Layout(width="28px"), "style": CheckboxStyle()},
        "text": {"layout": plain, "style": TextStyle()},
        "button": {"layout": plain, "style": widgets.ButtonStyle()},
        "box": {"layout": plain},
        "question": {"layout": widgets.Layout(margin="0 0 12px 0")},
    }


class QuestionView:
    """The widgets of one question: prompt, options (checkboxes) or a prediction box, a check
    button and a feedback area. `select(answer)` sets the controls from Python; pressing the
    button (`check_button.click()`) checks and writes `feedback.value`."""

    def __init__(
        self, quiz: Quiz, index: int, on_scored: Callable[[], None], shared: dict | None = None
    ) -> None:
        import ipywidgets as widgets

        # one Layout and one Style per kind, shared by every control of the quiz: a notebook saves
        # each widget model it displays, and a quiz has many small controls
        kw = _shared_looks() if shared is None else shared

        self.quiz, self.index, self.question = quiz, index, quiz.questions[index]
        self._on_scored = on_scored
        q = self.question
        self._quiet = False
        tag = "Predict, then run. " if isinstance(q, PredictThenRun) else ""
        self.prompt = widgets.HTMLMath(f"<b>{index + 1}.</b> <i>{tag}</i>{_html(q.prompt)}", **kw["math"])
        self.prompt.add_class("course-quiz-prompt")
        children: list[Any] = [self.prompt]
        self.code = None
        if isinstance(q, PredictThenRun):
            self.code = widgets.HTML(f"<pre style='margin:4px 0'>{html.escape(q.code)}</pre>", **kw["html"])
            self.code.add_class("course-quiz-code")
            children.append(self.code)
        texts: Sequence[str] = ()
        if isinstance(q, MultipleChoice):
            texts = [o.text for o in q.options]
        elif isinstance(q, PredictThenRun) and q.answer == "choice":
            texts = q.options
        self.options: list[Any] = []
        for i, t in enumerate(texts):
            box = widgets.Checkbox(value=False, indent=False, **kw["checkbox"])
            box.add_class("course-quiz-option")
            box.add_class(f"course-quiz-option-{i}")
            box.observe(self._exclusive, names="value")
            self.options.append(box)
            label = widgets.HTMLMath(f"<b>{_letter(i)}.</b> {_html(t)}", **kw["math"])
            children.append(widgets.HBox([box, label], **kw["box"]))
        self.prediction = None
        if isinstance(q, PredictThenRun) and q.answer != "choice":
            self.prediction = widgets.Text(placeholder=q.hint(), description="prediction", **kw["text"])
            self.prediction.add_class("course-quiz-prediction")
            children.append(self.prediction)
        several = isinstance(q, MultipleChoice) and q.several
        if several:
            children.insert(1, widgets.HTML("<i>Tick every option that applies.</i>", **kw["html"]))
        label = "Commit and run" if isinstance(q, PredictThenRun) else "Check"
        self.check_button = widgets.Button(description=label, button_style="primary", **kw["button"])
        self.check_button.add_class("course-quiz-check")
        self.check_button.on_click(lambda _b: self.check())
        self.feedback = widgets.HTMLMath("", **kw["math"])
        self.feedback.add_class("course-quiz-feedback")
        children += [self.check_button, self.feedback]
        self.box = widgets.VBox(children, **kw["question"])
        self.box.add_class("course-quiz-question")
        self.last: Feedback | None = None

    @property
    def single(self) -> bool:
        q = self.question
        return not (isinstance(q, MultipleChoice) and q.several)

    def _exclusive(self, change: dict) -> None:
        """One option at a time where the question has one answer (checkboxes that act as radios)."""
        if self._quiet or not change["new"] or not self.single:
            return
        self._quiet = True
        try:
            for box in self.options:
                if box is not change["owner"]:
                    box.value = False
        finally:
            self._quiet = False

    def current_answer(self) -> Any:
        if self.prediction is not None:
            return self.prediction.value
        chosen = [i for i, b in enumerate(self.options) if b.value]
        return chosen if not self.single else (chosen[0] if chosen else None)

    def select(self, answer: Any) -> None:
        """Set the controls as a learner would: option indices, or the prediction's text."""
        if self.prediction is not None:
            self.prediction.value = str(answer)
            return
        wanted = {answer} if isinstance(answer, int) else set(answer)
        self._quiet = True
        try:
            for i, box in enumerate(self.options):
                box.value = i in wanted
        finally:
            self._quiet = False

    def check(self) -> Feedback:
        """Check the current answer and show the feedback (never raises)."""
        try:
            fb = self.quiz.answer(self.index, self.current_answer())
        except Exception as e:  # noqa: BLE001 -- a widget shows a message, never a traceback
            fb = _invalid(f"Something went wrong while checking ({type(e).__name__}: {e}); try again.")
        self.last = fb
        if not fb.valid:
            mark, colour = "⚠", "#9a6700"
        elif fb.correct:
            mark, colour = "✓", "#1a7f37"
        else:
            mark, colour = ("◑", "#9a6700") if fb.score > 0 else ("✗", "#cf222e")
        self.feedback.value = (
            f"<span style='color:{colour};font-weight:bold'>{mark}</span> {_html(fb.message)}"
        )
        if fb.valid and isinstance(self.question, PredictThenRun):
            # committed: the prediction is locked, the comparison stays on screen
            for w in [*self.options, self.prediction, self.check_button]:
                if w is not None:
                    w.disabled = True
        try:
            self._on_scored()
        except Exception:  # noqa: BLE001
            pass
        return fb


class QuizWidget:
    """An ipywidgets view of a `Quiz`: one `QuestionView` per question (`views`) and a score line.
    `widget` is the VBox (CSS class `course-quiz`)."""

    def __init__(self, quiz: Quiz) -> None:
        import ipywidgets as widgets

        self.quiz = quiz
        self.title = widgets.HTML(f"<h4 style='margin:4px 0'>{html.escape(quiz.title)}</h4>")
        self.score = widgets.HTML("")
        self.score.add_class("course-quiz-score")
        looks = _shared_looks()
        self.views = [QuestionView(quiz, i, self._update_score, looks) for i in range(len(quiz))]
        self.widget = widgets.VBox([self.title, *[v.box for v in self.views], self.score])
        self.widget.add_class("course-quiz")
        self._update_score()

    def _update_score(self) -> None:
        self.score.value = f"<b>Score:</b> {self.quiz.score}"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/plain"] = self.quiz.to_markdown()
        return bundle
