"""The metrics SQL on real PostgreSQL: hand-made rows with known answers, then every tiny barber."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bbperf.errors import ConfigError, DataError
from bbperf.metrics import fetch_raw, six_figure_metrics
from bbperf.metrics.drift import drift
from bbperf.metrics.queries import barber_ids
from bbperf.metrics.variants import (
    create_metrics_view,
    fetch_from_view,
    fetch_prepared,
    plan_cache,
    refresh_metrics_view,
)

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def _insert(conn: Any, table: str, **values: Any) -> int:
    cols = ", ".join(values)
    binds = ", ".join(f":{k}" for k in values)
    return int(
        conn.execute(
            text(f"INSERT INTO {table} ({cols}) VALUES ({binds}) RETURNING id"), values
        ).scalar_one()
    )


def _visit(
    conn: Any,
    user: int,
    barber: int,
    client: int | None,
    days_ago: float,
    status: str,
    minutes: int,
    paid: str | None,
    payment_status: str = "completed",
) -> None:
    start = AS_OF - timedelta(days=days_ago)
    appt = _insert(
        conn,
        "appointments",
        user_id=user,
        barber_id=barber,
        client_id=client,
        status=status,
        start_time=start,
        duration_minutes=minutes,
        price=Decimal(paid or "30"),
    )
    if paid is not None:
        _insert(
            conn,
            "payments",
            user_id=user,
            appointment_id=appt,
            barber_id=barber,
            amount=Decimal(paid),
            status=payment_status,
            created_at=start + timedelta(hours=1),
        )


@pytest.fixture
def hand_made(schema_engine: Engine) -> tuple[Engine, dict[str, int]]:
    """One barber whose answers are known by construction, a receptionist, an idle barber."""
    with schema_engine.begin() as conn:
        barber = _insert(conn, "users", email="b@x", name="B", role="barber", unified_role="barber")
        desk = _insert(
            conn, "users", email="r@x", name="R", role="user", unified_role="receptionist"
        )
        idle = _insert(conn, "users", email="i@x", name="I", role="barber", unified_role="barber")
        c1 = _insert(conn, "clients", first_name="A", last_name="A", barber_id=barber)
        c2 = _insert(conn, "clients", first_name="C", last_name="C", barber_id=barber)
        _visit(conn, barber, barber, c1, 5, "completed", 30, "40.00")
        _visit(conn, barber, barber, c2, 10, "completed", 60, "60.00")
        _visit(conn, barber, barber, None, 10, "completed", 45, "50.00")  # walk-in: no client
        _visit(conn, barber, barber, c2, 2, "completed", 30, "70.00", "refunded")
        _visit(conn, barber, barber, c1, 100, "completed", 30, "100.00")
        _visit(conn, barber, barber, c1, 400, "completed", 30, "20.00")  # older than a year
        _visit(conn, barber, barber, c2, 3, "cancelled", 30, None)
        _visit(conn, barber, barber, c1, -2, "completed", 30, "999.00")  # after as_of
        _visit(conn, desk, barber, c1, 4, "completed", 30, "80.00")  # owned by the desk account
    return schema_engine, {"barber": barber, "desk": desk, "idle": idle}


def test_before_on_known_rows(hand_made: tuple[Engine, dict[str, int]]) -> None:
    engine, ids = hand_made
    raw = fetch_raw(engine, ids["barber"], AS_OF, "before")
    assert raw.revenue_30d == Decimal("150.00")
    assert raw.payments_30d == 3
    assert raw.unique_clients_30d == 2
    assert raw.average_ticket == Decimal("54")  # (40 + 60 + 50 + 100 + 20) / 5, all time
    assert raw.completed_appointments_30d == 4
    assert raw.booked_minutes_30d == 165
    assert raw.clients_365d == 2
    assert raw.visits_365d == 4  # the walk-in has no client


def test_after_changes_exactly_two_meanings(hand_made: tuple[Engine, dict[str, int]]) -> None:
    engine, ids = hand_made
    before = fetch_raw(engine, ids["barber"], AS_OF, "before")
    after = fetch_raw(engine, ids["barber"], AS_OF, "after")
    assert after.average_ticket == Decimal("50")  # 150 / 3, last 30 days
    assert after.visits_365d == 5
    changed = {k for k, v in before.values().items() if after.values()[k] != v}
    assert changed == {"average_ticket", "visits_365d"}
    assert fetch_raw(engine, ids["barber"], AS_OF, "after_equivalent") == before


def test_drift_names_and_explains_each_difference(
    hand_made: tuple[Engine, dict[str, int]],
) -> None:
    engine, ids = hand_made
    found = {d.metric: d for d in drift(engine, ids["barber"], AS_OF)}
    assert found["average_ticket"].before == Decimal("54")
    assert found["average_ticket"].after == Decimal("50")
    assert found["visits_365d"].evidence.startswith("1 extra visits; 1 completed")
    assert found["average_visits_per_client"].reason == "follows from visits_365d"
    assert found["recommended_average_ticket"].after == Decimal("65.00")
    assert set(found) == {
        "average_ticket",
        "visits_365d",
        "average_visits_per_client",
        "clients_needed_per_month",
        "current_clients_per_month",
        "additional_clients_needed",
        "recommended_average_ticket",
        "daily_clients_target",
    }
    assert all(d.explained for d in found.values())
    assert drift(engine, ids["barber"], AS_OF, candidate="after_equivalent") == []


def test_idle_barber_gets_zeros_in_every_variant(
    hand_made: tuple[Engine, dict[str, int]],
) -> None:
    engine, ids = hand_made
    results = {
        v: fetch_raw(engine, ids["idle"], AS_OF, v) for v in ("before", "after", "after_equivalent")
    }
    assert results["before"] == results["after"] == results["after_equivalent"]
    assert results["before"].average_ticket == 0
    assert results["before"].visits_365d == 0


@pytest.mark.parametrize(
    ("who", "message"),
    [("desk", r"is not a barber \(role 'user'\)"), ("missing", "does not exist")],
)
def test_non_barbers_are_refused(
    hand_made: tuple[Engine, dict[str, int]], who: str, message: str
) -> None:
    engine, ids = hand_made
    with pytest.raises(DataError, match=message):
        six_figure_metrics(engine, ids.get(who, 999_999), as_of=AS_OF)


def test_unknown_variant_is_refused(hand_made: tuple[Engine, dict[str, int]]) -> None:
    engine, ids = hand_made
    with pytest.raises(ConfigError, match="unknown variant 'fast'"):
        six_figure_metrics(engine, ids["barber"], variant="fast", as_of=AS_OF)


def _ensure_pg_stat_statements(engine: Engine) -> None:
    """The extension in bbperf's schema (create_schema should have made it; this copes if not)."""
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA bbperf"))


