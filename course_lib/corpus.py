"""The course's text corpus: real English prose, offline, the same on every machine.

The corpus is the course's own lesson prose: the markdown cells of every notebook in
notebooks/ and the README, one *document* each. `python -m course_lib.corpus freeze` (or
`make corpus`) copies them into assets/corpus.txt, so that editing a lesson later does not
change the outputs of the lessons that read the corpus. The file is plain UTF-8; each document
starts with a separator line naming where it came from,

    === document: notebooks/02_tokens_embeddings_qkv.ipynb ===

and documents are separated by a blank line. Line endings are normalised to "\\n"; every other
character is kept as it is.

Three ways to get text:
  * `load_corpus()`            the frozen course corpus (assets/corpus.txt);
  * `load_corpus(path)`        any UTF-8 text file a learner brings (one document, or several
                               if it holds separator lines); a missing, empty, binary or
                               non-UTF-8 file raises a one-line ValueError;
  * `python_reference_corpus()` the Python reference manual's topics that every CPython
                               carries (`pydoc_data.topics`), about 0.5 MB. It differs between
                               Python versions, so results computed from it are not compared
                               exactly anywhere in the course.

The split into train / validation / test is by *paragraph* (text between blank lines), fixed
by a hash of the paragraph's text: about 80 / 10 / 10 percent. Adding or removing text never
moves any other paragraph to another split, and a paragraph that occurs twice is in one split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_write_text
from .validate import InputTypeError

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_PATH = REPO_ROOT / "assets" / "corpus.txt"
SPLITS = ("train", "validation", "test")
SPLIT_PERCENT = {"train": 80, "validation": 10, "test": 10}

_SEPARATOR = re.compile(r"^=== document: (.+) ===$", re.M)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


def separator(name: str) -> str:
    """The line that starts a document in a corpus file."""
    return f"=== document: {name} ==="


def normalise(text: str) -> str:
    """Line endings to "\\n" (Windows "\\r\\n" and old Mac "\\r"), a leading byte-order mark
    dropped, blank lines at both ends removed; everything else kept as it is."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.strip("\n")


def split_of(paragraph: str) -> str:
    """'train', 'validation' or 'test': fixed by a hash of the paragraph's text alone."""
    digest = hashlib.sha256(b"course-corpus:" + paragraph.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:4], "big") % 100
    if bucket < SPLIT_PERCENT["train"]:
        return "train"
    return "validation" if bucket < SPLIT_PERCENT["train"] + SPLIT_PERCENT["validation"] else "test"


def paragraphs_of(text: str) -> list[str]:
    """The paragraphs of a text: pieces between blank lines, without the blank lines."""
    return [p.strip("\n") for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


@dataclass(frozen=True)
class Document:
    """One piece of the corpus and where it came from."""

    name: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """Documents, the whole text, and the fixed paragraph split."""

    documents: tuple[Document, ...]
    source: str  # where the corpus came from, for display (never an absolute path)

    @property
    def text(self) -> str:
        """Every document's text, separated by a blank line."""
        return "\n\n".join(d.text for d in self.documents if d.text)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.documents]

    def paragraphs(self) -> list[tuple[str, str]]:
        """(document name, paragraph) for every paragraph, in order."""
        return [(d.name, p) for d in self.documents for p in paragraphs_of(d.text)]

    def split(self, name: str) -> str:
        """The text of one split ('train', 'validation' or 'test'): its paragraphs, in corpus
        order, separated by blank lines."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {name!r}")
        return "\n\n".join(p for _, p in self.paragraphs() if split_of(p) == name)

    def to_text(self) -> str:
        """The corpus file's contents: each document after its separator line."""
        return "\n\n".join(f"{separator(d.name)}\n{d.text}" for d in self.documents) + "\n"

    def __repr__(self) -> str:
        n = len(self.text.encode("utf-8"))
        return f"Corpus({self.source}: {len(self.documents)} documents, {n:,} bytes)"


# --- reading ------------------------------------------------------------------------------------


def shown_path(path: Path) -> str:
    """A path for messages: relative to the course when inside it, so no local folder shows."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def read_text_file(path: str | os.PathLike, what: str = "corpus file") -> str:
    """The text of a UTF-8 file, line endings normalised; a one-line ValueError naming the file
    when it is missing, a folder, empty, binary (NUL bytes) or not UTF-8."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"expected the path of a UTF-8 text file, got {type(path).__name__}")
    p = Path(path)
    want = "expected a UTF-8 text file"
    if not p.exists():
        raise ValueError(f"{what} {shown_path(p)} does not exist: {want}")
    if p.is_dir():
        raise ValueError(f"{what} {shown_path(p)} is a folder: {want}")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ValueError(f"{what} {shown_path(p)} cannot be read ({e.strerror}): {want}") from None
    if b"\x00" in data:
        raise ValueError(
            f"{what} {shown_path(p)} contains NUL bytes (the first at byte {data.index(0)}), so it looks "
            f"binary: {want}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{what} {shown_path(p)} is not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start} starts no "
            f"valid character): {want}; save it as UTF-8 first"
        ) from None
    text = normalise(text)
    if not text.strip():
        raise ValueError(f"{what} {shown_path(p)} is empty: {want} with some text in it")
    return text


