"""The advisor on a statement with CTEs: each CTE's relations get their own candidates."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from bbperf.explain.index_advice import advise
from bbperf.metrics.queries import AFTER_SQL, window_params
from bbperf.sql import cte_bodies

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def test_cte_bodies_splits_the_after_sql() -> None:
    bodies = cte_bodies(AFTER_SQL)
    assert list(bodies) == ["payment_metrics", "appointment_metrics", "client_frequency"]
    assert bodies["payment_metrics"].startswith("SELECT COUNT(DISTINCT p.id)")
    assert bodies["client_frequency"].endswith("start_time < :as_of")


def test_cte_bodies_skips_quotes_comments_and_options() -> None:
    sql = (
        "WITH a (x) AS MATERIALIZED (SELECT ')' AS x -- )\n), "
        'b AS NOT MATERIALIZED (SELECT "(" FROM t /* ) */) SELECT * FROM a, b;'
    )
    assert cte_bodies(sql) == {
        "a": "SELECT ')' AS x -- )",
        "b": 'SELECT "(" FROM t /* ) */',
    }
    assert cte_bodies("SELECT 1") == {}
    assert cte_bodies("WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r") == {}


def test_advisor_proposes_per_cte_indexes_for_after(tiny_engine: Engine) -> None:
    advice = advise(tiny_engine, AFTER_SQL, window_params(2, AS_OF))
    by_cte: dict[str, set[str]] = {}
    for cost in advice.costs:
        by_cte.setdefault(cost.candidate.cte, set()).add(
            f"{cost.candidate.table} ({', '.join(cost.candidate.columns)})"
        )
    assert "appointments (user_id, status, start_time)" in by_cte["appointment_metrics"]
    assert any(c.startswith("payments (status") for c in by_cte["payment_metrics"])
    assert advice.best is not None and advice.best.candidate.table == "appointments"
    assert "[CTE " in advice.text()


def test_cte_bodies_keep_binds_and_skip_dollar_quotes() -> None:
    sql = (
        "WITH a AS (SELECT :user_id AS u, $$)$$ AS s WHERE x > :a), "
        "b AS (SELECT * FROM a WHERE u = :user_id) SELECT * FROM b"
    )
    assert cte_bodies(sql) == {
        "a": "SELECT :user_id AS u, $$)$$ AS s WHERE x > :a",
        "b": "SELECT * FROM a WHERE u = :user_id",
    }
    assert cte_bodies("WITH a AS (SELECT 1) SELECT 1; SELECT 2") == {}  # not one statement
    assert cte_bodies("WITH a AS (SELECT") == {}  # does not parse
