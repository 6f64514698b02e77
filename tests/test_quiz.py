"""The quizzes: the logic of course_lib.quiz, the bank of course_lib.quiz_bank, and the widget
driven from Python (set a choice, press the button through its click handler, read the feedback)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from course_lib import quiz_bank as bank
from course_lib.quiz import (
    Feedback,
    MultipleChoice,
    Option,
    PredictThenRun,
    Quiz,
    parse_number,
    parse_shape,
)

LEARNER_NOTES = Path(__file__).resolve().parents[2] / "shared" / "learner-notes"

# The intended right options of every multiple-choice question of the bank, by the start of their
# text (written down separately, so flipping an option's flag or losing an option fails here).
INTENDED = {
    "m02-qkv": ("From the same token vectors $X$, thr",),
    "m02-softmax": ("Down each column: the keys of one qu",),
    "m02-sqrt": ("A dot product of $d_k$ unit-variance",),
    "m03-softmax": ("Each row sums to 1; a column can sum",),
    "m04-wo": ("It is a learned linear map from the ",),
    "m04-gpt3": ("$96 \\times 96 = 9216$",),
    "m05-permutation": ("The mean of its outputs over the tok",),
    "m06-groupnorm": ("Layer Normalization (Ba, Kiros and H",),
    "m06-range": ("Subtracts the mean of the token's fe",),
    "m08-memory": ("Its output, the memory: one $d_\\text",),
    "m08-cross-qkv": ("The queries are projections of the d", "The keys and values are projections "),
    "m10-once": ("Once.",),
    "m10-greedy": ("Only under greedy decoding, one of s",),
    "x00-heads-shape": ("(32, 8, 10, 64)",),
    "x00-mask": ("This query may attend to this key.",),
    "x00-checker": ("It runs your code on fresh random in",),
    "x01-sequential": ("The chain of $T$ steps: step $t$ nee",),
    "x01-table1": ("$O(1)$ and $O(n)$",),
    "x01-autoregressive": ("No: it is autoregressive. Each new t",),
    "x02-embedding": ("multiplying the one-hot vector of $i",),
    "x02-residual": ("$\\Delta x_i$ is added to it: $x_i + ",),
    "x02-dictionary": ("that key's value, as an exact dictio",),
    "x03-first-token": ("A single bright column: every query ",),
    "x03-temperature": ("keeps the ranking of the keys and ma",),
    "x03-previous": ("$W^K$ lets each key announce its own",),
    "x04-cost": ("the same parameters and the same mat",),
    "x04-split": ("View it as (B, T, h, d_k), then swap",),
    "x04-ov": ("$d_k$",),
    "x05-shift": ("By a fixed linear map (a rotation in",),
    "x05-scale": ("So that small-initialised embeddings",),
    "x05-learned": ("In the paper's Table 3 (row E) they ", "They have no vector for positions be"),
    "x06-residual": ("The Jacobian of $x + F(x)$ is $I + \\",),
    "x06-post-ln": ("$\\mathrm{LayerNorm}(x + \\mathrm{Subl",),
    "x06-dropout": ("Nothing: it is the identity.",),
    "x07-where": ("On the scores, before the softmax: m",),
    "x07-cheat": ("It learned to read the next token fr",),
    "x07-padding": ("Without it a sentence's outputs depe",),
    "x08-decoder-layer": ("Masked self-attention, cross-attenti",),
    "x08-cross-shape": ("$(T, S)$: one row per target positio",),
    "x08-families": ("Encoder-only (like BERT).",),
    "x09-teacher-forcing": ("It reads `<sos> A B C` and predicts ",),
    "x09-label-smoothing": ("It hurts perplexity, since the model",),
    "x09-adam": ("Adam with $\\beta_1 = 0.9$, $\\beta_2 ",),
    "x10-beam-one": ("greedy decoding.",),
    "x10-top-p": ("the smallest set of most probable to",),
    "x10-kv-cache": ("Each layer keeps its past keys and v",),
    "x11-bf16": ("A 16-bit format with float32's expon",),
    "x11-resume": (
        "The model's weights.",
        "The optimiser's state (Adam's moment",
        "The step count and the random genera",
    ),
    "x11-compute": ("About 2 FLOPs per parameter per toke",),
    "x12-merge": ("The most frequent pair of neighbouri",),
    "x12-unknown": ("Any text is a sequence of UTF-8 byte",),
    "x12-vocab": ("Shorter sequences against more embed",),
    "x13-block": ("Masked self-attention and a feed-for",),
    "x13-targets": ("$T$: every position predicts its nex",),
    "x13-bpb": ("A token covers a different amount of",),
    "x14-table2": ("28.4",),
    "x14-table3": (
        "One head instead of 8 cost 0.9 BLEU,",
        "Reducing $d_k$ hurt quality (row B).",
        "Without dropout, quality dropped (ro",
    ),
    "x14-decoding": ("Beam search with beam 4 and $\\alpha ",),
    "x15-allreduce": ("The gradients, so that every replica",),
    "x15-accumulation": ("Summing the gradients of $K$ micro-b",),
    "x15-memory": ("16",),
    "x16-induction": ("To `B`, the token after the earlier ",),
    "x16-composition": ('The key at `B` must carry "the token',),
    "x16-loss": ("On the repeated half: the model can ",),
    "x16-ablation": ("That the model actually uses that he",),
    "x17-retention": ("Linear-attention-like mixing with a ",),
    "x17-tradeoff": ("Recall: a fixed-size state blends it",),
}


# --- small questions to test the logic on --------------------------------------------------------
@pytest.fixture
def single() -> MultipleChoice:
    return MultipleChoice(
        "t-single",
        "What does the softmax of attention normalise over?",
        [
            Option("the queries", False, "WRONG-QUERIES: that would make each key hand out attention"),
            Option("the keys of each query", True, "RIGHT-KEYS: each query shares one unit of attention"),
            Option("the whole grid", False, "WRONG-GRID: queries would compete"),
        ],
        lesson="02",
    )


@pytest.fixture
def several() -> MultipleChoice:
    return MultipleChoice(
        "t-several",
        "Which are learned?",
        [
            Option("W_Q", True, "WHY-WQ"),
            Option("W_K", True, "WHY-WK"),
            Option("the softmax", False, "WHY-SOFTMAX"),
            Option("W_V", True, "WHY-WV"),
        ],
        lesson="02",
    )


def _three_plus_four() -> int:
    return 3 + 4


def _a_shape() -> tuple:
    return tuple(torch.zeros(2, 3).shape)


def test_a_right_answer_says_why(single):
    fb = single.check(1)
    assert isinstance(fb, Feedback)
    assert fb.correct and fb.valid and fb.score == 1.0
    assert "RIGHT-KEYS" in fb.message


def test_a_wrong_answer_explains_the_choice_and_the_answer(single):
    fb = single.check(0)
    assert not fb.correct and fb.valid and fb.score == 0.0
    assert "WRONG-QUERIES" in fb.message  # why the chosen option is wrong
    assert "RIGHT-KEYS" in fb.message and "The answer is B" in fb.message  # which one is right, and why


@pytest.mark.parametrize("answer", [1, "B", "b", " b ", "1", "B)", [1], (1,)])
def test_an_option_can_be_named_by_number_or_letter(single, answer):
    assert single.check(answer).correct


@pytest.mark.parametrize(
    "answer, words",
    [
        (7, "no option 7"),
        (-1, "no option -1"),
        ("Z", "no option"),
        (2.5, "float"),
        (True, "True"),
        (None, "choose an option"),
        ([], "choose an option"),
        ([0, 1], "one answer"),
        ({"a": 1}, "dict"),
        ("the keys", "letter or number"),
        (object(), "object"),
    ],
)
def test_bad_answers_get_a_message_not_a_traceback(single, answer, words):
    fb = single.check(answer)
    assert not fb.valid and not fb.correct and fb.score == 0.0
    assert words.lower() in fb.message.lower(), fb.message


def test_several_right_options_all_chosen(several):
    fb = several.check([0, 1, 3])
    assert fb.correct and fb.score == 1.0
    assert all(w in fb.message for w in ("WHY-WQ", "WHY-WK", "WHY-WV"))
    assert several.check("A, B, D").correct and several.check(["d", "a", "b"]).correct


def test_several_partly_right_earns_part_and_names_what_was_missed(several):
    fb = several.check([0, 1])
    assert not fb.correct and fb.valid
    assert fb.score == pytest.approx(2 / 3)
    assert fb.message.startswith("Partly right: 2 of the 3")
    assert "You missed D" in fb.message and "WHY-WV" in fb.message


def test_a_wrong_tick_costs_a_right_one(several):
    fb = several.check([0, 1, 2])  # two right, one wrong
    assert fb.score == pytest.approx(1 / 3)
    assert "does not apply" in fb.message and "WHY-SOFTMAX" in fb.message
    assert several.check([2]).score == 0.0  # never below 0
    assert several.check([2]).message.startswith("Not quite")


def test_malformed_questions_are_refused_when_written():
    with pytest.raises(ValueError, match="no correct option"):
        MultipleChoice("x", "?", [Option("a", False, "w"), Option("b", False, "w")])
    with pytest.raises(ValueError, match="explanation"):
        Option("a", True, "")
    with pytest.raises(ValueError, match="at least two"):
        MultipleChoice("x", "?", [Option("a", True, "w")])
    with pytest.raises(ValueError, match="several correct"):
        MultipleChoice("x", "?", [Option("a", True, "w"), Option("b", True, "w")], select_all=False)
    with pytest.raises(ValueError, match="answer must be one of"):
        PredictThenRun("x", "?", _three_plus_four, 7, "vibe", "because")
    with pytest.raises(TypeError, match="callable"):
        PredictThenRun("x", "?", "3 + 4", 7, "integer", "because")
    with pytest.raises(ValueError, match="repeats a question id"):
        Quiz("q", [MultipleChoice("x", "?", [Option("a", True, "w"), Option("b", False, "w")])] * 2)


def test_predict_then_run_compares_and_explains():
    q = PredictThenRun("t-int", "3 + 4?", _three_plus_four, 7, "integer", "ADDITION-WHY")
    right, wrong = q.check("7"), q.check(8)
    assert right.correct and right.result == 7 and "ADDITION-WHY" in right.message
    assert not wrong.correct and wrong.valid and wrong.result == 7
    assert "You predicted 8" in wrong.message and "returned 7" in wrong.message
    assert "ADDITION-WHY" in wrong.message
    assert "def _three_plus_four" in q.code  # the learner reads the very code that runs
    assert not q.check("7.5").valid and "whole number" in q.check("7.5").message


def test_predict_then_run_runs_only_after_a_readable_prediction():
    calls = []

    def counted() -> int:
        calls.append(1)
        return 1

    q = PredictThenRun("t-count", "?", counted, 1, "integer", "because")
    for bad in ("", None, "many", [1, 2]):
        fb = q.check(bad)
        assert not fb.valid and fb.message
    assert calls == []  # nothing ran before the learner committed to a prediction
    assert q.check(1).correct and calls == [1]


def test_numbers_within_tolerance_and_with_suffixes():
    q = PredictThenRun("t-num", "?", lambda: 6_291_456, 6_291_456, "number", "why", rel_tol=0.03)
    assert q.check("6.3M").correct and "close enough" in q.check("6.3M").message
    assert q.check("6,291,456").correct and q.check(6.29e6).correct
    assert not q.check("5M").correct
    assert not q.check("nan").valid and not q.check("lots").valid
    assert parse_number("1e-3") == pytest.approx(1e-3) and parse_number("4k") == 4000.0
    assert parse_number("2.5e3") == 2500.0 and isinstance(parse_number(True), str)


def test_shapes_in_any_reasonable_spelling():
    q = PredictThenRun("t-shape", "?", _a_shape, (2, 3), "shape", "why")
    for ok in ("(2, 3)", "2x3", "2 × 3", "[2, 3]", (2, 3), [2, 3], torch.Size([2, 3])):
        assert q.check(ok).correct, ok
    assert not q.check("(3, 2)").correct and q.check("(3, 2)").valid
    assert isinstance(parse_shape("two by three"), str) and isinstance(parse_shape([2.0, 3]), str)


def test_choice_predictions_by_letter_or_text():
    q = PredictThenRun("t-choice", "?", lambda: "yes", "yes", "choice", "why", options=("no", "yes"))
    assert q.check("B").correct and q.check("yes").correct and q.check(1).correct
    assert not q.check(0).correct and not q.check(5).valid


def test_code_that_fails_gives_a_message():
    def broken() -> int:
        raise RuntimeError("boom")

    fb = PredictThenRun("t-broken", "?", broken, 1, "integer", "why").check(1)
    assert not fb.valid and "RuntimeError: boom" in fb.message and "Traceback" not in fb.message


def test_running_a_question_leaves_the_lesson_random_numbers_alone(_seed_everything):
    q = PredictThenRun("t-rng", "?", lambda: round(torch.rand(1).item(), 6), 0.0, "number", "why", abs_tol=1)
    torch.manual_seed(_seed_everything)
    expected = torch.rand(3)
    torch.manual_seed(_seed_everything)
    first, second = q.check(0).result, q.check(0).result
    assert torch.equal(torch.rand(3), expected)  # the global generator did not move
    assert first == second  # and the question's own draw is the same every time


def test_quiz_scores_first_tries(single, several):
    quiz = Quiz("t", [single, several])
    assert str(quiz.score) == "0 / 2 on first tries (0 of 2 answered)"
    assert not quiz.answer(0, 0).correct
    assert quiz.answer("t-single", 1).correct  # a retry teaches ...
    assert quiz.score.points == 0.0  # ... but the first try is what counts
    assert not quiz.answer(1, 99).valid and quiz.score.answered == 1  # unreadable: not counted
    quiz.answer("t-several", [0, 1])
    assert quiz.score.points == pytest.approx(2 / 3) and quiz.score.answered == 2
    assert quiz.feedback[0].correct  # the latest feedback is kept for display
    bad = quiz.answer(5, 1)
    assert not bad.valid and "questions 0 to 1" in bad.message
    assert not quiz.answer("nope", 1).valid
    quiz.reset()
    assert quiz.score.answered == 0


def test_markdown_shows_questions_and_hides_answers(single, several):
    q = PredictThenRun("t-md", "Predict 3 + 4.", _three_plus_four, 7, "integer", "ADDITION-WHY")
    quiz = Quiz("A quiz", [single, several, q])
    text = quiz.to_markdown()
    assert text == str(quiz) == quiz._repr_markdown_()
    assert "What does the softmax" in text and "- C. the whole grid" in text and "```python" in text
    assert "RIGHT-KEYS" not in text and "✓" not in text and "ADDITION-WHY" not in text
    key = quiz.to_markdown(answers=True)
    assert "RIGHT-KEYS" in key and "WRONG-GRID" in key and "Answer: 7. ADDITION-WHY" in key


def test_the_displayed_quiz_is_a_widget_with_a_stable_text(single):
    quiz = Quiz("A quiz", [single])
    a, b = quiz._repr_mimebundle_(), quiz._repr_mimebundle_()
    assert a["text/plain"] == b["text/plain"] == quiz.to_markdown()  # what nbval compares
    assert a["text/markdown"] == quiz.to_markdown()
    assert "application/vnd.jupyter.widget-view+json" in a  # what JupyterLab shows


# --- the widget, driven from Python ----------------------------------------------------------
def test_widget_check_button_shows_feedback(single):
    view = Quiz("t", [single]).widget()
    assert "course-quiz" in view.widget._dom_classes
    v = view.views[0]
    assert v.check_button._dom_classes == ("course-quiz-check",)
    assert "course-quiz-option" in v.options[0]._dom_classes
    v.options[0].value = True
    v.check_button.click()
    assert "WRONG-QUERIES" in v.feedback.value and "✗</span>" in v.feedback.value
    v.options[1].value = True  # a single-answer question: ticking B unticks A
    assert [o.value for o in v.options] == [False, True, False]
    v.check_button.click()
    assert "RIGHT-KEYS" in v.feedback.value and "✓</span>" in v.feedback.value
    assert "0 / 1 on first tries (1 of 1 answered)" in view.score.value


def test_widget_with_nothing_chosen_asks_for_a_choice(single):
    v = Quiz("t", [single]).widget().views[0]
    v.check_button.click()
    assert "choose an option" in v.feedback.value.lower() and "⚠</span>" in v.feedback.value


def test_widget_several_options_partial(several):
    v = Quiz("t", [several]).widget().views[0]
    v.select([0, 3])
    assert [o.value for o in v.options] == [True, False, False, True]
    v.check_button.click()
    assert "Partly right" in v.feedback.value and "◑</span>" in v.feedback.value
    assert "WHY-WK" in v.feedback.value


def test_widget_predict_then_run_locks_the_prediction():
    q = PredictThenRun("t-w", "3 + 4?", _three_plus_four, 7, "integer", "ADDITION-WHY")
    v = Quiz("t", [q]).widget().views[0]
    assert "def _three_plus_four" in v.code.value
    v.prediction.value = "eight"
    v.check_button.click()
    assert "number" in v.feedback.value and not v.check_button.disabled  # unreadable: try again
    v.prediction.value = "8"
    v.check_button.click()
    assert "returned 7" in v.feedback.value and "ADDITION-WHY" in v.feedback.value
    assert v.check_button.disabled and v.prediction.disabled  # committed


def test_widget_never_crashes(single, monkeypatch):
    v = Quiz("t", [single]).widget().views[0]

    def explode(_answer):
        raise ZeroDivisionError("inside")

    monkeypatch.setattr(single, "check", explode)
    v.select(1)
    v.check_button.click()  # must not raise
    assert "Something went wrong" in v.feedback.value and "ZeroDivisionError" in v.feedback.value


# --- the bank ----------------------------------------------------------------------------------
def test_question_ids_are_unique():
    ids = [q.id for q in bank.QUESTIONS]
    assert len(ids) == len(set(ids))


def test_every_misconception_is_asked_where_it_is_corrected():
    assert len(bank.MISCONCEPTIONS) == 11
    for key, m in bank.MISCONCEPTIONS.items():
        qs = bank.questions(misconception=key)
        assert qs, f"no question on the misconception {key!r}"
        for q in qs:
            assert q.lesson in m.lessons, (
                f"{q.id} is in lesson {q.lesson}; {key!r} is corrected in {m.lessons}"
            )
    for q in bank.QUESTIONS:
        assert q.misconception is None or q.misconception in bank.MISCONCEPTIONS


@pytest.mark.parametrize("lesson", list(bank.LESSONS))
def test_every_lesson_has_an_exit_quiz(lesson):
    quiz = bank.quiz_for(lesson, "exit")
    assert 3 <= len(quiz) <= 5
    assert all(q.lesson == lesson and q.misconception is None for q in quiz)
    assert lesson in quiz.title
    everything = bank.quiz_for(lesson, "all")
    assert len(everything) == len(quiz) + len(bank.questions(lesson, "misconceptions"))


def test_quiz_for_accepts_lesson_spellings_and_refuses_the_rest():
    by_int = [q.id for q in bank.quiz_for(6, "misconceptions")]
    assert by_int == [q.id for q in bank.quiz_for("06", "misconceptions")]
    assert len(bank.quiz_for("06_residuals_layernorm_ffn")) == len(bank.quiz_for("06"))
    one = bank.quiz_for("02", "misconceptions", misconception="sqrt-dk")
    assert {q.misconception for q in one} == {"sqrt-dk"} and len(one) == 2
    with pytest.raises(ValueError, match="no lesson"):
        bank.quiz_for("18")
    with pytest.raises(ValueError, match="lesson number"):
        bank.quiz_for("welcome")
    with pytest.raises(ValueError, match="kind must be"):
        bank.quiz_for("02", "final")
    with pytest.raises(ValueError, match="has no questions"):
        bank.quiz_for("00", "misconceptions")
    with pytest.raises(ValueError, match="unknown misconception"):
        bank.quiz_for("02", "misconceptions", misconception="vibes")


def _multiple_choice():
    return [q for q in bank.QUESTIONS if isinstance(q, MultipleChoice)]


def _predict_then_run():
    return [q for q in bank.QUESTIONS if isinstance(q, PredictThenRun)]


def test_the_answer_key_covers_every_multiple_choice_question():
    assert set(INTENDED) == {q.id for q in _multiple_choice()}


@pytest.mark.parametrize("q", _multiple_choice(), ids=lambda q: q.id)
def test_multiple_choice_has_exactly_the_intended_answers(q):
    right = [q.options[i].text for i in q.correct_indices]
    assert sorted(t[:36] for t in right) == sorted(INTENDED[q.id])
    texts = [o.text for o in q.options]
    whys = [o.why for o in q.options]
    assert len(set(texts)) == len(texts) and len(set(whys)) == len(whys)  # an explanation per option
    assert all(len(w) >= 15 for w in whys)
    assert q.check(list(q.correct_indices) if q.several else q.correct_indices[0]).correct
    for i, o in enumerate(q.options):
        fb = q.check([i] if q.several else i)
        assert (fb.score == 1.0) == (o.correct and len(q.correct_indices) == 1)
        assert o.why in fb.message  # the feedback explains the option that was picked


@pytest.mark.parametrize("q", _predict_then_run(), ids=lambda q: q.id)
def test_predict_then_run_stored_answer_is_what_the_code_returns(q):
    ok, result = q.execute()
    assert ok, result
    if isinstance(q.expected, float):
        assert isinstance(result, float) and math.isclose(result, q.expected, rel_tol=1e-9), result
    else:
        assert result == q.expected and type(result) is type(q.expected), result
    assert q.check(q.expected if q.answer != "shape" else str(q.expected)).correct
    assert q.code.startswith("def ") and "exec(" not in q.code
    if q.answer == "choice":
        wrong = next(o for o in q.options if o != q.expected)
        assert not q.check(wrong).correct
    elif q.answer == "shape":
        assert not q.check(tuple(d + 1 for d in q.expected)).correct
    else:
        assert not q.check(q.expected * 10 + 10).correct


def test_the_bank_has_no_sentence_of_the_learner_notes():
    files = sorted(LEARNER_NOTES.glob("*")) if LEARNER_NOTES.is_dir() else []
    if not files:
        pytest.skip("the learner notes are not next to this checkout")

    def windows(text: str, n: int = 8) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z0-9]+", text.lower())
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    notes = set().union(*(windows(f.read_text(errors="replace")) for f in files if f.is_file()))
    for q in bank.QUESTIONS:
        text = " ".join(
            [q.prompt]
            + [f"{o.text} {o.why}" for o in getattr(q, "options", ()) if isinstance(o, Option)]
            + [getattr(q, "explanation", "")]
        )
        shared = windows(text) & notes
        assert not shared, f"{q.id} repeats the learner notes: {' '.join(next(iter(shared)))}"


# --- the quizzes are in the lessons -------------------------------------------------------------


def _lesson_code(path) -> str:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def test_every_lesson_shows_its_exit_quiz_and_its_misconceptions():
    notebooks = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
    assert notebooks
    code = {p.name[:2]: _lesson_code(p) for p in notebooks}
    for lesson, text in code.items():
        assert f'quiz_for("{lesson}", "exit")' in text, f"lesson {lesson} has no exit quiz cell"
    for key, m in bank.MISCONCEPTIONS.items():
        placed = [n for n in m.lessons if n in code and f'misconception="{key}"' in code[n]]
        assert placed, f"no lesson among {m.lessons} asks about the misconception {key!r}"
