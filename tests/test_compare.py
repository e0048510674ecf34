"""The regression gate: figure verdicts, thresholds, significance, provenance warnings, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bbperf.cli import main
from bbperf.errors import ConfigError
from bbperf.report.compare import compare_results, figure_change, parse_threshold, relative_change


def fig(
    name: str,
    value: Any,
    better: str | None = "lower",
    samples: list[float] | None = None,
    unit: str = "ms",
) -> dict[str, Any]:
    return {
        "notebook": "nb",
        "name": name,
        "value": value,
        "unit": unit,
        "better": better,
        "samples": samples,
        "headline": True,
        "description": "",
    }


def doc(
    *figures: dict[str, Any], server: int = 180001, scale: float = 0.01, cpus: int = 2
) -> dict[str, Any]:
    return {
        "format": 1,
        "run_id": "r",
        "ok": True,
        "notebooks": {},
        "provenance": {
            "postgresql": {"server_version_num": server, "settings": {"work_mem": "4MB"}},
            "machine": {"node": "m", "platform": "Linux", "cpu_count": cpus, "memory_bytes": 1},
            "dataset": {"profile": "tiny", "scale": scale, "seed": 42},
            "parameters": {},
        },
        "figures": list(figures),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10%", 0.10), ("0.1", 0.10), ("10", 0.10), ("2.5%", 0.025), (0.2, 0.2), ("0", 0.0)],
)
def test_parse_threshold(text: str | float, expected: float) -> None:
    assert parse_threshold(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["ten", "-5%", "nan", ""])
def test_parse_threshold_rejects(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_threshold(bad)


def test_relative_change() -> None:
    assert relative_change(10, 12) == pytest.approx(0.2)
    assert relative_change(-10, -5) == pytest.approx(0.5)
    assert relative_change(0, 0) == 0
    assert relative_change(0, 3) == float("inf")


@pytest.mark.parametrize(
    ("better", "old", "new", "verdict"),
    [
        ("lower", 10.0, 12.0, "regression"),
        ("lower", 10.0, 10.5, "unchanged"),
        ("lower", 10.0, 8.0, "improvement"),
        ("higher", 100, 80, "regression"),
        ("higher", 100, 130, "improvement"),
        (None, 100, 130, "changed"),
        (None, 100, 105, "unchanged"),
    ],
)
def test_verdict_without_samples_rests_on_threshold(
    better: str | None, old: float, new: float, verdict: str
) -> None:
    change = figure_change("nb", fig("x", old, better), fig("x", new, better), 0.10)
    assert change.verdict == verdict
    assert change.significant is None
    if better:
        assert change.method == "threshold only (no samples)"


def test_non_numeric_figures_compare_by_equality() -> None:
    same = figure_change("nb", fig("fp", "abc", None), fig("fp", "abc", None), 0.1)
    other = figure_change("nb", fig("fp", "abc", None), fig("fp", "abd", None), 0.1)
    assert (same.verdict, other.verdict) == ("unchanged", "changed")


def test_new_and_removed_figures() -> None:
    result = compare_results(
        doc(fig("a", 1.0), fig("gone", 2.0)), doc(fig("a", 1.0), fig("added", 3.0))
    )
    verdicts = {c.figure: c.verdict for c in result.changes}
    assert verdicts == {"a": "unchanged", "gone": "removed", "added": "new"}
    assert not result.regressions


def test_noisy_samples_are_not_a_regression() -> None:
    """Medians 20 % apart, but the samples overlap completely: noise, not a regression."""
    old = [1.0, 5.0, 2.0, 4.0, 3.0, 1.5, 4.5, 2.5]
    new = [1.1, 5.2, 2.2, 4.1, 3.6, 1.4, 4.7, 2.6]
    change = figure_change("nb", fig("t", 3.0, samples=old), fig("t", 3.6, samples=new), 0.10)
    assert change.significant is False
    assert change.verdict == "noise"
    assert change.method.startswith("stats.compare")


def test_clear_slowdown_with_samples_is_a_regression() -> None:
    old = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 1.00, 1.02] * 3
    new = [x * 1.5 for x in old]
    change = figure_change("nb", fig("t", 1.0, samples=old), fig("t", 1.5, samples=new), 0.10)
    assert change.significant is True
    assert change.verdict == "regression"
    faster = figure_change("nb", fig("t", 1.5, samples=new), fig("t", 1.0, samples=old), 0.10)
    assert faster.verdict == "improvement"


def test_provenance_warnings_name_what_differs() -> None:
    result = compare_results(
        doc(fig("a", 1.0)), doc(fig("a", 1.0), server=150010, scale=0.1, cpus=8)
    )
    text = "\n".join(result.warnings)
    assert "PostgreSQL version differs: 180001 (old) vs 150010 (new)" in text
    assert "dataset scale differs" in text
    assert "CPU count differs" in text
    assert compare_results(doc(fig("a", 1.0)), doc(fig("a", 1.0))).warnings == []


def test_notebook_parameters_that_differ_are_named() -> None:
    old, new = doc(fig("a", 1.0)), doc(fig("a", 1.0))
    old["notebooks"] = {"01": {"results": [{"parameters": {"profile": "tiny", "scale": 1.0}}]}}
    new["notebooks"] = {"01": {"results": [{"parameters": {"profile": "default", "scale": 1.0}}]}}
    assert compare_results(old, new).warnings == [
        "01 ran with different parameters: {'profile': 'tiny', 'scale': 1.0} (old) vs "
        "{'profile': 'default', 'scale': 1.0} (new)"
    ]


def test_threshold_only_verdicts_are_flagged() -> None:
    result = compare_results(doc(fig("a", 1.0)), doc(fig("a", 2.0)))
    assert len(result.regressions) == 1
    assert any("threshold alone" in w for w in result.warnings)


def write(path: Path, document: dict[str, Any]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(document))
    return path / "results.json"


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(tmp_path / "old", doc(fig("latency", 10.0), fig("rows", 5, None, unit="rows")))
    slower = write(tmp_path / "slow", doc(fig("latency", 12.0), fig("rows", 5, None, unit="rows")))
    assert main(["compare", str(base), str(slower)]) == 1
    out = capsys.readouterr().out
    assert "regression" in out and "+20.0%" in out and "1 regression beyond 10%" in out
    assert main(["compare", str(base), str(slower), "--threshold", "25%"]) == 0
    assert main(["compare", str(tmp_path / "old"), str(base)]) == 0  # a directory works too


def test_cli_rejects_missing_or_foreign_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    assert main(["compare", str(tmp_path / "nope.json"), str(other)]) == 2
    assert "no results file" in capsys.readouterr().err
    assert main(["compare", str(other), str(other)]) == 2
    assert "not a bbperf results.json" in capsys.readouterr().err
