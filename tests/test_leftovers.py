"""What an interrupted experiment leaves, found and removed: the schema ends as the dataset made it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bbperf import partition
from bbperf.cache.invalidation import install_triggers
from bbperf.cli import main
from bbperf.generate.fingerprint import fingerprints
from bbperf.leftovers import leftovers, tidy
from bbperf.metrics.rollup import apply_rollup
from bbperf.metrics.variants import create_metrics_view


def _prints(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.begin() as conn:
        return fingerprints(conn, "bbperf")


def test_tidy_removes_every_leftover_and_keeps_the_rows(
    tiny_copy: Engine, tiny_copy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _prints(tiny_copy)
    assert leftovers(tiny_copy) == []
    partition.apply(tiny_copy, "month")
    apply_rollup(tiny_copy)
    create_metrics_view(tiny_copy, datetime(2026, 11, 1, tzinfo=UTC))
    install_triggers(tiny_copy)
    found = leftovers(tiny_copy)
    assert len(found) == 4 and "partitioned appointments/payments" in found
    assert main(["--database-url", tiny_copy_url, "schema", "tidy", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would remove: materialized view")
    assert leftovers(tiny_copy) == found  # a dry run changes nothing
    assert tidy(tiny_copy) == found
    assert leftovers(tiny_copy) == []
    assert _prints(tiny_copy) == before
    assert main(["--database-url", tiny_copy_url, "schema", "tidy"]) == 0
    assert capsys.readouterr().out.strip() == "nothing left by an experiment"


def test_report_tidies_after_a_notebook_fails_half_way(
    tiny_copy: Engine, tiny_copy_url: str, tmp_path: Path
) -> None:
    import nbformat

    from bbperf.report.build import run_report

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    parameters = nbformat.v4.new_code_cell('as_of = "2026-11-01"')
    parameters.metadata["tags"] = ["parameters"]
    crash = nbformat.v4.new_code_cell(
        "from datetime import datetime, UTC\n"
        "from bbperf.metrics.variants import create_metrics_view\n"
        "from bbperf.target import connect\n"
        "create_metrics_view(connect(), datetime(2026, 11, 1, tzinfo=UTC))\n"
        "raise RuntimeError('half-way')"
    )
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    notebook = nbformat.v4.new_notebook(cells=[parameters, crash], metadata=kernel)
    nbformat.write(notebook, notebooks / "crash.ipynb")
    report = run_report(
        notebooks_dir=notebooks, out=tmp_path / "out", database_url=tiny_copy_url, progress=False
    )
    (run,) = report.runs
    assert (
        run.error
        == "RuntimeError: half-way; removed what it left: materialized view six_figure_metrics_mv"
    )
    assert leftovers(tiny_copy) == []


def test_a_set_left_by_an_interrupted_index_benchmark_is_a_leftover(
    tiny_copy: Engine, tiny_copy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bbperf.indexes import apply, drop, load_set, status
    from bbperf.indexes.index_set_timing import run_benchmark

    seed = load_set("seed")
    apply(tiny_copy, seed)  # a set applied on purpose (notebook 02 leaves one) is no leftover
    assert leftovers(tiny_copy) == []
    # Notebook 01 measures, applies the set, measures again and drops it in a later cell: stopping
    # in between leaves the set applied.
    run_benchmark(tiny_copy, seed, [], advisor=False)
    expected = "index set seed left applied by the index benchmark (notebook 01)"
    assert leftovers(tiny_copy) == [expected]
    assert main(["--database-url", tiny_copy_url, "schema", "tidy", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == f"would remove: {expected}"
    assert main(["--database-url", tiny_copy_url, "schema", "tidy"]) == 0
    assert expected in capsys.readouterr().out
    assert leftovers(tiny_copy) == []
    assert not status(tiny_copy, seed).exists.any()
    # Run to its end, the benchmark's own drop clears the mark.
    run_benchmark(tiny_copy, seed, [], advisor=False)
    drop(tiny_copy, seed)
    assert leftovers(tiny_copy) == []


def test_a_load_refuses_while_a_leftover_it_would_not_replace_is_in_place(
    tiny_copy: Engine,
) -> None:
    from bbperf.errors import DataError
    from bbperf.generate import dataset_info, generate
    from bbperf.leftovers import blocking
    from bbperf.metrics.rollup import drop_rollup

    info = dataset_info(tiny_copy)
    assert info is not None and blocking(tiny_copy) == []
    apply_rollup(tiny_copy)
    (found,) = blocking(tiny_copy)
    assert found.startswith("rollup (") and found.endswith("(`bbperf rollup drop`)")
    # bbperf.leftovers registered its guard on import: generate (data layer) asks bbperf.loadguards.
    with pytest.raises(DataError, match="remove them first"):
        generate(tiny_copy, "tiny", 1.0, 7, info["as_of"], progress=False)
    assert dataset_info(tiny_copy) == info
    drop_rollup(tiny_copy)
    assert blocking(tiny_copy) == []


FRONT_DOOR_LOAD = """
import os, sys
import bbperf
from bbperf.errors import DataError
from bbperf.target import make_engine

assert "bbperf.leftovers" not in sys.modules, "imported before the front door's ensure_dataset"
from bbperf import ensure_dataset

engine = make_engine(os.environ["FRONT_DOOR_URL"], echo_pool=False)
try:
    ensure_dataset(engine, "tiny", 1, 7, os.environ["FRONT_DOOR_AS_OF"])
except DataError as exc:
    print(exc)
"""


def test_a_notebook_load_through_the_front_door_refuses_under_a_rollup(
    tiny_copy: Engine, tiny_copy_url: str
) -> None:
    """A notebook imports ``ensure_dataset`` from ``bbperf`` and nothing else of bbperf's: the
    front door registers the load guards first, in a fresh interpreter as in a kernel."""
    from bbperf.generate import dataset_info
    from bbperf.metrics.rollup import drop_rollup

    info = dataset_info(tiny_copy)
    assert info is not None
    apply_rollup(tiny_copy)
    env = {**os.environ, "FRONT_DOOR_URL": tiny_copy_url, "FRONT_DOOR_AS_OF": info["as_of"]}
    out = subprocess.run(
        [sys.executable, "-c", FRONT_DOOR_LOAD], env=env, capture_output=True, text=True, check=True
    )
    assert "remove them first" in out.stdout and "`bbperf rollup drop`" in out.stdout
    assert dataset_info(tiny_copy) == info
    drop_rollup(tiny_copy)
