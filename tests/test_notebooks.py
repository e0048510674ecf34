"""The notebooks as a regression gate: papermill runs each at the tiny profile, then nbval re-runs the
executed copies and compares their stable outputs (row counts, plan shapes, drift, fingerprints)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import psycopg2
import pytest

from bbperf.report import Report, run_report

pytestmark = pytest.mark.notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = Path(__file__).parent / "nbval_sanitize.cfg"
# Small everything: each notebook receives only the names its parameters cell declares.
TINY = {
    "profile": "tiny",
    "scale": 1.0,
    "seed": 42,
    "as_of": "2026-11-01",
    "rounds": 5,
    "warmup": 1,
    "concurrency": [1, 4],
    "duration_s": 0.25,
}


@pytest.fixture(scope="module")
def new_database(server) -> Iterator[Callable[[], str]]:  # type: ignore[no-untyped-def]
    """Make empty databases on the embedded server (dropped after the module)."""
    conn = psycopg2.connect(server.url("postgres"))
    conn.autocommit = True
    names: list[str] = []

    def make() -> str:
        names.append(f"t_nb_{uuid.uuid4().hex[:10]}")
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{names[-1]}"')
        return str(server.url(names[-1]))

    yield make
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="module")
def notebook_url(new_database: Callable[[], str]) -> str:
    """The database papermill runs the notebooks in (they load the tiny dataset into it)."""
    return new_database()


@pytest.fixture(scope="module")
def rerun_url(new_database: Callable[[], str]) -> str:
    """A second, empty database for nbval: the re-run starts from the same state as the first run."""
    return new_database()


@pytest.fixture(scope="module")
def executed(notebook_url: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    out = tmp_path_factory.mktemp("notebooks") / "tiny"
    return run_report(
        notebooks_dir=NOTEBOOKS,
        out=out,
        parameters=TINY,
        database_url=notebook_url,
        progress=False,
        cell_timeout_s=300,
    )


def nbval(paths: list[Path], database_url: str) -> subprocess.CompletedProcess[str]:
    """``pytest --nbval`` on executed notebooks in a child process, with the sanitize file.

    Returns the completed process with nbval's colour codes stripped from stdout.
    """
    env = {**os.environ, "BBPERF_DATABASE_URL": database_url, "BBPERF_PROGRESS": "0"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            "--nbval-sanitize-with",
            str(SANITIZE),
            "--nbval-cell-timeout",
            "300",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(paths[0].parent),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=paths[0].parent,
        timeout=600,
    )
    result.stdout = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    return result


def test_every_notebook_runs_at_tiny_and_records_figures(executed: Report) -> None:
    assert [r.name for r in executed.runs] == sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert executed.ok, [(r.name, r.error) for r in executed.failures]
    for run in executed.runs:
        assert run.results and run.results[0]["figures"], f"{run.name} saved no figures"


def test_stable_outputs_match_under_nbval(executed: Report, rerun_url: str) -> None:
    result = nbval([r.ipynb for r in executed.runs], rerun_url)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout


def test_a_changed_stable_output_fails_nbval(
    executed: Report, rerun_url: str, tmp_path: Path
) -> None:
    """Edit the row counts the maintenance notebook printed: nbval must notice."""
    run = next(r for r in executed.runs if r.name == "04_health_maintenance")
    nb = nbformat.read(str(run.ipynb), as_version=4)
    cell = next(
        c
        for c in nb.cells
        if c.cell_type == "code" and "dataset.rows" in c.source and "pd.Series" in c.source
    )
    assert "nbval-ignore-output" not in cell.metadata.get("tags", [])
    data = cell.outputs[0]["data"]
    assert "appointments" in data["text/plain"]
    for mime in ("text/plain", "text/html"):
        data[mime] = data[mime].replace("appointments", "appointmentz")
    changed = tmp_path / run.ipynb.name
    nbformat.write(nb, str(changed))
    result = nbval([changed], rerun_url)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "Cell outputs differ" in result.stdout and "ppointmentz</th>" in result.stdout
    assert 'pd.Series(dataset.rows, name="rows")' in result.stdout and "1 failed" in result.stdout
