"""Every notebook's ``parameters`` cell: present, literal, and naming the one default dataset."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from bbperf.dataset_defaults import DEFAULT_DATASET
from tests.notebookfiles import code_cells, notebook_paths

NOTEBOOKS = notebook_paths()


def parameters(path: Path) -> dict[str, Any]:
    """The names the notebook's one ``parameters`` cell assigns, with their literal values (papermill
    injects its values after this cell, so these are what a notebook run on its own uses)."""
    cells = [c for c in code_cells(path) if "parameters" in c.tags]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged parameters, want 1"
    values: dict[str, Any] = {}
    for statement in ast.parse(cells[0].source).body:
        assert isinstance(statement, ast.Assign), f"{path.name}: not an assignment: {statement}"
        (target,) = statement.targets
        assert isinstance(target, ast.Name)
        values[target.id] = ast.literal_eval(statement.value)
    return values


def test_the_project_has_its_nine_notebooks() -> None:
    assert len(NOTEBOOKS) == 10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_declares_the_default_dataset(path: Path) -> None:
    declared = parameters(path)
    assert {k: declared.get(k) for k in DEFAULT_DATASET} == dict(DEFAULT_DATASET)


def test_a_differing_value_is_caught(tmp_path: Path) -> None:
    source = NOTEBOOKS[0].read_text()
    changed = tmp_path / NOTEBOOKS[0].name
    changed.write_text(source.replace("seed = 42 ", "seed = 43 ", 1))
    assert parameters(changed)["seed"] == 43
