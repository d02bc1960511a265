"""The package's import graph: no cycles, and only the command line (``systolix.cli`` and the
``python -m systolix`` entry point) may import ``systolix.cli`` or ``argparse``.

The graph is read from the source with :mod:`ast`, so an import hidden inside a function counts
as much as one at the top of a module: the layering must hold for both.
"""

import ast
from pathlib import Path

import pytest

import systolix

pytestmark = pytest.mark.model

PACKAGE = Path(systolix.__file__).parent
#: Modules allowed to import the command line: the command line itself and the entry point.
FRONT_ENDS = ("systolix.cli", "systolix.__main__")


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name, path, modules):
    """``(imported module, line)`` for every import in the module ``name``, resolved to
    ``systolix`` modules where it names one (``from . import x`` is the submodule ``x`` if
    there is one, else the package); other imports are returned by their top-level name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in modules else target, node.lineno))
    return found


def import_graph():
    """``{module: {imported systolix module: first line}}`` and the external imports."""
    modules = _modules()
    graph, external = {}, {}
    for name, path in modules.items():
        graph[name] = {}
        for target, line in _imports(name, path, modules):
            if target in modules:
                graph[name].setdefault(target, line)
            else:
                external.setdefault(name, {}).setdefault(target.split(".")[0], line)
    return graph, external


def cycles(graph):
    """The strongly connected components with more than one module (or a self-import),
    each as a list of module names (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _in(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def test_the_graph_is_read_correctly():
    """The reader must see imports at module level, inside functions and relative ones,
    or the two tests below could not fail."""
    graph, external = import_graph()
    assert "systolix.config" in graph["systolix"]                       # from .config import
    assert "systolix.errors" in graph["systolix.emit"]
    assert "systolix.cli.app" in graph["systolix.cli"]                  # from .app import main
    assert any(_in(t, "systolix.cli") for t in graph["systolix.__main__"])
    assert "numpy" in external["systolix.model.golden"]
    assert len(graph) > 40


def test_no_import_cycles():
    found = cycles(import_graph()[0])
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_only_the_command_line_imports_cli_or_argparse():
    graph, external = import_graph()
    bad = []
    for name, targets in graph.items():
        if any(_in(name, front) for front in FRONT_ENDS):
            continue
        bad += [f"{name}:{line} imports {t}" for t, line in targets.items()
                if _in(t, "systolix.cli")]
        if "argparse" in external.get(name, {}):
            bad.append(f"{name}:{external[name]['argparse']} imports argparse")
    assert not bad, "\n".join(bad)


def test_cycle_finder_finds_cycles():
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [
        ["a", "b", "c"]]
    assert cycles({"a": {"a": 1}}) == [["a"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
