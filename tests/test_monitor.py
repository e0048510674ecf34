"""PoolMonitor: exact thresholds on built snapshots, and real pool events and metrics on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy import Engine, text

from bbperf.pool.monitor import PoolMonitor
from bbperf.pool.snapshot import (
    DatabaseMetrics,
    PoolSnapshot,
    Snapshot,
    SystemMetrics,
    Thresholds,
    evaluate,
    percentile,
    worst,
)

POOL = PoolSnapshot(
    pool_type="QueuePool",
    dialect="postgresql",
    pool_size=10,
    max_overflow=20,
    checked_in=2,
    checked_out=8,
    overflow=0,
    total=10,
    checkouts=0,
    checkout_wait_ms=[],
)
DB = DatabaseMetrics(
    total_connections=10,
    active_connections=8,
    idle_connections=2,
    idle_in_transaction=5,
    waiting_connections=0,
    database_size_bytes=1,
    cache_hit_ratio=0.90,
    max_connections=100,
    reserved_connections=3,
    server_connections=87,
)
SYSTEM = SystemMetrics(
    cpu_percent=80.0, memory_percent=85.0, open_files=3, threads=2, pid=1, rss_bytes=1
)
AT_LIMITS = Snapshot(taken_at="t", pool=POOL, system=SYSTEM, database=DB)


def test_values_at_the_thresholds_are_healthy() -> None:
    verdict = evaluate(AT_LIMITS)
    assert verdict.status == "healthy"
    assert verdict.warnings == [] and verdict.recommendations == []


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"pool": replace(POOL, checked_out=9)}, "unhealthy", "9 of 10 pooled connections"),
        ({"pool": replace(POOL, overflow=6)}, "unhealthy", "overflow at 6"),
        ({"database": replace(DB, idle_in_transaction=6)}, "warning", "6 sessions idle in tr"),
        ({"database": replace(DB, cache_hit_ratio=0.89)}, "warning", "cache hit ratio 0.89"),
        ({"system": replace(SYSTEM, cpu_percent=80.5)}, "warning", "CPU at 80 %"),
        ({"system": replace(SYSTEM, memory_percent=85.1)}, "warning", "memory at 85 %"),
        ({"database": replace(DB, server_connections=88)}, "warning", "88 of 97 usable"),
        ({"pool": replace(POOL, max_overflow=88)}, "warning", "may open 98 connections"),
    ],
)
def test_each_threshold_crossed_gives_one_warning_and_recommendation(
    change: dict, status: str, fragment: str
) -> None:
    verdict = evaluate(replace(AT_LIMITS, **change))
    assert verdict.status == status
    assert len(verdict.warnings) == 1 == len(verdict.recommendations)
    assert fragment in verdict.warnings[0]
    assert verdict.recommendations[0]


def test_thresholds_are_configurable() -> None:
    strict = Thresholds(checked_out_ratio=0.5, cache_hit_ratio=0.99)
    verdict = evaluate(AT_LIMITS, strict)
    assert verdict.status == "unhealthy"
    assert len(verdict.warnings) == 2


def test_unknown_cache_ratio_and_missing_database_do_not_warn() -> None:
    snap = replace(AT_LIMITS, database=replace(DB, cache_hit_ratio=None))
    assert evaluate(snap).status == "healthy"
    assert evaluate(replace(AT_LIMITS, database=None)).status == "healthy"


def test_worst_and_percentile() -> None:
    assert worst() == "healthy"
    assert worst("healthy", "unhealthy", "warning") == "unhealthy"
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0


def test_checkout_wait_connects_and_recycles_are_counted(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(fresh_url, pool_size=1, max_overflow=0, pool_recycle_s=0)
    with PoolMonitor(engine) as monitor:

        def hold() -> None:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(0.3)"))

        holder = threading.Thread(target=hold)
        holder.start()
        time.sleep(0.05)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        holder.join()
        snap = monitor.pool_snapshot()
    assert snap.checkouts == 2
    assert max(snap.checkout_wait_ms) >= 150  # waited for the holder to check its connection in
    assert snap.connects >= 2  # the first connect, then a recycle (pool_recycle 0 s)
    assert snap.recycles == snap.connects - 1
    assert snap.invalidations == 0
    assert snap.capacity == 1


def test_invalidation_is_counted_and_pool_state_reported(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(fresh_url, pool_size=2, max_overflow=1)
    with PoolMonitor(engine) as monitor:
        conns = [engine.connect() for _ in range(3)]
        busy = monitor.pool_snapshot()
        conns[0].invalidate()
        for conn in conns:
            conn.close()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        after = monitor.pool_snapshot()
    assert (busy.checked_out, busy.overflow, busy.total) == (3, 1, 3)
    assert after.checked_out == 0
    assert after.invalidations == 1
    assert after.recycles == 0


def test_database_metrics_see_idle_in_transaction_and_cache_hits(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(fresh_url, pool_size=8, max_overflow=0)
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE public.t AS SELECT g AS id FROM generate_series(1, 1000) g")
        )
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM public.t")).scalar()
        conn.execute(text("SELECT pg_stat_force_next_flush()"))  # table stats flush lazily
        conn.commit()
    idle = [engine.connect() for _ in range(6)]
    for conn in idle:
        conn.execute(text("SELECT 1"))  # autobegin: the session is now idle in transaction
    with PoolMonitor(engine) as monitor:
        snap = monitor.snapshot(cpu_interval_s=None)
        verdict = monitor.check(snap)
    for conn in idle:
        conn.close()
    db = snap.database
    assert db is not None and snap.database_error is None
    assert db.idle_in_transaction == 6
    assert db.total_connections == 7
    assert db.active_connections == 1  # the monitor's own query
    assert db.max_connections == 100
    assert db.headroom == db.max_connections - db.reserved_connections - db.server_connections
    assert db.database_size_bytes > 0
    assert db.cache_hit_ratio is not None and 0.0 <= db.cache_hit_ratio <= 1.0
    assert any("6 sessions idle in transaction" in w for w in verdict.warnings)
    assert verdict.status in ("warning", "unhealthy")


def test_unreachable_database_is_reported_not_raised(
    make_test_engine: Callable[..., Engine],
) -> None:
    engine = make_test_engine("postgresql://u:pw@127.0.0.1:1/x", connect_timeout_s=2)
    with PoolMonitor(engine) as monitor:
        snap = monitor.snapshot(cpu_interval_s=None)
    assert snap.database is None
    assert snap.database_error and "cannot reach the database server" in snap.database_error
    assert "pw" not in snap.database_error.replace("psycopg2", "")


def test_close_detaches_listeners(fresh_url: str, make_test_engine: Callable[..., Engine]) -> None:
    engine = make_test_engine(fresh_url)
    monitor = PoolMonitor(engine)
    monitor.close()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    snap = monitor.pool_snapshot()
    assert (snap.checkouts, snap.connects, len(snap.checkout_wait_ms)) == (0, 0, 0)
