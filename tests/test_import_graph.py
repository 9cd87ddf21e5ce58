"""The layers of `src/eapo` import in one direction: no circle between modules (issue #21).

The graph is read from the source with `ast`, so it sees every import a module can run: top-level ones,
those inside functions (late imports) and those under `TYPE_CHECKING`. A circle through any of them is
still a circle: the two modules cannot be understood, tested or moved one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Circles known and accepted for now, each named with why (an entry is the sorted tuple of the modules of
# one strongly connected component). Remove an entry when its circle is broken: the test then insists.
ALLOWED_CYCLES: dict[tuple[str, ...], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = SRC / "eapo") -> dict[str, set[str]]:
    """{module: the eapo modules it imports}. `from eapo.a import b` points at `eapo.a.b` when that is a
    module, else at `eapo.a` (a name defined there)."""
    files = {module_name(path): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x / from ..a import x
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                # `import eapo.a.b.c` where c is a name: walk up to the longest module prefix.
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target.startswith("eapo") and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted tuple."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_top_level_late_and_type_checking_imports() -> None:
    graph = import_graph()
    assert (
        "eapo.core.shapers" in graph["eapo.train.algorithms"] or "eapo.core" in graph["eapo.train.algorithms"]
    )
    assert "eapo.train.algorithms" in graph["eapo.train.config"]
    # a late import inside a function counts (run_dir imports config inside its functions)
    assert "eapo.train.config" in graph["eapo.train.run_dir"]


def test_cycles_finds_a_circle_through_late_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [("a", "b", "c")]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle() -> None:
    found = cycles(import_graph())
    unexpected = [component for component in found if component not in ALLOWED_CYCLES]
    assert unexpected == [], f"import circles in src/eapo: {unexpected}"
    stale = [component for component in ALLOWED_CYCLES if component not in found]
    assert stale == [], f"ALLOWED_CYCLES lists circles that no longer exist: {stale}"
