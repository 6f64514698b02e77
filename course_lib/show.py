"""Show the library's own source in a notebook, so a lesson never pastes it twice."""

from __future__ import annotations

import inspect
import textwrap


def show_source(obj: object) -> None:
    """Display the source of a course_lib function, class or method, syntax-highlighted
    in Jupyter (plain text elsewhere)."""
    try:
        src = textwrap.dedent(inspect.getsource(obj))
    except (TypeError, OSError) as e:
        raise ValueError(f"show_source expects a function, class or method, got {obj!r}") from e
    try:
        from IPython.display import Markdown, display
    except ImportError:  # outside IPython
        print(src)
        return
    # Markdown keeps the saved output plain text (stable under nbval); Jupyter highlights it.
    display(Markdown(f"```python\n{src}```"))
