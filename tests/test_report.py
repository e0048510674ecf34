"""``bbperf report``: notebooks run with their declared parameters, failures marked, HTML, index, results."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psycopg2
import pytest

from bbperf.cli import main
from bbperf.dataset_defaults import DEFAULT_DATASET
from bbperf.errors import ConfigError
from bbperf.humanize import format_ci, format_value
from bbperf.report import Report, indexpage, run_report
from bbperf.report.build import report_dataset
from bbperf.report.index import render_index
from bbperf.report.pages import show_table
from bbperf.report.runner import (
    SETUP_SECTION,
    applicable_parameters,
    check_parameter_names,
    discover_notebooks,
    render_html,
)
from bbperf.results import Results

NOTEBOOKS = Path(__file__).parent / "data" / "notebooks"


@pytest.fixture(scope="module")
def report_url(server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A database of its own: the report loads its dataset (tiny, seed 7) into it."""
    name = f"t_report_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(server.url("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield str(server.url(name))
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="module")
def report(report_url: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Both test notebooks: one records figures, one fails on purpose."""
    out = tmp_path_factory.mktemp("report") / "run-1"
    return run_report(
        notebooks_dir=NOTEBOOKS,
        out=out,
        seed=7,
        profile="tiny",
        scale=1.0,
        as_of="2026-11-01",
        parameters={"rounds": 4},
        database_url=report_url,
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
    assert good.parameters == {"profile": "tiny", "scale": 1.0, "seed": 7, "rounds": 4}
    executed = nbformat.read(str(good.ipynb), as_version=4)
    assert executed.metadata.papermill.parameters == good.parameters
    assert "profile=tiny scale=1.0 seed=7 rounds=4" in good.ipynb.read_text()


def test_results_json_has_figures_status_and_provenance(report: Report) -> None:
    document = json.loads(report.results_json.read_text())
    assert document["run_id"] == "run-1" and document["ok"] is False
    assert document["notebooks"]["fails"]["status"] == "failed"
    assert document["notebooks"]["ok_figures"]["html"] == "ok_figures.html"
    figures = {f["name"]: f for f in document["figures"]}
    assert set(figures) == {"select_1_median_ms", "rounds", "halved_speedup", "unused_indexes"}
    assert figures["rounds"]["value"] == 4
    assert len(figures["select_1_median_ms"]["samples"]) == 4
    halved = figures["halved_speedup"]
    assert halved["value"] == halved["ci_low"] == halved["ci_high"] == 2.0  # full precision
    assert halved["n"] == 4 and halved["significant"] is True and 0 < halved["p_value"] < 0.05
    assert document["dataset"]["profile"] == "tiny" and document["dataset"]["seed"] == 7
    assert document["notebooks"]["ok_figures"]["dataset"]["fingerprints"]
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
    assert prov["parameters"] == {
        "profile": "tiny",
        "scale": 1.0,
        "seed": 7,
        "as_of": "2026-11-01",
        "rounds": 4,
    }
    assert prov["started_at"] <= prov["finished_at"]


def test_index_links_notebooks_and_shows_headlines(report: Report) -> None:
    page = report.index_html.read_text()
    assert '<a href="ok_figures.html">ok_figures</a>' in page
    assert "FAILED" in page and "deliberate failure with seed 7" in page
    assert "round trip of SELECT 1" in page  # headline figure, by its description
    assert "rounds<" not in page  # not a headline
    headlines = page[page.index("<h2>Headline") : page.index("Left out as side effects")]
    assert "unused indexes" not in headlines  # a side effect of the run: named below, not shown
    assert "database shows): unused indexes (ok_figures)." in page
    assert "SELECT 1 answers in a round trip; 4 rounds." in page  # the notebook's verdict
    assert "<td>×2.00</td>".replace("<td>", '<td class="num">') in page
    assert "×2.00 – ×2.00" in page and "significant (p = 0.013)" in page
    fingerprint = indexpage.dataset_of(json.loads(report.results_json.read_text())["dataset"])
    assert fingerprint is not None and fingerprint.fingerprint
    assert page.count(fingerprint.fingerprint) == 1  # named once, nobody flagged
    assert "profile tiny, scale 1, seed 7, as of 2026-11-01" in page
    assert "Used another dataset" not in page
    log = (report.out_dir / "report.log").read_text().splitlines()
    assert log[0].startswith("fails\tFAILED")
    assert [line.split("\t")[0] for line in log if not line.startswith(" ")] == [
        "fails",
        "ok_figures",
    ]


def test_report_log_and_index_say_where_each_notebook_spent_its_time(report: Report) -> None:
    """Each ``##`` section of ok_figures gets the seconds papermill recorded for its cells."""
    good = report.runs[1]
    assert [s.heading for s in good.sections] == [SETUP_SECTION, "Round trips", "Figures"]
    assert all(s.seconds >= 0 for s in good.sections)
    assert 0 < sum(s.seconds for s in good.sections) <= good.duration_s
    log = (report.out_dir / "report.log").read_text()
    assert "s\tRound trips\n" in log and "s\tFigures\n" in log
    saved = json.loads(report.results_json.read_text())["notebooks"]["ok_figures"]["sections"]
    assert [s["heading"] for s in saved] == [SETUP_SECTION, "Round trips", "Figures"]
    page = report.index_html.read_text()
    assert "<td>Round trips</td>" in page and "went</summary>" in page


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
    report: Report, report_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the dataset the module's report loaded (tiny, seed 7): nothing to generate here."""
    common = ["--database-url", report_url, "report", "--notebooks-dir", str(NOTEBOOKS)]
    common += ["--profile", "tiny", "--seed", "7", "--no-progress", "--hide-code"]
    ok = [*common, "-p", "rounds=3", "--notebooks", "ok", "--format", "json"]
    assert main([*ok, "--out", str(tmp_path / "a")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True and summary["notebooks"][0]["name"] == "ok_figures"
    assert summary["notebooks"][0]["verdict"].startswith("SELECT 1 answers")
    assert main([*common, "--notebooks", "fails", "--out", str(tmp_path / "b")]) == 1
    captured = capsys.readouterr()
    assert "FAILED fails: ValueError" in captured.err and "0/1 notebooks ok" in captured.out
    assert main([*common, "-p", "database_url=postgresql://u:p@h/db"]) == 2
    assert main([*common, "-p", "rounds=3", "--notebooks", "fails"]) == 2  # fails has no rounds


def _document(**notebooks: Any) -> dict[str, Any]:
    dataset = {
        "profile": "default",
        "scale": 1.0,
        "seed": 42,
        "as_of": "2026-11-01",
        "fingerprints": {"appointments": {"rows": 1003586, "checksum": "5786"}},
    }
    figures = [
        {"notebook": name, **fig}
        for name, nb in notebooks.items()
        for saved in nb["results"]
        for fig in saved.get("figures", {}).values()
    ]
    return {
        "run_id": "sf1",
        "ok": True,
        "dataset": dataset,
        "provenance": {"bbperf": {"version": "0.1.0", "git": {"commit": "a" * 40, "dirty": False}}},
        "notebooks": {
            name: {
                "status": "ok",
                "error": None,
                "duration_s": 41.2,
                "ipynb": f"{name}.ipynb",
                "html": f"{name}.html",
                "chart": f"charts/{name}.png",
                "dataset": nb.get("dataset", dataset),
                "results": nb["results"],
            }
            for name, nb in notebooks.items()
        },
        "figures": figures,
    }


def test_index_page_verdicts_claims_cis_and_one_dataset() -> None:
    """Rendered from a document alone: the story's parts, in order, rounded for reading."""
    indexes = Results("01_index")
    indexes.add_comparison(
        "composite_median_speedup",
        compare_result(522.43, 480.12, 561.9, 1e-6),
        n=15,
        headline=True,
        description="median server-time speedup of the composite queries",
    )
    indexes.add("unused_indexes", 16, "indexes", headline=True, side_effect=True)
    indexes.set_verdict("14 of 16 seed indexes build; the composite queries run ×522 faster.")
    indexes.claim("indexes.orders_of_magnitude", "median ×522 over 8 queries", "confirmed")
    indexes.claim("cte.half_ms", "3.7 ms at SF 1", "refuted")
    other = {"profile": "tiny", "scale": 1.0, "seed": 42, "as_of": "2026-11-01"}
    page = render_index(
        _document(
            **{
                "01_index": {"results": [indexes.to_dict()]},
                "02_other": {"results": [], "dataset": other},
            }
        )
    )
    verdicts, claims, headlines, provenance = (
        page.index(f"<h2>{h}") for h in ("Verdicts", "The original", "Headline", "Provenance")
    )
    assert verdicts < claims < headlines < provenance
    assert "14 of 16 seed indexes build; the composite queries run ×522 faster." in page
    assert "No verdict recorded." in page  # 02_other recorded none
    assert '<img src="charts/01_index.png"' in page
    row = page[page.index("by orders of magnitude") :]
    assert row.index("median ×522 over 8 queries") < row.index('"v-confirmed">confirmed')
    assert '"v-refuted">refuted' in page and '"v-not-measured">not measured' in page
    catalogue = len(indexpage.load_claims())
    assert f"2 of {catalogue} claims of the original summary and its road map checked" in page
    assert '<td class="num">×522</td><td class="num">×480 – ×562</td>' in page
    assert "significant (p &lt; 0.001)" in page
    assert (
        page.count("unused indexes") == 1 and "database shows): unused indexes (01_index)." in page
    )
    expected = indexpage.fingerprint({"appointments": {"rows": 1003586, "checksum": "5786"}})
    assert page.count(f"<code>{expected}</code>") == 1
    assert page.count("profile default, scale 1, seed 42, as of 2026-11-01") == 1
    assert "Used another dataset: profile tiny, scale 1, seed 42" in page


def compare_result(speedup: float, low: float, high: float, p: float) -> Any:
    from bbperf.explain.timingstats import Comparison

    return Comparison(1.0, 1.0 / speedup, speedup, low, high, 0.95, p, 0.05, True)


def test_claim_ids_are_known_and_verdicts_checked() -> None:
    ids = [c["id"] for c in indexpage.load_claims()]
    assert len(ids) == len(set(ids)) >= 12
    with pytest.raises(ValueError, match="not one of"):
        Results("x").claim("cte.half_ms", "0.4 ms", "maybe")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (522.43, "x", "×522"),
        (1.4634, "x", "×1.46"),
        (0.48213, "ms", "0.482 ms"),
        (12345.6, "ms", "12.3 s"),
        (41_000_000, "bytes", "39.1 MiB"),
        (0.9342, "ratio", "93.4 %"),
        (0.99968, "ratio", "99.97 %"),
        (0.999951, "ratio", "> 99.99 %"),
        (1.0, "ratio", "100.0 %"),
        (1003586, "rows", "1,003,586 rows"),
        (1, "alerts", "1 alert"),
        (1, "indexes", "1 index"),
        (1, "ms", "1 ms"),
        (1.0, "s", "1.00 s"),
        (None, "ms", "none"),
    ],
)
def test_values_are_rounded_for_people(value: Any, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_ci_is_empty_without_an_interval() -> None:
    assert format_ci(None, 3.0, "ms") == ""
    assert format_ci(0.41, 0.552, "ms") == "0.410 ms – 0.552 ms"


def test_clean_table_hides_the_index_and_rounds_with_units() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {"query": ["a", "b"], "after_ms": [0.051234, 41.37], "speedup": [1329.5, 1.0]},
        index=[7, 8],
    )
    shown = show_table(frame)
    assert repr(shown).splitlines() == [
        "query  after_ms speedup",
        "    a 0.0512 ms  ×1,330",
        "    b   41.4 ms   ×1.00",
    ]
    assert "<th></th>" not in shown._repr_html_() and ">7<" not in shown._repr_html_()
    assert repr(show_table(frame.iloc[:0])) == "none"


def test_report_dataset_fills_from_loaded_then_defaults() -> None:
    loaded = {"profile": "default", "scale": 1.0, "seed": 42, "as_of": "2026-10-01"}
    assert report_dataset({"scale": 0.5}, loaded) == {**loaded, "scale": 0.5}
    assert report_dataset({}, None) == DEFAULT_DATASET
    assert report_dataset({"seed": 3}, None)["seed"] == 3


def test_provenance_dirty_ignores_rendered_reports(tmp_path: Path) -> None:
    import subprocess

    from bbperf.report.provenance import git_commit

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "index.html").write_text("old")
    (tmp_path / "code.py").write_text("x = 1")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (tmp_path / "reports" / "index.html").write_text("rewritten by a report")
    assert git_commit(tmp_path)["dirty"] is False  # type: ignore[index]
    (tmp_path / "code.py").write_text("x = 2")
    assert git_commit(tmp_path)["dirty"] is True  # type: ignore[index]


def _kernel_notebook(path: Path, *sources: str) -> Path:
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), path)
    return path


def test_kernels_are_shut_down_without_a_stray_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jupyter_client sends SIGINT before every shutdown; an idle kernel that catches it inside a
    message handler logs "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel" into a
    successful report. bbperf shuts finished kernels down without it; a cell that overruns its
    timeout is still reported and its kernel still stopped."""
    import time

    import psutil
    from jupyter_client.manager import KernelManager

    from bbperf.report.runner import execute_notebook

    signals: list[int] = []
    send = KernelManager._async_signal_kernel

    async def recorded(self: KernelManager, signum: int) -> None:
        signals.append(signum)
        await send(self, signum)

    monkeypatch.setattr(KernelManager, "_async_signal_kernel", recorded)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    done = execute_notebook(_kernel_notebook(tmp_path / "ok.ipynb", "x = 1"), tmp_path, {})
    assert done.ok and signals == []
    start = time.monotonic()
    slow = _kernel_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(60)")
    overran = execute_notebook(slow, tmp_path, {}, cell_timeout_s=2)
    assert overran.error is not None and "Timeout" in overran.error
    assert time.monotonic() - start < 30
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
