"""Row 1: how long each lesson takes to run top to bottom in a fresh kernel."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm.auto import tqdm

from .table import Line
from .timing import fmt_seconds

LESSON_LIMIT_S = 60.0
COURSE_LIMIT_S = 300.0


def execute_notebook(path: Path, timeout: int = 600) -> tuple[float, str | None]:
    """Run `path` in a fresh kernel (started and shut down inside the timing, as a learner
    who opens the lesson and runs all would see it), working directory = its folder.
    Nothing is written back. Returns (seconds, None) or (seconds, the error's first line)."""
    nb = nbformat.read(path, as_version=4)
    kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}}
    )
    t0 = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = next((ln for ln in str(e).splitlines() if "Error" in ln), "a cell raised an error")
    except Exception as e:  # a kernel that dies or times out
        error = f"{type(e).__name__}: {e}".splitlines()[0]
    return time.perf_counter() - t0, error


def tiny_notebook(folder: Path) -> Path:
    """A two-cell notebook, for the quick run that only checks the timing machinery."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch"), nbformat.v4.new_code_cell("print(1 + 1)")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    path = folder / "quick_check.ipynb"
    nbformat.write(nb, path)
    return path


def notebook_lines(paths: list[Path], label: str = "") -> tuple[list[Line], dict[str, float]]:
    """One line per notebook and one for the whole course (the sum, each in its own kernel)."""
    lines, seconds, failed = [], {}, []
    for path in tqdm(paths, desc="row 1: notebooks", leave=False):
        t, error = execute_notebook(path)
        seconds[path.name] = t
        measured = fmt_seconds(t) + (f" (failed: {error})" if error else "")
        if error:
            failed.append(path.name)
        ok = error is None and t <= LESSON_LIMIT_S
        lines.append(Line(1, f"run {path.name}{label} in a fresh kernel", measured, "<= 60 s", ok))
    if not paths:
        lines.append(Line(1, "run each notebook", "no notebooks found: unmeasured", "<= 60 s", None))
        return lines, seconds
    total = sum(seconds.values())
    what = f"whole course: {len(paths)} notebook(s){label}, one fresh kernel each"
    measured = fmt_seconds(total) + (f" ({len(failed)} failed)" if failed else "")
    lines.append(Line(1, what, measured, "<= 5 min", not failed and total <= COURSE_LIMIT_S))
    return lines, seconds
