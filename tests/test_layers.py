"""The import graph of bbperf, read from the code's AST: every bbperf → bbperf import sits at the top
of its module (none inside a function), and there is no circle among bbperf modules (issue 22)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bbperf"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    node: ast.AST, in_function: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import under ``node`` with whether it runs inside a function; ``if TYPE_CHECKING:``
    bodies are skipped (their ``else`` is not)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                yield from _imports(ast.Module(body=[stmt], type_ignores=[]), in_function)
        else:
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from _imports(child, inner)


class Graph:
    """bbperf → bbperf imports, each edge marked module-level or function-level."""

    def __init__(self, root: Path = PACKAGE) -> None:
        self.trees = {
            module_name(p, root): ast.parse(p.read_text(), str(p)) for p in root.rglob("*.py")
        }
        self.packages = {module_name(p.parent, root) for p in root.rglob("__init__.py")}
        self.exports = {pkg: self._exports_of(pkg) for pkg in self.packages}
        self.edges: dict[str, dict[str, bool]] = {m: {} for m in self.trees}
        for module, tree in self.trees.items():
            for node, in_function in _imports(tree):
                for target in self._targets(module, node):
                    if target != module and target in self.trees:
                        at_module = self.edges[module].get(target, False)
                        self.edges[module][target] = at_module or not in_function

    def _absolute(self, module: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = module if module in self.packages else module.rpartition(".")[0]
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        return f"{base}.{node.module}" if node.module else base

    def _exports_of(self, package: str) -> dict[str, tuple[str, str]]:
        """Name → (defining module, its name there) for what a package's ``__init__`` hands on,
        lazily (an ``_EXPORTS`` mapping for ``bbperf.lazy``, ``module`` or ``module:attribute``)
        or by importing it from a submodule."""
        found: dict[str, tuple[str, str]] = {}
        for node in self.trees[package].body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                for key, value in zip(node.value.keys, node.value.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                        target, _, attribute = str(value.value).partition(":")
                        target = package + target if target[0] == "." else target
                        found[str(key.value)] = (target, attribute or str(key.value))
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(package, node)
                if source.startswith(package + "."):
                    for alias in node.names:
                        found[alias.asname or alias.name] = (source, alias.name)
        return found

    def resolve(self, module: str, name: str) -> str:
        """The module ``from module import name`` really depends on."""
        if f"{module}.{name}" in self.trees:
            return f"{module}.{name}"
        target, attribute = self.exports.get(module, {}).get(name, (module, name))
        if target == module:
            return module
        return self.resolve(target, attribute) if target in self.packages else target

    def _targets(self, module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names if a.name.split(".")[0] == "bbperf"]
        source = self._absolute(module, node)
        if source.split(".")[0] != "bbperf":
            return []
        return [self.resolve(source, alias.name) for alias in node.names]

    def cycles(self, *, function_level: bool) -> set[frozenset[str]]:
        """Strongly connected components of more than one module (Tarjan)."""
        succ = {
            m: [t for t, at_module in out.items() if at_module or function_level]
            for m, out in self.edges.items()
        }
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: set[frozenset[str]] = set()

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in succ[v]:
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                component = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.add(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))

        for v in sorted(succ):
            if v not in index:
                visit(v)
        return found

    def function_level_imports(self) -> list[str]:
        """``module:line`` of every bbperf import inside a function body."""
        return [
            f"{module}:{node.lineno}"
            for module, tree in self.trees.items()
            for node, in_function in _imports(tree)
            if in_function and self._targets(module, node)
        ]


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph()


def test_no_module_level_circles(graph: Graph) -> None:
    assert graph.cycles(function_level=False) == set()


def test_no_circles_counting_imports_inside_functions(graph: Graph) -> None:
    assert graph.cycles(function_level=True) == set()


def test_no_bbperf_import_inside_a_function(graph: Graph) -> None:
    """Imports between bbperf modules go at the top (heavy third-party libraries may come late)."""
    assert graph.function_level_imports() == []


def test_a_function_level_import_is_seen() -> None:
    """The check above can fail: a function-level bbperf import in a module is listed."""
    g = Graph.__new__(Graph)
    g.trees = {
        "bbperf.a": ast.parse("def f():\n    from bbperf.b import x\n"),
        "bbperf.b": ast.parse("x = 1\n"),
    }
    g.packages, g.exports = set(), {}
    assert g.function_level_imports() == ["bbperf.a:2"]


def test_a_circle_through_a_function_level_import_is_seen() -> None:
    g = Graph.__new__(Graph)
    g.edges = {"bbperf.a": {"bbperf.b": True}, "bbperf.b": {"bbperf.a": False}}
    assert g.cycles(function_level=False) == set()
    assert g.cycles(function_level=True) == {frozenset({"bbperf.a", "bbperf.b"})}


def test_lazy_exports_resolve_to_the_defining_module(graph: Graph) -> None:
    assert graph.resolve("bbperf", "connect") == "bbperf.target"
    assert graph.resolve("bbperf", "apply_set") == "bbperf.indexes.apply"
    assert graph.resolve("bbperf", "indexstory") == "bbperf.indexes.indexstory"
    assert graph.resolve("bbperf.generate", "generate") == "bbperf.generate.load"
    assert graph.resolve("bbperf.workload", "WorkloadQuery") == "bbperf.workload.builtin"
    assert graph.resolve("bbperf.explain", "plan") == "bbperf.explain.plan"


def test_type_checking_imports_are_not_edges() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bbperf.a import x\n"
        "def f():\n    from bbperf.b import y\n"
        "from bbperf.c import z\n"
    )
    seen = [(n.module, inside) for n, inside in _imports(tree) if isinstance(n, ast.ImportFrom)]
    assert seen == [("typing", False), ("bbperf.b", True), ("bbperf.c", False)]


if __name__ == "__main__":
    g = Graph()
    for level in (False, True):
        print("counting function-level imports" if level else "module level")
        for c in sorted(g.cycles(function_level=level), key=len):
            print(f"  {len(c)}: {sorted(c)}")
    print("function-level bbperf imports:", len(g.function_level_imports()))