def parse_corpus(text: str, source: str = "text", default_name: str = "text") -> Corpus:
    """A Corpus from a corpus file's text: documents start at separator lines; text without
    any separator is one document called `default_name`."""
    text = normalise(text)
    marks = list(_SEPARATOR.finditer(text))
    docs: list[Document] = []
    before = text[: marks[0].start()] if marks else text
    if before.strip():
        docs.append(Document(default_name, normalise(before)))
    for m, nxt in zip(marks, [*marks[1:], None]):
        body = text[m.end() : nxt.start() if nxt else len(text)]
        docs.append(Document(m.group(1), normalise(body)))
    return Corpus(tuple(docs), source)


def load_corpus(path: str | os.PathLike | None = None) -> Corpus:
    """The frozen course corpus (path None), or any UTF-8 text file."""
    p = CORPUS_PATH if path is None else path
    text = read_text_file(p)
    name = Path(p).name
    return parse_corpus(text, source=shown_path(Path(p)), default_name=name)


def python_reference_corpus() -> Corpus:
    """The Python reference manual's topics (`pydoc_data.topics`), one document per topic.
    It changes between Python versions: use it for size, never for exact results."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise ValueError(
            "this Python has no pydoc_data (the reference manual's text): expected a standard "
            "CPython; use load_corpus() or a text file instead"
        ) from None
    docs = tuple(Document(f"pydoc_data.topics:{k}", normalise(topics[k])) for k in sorted(topics))
    v = sys.version_info
    return Corpus(docs, f"Python {v.major}.{v.minor} reference manual")


# --- freezing -----------------------------------------------------------------------------------


def notebook_prose(path: Path) -> str:
    """The markdown cells of a notebook, separated by blank lines."""
    try:
        nb = json.loads(read_text_file(path, "notebook"))
        cells = nb["cells"]
        sources = [c["source"] for c in cells if c.get("cell_type") == "markdown"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(
            f"notebook {shown_path(path)} is not a readable .ipynb file: expected notebook JSON"
        ) from None
    parts = ["".join(s) if isinstance(s, list) else str(s) for s in sources]
    return normalise("\n\n".join(normalise(p) for p in parts if p.strip()))


def course_documents(root: str | os.PathLike = REPO_ROOT) -> list[Document]:
    """One document per notebook of root/notebooks (in lesson order), then root/README.md."""
    root = Path(root)
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    if not notebooks:
        raise ValueError(
            f"no notebooks in {shown_path(root / 'notebooks')}: expected the course's lessons (*.ipynb)"
        )
    docs = [Document(p.relative_to(root).as_posix(), notebook_prose(p)) for p in notebooks]
    docs.append(Document("README.md", read_text_file(root / "README.md", "README")))
    for d in docs:
        m = _SEPARATOR.search(d.text)
        if m:
            raise ValueError(
                f"{d.name} holds a line that looks like a document separator ({m.group(0)!r}): "
                f"expected none, or the corpus could not be read back"
            )
    return docs


def freeze_corpus(root: str | os.PathLike = REPO_ROOT, out: str | os.PathLike | None = None) -> Corpus:
    """Collect the course's prose (see `course_documents`) and write it, atomically, to `out`
    (default assets/corpus.txt). Returns the corpus as read back from the file."""
    out = Path(out) if out is not None else Path(root) / "assets" / "corpus.txt"
    corpus = Corpus(tuple(course_documents(root)), shown_path(out))
    atomic_write_text(out, corpus.to_text())
    back = load_corpus(out)
    if back.documents != corpus.documents:  # the format must read back exactly
        raise ValueError(f"{shown_path(out)} did not read back as written: expected the same documents")
    return back


def describe(corpus: Corpus) -> str:
    """A few lines: documents, bytes, and paragraphs and bytes per split."""
    lines = [repr(corpus)]
    paras = corpus.paragraphs()
    for s in SPLITS:
        chosen = [p for _, p in paras if split_of(p) == s]
        n = len(corpus.split(s).encode("utf-8"))
        lines.append(f"  {s:<10} {len(chosen):>6,} paragraphs {n:>10,} bytes")
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m course_lib.corpus", description="The course's text corpus: freeze it or describe one."
    )
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("freeze", help="copy the lessons' prose into assets/corpus.txt (atomically)")
    f.add_argument("--root", type=Path, default=REPO_ROOT, help="the course folder (default: this checkout)")
    f.add_argument("--out", type=Path, default=None, help="where to write (default: ROOT/assets/corpus.txt)")
    s = sub.add_parser("stats", help="documents, bytes and the split of a corpus")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--corpus", type=Path, default=None, help="a UTF-8 text file (default: the frozen corpus)")
    g.add_argument("--python-docs", action="store_true", help="the Python reference manual's text")
    args = p.parse_args(None if argv is None else list(argv))
    try:
        if args.command == "freeze":
            corpus = freeze_corpus(args.root, args.out)
            print(f"froze {len(corpus.documents)} documents into {corpus.source}")
            print(describe(corpus))
        else:
            corpus = python_reference_corpus() if args.python_docs else load_corpus(args.corpus)
            print(describe(corpus))
            for d in corpus.documents[:20]:
                print(f"  {d.name}: {len(d.text.encode('utf-8')):,} bytes")
            if len(corpus.documents) > 20:
                print(f"  ... and {len(corpus.documents) - 20} more documents")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
