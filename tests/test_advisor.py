"""What-if index advisor: candidate ordering (pure), costing that leaves nothing behind, verify (DB)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from bbperf.errors import SchemaError
from bbperf.explain.advisor import Candidate, advise, candidates, column_roles, verify
from bbperf.explain.plan import parse_plan

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
QUERY = (
    "SELECT id FROM visits v WHERE v.start_time >= :t AND v.barber_id = :b "
    "AND v.status = 'completed' ORDER BY v.start_time"
)


def verbose_plan(filter_text: str, sort_key: list[str] | None = None):  # type: ignore[no-untyped-def]
    scan = {
        "Node Type": "Seq Scan",
        "Relation Name": "visits",
        "Schema": "bbperf",
        "Alias": "v",
        "Total Cost": 10.0,
        "Plan Rows": 5,
        "Filter": filter_text,
    }
    root = {
        "Node Type": "Sort",
        "Total Cost": 12.0,
        "Plan Rows": 5,
        "Sort Key": sort_key or [],
        "Plans": [scan],
    }
    return parse_plan([{"Plan": root}])


def test_column_roles_read_equality_range_and_sort() -> None:
    plan = verbose_plan(
        "((v.start_time >= '2026-06-01 00:00:00+00'::timestamp with time zone) AND "
        "(v.barber_id = 42) AND ((v.status)::text = 'completed'::text) AND "
        "(v.id = ANY ('{1,2}'::integer[])) AND (other.x = 3))",
        ["v.start_time DESC"],
    )
    roles = column_roles(plan)[("bbperf", "visits")]
    assert roles == {
        "eq": ["barber_id", "status", "id"],
        "range": ["start_time"],
        "sort": ["start_time"],
    }


def test_candidates_put_equality_first_and_cap_at_three_columns() -> None:
    roles = {
        "eq": ["barber_id", "status", "client_id", "id"],
        "range": ["start_time"],
        "sort": ["price"],
    }
    cols = {"barber_id", "status", "client_id", "start_time", "price"}  # "id" is not a column
    cands = candidates(roles, ("bbperf", "visits"), cols, existing=[("status",)])
    assert cands[0] == Candidate("bbperf", "visits", ("barber_id", "status", "client_id"))
    assert all(len(c.columns) <= 3 for c in cands)
    assert Candidate("bbperf", "visits", ("status",)) not in cands  # an existing index serves it
    assert Candidate("bbperf", "visits", ("start_time",)) in cands
    assert all("id" not in c.columns for c in cands)
    assert cands[0].ddl("ix") == (
        'CREATE INDEX "ix" ON "bbperf"."visits" ("barber_id", "status", "client_id")'
    )


def test_candidate_order_eq_range_sort() -> None:
    roles = {"eq": ["barber_id"], "range": ["start_time"], "sort": ["price"]}
    cols = {"barber_id", "start_time", "price"}
    cands = candidates(roles, ("s", "t"), cols, existing=[])
    assert [c.columns for c in cands[:3]] == [
        ("barber_id", "start_time", "price"),
        ("barber_id", "price"),
        ("barber_id",),
    ]


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
    assert advice.best.candidate.columns == ("barber_id", "status", "start_time")
    assert advice.best.cost_after < advice.base_cost / 5
    assert advice.to_frame().iloc[0]["index"] == "bbperf.visits (barber_id, status, start_time)"
    assert _indexes(visits) == []


def test_verify_builds_measures_and_drops(visits: Engine) -> None:
    advice = advise(visits, QUERY, {"t": "2026-06-01", "b": 7})
    result = verify(visits, advice, rounds=10, warmup=2)
    assert result.measured.speedup > 1 and result.predicted_speedup > 1
    assert result.plan_diff.scan_changes[0].before == "Seq Scan"
    assert (
        "using bbperf_verify_visits_" in result.plan_diff.scan_changes[0].after
    )
    assert _indexes(visits) == []


def test_verify_refuses_tables_outside_bbperf_schema(visits: Engine) -> None:
    advice = advise(visits, "SELECT id FROM public.elsewhere WHERE k = 5")
    assert advice.best is not None and advice.best.candidate.schema == "public"
    with pytest.raises(SchemaError, match="only builds in bbperf's schema"):
        verify(visits, advice, rounds=2, warmup=0)
    assert _indexes(visits) == []
