"""The project's notebooks read as files (no kernel): their code cells, each with its tags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@dataclass(frozen=True)
class CodeCell:
    notebook: str
    tags: tuple[str, ...]
    source: str


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def code_cells(path: Path) -> list[CodeCell]:
    """Every code cell of the notebook at ``path``, in order."""
    notebook = nbformat.read(path, as_version=4)
    return [
        CodeCell(path.name, tuple(cell.metadata.get("tags", ())), cell.source)
        for cell in notebook.cells
        if cell.cell_type == "code"
    ]
