"""A quiz in a real browser: JupyterLab in headless Chromium.

The test writes a small notebook of its own into the server's temporary folder (never into
notebooks/), runs it through the Run menu, then answers the quiz with the mouse: it ticks a wrong
option and presses "Check", ticks the right one and presses again, and commits a prediction of a
"predict, then run" question. Each time it waits for the explanation to appear in the feedback line.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json

import pytest

from course_lib.quiz import MultipleChoice, PredictThenRun
from course_lib.quiz_bank import quiz_for

from .test_lessons_in_browser import no_error_in_page, open_and_run, poll

pytestmark = pytest.mark.browser

NAME = "quiz_in_browser.ipynb"
LESSON, KIND = "06", "misconceptions"  # a multiple-choice question first, then predict-then-run ones


def quiz_notebook() -> dict:
    code = f'from course_lib.quiz_bank import quiz_for\n\nquiz = quiz_for("{LESSON}", "{KIND}")\nquiz'
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": code}
    return {
        "cells": [cell],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def feedback_text(question, previous: str = "") -> str:
    """Wait until the question's feedback line shows a new, non-empty text."""
    box = question.locator(".course-quiz-feedback").first
    return poll(
        lambda: (t := box.inner_text().strip()) and t != previous and t,
        30,
        what="the quiz feedback to appear",
    )


def test_quiz_answers_in_jupyterlab(page, jupyter_lab, artifacts):
    (jupyter_lab.root / NAME).write_text(json.dumps(quiz_notebook()))
    quiz = quiz_for(LESSON, KIND)  # the same questions, to know the answers
    mc, ptr = quiz.questions[0], quiz.questions[2]
    assert isinstance(mc, MultipleChoice) and not mc.several
    assert isinstance(ptr, PredictThenRun) and ptr.answer == "number"

    url = f"{jupyter_lab.url}/lab/workspaces/test-quiz/tree/{NAME}?reset"
    state = open_and_run(page, url, "JupyterLab", NAME)
    assert not state["errors"], state["errors"]
    assert not no_error_in_page(page), no_error_in_page(page)

    root = page.locator(f'[data-course-test="{NAME}"] .course-quiz').first
    root.wait_for(state="visible", timeout=30_000)
    questions = root.locator(".course-quiz-question")
    assert questions.count() == len(quiz), "the widget does not show every question"
    score = root.locator(".course-quiz-score").first
    assert "0 of 4 answered" in score.inner_text()

    # 1. a wrong option, then the right one
    first = questions.nth(0)
    first.scroll_into_view_if_needed()
    right = mc.correct_indices[0]
    wrong = next(i for i in range(len(mc.options)) if i != right)
    first.locator(f".course-quiz-option-{wrong} input").click()
    first.locator("button.course-quiz-check").click()
    said = feedback_text(first)
    assert said.startswith("✗") and "Not quite" in said, said
    assert mc.options[wrong].why[:40] in said  # why the chosen option is wrong
    page.screenshot(path=str(artifacts / "browser-quiz-1-wrong.png"))

    first.locator(f".course-quiz-option-{right} input").click()
    untick = first.locator(f".course-quiz-option-{wrong} input")
    poll(lambda: not untick.is_checked(), 10, what="the other option to untick (one answer at a time)")
    first.locator("button.course-quiz-check").click()
    said = feedback_text(first, said)
    assert said.startswith("✓") and mc.options[right].why[:40] in said, said
    poll(lambda: "1 of 4 answered" in score.inner_text(), 10, what="the score to update")

    # 2. predict, then run: type a prediction, commit, read the comparison
    third = questions.nth(2)
    third.scroll_into_view_if_needed()
    assert "def " in third.locator(".course-quiz-code").first.inner_text()  # the code it will run
    third.locator(".course-quiz-prediction input").fill("1")
    third.locator("button.course-quiz-check").click()
    said = feedback_text(third)
    assert "You predicted 1" in said and f"returned {ptr.expected}" in said, said
    assert third.locator("button.course-quiz-check").is_disabled()  # the prediction is committed
    root.screenshot(path=str(artifacts / "browser-quiz-2-widget.png"))
