"""``bbperf report``: notebooks run with their declared parameters, failures marked, HTML, index, results."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from bbperf.cli import main
from bbperf.errors import ConfigError
from bbperf.report import Report, run_report
from bbperf.report.runner import (
    applicable_parameters,
    check_parameter_names,
    discover_notebooks,
    render_html,
)

NOTEBOOKS = Path(__file__).parent / "data" / "notebooks"


@pytest.fixture(scope="module")
def report(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Both test notebooks: one records figures, one fails on purpose."""
    out = tmp_path_factory.mktemp("report") / "run-1"
    return run_report(
        notebooks_dir=NOTEBOOKS,
        out=out,
        seed=7,
        profile="tiny",
        parameters={"rounds": 4},
        progress=False,
    )


def test_failure_is_marked_and_others_still_run(report: Report) -> None:
    assert not report.ok
    assert [r.name for r in report.runs] == ["fails", "ok_figures"]
    failed, good = report.runs
    assert failed.error == "ValueError: deliberate failure with seed 7"
    assert good.ok and good.error is None
    assert failed.html is not None and failed.html.exists()  # what ran is still rendered


def test_only_declared_parameters_reach_a_notebook(report: Report) -> None:
    failed, good = report.runs
    assert failed.parameters == {"seed": 7}
    assert good.parameters == {"profile": "tiny", "seed": 7, "rounds": 4}
    executed = nbformat.read(str(good.ipynb), as_version=4)
    assert executed.metadata.papermill.parameters == {"profile": "tiny", "seed": 7, "rounds": 4}
    assert "profile=tiny scale=1.0 seed=7 rounds=4" in good.ipynb.read_text()


def test_results_json_has_figures_status_and_provenance(report: Report) -> None:
    document = json.loads(report.results_json.read_text())
    assert document["run_id"] == "run-1" and document["ok"] is False
    assert document["notebooks"]["fails"]["status"] == "failed"
    assert document["notebooks"]["ok_figures"]["html"] == "ok_figures.html"
    figures = {f["name"]: f for f in document["figures"]}
    assert set(figures) == {"select_1_median_ms", "rounds"}
    assert figures["rounds"]["value"] == 4
    assert len(figures["select_1_median_ms"]["samples"]) == 4
    prov = document["provenance"]
    assert prov["postgresql"]["server_version_num"] >= 180000
    assert set(prov["postgresql"]["settings"]) >= {
        "shared_buffers",
        "work_mem",
        "jit",
        "max_parallel_workers_per_gather",
    }
    assert prov["machine"]["cpu_count"] >= 1 and prov["machine"]["memory_bytes"] > 0
    assert len(prov["bbperf"]["git"]["commit"]) == 40
    assert prov["parameters"] == {"profile": "tiny", "seed": 7, "rounds": 4}
    assert prov["started_at"] <= prov["finished_at"]


def test_index_links_notebooks_and_shows_headlines(report: Report) -> None:
    page = report.index_html.read_text()
    assert '<a href="ok_figures.html">ok_figures</a>' in page
    assert "FAILED" in page and "deliberate failure with seed 7" in page
    assert "select_1_median_ms" in page  # headline figure
    assert ">rounds<" not in page  # not a headline
    log = (report.out_dir / "report.log").read_text().splitlines()
    assert log[0].startswith("fails\tFAILED") and log[1].startswith("ok_figures\tok")


def test_code_hidden_or_collapsible(report: Report, tmp_path: Path) -> None:
    good = report.runs[1]
    shown = render_html(good.ipynb, tmp_path / "show.html", "show").read_text()
    hidden = render_html(good.ipynb, tmp_path / "hide.html", "hide").read_text()
    folded = render_html(good.ipynb, tmp_path / "fold.html", "collapse").read_text()
    assert "perf_counter" in shown and "perf_counter" not in hidden
    assert "profile=tiny" in hidden  # outputs stay
    code_cells = [
        c for c in nbformat.read(str(good.ipynb), as_version=4).cells if c.cell_type == "code"
    ]
    assert folded.count('<details class="bbperf-code">') == len(code_cells) == 5  # with papermill's


def test_discover_by_name_or_prefix() -> None:
    assert [p.stem for p in discover_notebooks(NOTEBOOKS)] == ["fails", "ok_figures"]
    assert [p.stem for p in discover_notebooks(NOTEBOOKS, ["ok", "fails.ipynb"])] == [
        "ok_figures",
        "fails",
    ]
    with pytest.raises(ConfigError, match="matches no notebook"):
        discover_notebooks(NOTEBOOKS, ["nope"])
    with pytest.raises(ConfigError, match="does not exist"):
        discover_notebooks(NOTEBOOKS / "missing")


def test_applicable_parameters_skip_undeclared_and_none() -> None:
    params = {"profile": "tiny", "seed": None, "rounds": 3, "unknown": 1}
    assert applicable_parameters(NOTEBOOKS / "ok_figures.ipynb", params) == {
        "profile": "tiny",
        "rounds": 3,
    }


@pytest.mark.parametrize("name", ["database_url", "DSN", "pg_password", "api_secret"])
def test_connection_settings_are_never_parameters(name: str) -> None:
    with pytest.raises(ConfigError, match="BBPERF_DATABASE_URL"):
        check_parameter_names({name: "x"})


def test_cli_report_exit_codes(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = [
        "report",
        "--notebooks-dir",
        str(NOTEBOOKS),
        "-p",
        "seed=3",
        "--no-progress",
        "--hide-code",
    ]
    assert main([*common, "--notebooks", "ok", "--out", str(tmp_path / "a")]) == 0
    assert "1/1 notebooks ok" in capsys.readouterr().out
    assert main([*common, "--notebooks", "fails", "--out", str(tmp_path / "b")]) == 1
    assert "FAILED fails: ValueError" in capsys.readouterr().err
    assert main([*common, "-p", "database_url=postgresql://u:p@h/db"]) == 2
