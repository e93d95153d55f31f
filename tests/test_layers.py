"""An import only goes down (DESIGN.md §3.1): checked over the source's imports, with a ratchet.

Every ``import flightdeck...`` in ``src/flightdeck`` (at module level or inside a function: both are
dependencies) is checked against the layers below. The imports that still run up, and the import cycles that
still exist, are listed by name: a new one fails this test, and so does a listed one that was removed (take it
off the list, so that it cannot come back unnoticed). Issue #10 empties both lists.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[1] / "src" / "flightdeck"

# Bottom to top; a package may import its own layer and those below. The top level (the `flightdeck`
# package itself, which re-exports the facade) is with the shells.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "core"),
    ("registry", "workspace", "openai_endpoint"),
    ("spec",),
    ("data", "retrieval", "models", "evaluation", "agents", "monitoring", "governance", "improvement"),
    ("pipeline",),
    ("project",),
    ("cli", "serving", "integrations", "testing", "__main__", ""),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

# Imports that still run up a layer (importer, imported). Issue #10 emptied it: keep it empty.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _ours(name: str) -> bool:
    return name.split(".")[0] == "flightdeck"


def _imports() -> dict[str, set[str]]:
    """Each module of the package and the flightdeck modules it imports (absolute imports only: the house style)."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted(SRC.rglob("*.py")):
        module = _module(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and _ours(node.module or ""):
                found[module].add(str(node.module))
            elif isinstance(node, ast.Import):
                found[module] |= {a.name for a in node.names if _ours(a.name)}
            elif isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{path}: relative import; write `from flightdeck... import` (house style)")
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer() -> None:
    packages = {_layer(m) for m in _imports()} | {_layer(_module(p)) for p in SRC.rglob("*.py")}
    assert sorted(packages - set(RANK)) == [], "new package: give it a place in LAYERS (and DESIGN.md §3.1)"


def test_imports_only_go_down() -> None:
    upward = {(importer, imported) for importer, targets in _imports().items() for imported in targets
              if RANK[_layer(imported)] > RANK[_layer(importer)]}
    assert sorted(upward - KNOWN_UPWARD) == [], "imports that run up a layer (DESIGN.md §3.1)"
    assert sorted(KNOWN_UPWARD - upward) == [], "fixed, well done: take these off KNOWN_UPWARD"


def test_the_ground_floor_imports_only_errors() -> None:
    for module, targets in _imports().items():
        if _layer(module) == "core":
            assert {_layer(t) for t in targets} <= {"core", "errors"}, (module, targets)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: its strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _resolved_imports() -> dict[str, set[str]]:
    """Module -> modules it imports, with ``from package import name`` counted as the package's module."""
    found = _imports()
    modules = set(found) | {_module(p) for p in SRC.rglob("*.py")}
    return {m: {t for t in targets if t in modules and t != m} for m, targets in found.items()}


def test_no_import_circles() -> None:
    """No two modules import each other, directly or round a loop (function-level imports count too).

    A package's ``__init__`` re-exporting its own modules is not a circle of behaviour, so imports of a
    package by its own submodules are left out."""
    graph = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in _resolved_imports().items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []

