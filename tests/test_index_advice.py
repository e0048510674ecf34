"""What-if index advice on a server: costing that leaves nothing behind, verify. The candidate rules
alone are tested on parse trees in test_index_candidates.py."""

from __future__ import annotations

import json

import psycopg2
import pytest
from sqlalchemy import Engine, text

from bbperf.errors import SchemaError
from bbperf.explain.diff import diff
from bbperf.explain.index_advice import Advice, advise
from bbperf.explain.plan import parse_plan
from bbperf.explain.timingstats import compare
from bbperf.explain.verify_advice import Verification, VerifiedAdvice, verify
from bbperf.explain.whatif import Candidate

TABLE = """
CREATE SCHEMA IF NOT EXISTS bbperf;
CREATE TABLE bbperf.visits AS
  SELECT g AS id, g % 300 AS barber_id, (ARRAY['pending','completed','cancelled'])[1 + g % 3] AS status,
         timestamptz '2026-01-01' + (g % 5000) * interval '1 hour' AS start_time
  FROM generate_series(1, 60000) g;
ANALYZE bbperf.visits;
CREATE TABLE public.elsewhere AS SELECT g AS id, g % 100 AS k FROM generate_series(1, 20000) g;
ANALYZE public.elsewhere;
"""
SCAN = {"Node Type": "Seq Scan", "Relation Name": "visits", "Total Cost": 10.0, "Plan Rows": 5}
QUERY = (
    "SELECT id FROM visits v WHERE v.start_time >= :t AND v.barber_id = :b "
    "AND v.status = 'completed' ORDER BY v.start_time"
)


@pytest.fixture
def visits(fresh_engine: Engine) -> Engine:
    with fresh_engine.begin() as conn:
        conn.execute(text(TABLE))
    return fresh_engine


def _indexes(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE schemaname IN ('bbperf', 'public')")
            ).scalars()
        )


def test_advise_costs_candidates_and_leaves_no_index(visits: Engine) -> None:
    advice = advise(visits, QUERY, {"t": "2026-06-01", "b": 7})
    assert advice.method == "transaction"
    assert advice.best is not None
    # The partial index is the smallest that serves the filter and the sort.
    assert str(advice.best.candidate) == (
        "bbperf.visits (barber_id, start_time) WHERE \"status\" = 'completed'"
    )
    assert advice.best.cost_after < advice.base_cost / 5
    assert advice.to_frame().iloc[0]["index"] == str(advice.best.candidate)
    proposed = {str(c.candidate) for c in advice.costs}
    assert "bbperf.visits (barber_id, status, start_time)" in proposed
    assert "bbperf.visits (barber_id, status, start_time) INCLUDE (id)" in proposed
    assert _indexes(visits) == []


def test_verify_measures_the_top_picks_rolled_back_and_keeps_what_is_significant(
    visits: Engine,
) -> None:
    advice = advise(visits, QUERY, {"t": "2026-06-01", "b": 7})
    result = verify(visits, advice, picks=2, rounds=10, warmup=2)
    assert result.how == "each built in a transaction rolled back"
    assert [str(c.candidate) for c in result.checks] == [
        str(advice.best.candidate),  # type: ignore[union-attr]
        next(str(c.candidate) for c in advice.costs if c is not advice.best and c.used),
    ]
    first = result.checks[0]
    assert first.kept and first.measured.speedup > 1 and first.predicted_speedup > 1
    assert first.plan_diff.scan_changes[0].before == "Seq Scan"
    assert "using bbperf_verify_visits_" in first.plan_diff.scan_changes[0].after
    table = result.table()
    assert list(table.columns[:3]) == ["index", "predicted_speedup", "measured_speedup"]
    assert table.loc[0, "verdict"] == "kept"
    assert _indexes(visits) == []


def test_a_pick_without_a_significant_gain_is_withdrawn_and_said_so() -> None:
    same = [1.0, 1.2, 0.9, 1.1, 1.0, 1.3, 0.95, 1.05]
    faster = [v / 3 for v in same]
    plans = diff(parse_plan([{"Plan": SCAN}]), parse_plan([{"Plan": SCAN}]))
    picks = [
        Verification(
            Candidate("bbperf", "visits", ("barber_id",)), 4.0, compare(same, same), plans
        ),
        Verification(Candidate("bbperf", "visits", ("status",)), 2.0, compare(same, faster), plans),
    ]
    advice = Advice("SELECT 1", {}, 10.0, "transaction")
    verified = VerifiedAdvice(advice, "each built in a transaction rolled back", 8, picks)
    assert [c.kept for c in verified.checks] == [False, True]
    assert list(verified.table()["verdict"]) == ["withdrawn", "kept"]
    assert "withdrawn: bbperf.visits (barber_id)" in verified.text()
    assert "no advice stands" not in verified.text()
    alone = VerifiedAdvice(advice, "rolled back", 8, picks[:1])
    assert "no advice stands" in alone.text()
    assert alone.to_dict()["withdrawn"] == ["bbperf.visits (barber_id)"]


