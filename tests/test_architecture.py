"""docs/architecture.md stays true: every library module is on the map, and imports form no cycle."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "course_lib"
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def modules() -> dict[str, Path]:
    """Top-level modules and packages of course_lib (a package counts once)."""
    out = {p.stem: p for p in LIB.glob("*.py") if p.stem != "__init__"}
    out.update({p.name: p / "__init__.py" for p in LIB.iterdir() if (p / "__init__.py").exists()})
    return out


def local_imports(path: Path) -> set[str]:
    """The course_lib modules a file imports at its top level (lazy imports inside functions excluded)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
    return found


def test_every_module_is_on_the_map():
    listed = set(re.findall(r"`(\w+)`", DOC))
    missing = sorted(set(modules()) - listed)
    assert not missing, f"docs/architecture.md does not list: {missing}"


def test_the_library_has_no_import_cycle():
    mods = modules()
    graph = {}
    for name, path in mods.items():
        files = [path] if path.name != "__init__.py" else list(path.parent.glob("*.py"))
        graph[name] = set().union(*(local_imports(f) for f in files)) & set(mods) - {name}
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*stack, n, m])}")
            if m not in state:
                visit(m, [*stack, n])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
