"""docs/teaching.md keeps up with the lessons.

Every lesson in notebooks/ has a section with all its parts and a grading table that lists its
exercises as the notebook has them, every lesson plan's minutes add up to
a class slot of 45-60 minutes (and to the total its heading states), and each of the eleven learner
misconceptions (../shared/learner-notes) is mapped to lessons that exist and that name it.
The checks are functions returning a list of problems, so that the tests below can also show that
they catch a doctored guide.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "teaching.md"
NOTEBOOKS = ROOT / "notebooks"

# The eleven misconceptions, each by a key phrase that its row of the guide's map must contain
# (matched case-insensitively).
MISCONCEPTION_KEYS = (
    "group normalization",  # the normalisation is GroupNorm, from 2020
    "fixed range",  # LayerNorm squeezes values into a range
    "permutation invariant",  # self-attention is permutation invariant
    "prompt, context and output",  # Q, K, V are the prompt, the context and the output
    "column-wise",  # softmax is column-wise
    "normalises the concatenated heads",  # W_O normalises the heads
    "96 attention blocks",  # GPT-3 has 96 attention blocks, so 96 Q/K matrices
    "encoder's output is k and v",  # the encoder's output is K and V
    "re-runs for every generated token",  # the encoder re-runs for every token
    "highest probability",  # the most probable token is always chosen
    "exploding gradients",  # sqrt(d_k) prevents exploding gradients
)

PARTS = (
    "#### Objectives",
    "#### Plan",
    "#### Discussion questions",
    "#### Misconceptions addressed",
    "#### Common student errors",
    "#### How to grade",
)
MAP_HEADING = "The eleven misconceptions, mapped to lessons"
LESSON_HEADING = re.compile(r"^Lesson (\d{2}) · \S")
PLAN_HEADING = re.compile(r"^#### Plan \((\d+) minutes\)\s*$", re.MULTILINE)


def notebook_lessons() -> list[str]:
    """The two-digit numbers of the lessons in notebooks/."""
    return sorted({p.name[:2] for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")})


def top_sections(text: str) -> dict[str, str]:
    """'## ' heading (without the hashes) -> the text up to the next '## ' heading."""
    parts = re.split(r"^## (?!#)", text, flags=re.MULTILINE)
    out: dict[str, str] = {}
    for part in parts[1:]:
        heading, _, body = part.partition("\n")
        out[heading.strip()] = body
    return out


def lesson_sections(text: str) -> dict[str, str]:
    """Lesson number -> its section's text."""
    out = {}
    for heading, body in top_sections(text).items():
        m = LESSON_HEADING.match(heading)
        if m:
            out[m.group(1)] = body
    return out


def table_rows(body: str) -> list[list[str]]:
    """The cells of every markdown table row in `body`, header and separator rows included."""
    rows = []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            rows.append([c.strip() for c in line[1:-1].split("|")])
    return rows


def missing_lessons(text: str, lessons: list[str]) -> list[str]:
    sections = lesson_sections(text)
    problems = [f"lesson {n} has no '## Lesson {n} · ...' section" for n in lessons if n not in sections]
    for n, body in sections.items():
        problems += [f"lesson {n}'s section lacks '{part}'" for part in PARTS if part not in body]
    return problems


def plan_problems(text: str) -> list[str]:
    problems = []
    for n, body in lesson_sections(text).items():
        m = PLAN_HEADING.search(body)
        if m is None:
            problems.append(f"lesson {n}: no '#### Plan (N minutes)' heading")
            continue
        stated = int(m.group(1))
        plan = body[m.end() :].split("\n####", 1)[0]  # up to the next part
        minutes = [int(row[0]) for row in table_rows(plan) if row and row[0].isdigit()]
        if len(minutes) < 3:
            problems.append(
                f"lesson {n}: the plan has {len(minutes)} timed rows, expected a table of at least 3"
            )
            continue
        total = sum(minutes)
        if total != stated:
            problems.append(f"lesson {n}: the plan's minutes add up to {total}, its heading says {stated}")
        if not 45 <= total <= 60:
            problems.append(f"lesson {n}: the plan takes {total} minutes, expected 45 to 60")
    return problems


def grading_problems(text: str, notebooks: list[Path]) -> list[str]:
    """Each lesson's "How to grade" table lists its exercises as the notebook has them: the number,
    the checker(s) and the points, one row per exercise, no row for an exercise that is gone; and the
    Points section's table gives each lesson the sum of its exercises' points."""
    import nbformat

    from course_lib.student import exercises

    sections = lesson_sections(text)
    problems = []
    for path in notebooks:
        n = path.name[:2]
        if n not in sections:
            continue  # reported by missing_lessons
        table = sections[n].split("#### How to grade", 1)[-1].split("\n##", 1)[0]
        rows = [r for r in table_rows(table) if len(r) >= 3 and re.match(r"\d+\b", r[0])]
        listed = {int(re.match(r"\d+", r[0]).group()): r for r in rows}
        want = exercises(nbformat.read(path, as_version=4))
        if len(rows) != len(want):
            problems.append(
                f"lesson {n}: the grading table has {len(rows)} exercises, the notebook {len(want)}"
            )
        for ex in want:
            row = listed.get(ex.number)
            if row is None:
                problems.append(f"lesson {n}: exercise {ex.number} is not in the grading table")
                continue
            checkers = re.findall(r"`(check_\w+)`", row[1])
            if sorted(checkers) != sorted(ex.checkers):
                problems.append(
                    f"lesson {n}, exercise {ex.number}: the table says {checkers}, the notebook {ex.checkers}"
                )
            if row[2] != f"{ex.points:g}":
                problems.append(
                    f"lesson {n}, exercise {ex.number}: the table says {row[2]} points, the notebook {ex.points:g}"
                )
    points = re.search(r"^\| points \|(.*)\|\s*$", text, re.M)
    lessons = re.search(r"^\| lesson \|(.*)\|\s*$", text, re.M)
    if not points or not lessons:
        return [*problems, "no '| lesson |' and '| points |' rows in the guide's Points section"]
    stated = dict(
        zip([c.strip() for c in lessons.group(1).split("|")], [c.strip() for c in points.group(1).split("|")])
    )
    for path in notebooks:
        n = path.name[:2]
        total = sum(ex.points for ex in exercises(nbformat.read(path, as_version=4)))
        if stated.get(n) != f"{total:g}":
            problems.append(
                f"lesson {n}: the points table says {stated.get(n)}, the notebook's exercises add up to {total:g}"
            )
    return problems


def misconception_problems(text: str, lessons: list[str]) -> list[str]:
    sections = top_sections(text)
    if MAP_HEADING not in sections:
        return [f"no '## {MAP_HEADING}' section"]
    rows = [r for r in table_rows(sections[MAP_HEADING]) if r and re.fullmatch(r"M\d+", r[0])]
    by_lesson = lesson_sections(text)
    problems = []
    for key in MISCONCEPTION_KEYS:
        matching = [r for r in rows if key in " ".join(r[1:-1]).lower()]
        if len(matching) != 1:
            problems.append(f"misconception {key!r}: {len(matching)} rows in the map, expected 1")
            continue
        ident, cited = matching[0][0], re.findall(r"\b\d{2}\b", matching[0][-1])
        if not cited:
            problems.append(f"misconception {key!r} ({ident}) is mapped to no lesson")
        if cited and not set(cited) & set(lessons):
            problems.append(
                f"misconception {key!r} ({ident}) is mapped only to lessons not in notebooks/: {cited}"
            )
        for n in cited:
            if n not in by_lesson:
                problems.append(f"misconception {key!r} ({ident}) cites lesson {n}, which has no section")
            elif not re.search(rf"\b{ident}\b", by_lesson[n]):
                problems.append(f"misconception {key!r}: lesson {n}'s section does not name {ident}")
    return problems


def test_guide_exists_and_lessons_found():
    assert GUIDE.is_file(), "docs/teaching.md is missing"
    lessons = notebook_lessons()
    assert "00" in lessons and len(lessons) >= 12, lessons


def test_every_lesson_in_notebooks_has_a_complete_section():
    assert missing_lessons(GUIDE.read_text(encoding="utf-8"), notebook_lessons()) == []


def test_every_plan_fits_a_45_to_60_minute_slot():
    text = GUIDE.read_text(encoding="utf-8")
    assert len(lesson_sections(text)) >= len(notebook_lessons())
    assert plan_problems(text) == []


def test_every_misconception_is_mapped_to_a_lesson():
    text = GUIDE.read_text(encoding="utf-8")
    assert misconception_problems(text, notebook_lessons()) == []


def test_every_grading_table_matches_its_lessons_exercises():
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert grading_problems(GUIDE.read_text(encoding="utf-8"), notebooks) == []


def test_glossary_and_reading_list():
    sections = top_sections(GUIDE.read_text(encoding="utf-8"))
    terms = re.findall(r"^\*\*[^*]+\*\*:", sections["Glossary"], flags=re.MULTILINE)
    assert 40 <= len(terms) <= 60, f"{len(terms)} glossary terms, expected 40 to 60"
    reading = sections["Reading list, lesson by lesson"]
    listed = set(re.findall(r"^### (\d{2}) · ", reading, flags=re.MULTILINE))
    assert set(notebook_lessons()) <= listed, sorted(set(notebook_lessons()) - listed)


def test_the_checks_catch_a_doctored_guide():
    text = GUIDE.read_text(encoding="utf-8")
    lessons = notebook_lessons()
    # a new lesson without a plan
    assert any("lesson 99" in p for p in missing_lessons(text, [*lessons, "99"]))
    # a lesson section removed
    start = text.index("## Lesson 07 · ")
    end = text.index("## Lesson 08 · ")
    assert any("lesson 07" in p for p in missing_lessons(text[:start] + text[end:], lessons))
    # a plan that runs long: one row of 5 minutes becomes 50
    body = lesson_sections(text)["03"]
    longer = body.replace("| 5 | temperature |", "| 50 | temperature |", 1)
    assert longer != body
    problems = plan_problems(text.replace(body, longer))
    assert any(p.startswith("lesson 03:") for p in problems), problems
    # a misconception dropped from the map
    row = next(line for line in text.splitlines() if line.startswith("| M9 |"))
    assert misconception_problems(text.replace(row + "\n", ""), lessons) != []
    # a misconception mapped to a lesson whose section does not name it
    assert misconception_problems(text.replace(row, row.replace("| 08, 10 |", "| 08, 12 |")), lessons) != []
    # a grading table that still lists a removed exercise, or gives other points
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    row = next(line for line in lesson_sections(text)["12"].splitlines() if line.startswith("| 1 "))
    assert any(
        "lesson 12" in p
        for p in grading_problems(text.replace(row, row.replace("| 2 |", "| 3 |")), notebooks)
    )
    table = next(line for line in text.splitlines() if line.startswith("| points |"))
    assert any(
        "points table" in p
        for p in grading_problems(text.replace(table, table.replace("| 2 |", "| 3 |", 1)), notebooks)
    )
    extra = row.replace("| 1 ", "| 9 ", 1)
    assert any("lesson 12" in p for p in grading_problems(text.replace(row, row + "\n" + extra), notebooks))
