"""EXPLAIN, measure, diff, overhead, query statistics, CLI and magics on a real PostgreSQL 18."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from bbperf.errors import QueryError
from bbperf.explain import compare, explain, measure
from bbperf.explain.diff import diff
from bbperf.explain.overhead import explain_overhead
from bbperf.explain.pgstatviews import missing_index_hints, reset_query_stats, slow_queries

VISITS = """
CREATE SCHEMA IF NOT EXISTS bbperf;
CREATE TABLE bbperf.visits AS
  SELECT g AS id, g % 200 AS barber_id, (ARRAY['pending','completed','cancelled'])[1 + g % 3] AS status,
         timestamptz '2026-01-01' + (g % 5000) * interval '1 hour' AS start_time
  FROM generate_series(1, 40000) g;
ALTER TABLE bbperf.visits ADD PRIMARY KEY (id);
ANALYZE bbperf.visits;
"""
SCHEDULE = "SELECT id FROM visits WHERE barber_id = :b AND status = 'completed' ORDER BY start_time"


@pytest.fixture
def visits(fresh_engine: Engine) -> Engine:
    with fresh_engine.begin() as conn:
        conn.execute(text(VISITS))
    return fresh_engine


def test_explain_analyzes_with_params_and_buffers(visits: Engine) -> None:
    plan = explain(visits, SCHEDULE, {"b": 7})
    assert plan.analyzed and plan.execution_ms > 0 and plan.planning_ms > 0
    scan = next(n for n in plan.nodes() if n.relation == "visits")
    assert scan.node_type == "Seq Scan"
    with visits.connect() as conn:
        expected = conn.execute(text(SCHEDULE.replace(":b", "7"))).all()
    assert plan.root.total_rows == len(expected) > 0
    assert scan.shared_hit_blocks + scan.shared_read_blocks > 0
    assert "barber_id = 7" in scan.conditions["Filter"]
    assert sum(n.self_ms for n in plan.nodes()) == pytest.approx(plan.total_ms)


def test_explain_without_analyze_does_not_execute(visits: Engine) -> None:
    plan = explain(visits, "DELETE FROM visits", analyze=False)
    assert not plan.analyzed and plan.total_cost > 0
    with visits.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM visits")).scalar() == 40000


def test_analyze_of_a_data_modifying_statement_is_rolled_back(visits: Engine) -> None:
    plan = explain(visits, "UPDATE visits SET status = 'x' WHERE barber_id < 100")
    assert plan.root.node_type == "ModifyTable"
    assert plan.nodes()[1].total_rows == 20000
    with visits.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM visits WHERE status = 'x'")).scalar() == 0


def test_explain_on_a_connection_uses_a_savepoint(visits: Engine) -> None:
    with visits.connect() as conn:
        conn.execute(text("DELETE FROM visits WHERE id <= 10"))
        explain(conn, "DELETE FROM visits")
        assert conn.execute(text("SELECT count(*) FROM visits")).scalar() == 39990
        conn.rollback()


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC 1", 'syntax error at or near "SELEC"'),
        ("SELECT * FROM no_such_table", 'relation "no_such_table" does not exist'),
        ("SELECT pg_sleep(2)", "canceling statement due to statement timeout"),
    ],
)
def test_failures_are_query_errors(
    fresh_url: str, sql: str, message: str, make_test_engine: Callable[..., Engine]
) -> None:

    engine = make_test_engine(fresh_url, statement_timeout_ms=100)
    for action in (lambda: explain(engine, sql), lambda: measure(engine, sql, rounds=1)):
        with pytest.raises(QueryError) as info:
            action()
        assert message in str(info.value) and "\n" not in str(info.value)


def test_measure_warm_server_time_and_cold(visits: Engine) -> None:
    warm = measure(visits, SCHEDULE, {"b": 3}, rounds=8, warmup=2, server_time=True)
    assert warm.rounds == 8 and warm.warmup == 2 and warm.cache == "warm"
    assert len(warm.server_ms) == 8
    # Client and server figures come from separate runs (the server's from EXPLAIN ANALYZE after each
    # timed round), so no ordering between them holds on a busy machine: both are recorded, per round.
    assert all(ms > 0 for ms in warm.samples_ms) and all(ms > 0 for ms in warm.server_ms)
    cold = measure(visits, SCHEDULE, {"b": 3}, rounds=3, cold=True)
    assert cold.rounds == 3 and cold.warmup == 0
    assert "shared buffers and OS cache kept" in cold.cache
    with visits.begin() as conn:
        conn.execute(text("CREATE EXTENSION pg_buffercache"))
    cold = measure(visits, SCHEDULE, {"b": 3}, rounds=2, cold=True)
    assert "shared buffers evicted" in cold.cache and "OS cache kept" in cold.cache
    with visits.connect() as conn:
        cached = (
            "SELECT count(*) FROM pg_buffercache WHERE relfilenode = pg_relation_filenode('visits')"
        )
        conn.execute(text("SELECT count(*) FROM visits"))
        assert conn.execute(text(cached)).scalar() > 0
    measure(visits, "SELECT 1", rounds=1, cold=True)
    with visits.connect() as conn:
        assert conn.execute(text(cached)).scalar() == 0


def test_diff_and_compare_before_and_after_an_index(visits: Engine) -> None:
    before_plan = explain(visits, SCHEDULE, {"b": 3})
    before = measure(visits, SCHEDULE, {"b": 3}, rounds=15, warmup=2)
    with visits.begin() as conn:
        conn.execute(text("CREATE INDEX visits_bss ON visits (barber_id, status, start_time)"))
    after_plan = explain(visits, SCHEDULE, {"b": 3})
    after = measure(visits, SCHEDULE, {"b": 3}, rounds=15, warmup=2)
    d = diff(before_plan, after_plan)
    [change] = d.scan_changes
    assert change.relation == "visits" and change.before == "Seq Scan"
    assert change.after.endswith("Scan using visits_bss")
    assert "Seq Scan on visits" in d.removed
    assert d.speedup > 1
    rel = d.to_frame().loc["visits"]
    assert rel.after_ms < rel.before_ms
    c = compare(before, after)
    assert c.speedup > 1 and c.significant


def test_overhead_variants(visits: Engine) -> None:
    o = explain_overhead(visits, "SELECT count(*) FROM visits", rounds=3, warmup=1)
    assert set(o.timings) == {"plain", "analyze_timing_off", "analyze_timing_on"}
    assert all(t.rounds == 3 for t in o.timings.values())
    assert "TIMING ON" in str(o)


def test_slow_queries_find_pg_stat_statements_in_any_schema(visits: Engine) -> None:
    with pytest.raises(QueryError, match="pg_stat_statements is not installed"):
        slow_queries(visits)
    with visits.begin() as conn:
        conn.execute(text("CREATE SCHEMA ext; CREATE EXTENSION pg_stat_statements SCHEMA ext"))
    reset_query_stats(visits)
    with visits.connect() as conn:
        conn.execute(text("SELECT pg_sleep(0.02)"))
    frame = slow_queries(visits, min_mean_ms=10)
    assert list(frame.columns) == ["query", "calls", "total_ms", "mean_ms", "stddev_ms", "rows"]
    assert frame["query"].str.contains("pg_sleep").any()
    assert (frame.mean_ms > 10).all()


def test_missing_index_hints(visits: Engine) -> None:
    with visits.connect() as conn:
        for _ in range(101):
            conn.execute(text("SELECT count(*) FROM visits WHERE status = 'none'"))
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
        conn.commit()
    deadline = time.monotonic() + 5
    while True:
        frame = missing_index_hints(visits, schema="bbperf")
        if len(frame) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    row = frame.set_index("table").loc["visits"]
    assert row.seq_scan >= 101 and row.seq_tup_read >= 101 * 40000
    assert "bbperf advise" in row.hint


def test_cli_explain_and_errors(visits: Engine, fresh_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    from bbperf.cli import main

    assert main(["--database-url", fresh_url, "explain", SCHEDULE, "--params", '{"b": 4}']) == 0
    out = capsys.readouterr().out
    assert "Seq Scan on visits" in out and "execution" in out
    assert main(["--database-url", fresh_url, "explain", "SELECT 1", "--format", "json"]) == 0
    assert '"execution_ms"' in capsys.readouterr().out
    assert main(["--database-url", fresh_url, "explain", "SELECT * FROM nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('bbperf: error: relation "nope" does not exist') and "\n" not in err
    assert main(["--database-url", fresh_url, "explain", "SELECT 1", "--params", "{"]) == 2
    assert "--params is not valid JSON" in capsys.readouterr().err


def test_magics(visits: Engine, fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from bbperf.explain import magics

    monkeypatch.setenv("BBPERF_DATABASE_URL", fresh_url)
    monkeypatch.setattr(magics, "_engine", None)
    shell = InteractiveShell.instance()
    magics.load_ipython_extension(shell)
    plan = shell.run_cell_magic("explain", "--params '{\"b\": 1}'", SCHEDULE)
    assert plan.analyzed and "<table>" in plan._repr_html_()
    timing = shell.run_cell_magic("bench", "--rounds 4 --warmup 1", "SELECT 1")
    assert timing.rounds == 4
    magics.default_engine().dispose()


def test_measure_wire_only_sends_the_rendered_statement_every_round(fresh_engine: Engine) -> None:
    with fresh_engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public"))
        conn.execute(text("CREATE TABLE public.marks (v text, at int)"))
        conn.execute(text("INSERT INTO public.marks VALUES ('it''s', 7)"))
        conn.execute(text("SELECT public.pg_stat_statements_reset()"))
    timing = measure(
        fresh_engine,
        "SELECT v, at FROM public.marks WHERE v = :v AND at = :at",
        {"v": "it's", "at": 7},
        rounds=4,
        warmup=1,
        wire_only=True,
    )
    assert timing.rounds == 4 and all(s > 0 for s in timing.samples_ms)
    with fresh_engine.connect() as conn:
        calls = conn.execute(
            text(
                "SELECT sum(calls) FROM public.pg_stat_statements "
                "WHERE query LIKE '%SELECT v, at FROM public.marks WHERE%'"
            )
        ).scalar_one()
    assert calls == 5  # one warm-up and four timed rounds, each sent to the server


def test_percent_sign_in_sql_without_parameters(fresh_engine: Engine) -> None:
    from bbperf.explain import explain_overhead

    sql = "SELECT g % 7 AS k, count(*) FROM generate_series(1, 100) g GROUP BY 1"
    assert measure(fresh_engine, sql, rounds=2, warmup=0).rounds == 2
    assert measure(fresh_engine, sql, rounds=2, warmup=0, wire_only=True).rounds == 2
    assert explain_overhead(fresh_engine, sql, rounds=2, warmup=0).timing_on_pct > -100
