"""Plans you can see and paste: the plan chart, ``Plan.save`` for PEV2, and ``bbperf explain`` /
``bbperf advise`` reading SQL from -f FILE or stdin and plans from --from-file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bbperf.cli import main
from bbperf.explain.pev2 import pev2_document
from bbperf.explain.plan import parse_plan

PAIRS = Path(__file__).parent / "data" / "plans" / "text"


def test_chart_highlights_the_worst_node_and_marks_misestimates() -> None:
    import matplotlib

    matplotlib.use("Agg")
    plan = parse_plan((PAIRS / "pg15_cte_two_scans.txt").read_text())
    ax = plan.chart(top=5)
    bars = ax.patches
    colors = [tuple(round(c, 3) for c in b.get_facecolor()[:3]) for b in bars]
    worst = max(range(len(bars)), key=lambda i: bars[i].get_width())
    assert len(bars) == 5 and colors.count(colors[worst]) == 1  # only the worst is red
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[worst].strip() == "[CTE big] Aggregate"
    marked = [i for i, label in enumerate(labels) if "⚠ rows ×" in label]
    assert marked and all(bars[i].get_hatch() == "//" for i in marked)


def test_save_writes_what_pev2_reads(tmp_path: Path) -> None:
    plan = parse_plan((PAIRS / "pg18_hash_join.json").read_text(), sql="SELECT 1")
    saved = plan.save(tmp_path / "out" / "plan.json", title="hash join")
    document = json.loads(saved.read_text())
    assert document == pev2_document(plan, "hash join") and document["query"] == "SELECT 1"
    assert json.loads(document["plan"])[0]["Plan"]["Node Type"] == "Aggregate"


def test_explain_from_file_text_or_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text_plan = PAIRS / "pg18_hash_join.txt"
    out = tmp_path / "plan.json"
    assert main(["explain", "--from-file", str(text_plan), "--out", str(out)]) == 0
    shown = capsys.readouterr()
    assert "Hash Join" in shown.out and f"plan saved for PEV2: {out}" in shown.err
    assert json.loads(json.loads(out.read_text())["plan"])[0]["Plan"]["Node Type"] == "Aggregate"
    monkeypatch.setattr("sys.stdin", io.StringIO(text_plan.read_text()))
    assert main(["explain", "--from-file", "-", "--format", "json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["execution_ms"]
        == parse_plan(text_plan.read_text()).execution_ms
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain"], "no statement"),
        (["explain", "SELECT 1", "-f", "x.sql"], "not both"),
        (["explain", "-f", "/nonexistent.sql"], "cannot read the statement from /nonexistent.sql"),
        (["explain", "--from-file", "/nonexistent.txt"], "cannot read the plan"),
        (["explain", "--from-file", "-"], "not EXPLAIN output"),
        (["advise", "-f", "/nonexistent.sql"], "cannot read the statement"),
    ],
)
def test_bad_sources_are_one_line_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hello"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bbperf: error:") and message in err and "\n" not in err


def test_sql_from_file_and_stdin_reach_explain_and_advise(
    fresh_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(fresh_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA bbperf"))  # bbperf's engines see only their schema
        conn.execute(
            text(
                "CREATE TABLE bbperf.visits AS "
                "SELECT g AS id, g % 50 AS barber FROM generate_series(1, 5000) g"
            )
        )
        conn.execute(text("ANALYZE bbperf.visits"))
    engine.dispose()
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT * FROM visits WHERE barber = :b\n")
    base = ["--database-url", fresh_url]
    assert main([*base, "explain", "-f", str(sql), "--params", '{"b": 7}']) == 0
    assert "Seq Scan on visits" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(sql.read_text()))
    assert main([*base, "advise", "-", "--params", '{"b": 7}', "--format", "json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert "(barber)" in advice["best"] and advice["candidates"][0]["used"] is True