def test_verify_refuses_tables_outside_bbperf_schema(visits: Engine) -> None:
    advice = advise(visits, "SELECT id FROM public.elsewhere WHERE k = 5")
    assert advice.best is not None and advice.best.candidate.schema == "public"
    with pytest.raises(SchemaError, match="only builds in bbperf's schema"):
        verify(visits, advice, rounds=2, warmup=0)
    assert _indexes(visits) == []


def test_advise_takes_pg_stat_statements_dollar_form_with_drawn_values_or_a_generic_plan(
    visits: Engine, fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bbperf.cli import main

    sql = (
        "SELECT id FROM visits WHERE barber_id = $1 AND status = 'completed' "
        "ORDER BY start_time LIMIT $2"
    )
    assert main(["--database-url", fresh_url, "advise", sql, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["costed_over"].startswith("mean over") and out["best"].startswith(
        "bbperf.visits (barber_id"
    )
    # $1 compared with an expression, not a column: nothing to draw from, so the generic plan.
    sql = "SELECT id FROM visits WHERE barber_id + 0 = $1"
    assert main(["--database-url", fresh_url, "advise", sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["costed_over"] == "generic plan"
    # explain: PostgreSQL 18 plans the $n form generically without values, and runs it with drawn ones.
    plan_only = [
        "--database-url",
        fresh_url,
        "explain",
        "SELECT id FROM visits WHERE barber_id = $1",
    ]
    assert main([*plan_only, "--no-analyze"]) == 0
    out, err = capsys.readouterr()
    assert "Seq Scan on visits" in out and "values drawn" not in err
    assert main(plan_only) == 0
    assert "values drawn from the columns: {'p1': " in capsys.readouterr().err
    assert _indexes(visits) == []


@pytest.mark.pg15
def test_on_a_users_server_names_resolve_on_their_search_path_unless_schema_is_given(
    pg15_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bbperf.cli import main

    conn = psycopg2.connect(pg15_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE public.mydata AS SELECT g AS id, g % 97 AS k FROM generate_series(1, 20000) g"
        )
        cur.execute("ANALYZE public.mydata")
    conn.close()
    sql = "SELECT id FROM mydata WHERE k = $1"
    # PostgreSQL 15 has no generic EXPLAIN: a value is drawn from mydata.k and said.
    assert main(["--database-url", pg15_url, "explain", sql, "--no-analyze"]) == 0
    assert "values drawn from the columns: {'p1': " in capsys.readouterr().err
    computed = "SELECT id FROM mydata WHERE k + 1 = $1"
    assert main(["--database-url", pg15_url, "explain", computed, "--no-analyze"]) == 2
    assert "--params '{\"p1\": 7}'" in capsys.readouterr().err
    assert main(["--database-url", pg15_url, "explain", computed, "--params", '{"p1": 3}']) == 0
    assert "Seq Scan on mydata" in capsys.readouterr().out
    assert (
        main(["--database-url", pg15_url, "explain", "SELECT id FROM mydata", "--no-analyze"]) == 0
    )
    assert "Seq Scan on mydata" in capsys.readouterr().out
    code = main(["--database-url", pg15_url, "advise", sql, "--allow-build", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["best"] == "public.mydata (k)"
    assert out["costed_over"].startswith("mean over")
    pinned = ["--database-url", pg15_url, "--schema", "bbperf", "explain", "SELECT id FROM mydata"]
    assert main(pinned) == 2
    assert "mydata" in capsys.readouterr().err


def test_a_partition_is_advised_on_its_parent_and_a_catalog_view_never(
    fresh_engine: Engine,
) -> None:
    with fresh_engine.begin() as conn:
        conn.execute(
            text(
                "CREATE SCHEMA IF NOT EXISTS bbperf; "
                "CREATE TABLE bbperf.bookings (id int, barber_id int, day date) PARTITION BY RANGE (day); "
                "CREATE TABLE bbperf.bookings_2026 PARTITION OF bbperf.bookings "
                "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01'); "
                "CREATE TABLE bbperf.bookings_2027 PARTITION OF bbperf.bookings "
                "FOR VALUES FROM ('2027-01-01') TO ('2028-01-01'); "
                "INSERT INTO bbperf.bookings SELECT g, g % 300, date '2026-01-01' + g % 700 "
                "FROM generate_series(1, 40000) g; ANALYZE bbperf.bookings"
            )
        )
    advice = advise(fresh_engine, "SELECT id FROM bookings_2026 WHERE barber_id = :b", {"b": 7})
    assert advice.costs and {c.candidate.table for c in advice.costs} == {"bookings"}
    assert advice.best is not None and str(advice.best.candidate) == "bbperf.bookings (barber_id)"
    catalog = advise(
        fresh_engine,
        "SELECT table_name FROM information_schema.tables WHERE table_name = :t",
        {"t": "bookings"},
    )
    assert catalog.costs == [] and catalog.method == "none"
