"""Pool load: bad input, short real load steps, timeouts and refusals as data, the recommendation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
import psycopg2
import pytest
from sqlalchemy import Connection, Engine, make_url, text

from bbperf.errors import ConfigError, DataError
from bbperf.pool import pool_costs, pool_load, recommend_pool_size


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"environments": ["qa"]}, "unknown environment 'qa'"),
        ({"environments": []}, "no environment"),
        ({"concurrency": []}, "no concurrency level"),
        ({"concurrency": [4, 0]}, "concurrency 0 is not"),
        ({"concurrency": [-1]}, "concurrency -1 is not"),
        ({"concurrency": [1.5]}, "concurrency 1.5 is not"),
        ({"concurrency": [True]}, "concurrency True is not"),
        ({"duration_s": 0}, "duration_s 0"),
    ],
)
def test_bad_input_is_rejected_before_connecting(
    kwargs: dict[str, Any], fragment: str, make_test_engine: Callable[..., Engine]
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        # An unreachable URL proves validation happens before any connection attempt.
        pool_load(make_test_engine("postgresql://u@127.0.0.1:1/x"), **kwargs)


def test_short_load_records_every_figure(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    bystander = make_test_engine(fresh_url, "development")
    with bystander.connect():  # same application_name, other pool: must not be counted
        frame = pool_load(make_test_engine(fresh_url), ["development"], [1, 4], duration_s=0.3)
    assert list(frame["concurrency"]) == [1, 4]
    for row in frame.itertuples():
        assert row.requests > 0 and row.errors == 0 and row.pool_timeouts == 0
        assert row.throughput_rps > 0
        assert row.latency_p50_ms <= row.latency_p95_ms <= row.latency_p99_ms
        assert row.checkout_wait_p50_ms <= row.checkout_wait_max_ms
        assert 1 <= row.server_connections_peak <= row.concurrency
        assert row.checked_out_peak <= row.concurrency
        assert row.overflow_used == 0
        assert (row.pool_size, row.max_overflow, row.max_connections) == (10, 20, 100)
        assert row.status in ("healthy", "warning", "unhealthy")
        assert len(row.warnings) == len(row.recommendations)
        assert row.notes == []
    assert frame.iloc[0]["server_connections_peak"] == 1


def test_pool_timeouts_are_counted_not_raised(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    frame = pool_load(
        make_test_engine(fresh_url),
        ["development"],
        [3],
        duration_s=0.3,
        workload="SELECT pg_sleep(0.6)",
        warmup=False,
        pool_size=1,
        max_overflow=0,
        pool_timeout_s=0.2,
    )
    row = frame.iloc[0]
    assert row["pool_timeouts"] >= 2
    assert row["requests"] >= 1
    assert row["checked_out_peak"] == 1
    assert row["status"] == "unhealthy"  # 1 of 1 checked out is over 80 % of pool_size


def test_server_out_of_connections_is_data(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    url = make_url(fresh_url)
    role = f"r_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(str(url.set(database="postgres")))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN")  # superusers ignore a database's limit
        cur.execute(f'ALTER DATABASE "{url.database}" CONNECTION LIMIT 3')
    try:
        frame = pool_load(
            make_test_engine(str(url.set(username=role))),
            ["development"],
            [8],
            duration_s=0.3,
        )
    finally:
        with admin.cursor() as cur:
            cur.execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
            )
            cur.execute(f"DROP ROLE {role}")
        admin.close()
    row = frame.iloc[0]
    assert row["server_refusals"] > 0
    assert row["requests"] > 0
    assert "too many connections" in row["first_error"]
    assert row["server_connections_peak"] <= 2  # the probe holds the third slot


def test_pool_larger_than_the_server_is_a_note(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    frame = pool_load(make_test_engine(fresh_url), ["production"], [1], duration_s=0.2)
    notes = frame.iloc[0]["notes"]
    assert any("pool capacity 150 exceeds the server's 97 usable connections" in n for n in notes)
    assert any("may open 150" in w for w in frame.iloc[0]["warnings"])


def test_callable_workload_is_called(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    calls: list[int] = []

    def work(conn: Connection) -> None:
        calls.append(conn.execute(text("SELECT 7")).scalar_one())

    frame = pool_load(make_test_engine(fresh_url), ["staging"], [2], duration_s=0.2, workload=work)
    assert set(calls) == {7}
    assert frame.iloc[0]["requests"] == len(calls) - 2  # two warm-up calls are not counted


def test_point_lookup_on_the_tiny_dataset(
    tiny_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    frame = pool_load(
        make_test_engine(tiny_url), ["development"], [2], duration_s=0.2, workload="point_lookup"
    )
    assert frame.iloc[0]["requests"] > 0
    assert frame.iloc[0]["errors"] == 0


def test_point_lookup_without_data_says_what_to_do(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    with pytest.raises(DataError, match="bbperf generate"):
        pool_load(
            make_test_engine(fresh_url),
            ["development"],
            [1],
            duration_s=0.2,
            workload="point_lookup",
        )


def test_pool_costs_rows(fresh_url: str, make_test_engine: Callable[..., Engine]) -> None:
    costs = pool_costs(make_test_engine(fresh_url), rounds=5)
    assert list(zip(costs["measure"], costs["variant"], strict=True)) == [
        ("pre_ping", "on"),
        ("pre_ping", "off"),
        ("connection_setup", "NullPool"),
        ("connection_setup", "QueuePool"),
    ]
    for row in costs.itertuples():
        assert len(row.samples_ms) == 5
        assert row.samples_ms == sorted(row.samples_ms)
        assert row.median_ms == row.samples_ms[2]
    with pytest.raises(ConfigError):
        pool_costs(make_test_engine(fresh_url), rounds=0)


def _curve(points: list[tuple[int, float]], **extra: Any) -> pd.DataFrame:
    base = {
        "pool_timeouts": 0,
        "server_refusals": 0,
        "errors": 0,
        "pool_capacity": 100,
        "requests": 10,
    }
    return pd.DataFrame(
        [{**base, "concurrency": c, "throughput_rps": t, **extra} for c, t in points]
    )


def test_recommendation_is_the_knee_of_the_curve() -> None:
    curve = _curve([(1, 1000.0), (4, 3000.0), (16, 3400.0), (64, 3300.0)])
    rec = recommend_pool_size(curve, usable_connections=97, cpu_count=2)
    assert (rec.pool_size, rec.max_overflow, rec.knee_concurrency) == (16, 32, 16)
    assert rec.peak_throughput_rps == 3400.0
    assert rec.formula_pool_size == 5
    assert "still rising" not in rec.reason


def test_recommendation_respects_the_server_and_flags_a_rising_curve() -> None:
    curve = _curve([(1, 1000.0), (4, 2000.0), (16, 4000.0)])
    rec = recommend_pool_size(curve, usable_connections=40, processes=4)
    assert (rec.pool_size, rec.max_overflow) == (10, 0)
    assert "still rising" in rec.reason


def test_recommendation_ignores_dirty_steps() -> None:
    clean = _curve([(1, 1000.0), (4, 2000.0)])
    dirty = pd.concat(
        [
            _curve([(64, 9000.0)], server_refusals=3),
            _curve([(128, 9500.0)], pool_capacity=30),
        ]
    )
    rec = recommend_pool_size(pd.concat([clean, dirty]), usable_connections=97)
    assert rec.knee_concurrency == 4
    with pytest.raises(DataError):
        recommend_pool_size(dirty, usable_connections=97)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["-c", "0,4"], "concurrency 0 is not"), (["-e", "qa"], "unknown environment 'qa'")],
)
def test_cli_bad_input_is_one_line(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bbperf.cli import main

    assert main(["--database-url", "postgresql://u@127.0.0.1:1/x", "pool", "load", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bbperf: error: ") and fragment in err[0]


def test_cli_pool_load_prints_the_steps(fresh_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bbperf.cli import main

    for flag in (["--json"], ["--format", "json"]):  # --json stays as an alias of --format json
        code = main(
            ["--database-url", fresh_url, "pool", "load", "-c", "2", "--duration", "0.2", *flag]
        )
        assert code == 0
        out = json.loads(capsys.readouterr().out)
        assert [(r["environment"], r["concurrency"]) for r in out["load"]] == [("development", 2)]


def test_a_pool_that_cannot_connect_is_a_row_not_a_crash(
    pg15_cluster, make_test_engine: Callable[..., Engine]
) -> None:  # type: ignore[no-untyped-def]
    # production requires TLS; the PostgreSQL 15 fixture speaks plain TCP, so every connect fails.
    load = pool_load(
        make_test_engine(pg15_cluster.url), ["development", "production"], [2], 0.1, "select1"
    )
    prod = load[load.environment == "production"].iloc[0]
    assert prod.status == "unhealthy"
    assert prod.requests == 0
    assert prod.warnings == ["the pool could not open a connection"]
    assert "SSL" in prod.notes[0]
    dev = load[load.environment == "development"].iloc[0]
    assert dev.requests > 0 and isinstance(dev.warnings, list)
    for row in load.itertuples():  # what notebook 03 does with every row
        assert len(list(zip(row.warnings, row.recommendations, strict=True))) == len(row.warnings)
