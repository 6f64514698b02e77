"""course_lib.corpus: the frozen course text, learners' files, and the fixed split."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from course_lib.corpus import (
    CORPUS_PATH,
    SPLITS,
    Corpus,
    Document,
    freeze_corpus,
    load_corpus,
    main,
    paragraphs_of,
    parse_corpus,
    python_reference_corpus,
    separator,
    split_of,
)


# --- the frozen corpus ------------------------------------------------------------------------------
def test_the_frozen_corpus_is_the_course_prose():
    c = load_corpus()
    assert c.source == "assets/corpus.txt"
    names = c.names
    assert names[-1] == "README.md"
    lessons = [n for n in names if n.startswith("notebooks/")]
    assert len(lessons) >= 12 and lessons == sorted(lessons)
    assert all(n.endswith(".ipynb") for n in lessons)
    assert {n[len("notebooks/") :][:2] for n in lessons} >= {f"{i:02d}" for i in range(12)}
    assert all(d.text for d in c.documents)
    assert len(c.text.encode("utf-8")) > 150_000
    raw = CORPUS_PATH.read_text(encoding="utf-8")
    assert raw.count("\n=== document: ") == len(names) - 1 and raw.startswith(separator(names[0]))
    assert "\r" not in raw and "\ufeff" not in raw


def test_code_cells_are_not_in_the_corpus():
    nb = json.loads((CORPUS_PATH.parents[1] / "notebooks" / "02_tokens_embeddings_qkv.ipynb").read_text())
    code = "".join(next(c["source"] for c in nb["cells"] if c["cell_type"] == "code"))
    assert code.strip() and code.strip() not in load_corpus().text


# --- freezing ------------------------------------------------------------------------------------
def _course(tmp_path, notebooks: dict[str, list[dict]], readme: str = "# Read me\n\nHello.\n"):
    (tmp_path / "notebooks").mkdir()
    for name, cells in notebooks.items():
        nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        (tmp_path / "notebooks" / name).write_text(json.dumps(nb), encoding="utf-8")
    (tmp_path / "README.md").write_bytes(readme.encode("utf-8"))
    return tmp_path


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text):
    return {"cell_type": "code", "metadata": {}, "source": text, "outputs": [], "execution_count": None}


def test_freeze_writes_one_document_per_notebook_and_the_readme(tmp_path):
    root = _course(
        tmp_path,
        {
            "01_b.ipynb": [md(["# One\r\n", "\r\n", "Café 😀 naïve\r\n"]), code("x = 1"), md("Second cell.")],
            "00_a.ipynb": [md("Zero."), code("print('not prose')")],
        },
        readme="# Title\r\n\r\nLine one\rline two\n\n\n",
    )
    out = tmp_path / "assets" / "corpus.txt"
    c = freeze_corpus(root, out)
    assert c.names == ["notebooks/00_a.ipynb", "notebooks/01_b.ipynb", "README.md"]
    expected = (
        "=== document: notebooks/00_a.ipynb ===\nZero.\n\n"
        "=== document: notebooks/01_b.ipynb ===\n# One\n\nCafé 😀 naïve\n\nSecond cell.\n\n"
        "=== document: README.md ===\n# Title\n\nLine one\nline two\n"
    )
    assert out.read_bytes() == expected.encode("utf-8")
    assert load_corpus(out).documents == c.documents
    assert "not prose" not in c.text and "x = 1" not in c.text
    assert [p.name for p in out.parent.iterdir()] == ["corpus.txt"], "no temporary file left behind"


def test_freeze_is_atomic(tmp_path, monkeypatch):
    root = _course(tmp_path, {"00_a.ipynb": [md("Zero.")]})
    out = tmp_path / "corpus.txt"
    out.write_text("the old corpus\n", encoding="utf-8")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        freeze_corpus(root, out)
    assert out.read_text(encoding="utf-8") == "the old corpus\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "corpus.txt", "notebooks"]


def test_freeze_refuses_what_it_could_not_read_back(tmp_path):
    root = _course(tmp_path, {"00_a.ipynb": [md("text\n=== document: fake ===\nmore")]})
    with pytest.raises(ValueError, match="looks like a document separator"):
        freeze_corpus(root, tmp_path / "c.txt")
    (root / "notebooks" / "00_a.ipynb").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a readable .ipynb file"):
        freeze_corpus(root, tmp_path / "c.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no notebooks"):
        freeze_corpus(empty, tmp_path / "c.txt")


# --- a learner's own text ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist: expected a UTF-8 text file"),
        (b"", "is empty: expected a UTF-8 text file"),
        (b" \n\r\n\t\n", "is empty"),
        (b"text\x00with a NUL", "contains NUL bytes (the first at byte 4), so it looks binary"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "contains NUL bytes"),
        ("caf\xe9 au lait".encode("latin-1"), "is not UTF-8 (byte 0xe9 at offset 3"),
        (b"ok \xff\xfe", "is not UTF-8 (byte 0xff at offset 3"),
    ],
)
def test_bad_files_get_one_line_errors(tmp_path, content, message):
    path = tmp_path / "mine.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError) as e:
        load_corpus(path)
    text = str(e.value)
    assert message in text and "mine.txt" in text and "\n" not in text


def test_a_folder_or_a_wrong_type_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is a folder: expected a UTF-8 text file"):
        load_corpus(tmp_path)
    with pytest.raises(ValueError, match="expected the path of a UTF-8 text file, got int"):
        load_corpus(3)


def test_any_utf8_text_is_one_document(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("\ufeffFirst line\r\nsecond line\r\n\r\n注意力 🤖\r\n".encode())
    c = load_corpus(path)
    assert c.names == ["notes.txt"]
    assert c.text == "First line\nsecond line\n\n注意力 🤖"
    assert paragraphs_of(c.text) == ["First line\nsecond line", "注意力 🤖"]


def test_separators_make_documents_and_text_before_them_is_kept():
    text = "preamble\n\n=== document: a ===\nAlpha.\n\n=== document: b c ===\n\nBeta.\n"
    c = parse_corpus(text, default_name="file.txt")
    assert c.documents == (
        Document("file.txt", "preamble"),
        Document("a", "Alpha."),
        Document("b c", "Beta."),
    )
    again = parse_corpus(Corpus(c.documents[1:], "x").to_text())
    assert again.documents == c.documents[1:]


def test_paragraphs_are_split_at_blank_lines():
    assert paragraphs_of("a\nb\n\nc\n   \n\n\nd\n") == ["a\nb", "c", "d"]
    assert paragraphs_of("\n\n") == []


# --- the split ---------------------------------------------------------------------------------------
def test_split_rule_is_pinned():
    """The rule: the first 4 bytes of sha256("course-corpus:" + paragraph), big-endian, mod 100:
    below 80 train, below 90 validation, else test. Changing it would reshuffle every lesson."""
    for p in ["Attention is all you need.", "The decoder runs once per token.", "", "注意力"]:
        bucket = int.from_bytes(hashlib.sha256(("course-corpus:" + p).encode()).digest()[:4], "big") % 100
        assert split_of(p) == ("train" if bucket < 80 else "validation" if bucket < 90 else "test")
    assert [split_of(f"paragraph {i}") for i in range(8)] == [
        "train", "train", "train", "train", "train", "train", "validation", "validation",
    ]  # fmt: skip


def test_split_is_a_partition_in_the_stated_proportions(rng):
    paras = [f"paragraph {i}: " + "".join(rng.choice(list("abcdef "), 30)) for i in range(3000)]
    c = Corpus((Document("d", "\n\n".join(paras)),), "test")
    parts = {s: paragraphs_of(c.split(s)) for s in SPLITS}
    assert sorted(sum(parts.values(), [])) == sorted(paras)
    n = len(paras)
    for s, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        sd = (share * (1 - share) / n) ** 0.5
        assert abs(len(parts[s]) / n - share) < 5 * sd, (s, len(parts[s]))
    with pytest.raises(ValueError, match="split must be one of 'train', 'validation', 'test', got 'dev'"):
        c.split("dev")


def test_adding_text_moves_no_other_paragraph(rng):
    paras = [f"p{i} " + "".join(rng.choice(list("xyz "), 20)) for i in range(400)]
    before = {p: split_of(p) for p in paras}
    more = list(paras)
    for _ in range(100):
        more.insert(int(rng.integers(0, len(more) + 1)), f"new {rng.integers(1 << 30)}")
    c = Corpus((Document("a", "\n\n".join(more[:250])), Document("b", "\n\n".join(more[250:]))), "x")
    for s in SPLITS:
        for p in paragraphs_of(c.split(s)):
            if p in before:
                assert before[p] == s


def test_a_repeated_paragraph_lands_in_one_split():
    c = Corpus((Document("a", "same text\n\nother"), Document("b", "same text")), "x")
    homes = [s for s in SPLITS if "same text" in paragraphs_of(c.split(s))]
    assert len(homes) == 1


def test_the_frozen_corpus_has_three_non_empty_splits():
    c = load_corpus()
    sizes = {s: len(c.split(s)) for s in SPLITS}
    assert all(sizes[s] > 10_000 for s in SPLITS), sizes
    assert sizes["train"] > 5 * sizes["test"]


# --- the larger option ------------------------------------------------------------------------------
def test_python_reference_manual():
    c = python_reference_corpus()
    assert len(c.documents) > 50 and len(c.text.encode("utf-8")) > 200_000
    assert "pydoc_data.topics:lambda" in c.names
    assert c.source.startswith("Python 3.")
    assert all(len(c.split(s)) > 1000 for s in SPLITS)


# --- command line ----------------------------------------------------------------------------------
def test_command_line(tmp_path, capsys):
    f = tmp_path / "t.txt"
    f.write_text("one\n\ntwo\n\nthree\n", encoding="utf-8")
    assert main(["stats", "--corpus", str(f)]) == 0
    out = capsys.readouterr().out
    assert "1 documents" in out and "train" in out and "t.txt" in out
    assert main(["stats", "--corpus", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: corpus file") and err.count("\n") == 1
    (tmp_path / "course").mkdir()
    root = _course(tmp_path / "course", {"00_a.ipynb": [md("Zero.")]})
    assert main(["freeze", "--root", str(root), "--out", str(tmp_path / "c.txt")]) == 0
    assert "froze 2 documents" in capsys.readouterr().out
    assert load_corpus(tmp_path / "c.txt").names == ["notebooks/00_a.ipynb", "README.md"]
