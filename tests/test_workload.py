"""The workload catalogue on the tiny dataset, and the write cost of an index set."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from bbperf.errors import DataError
from bbperf.indexes import SEED, apply, status
from bbperf.workload import QUERY_NAMES, catalogue, draw_parameters, windows
from bbperf.writecost import build_costs, insert_cost

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def test_windows_are_relative_to_as_of() -> None:
    w = windows("2026-11-01T15:30:00+02:00")
    assert w["as_of"] == AS_OF
    assert w["day_start"] == datetime(2026, 10, 31, tzinfo=UTC)
    assert w["month_start"] == datetime(2026, 10, 2, tzinfo=UTC)
    assert w["week_end"] == datetime(2026, 11, 8, tzinfo=UTC)


def test_every_query_the_seed_serves_is_in_the_catalogue() -> None:
    assert set(SEED.serves) == set(QUERY_NAMES)


def test_each_query_runs_alone_with_parameters_from_the_data(tiny_engine: Engine) -> None:
    queries = catalogue(tiny_engine)
    assert [q.name for q in queries] == list(QUERY_NAMES)
    for query in queries:
        assert None not in query.params.values(), query.name
        rows = query.run(tiny_engine)
        assert len(rows) > 0, query.name
    by_name = {q.name: q for q in queries}
    assert by_name["barber_schedule"].params["week_start"] == AS_OF
    assert set(by_name["payment_by_intent"].params) == {"intent_id"}
    assert len(by_name["payment_by_intent"].run(tiny_engine)) == 1


def test_busy_and_quiet_barbers_differ(tiny_engine: Engine) -> None:
    busy = draw_parameters(tiny_engine, barber="busy")
    quiet = draw_parameters(tiny_engine, barber="quiet")
    assert busy["barber_id"] != quiet["barber_id"]
    assert busy["as_of"] == AS_OF  # from the dataset's provenance, not the wall clock
    count = text("SELECT count(*) FROM appointments WHERE barber_id = :b")
    with tiny_engine.connect() as conn:
        n_busy = conn.execute(count, {"b": busy["barber_id"]}).scalar_one()
        n_quiet = conn.execute(count, {"b": quiet["barber_id"]}).scalar_one()
        per_barber = conn.execute(text(
            "SELECT min(n), max(n) FROM (SELECT count(*) n FROM appointments "
            "WHERE barber_id IS NOT NULL GROUP BY barber_id) t"
        )).one()  # fmt: skip
    assert (n_quiet, n_busy) == tuple(per_barber)


def test_subset_and_unknown_names(tiny_engine: Engine) -> None:
    assert [
        q.name for q in catalogue(tiny_engine, names=["payment_history", "client_history"])
    ] == [
        "payment_history",
        "client_history",
    ]
    with pytest.raises(DataError, match="unknown workload query 'nope'"):
        catalogue(tiny_engine, names=["nope"])


def test_write_cost_leaves_data_and_indexes_as_they_were(tiny_copy: Engine) -> None:
    apply(tiny_copy, SEED)
    counts = text("SELECT (SELECT count(*) FROM appointments), (SELECT count(*) FROM payments)")
    with tiny_copy.connect() as conn:
        before = conn.execute(counts).one()
    cost = insert_cost(tiny_copy, SEED, rows=300, rounds=2).set_index("table")
    assert list(cost.index) == ["appointments", "payments"]
    assert cost.loc["appointments", "set_indexes"] == 7
    assert cost.loc["payments", "set_indexes"] == 5
    assert (cost["rows"] == 300).all()
    assert (cost["with_ms"] > 0).all() and (cost["without_ms"] > 0).all()
    with tiny_copy.connect() as conn:
        assert conn.execute(counts).one() == before
    assert status(tiny_copy, SEED)["exists"].sum() == 14
    built = build_costs(tiny_copy, SEED)
    assert len(built) == 14 and (built["size_bytes"] > 0).all() and (built["build_ms"] > 0).all()


def test_benchmark_measures_before_and_after_and_leaves_the_set_applied(
    tiny_copy: Engine,
) -> None:
    from bbperf.indexes import validate
    from bbperf.indexes.index_set_timing import composite_queries, conclusion, run_benchmark

    queries = catalogue(tiny_copy, names=["barber_schedule", "payment_by_intent"])
    assert composite_queries(SEED, queries) == ["barber_schedule"]
    report = validate(tiny_copy, SEED)
    bench = run_benchmark(tiny_copy, SEED, queries, rounds=3, warmup=1, advisor=True)
    table = bench.table().set_index("query")
    assert list(table.index) == ["barber_schedule", "payment_by_intent"]
    assert table.loc["payment_by_intent", "indexes_used"] == "idx_payments_stripe_payment_intent"
    assert table.loc["payment_by_intent", "plan_change"].startswith("payments: Seq Scan →")
    assert (table["server_before_ms"] > 0).all() and (table["server_after_ms"] > 0).all()
    predicted = bench.predictions().set_index("query")
    assert predicted.loc["payment_by_intent", "advisor_candidate"].endswith(
        "payments (stripe_payment_intent_id)"
    )
    assert status(tiny_copy, SEED)["exists"].sum() == 14
    cost = insert_cost(tiny_copy, SEED, rows=100, rounds=1)
    text_ = conclusion(bench, report, cost)
    assert "idx_users_email (duplicate); idx_users_primary_org (unknown column)" in text_
    assert "14 of 16 indexes built" in text_
