"""The packages' lazy public faces: importing them loads no analysis library, every name resolves,
and the front door ``bbperf`` exports exactly what the notebooks import from it."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys

import pytest

import bbperf
from tests.notebookfiles import code_cells, notebook_paths

PACKAGES = ("bbperf", "bbperf.pool", "bbperf.topology", "bbperf.cache")
# Exported for a caller other than a notebook's import line: IPython's ``%load_ext bbperf``.
NOT_FOR_NOTEBOOKS = {"__version__", "load_ipython_extension"}


def bbperf_imports() -> list[tuple[str, str, str]]:
    """(notebook, module, name) for every ``from bbperf... import name`` in a notebook's code."""
    found = []
    for path in notebook_paths():
        for cell in code_cells(path):
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bbperf"):
                    found += [(path.name, node.module or "", a.name) for a in node.names]
                elif isinstance(node, ast.Import):
                    found += [(path.name, a.name, "") for a in node.names if "bbperf" in a.name]
    return found


def is_subpackage(name: str) -> bool:
    return importlib.util.find_spec(f"bbperf.{name}") is not None


def test_importing_the_packages_loads_no_pandas() -> None:
    code = f"import sys; import {', '.join(PACKAGES)}; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_and_unknown_names_raise(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert dir(module) == sorted(module.__all__)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = module.no_such_name


def test_notebooks_import_bbperf_through_the_front_door_only() -> None:
    deep = sorted({f"{nb}: {module}" for nb, module, _ in bbperf_imports() if module != "bbperf"})
    assert deep == []


def test_every_name_a_notebook_imports_is_exported_and_every_export_is_used() -> None:
    imported = {name for _, module, name in bbperf_imports() if module == "bbperf"}
    unexported = sorted(n for n in imported if n not in bbperf.__all__ and not is_subpackage(n))
    assert unexported == []
    unused = sorted(set(bbperf.__all__) - imported - NOT_FOR_NOTEBOOKS)
    assert unused == []


def test_no_export_takes_a_subpackage_name() -> None:
    """``import bbperf.partition`` would replace an export of that name with the module."""
    assert [n for n in bbperf.__all__ if n != "__version__" and is_subpackage(n)] == []


def test_a_renamed_export_and_a_submodule_export_resolve() -> None:
    from bbperf.indexes import apply
    from bbperf.indexes import indexstory as story

    assert bbperf.apply_set is apply
    assert bbperf.indexstory is story
