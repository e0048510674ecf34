"""What an interrupted experiment leaves, found and removed: the schema ends as the dataset made it."""

from __future__ import annotations

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
    from bbperf.indexes.benchmark import run_benchmark

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
