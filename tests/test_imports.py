"""The import graph of the package: every vidzoo module can be the first one a fresh interpreter
imports, and loading flows one way (no import tucked into a function to dodge a cycle).

The graph is read from the source (``ast``), so the check costs no interpreter start: an edge is a
module-level import (``if TYPE_CHECKING:`` blocks excepted; function bodies run later), and
importing ``a.b.c`` first initialises ``a`` and ``a.b``. A module's own parent packages are
initialised before its body runs, so an import of a parent is an edge only when it takes a name
defined by the parent's ``__init__`` (which may be half-run), never when it takes a submodule.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vidzoo"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _module_level(tree: ast.AST):
    """Import statements that run when the module is imported."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _module_level_node(child))
            continue
        yield from _module_level_node(node)


def _module_level_node(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        yield from _module_level(node)


def _edges(name: str) -> set[str]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    own = set(_ancestors(name))
    edges: set[str] = set()
    for node in _module_level(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.split(".")[0] == "vidzoo"]
            for t in targets:
                edges |= {m for m in (*_ancestors(t), t) if m not in own}
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        if source.split(".")[0] != "vidzoo":
            continue
        edges |= {m for m in _ancestors(source) if m not in own}
        submodules = {f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES}
        edges |= submodules
        takes_names = len(submodules) < len(node.names)
        if source not in own or takes_names:
            edges.add(source)
    return edges - {name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_every_module_can_be_imported_first():
    graph = {m: _edges(m) for m in MODULES}
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle (the first of these cannot be imported first): {' -> '.join(cycle)}"


def test_the_cycle_check_sees_a_cycle_through_a_package_init():
    """The builder importing the model package would run the family modules, which import the builder."""
    graph = {m: _edges(m) for m in MODULES}
    graph["vidzoo._builder"] = graph["vidzoo._builder"] | {"vidzoo.models"}
    assert _cycle(graph) == ["vidzoo._builder", "vidzoo.models", "vidzoo.models.timesformer", "vidzoo._builder"]


def test_registry_and_builder_import_no_model_family():
    for leaf in ("vidzoo._registry", "vidzoo._builder", "vidzoo._hub", "vidzoo._weights", "vidzoo._convert"):
        assert not any(e == "vidzoo.models" or e.startswith("vidzoo.models.") for e in _edges(leaf)), leaf
    # _hub reads and writes files; building and loading models is above it
    assert not _edges("vidzoo._hub") & {"vidzoo._factory", "vidzoo._weights", "vidzoo._builder"}


def test_factory_imports_no_engine():
    """create_model reads run folders and training checkpoints through vidzoo._local, below the engine."""
    for module in ("vidzoo._factory", "vidzoo._local"):
        assert not any(e == "vidzoo.engine" or e.startswith("vidzoo.engine.") for e in _edges(module)), module


@pytest.mark.parametrize("module", ["_registry", "_hub", "_factory", "_local", "_weights", "_builder", "convert",
                                    "_validation"])
def test_no_import_hidden_in_a_function(module):
    """Loading flows one way: no vidzoo import is tucked into a function to dodge a cycle."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                assert not (isinstance(node, ast.ImportFrom) and node.level > 0), (module, fn.name, node.module)
                assert not (isinstance(node, ast.Import) and any(a.name.startswith("vidzoo") for a in node.names))