def _statement_calls(engine: Engine) -> int:
    """Top-level statements that read appointments in this database, per pg_stat_statements."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND toplevel AND query ILIKE '%appointments%' AND query NOT ILIKE '%pg_stat%'"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize(("variant", "expected"), [("before", 4), ("after", 1)])
def test_pg_stat_statements_counts_round_trips(
    hand_made: tuple[Engine, dict[str, int]], variant: str, expected: int
) -> None:
    engine, ids = hand_made
    calls = 3
    _ensure_pg_stat_statements(engine)
    start = _statement_calls(engine)
    for _ in range(calls):
        fetch_raw(engine, ids["barber"], AS_OF, variant)
    assert _statement_calls(engine) - start == expected * calls


def test_materialized_view_has_befores_meaning(hand_made: tuple[Engine, dict[str, int]]) -> None:
    engine, ids = hand_made
    assert create_metrics_view(engine, AS_OF) > 0
    for user in ids.values():
        assert fetch_from_view(engine, user, AS_OF) == fetch_raw(engine, user, AS_OF, "before")
    assert refresh_metrics_view(engine, concurrently=True) > 0
    with pytest.raises(DataError, match="holds as_of 2026-11-01"):
        fetch_from_view(engine, ids["barber"], AS_OF + timedelta(days=1))


def test_prepared_statement_matches_and_caches_plans(
    hand_made: tuple[Engine, dict[str, int]],
) -> None:
    engine, ids = hand_made
    expected = fetch_raw(engine, ids["barber"], AS_OF, "after_equivalent")
    for _ in range(7):
        assert fetch_prepared(engine, ids["barber"], AS_OF) == expected
    assert fetch_prepared(engine, ids["barber"], AS_OF, "after") == fetch_raw(
        engine, ids["barber"], AS_OF, "after"
    )
    with engine.connect() as conn:  # the pool hands back the one connection that prepared them
        counts = {r["name"]: r["generic_plans"] + r["custom_plans"] for r in plan_cache(conn)}
    assert counts == {"bbperf_six_figure_after_equivalent": 7, "bbperf_six_figure_after": 1}


def _cli(engine: Engine, *argv: str) -> int:
    from bbperf.cli import main

    url = engine.url.render_as_string(hide_password=False)
    return main(["--database-url", url, "metrics", "--as-of", "2026-11-01", *argv])


def test_cli_prints_metrics_json(
    hand_made: tuple[Engine, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, ids = hand_made
    assert (
        _cli(engine, "--user-id", str(ids["barber"]), "--variant", "before", "--target", "120000")
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["variant"] == "before"
    assert data["current_performance"]["average_ticket"] == "54.00"
    assert data["targets"]["monthly_revenue_target"] == "10000.00"
    assert _cli(engine, "--user-id", str(ids["barber"]), "--drift") == 0
    metrics = {d["metric"] for d in json.loads(capsys.readouterr().out)}
    assert {"average_ticket", "visits_365d"} <= metrics


@pytest.mark.parametrize("who", ["desk", "missing"])
def test_cli_refuses_non_barbers_in_one_line(
    hand_made: tuple[Engine, dict[str, int]], capsys: pytest.CaptureFixture[str], who: str
) -> None:
    engine, ids = hand_made
    assert _cli(engine, "--user-id", str(ids.get(who, 999_999))) == 2
    err = capsys.readouterr().err
    assert err.startswith("bbperf: error: user ") and err.count("\n") == 1


def test_every_tiny_barber_agrees_with_before_and_drift_explains_after(
    tiny_engine: Engine,
) -> None:
    barbers = barber_ids(tiny_engine)
    assert len(barbers) >= 4
    drifted: set[str] = set()
    for user in barbers:
        before = fetch_raw(tiny_engine, user, AS_OF, "before")
        after = fetch_raw(tiny_engine, user, AS_OF, "after")
        assert fetch_raw(tiny_engine, user, AS_OF, "after_equivalent") == before
        found = drift(tiny_engine, user, AS_OF)
        assert all(d.explained for d in found), [d for d in found if not d.explained]
        differing = {k for k, v in before.values().items() if after.values()[k] != v}
        assert differing == {d.metric for d in found} & set(before.values())
        drifted |= differing
    # the tiny data has walk-ins and only 60 days of history: both changed meanings show up
    assert drifted == {"average_ticket", "visits_365d"}


def test_default_as_of_is_the_datasets(tiny_engine: Engine) -> None:
    user = barber_ids(tiny_engine)[0]
    metrics = six_figure_metrics(tiny_engine, user)
    assert metrics.raw.as_of == AS_OF
    assert metrics.raw == fetch_raw(tiny_engine, user, AS_OF, "after")


def test_bench_times_each_variant_and_concludes(hand_made: tuple[Engine, dict[str, int]]) -> None:
    from bbperf.metrics import variant_timing
    from bbperf.metrics.drift import drift_summary

    engine, ids = hand_made
    picks = variant_timing.pick_barbers(engine, AS_OF, sampled=3)
    assert [(p.label, p.user_id, p.appointments_30d) for p in picks] == [
        ("busiest", ids["barber"], 4),
        ("median", ids["idle"], 0),
    ]
    before = variant_timing.server_timing(
        engine, "before", ids["barber"], AS_OF, rounds=3, warmup=0
    )
    assert before.extra["statements"] == 4 and len(before.samples_ms) == 3
    create_metrics_view(engine, AS_OF)
    table, timings = variant_timing.benchmark(
        engine, AS_OF, picks, rounds=4, warmup=1, server_rounds=2
    )
    assert len(table) == 2 * len(variant_timing.BENCH_VARIANTS)
    assert table[table["variant"] == "before"]["speedup"].isna().all()
    assert table[table["variant"] != "before"]["speedup"].gt(0).all()
    assert len(timings[("busiest", "after")].samples_ms) == 4
    rows = [d.to_dict() for d in drift(engine, ids["barber"], AS_OF)]
    text_ = variant_timing.conclusion(table, drift_summary(rows, 2), 2)
    assert "busiest barber (user" in text_ and "visits_365d differs for 1 of 2 barbers" in text_
