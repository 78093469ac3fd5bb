"""The broker is a product of its own: no import cycle inside it, nothing from the rest of madina.

Read from the source (every import statement, including those inside functions and
``TYPE_CHECKING`` blocks, which is where a cycle hides), so the tests need no broker running.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import madina.broker

PACKAGE = "madina.broker"
PACKAGE_DIR = Path(madina.broker.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join((PACKAGE, *parts)).removesuffix(".__init__")


BROKER_MODULES = {_module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imports_in(path.read_text(), package, set(BROKER_MODULES))


def imports_in(text: str, package: str, submodules: Collection[str] = ()) -> set[str]:
    """Every module that source ``text`` of a module in ``package`` imports.

    ``from x import y`` imports the submodule x.y when ``submodules`` has it (``from madina.broker
    import cleaner`` depends on cleaner, not on the package's ``__init__``), else a name of x.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                origin = f"{base}.{node.module}" if node.module else base
            named = {f"{origin}.{alias.name}" for alias in node.names}
            found |= named & set(submodules)
            if named - set(submodules):
                found.add(origin)
    return found


def broker_import_graph() -> dict[str, set[str]]:
    return {
        name: {imported for imported in imported_modules(path) if imported in BROKER_MODULES and imported != name}
        for name, path in BROKER_MODULES.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for neighbour in sorted(graph.get(node, ())):
            if state.get(neighbour) == "open":
                return [*path[path.index(neighbour) :], neighbour]
            if neighbour not in state and (cycle := visit(neighbour)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_package_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_deferred_type_only_and_relative_imports_all_count_as_edges() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import errors\n"
        "if TYPE_CHECKING:\n"
        "    from madina.broker.store import LogStore\n"
        "def later():\n"
        "    from madina.broker.segment import Segment\n"
    )
    found = imports_in(source, "madina.broker", {"madina.broker.errors"})
    assert {"madina.broker.errors", "madina.broker.store", "madina.broker.segment"} <= found
    assert "madina.broker" not in found


def test_no_module_of_the_broker_imports_another_that_imports_it_back() -> None:
    graph = broker_import_graph()
    assert {"madina.broker.cleaner", "madina.broker.partition", "madina.broker.store"} <= graph.keys()
    assert "madina.broker.segment" in graph["madina.broker.cleaner"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_the_broker_imports_nothing_from_madina_outside_its_own_package() -> None:
    outside = {
        f"{_module_name(path)} imports {imported}"
        for path in PACKAGE_DIR.rglob("*.py")
        for imported in imported_modules(path)
        if (imported == "madina" or imported.startswith("madina."))
        and not (imported == PACKAGE or imported.startswith(PACKAGE + "."))
    }
    assert not outside, sorted(outside)
