"""tools/slide_metadata.py (slide types from a lesson's structure) and tools/publish.py (slides and
site): the rules, idempotence, --check, and pages that load nothing from the network.

Small notebooks built here stand in for the lessons; the copying of reveal.js and MathJax from
tools/web/node_modules is replaced by a recorder, so these tests need no npm install (the browser
tests in tests/browser/test_slides_and_site.py use the real files).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # publish imports slide_metadata by name: share this one
    spec.loader.exec_module(module)
    return module


sm = _load("slide_metadata")
publish = _load("publish")

# a 2 x 2 PNG
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
LONG_CODE = "\n".join(f"x{i} = {i}" for i in range(30))


def lesson(title: str = "# Lesson 99: A test lesson") -> nbformat.NotebookNode:
    """A small lesson with the course's structure, and the type each cell must get."""
    cells = [
        (new_markdown_cell(f"{title}\n\nBy the end you will be able to compute $a^2$."), "slide"),
        (new_code_cell("import math\n\nimport torch\n\ntorch.manual_seed(0)"), "skip"),
        (new_markdown_cell("## 1. Intuition\n\nAttention is $\\mathrm{softmax}(QK^T)V$."), "slide"),
        (
            new_code_cell(
                "print(2)", outputs=[new_output("stream", name="stdout", text="2\n")], execution_count=2
            ),
            "-",
        ),
        (
            new_code_cell(
                "plot()", outputs=[new_output("display_data", data={"image/png": PNG})], execution_count=3
            ),
            "-",  # 3 + 2 + 17 lines: still fits the section's slide (24)
        ),
        (new_code_cell(LONG_CODE, execution_count=4), "subslide"),  # 22 + 30 > 24
        (
            new_code_cell(
                "explorer",
                outputs=[
                    new_output(
                        "display_data",
                        data={"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}},
                    )
                ],
                execution_count=5,
            ),
            "subslide",  # the long cell above filled its subslide
        ),
        (new_markdown_cell("## 2. Exercises\n\nWrite `square`."), "slide"),
        (new_markdown_cell("### Your turn 1: square"), "subslide"),
        (new_code_cell("def square(x):\n    ...  # your code here", execution_count=6), "-"),
        (
            new_code_cell(
                "def square(x):\n    return x * x", execution_count=7, metadata={"tags": ["solution"]}
            ),
            "skip",
        ),
        (new_markdown_cell("A remark for the teacher.", metadata={"tags": ["slides-notes"]}), "notes"),
        (new_markdown_cell("## Recap\n\nYou computed $a^2$."), "slide"),
    ]
    nb = new_notebook(cells=[c for c, _ in cells])
    nb.metadata["expected"] = [t for _, t in cells]
    return nb


def test_slide_types_follow_the_lesson_structure():
    nb = lesson()
    assert sm.slide_types(nb) == nb.metadata["expected"]


def test_apply_is_idempotent_and_ignores_stored_types():
    nb = lesson()
    assert sm.stale_cells(nb) == list(range(len(nb.cells)))
    assert sm.apply(nb) == len(nb.cells)
    assert sm.apply(nb) == 0
    assert sm.stale_cells(nb) == []
    nb.cells[3].metadata["slideshow"]["slide_type"] = "fragment"  # a stale hand edit
    assert sm.stale_cells(nb) == [3]
    assert sm.apply(nb) == 1
    assert [c.metadata.slideshow.slide_type for c in nb.cells] == nb.metadata["expected"]


def test_varying_output_does_not_make_types_stale():
    """A timing cell (# NBVAL_IGNORE_OUTPUT) whose output grows keeps the types of the deck."""

    def nb_with(lines: int):
        nb = lesson()
        out = new_output("stream", name="stdout", text="t\n" * lines)
        nb.cells.insert(4, new_code_cell("# NBVAL_IGNORE_OUTPUT\ntime_it()", outputs=[out]))
        return nb

    assert sm.slide_types(nb_with(9)) == sm.slide_types(nb_with(60))


def test_command_line_writes_once_and_checks(tmp_path, capsys):
    path = tmp_path / "99_test.ipynb"
    nbformat.write(lesson(), path)
    assert sm.main(["--check", str(path)]) == 1
    assert "stale slide types" in capsys.readouterr().out
    assert sm.main([str(path)]) == 0
    written = path.read_bytes()
    assert sm.main(["--check", str(path)]) == 0
    assert sm.main([str(path)]) == 0  # nothing to change: the file is not rewritten
    assert path.read_bytes() == written
    stored = [c.metadata.slideshow.slide_type for c in nbformat.read(path, as_version=4).cells]
    assert stored == lesson().metadata["expected"]


def test_command_line_refuses_a_file_that_is_not_a_notebook(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        sm.main([str(tmp_path / "lesson.txt")])
    assert e.value.code == 2
    assert "expected an existing .ipynb file" in capsys.readouterr().err


def test_lesson_title_is_the_first_heading():
    assert publish.lesson_title(lesson(), "fallback") == "Lesson 99: A test lesson"
    assert publish.lesson_title(new_notebook(cells=[new_code_cell("1")]), "fallback") == "fallback"


class _Urls(HTMLParser):
    """Every URL a page would load: script src, link href, img src, and CSS @import / url()."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.links: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.loaded.append(a["src"])
        elif tag == "link" and a.get("href"):
            self.loaded.append(a["href"])
        elif tag in ("img", "iframe", "source", "video", "audio") and a.get("src"):
            self.loaded.append(a["src"])
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.loaded += re.findall(r"@import\s+(?:url\()?['\"]?([^'\")\s;]+)", data)
            self.loaded += re.findall(r"url\(\s*['\"]?((?:https?:)?//[^'\")]+)", data)


def urls(page: Path) -> _Urls:
    p = _Urls()
    p.feed(page.read_text(encoding="utf-8"))
    return p


@pytest.fixture
def lessons(tmp_path):
    """Three small lessons in a folder of their own."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    paths = []
    for i, name in enumerate(["00_first", "01_second", "02_third"]):
        path = folder / f"{name}.ipynb"
        nbformat.write(lesson(f"# Lesson {i:02d}: number {i}"), path)
        paths.append(path)
    return paths


@pytest.fixture
def copied(monkeypatch):
    """Record what would be copied from node_modules instead of copying it."""
    calls = []
    monkeypatch.setattr(publish, "copy_assets", lambda pkg, files, dest: calls.append((pkg, dest.name)))
    return calls


def test_slides_load_nothing_from_the_network(tmp_path, lessons, copied):
    out = tmp_path / "slides"
    written = publish.build_slides(out, lessons)
    assert [p.name for p in written] == [f"{p.stem}.slides.html" for p in lessons]
    assert sorted(copied) == [("mathjax", "mathjax"), ("reveal.js", "reveal.js")]
    for page in [*written, out / "index.html"]:
        loaded = urls(page).loaded
        assert not [u for u in loaded if re.match(r"(https?:)?//", u)], page.name
    deck = written[0].read_text(encoding="utf-8")
    assert 'src="reveal.js/dist/reveal.js"' in deck
    assert 'src="mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"' in deck
    assert "<title>Lesson 00: number 0 slides</title>" in deck
    assert "return x * x" not in deck  # the solution is skipped
    assert "A remark for the teacher" in deck.split('<aside class="notes">', 1)[1]
    assert "course-widget-note" in deck and "widget-view+json" not in deck


def test_site_has_an_index_navigation_and_no_network(tmp_path, lessons, copied):
    out = tmp_path / "site"
    written = publish.build_site(out, lessons)
    index, pages = written[0], written[1:]
    assert index == out / "index.html" and [p.name for p in pages] == [
        "00_first.html",
        "01_second.html",
        "02_third.html",
    ]
    assert copied == [("mathjax", "mathjax")]
    assert (out / "_static" / "course.css").is_file()
    for page in written:
        loaded = urls(page).loaded
        assert not [u for u in loaded if re.match(r"(https?:)?//", u)], page.name
    text = index.read_text(encoding="utf-8")
    assert "built by hand" in text  # the README's introduction
    assert urls(index).links.count("01_second.html") == 1 and "Lesson 01: number 1" in text
    middle = pages[1].read_text(encoding="utf-8")
    links = urls(pages[1]).links
    assert links.count("00_first.html") == 2 and links.count("02_third.html") == 2  # top and bottom
    assert links.count("index.html") == 2
    assert 'rel="prev"' not in pages[0].read_text(encoding="utf-8")
    assert 'rel="next"' not in pages[2].read_text(encoding="utf-8")
    assert "data:image/png;base64," in middle  # figures are the saved outputs
    solution = re.search(r'<details class="course-solution">(.*?)</details>', middle, re.S)
    assert solution and "celltag_solution" in solution.group(1) and "square" in solution.group(1)
    assert middle.count('<details class="course-solution">') == 1
    assert "_static/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe" in middle


def test_missing_web_assets_name_the_command_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "NODE_MODULES", tmp_path / "node_modules")
    with pytest.raises(SystemExit, match="make web-assets"):
        publish.copy_assets("mathjax", ["MathJax.js"], tmp_path / "out")
