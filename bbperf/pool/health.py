"""Health checks in the BookedBarber shape: a real database round trip, system, process and pool.

``health_detailed(engine)`` gathers; ``combine`` (pure) decides the overall status. The original's
database check always failed (it passed a raw SQL string, which SQLAlchemy 2 rejects); this one
runs ``SELECT 1`` through the pool and reports the round trip in milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psutil
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bbperf.pool.monitor import PoolMonitor
from bbperf.pool.snapshot import (
    DEFAULT_THRESHOLDS,
    HealthCheck,
    Snapshot,
    Status,
    SystemMetrics,
    Thresholds,
    evaluate,
    worst,
)
from bbperf.target import describe_db_error


def database_check(engine: Engine) -> dict[str, Any]:
    """A real round trip: ``SELECT 1`` and the server version through the engine's pool."""
    start = time.perf_counter()
    try:
        with engine.connect() as conn:
            one = conn.execute(text("SELECT 1")).scalar_one()
            version = conn.execute(text("SHOW server_version")).scalar_one()
    except DBAPIError as exc:
        return {"status": "unhealthy", "error": describe_db_error(exc, engine)}
    except SQLAlchemyError as exc:
        return {"status": "unhealthy", "error": str(exc).splitlines()[0]}
    return {
        "status": "healthy" if one == 1 else "unhealthy",
        "round_trip_ms": round((time.perf_counter() - start) * 1000, 3),
        "server_version": str(version),
    }


def system_check(
    system: SystemMetrics, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> dict[str, Any]:
    """CPU and memory against the thresholds (pure)."""
    busy = (
        system.cpu_percent > thresholds.cpu_percent
        or system.memory_percent > thresholds.memory_percent
    )
    return {
        "status": "warning" if busy else "healthy",
        "cpu_percent": system.cpu_percent,
        "memory_percent": system.memory_percent,
    }


def process_check(system: SystemMetrics, started_at: float) -> dict[str, Any]:
    """This process: pid, resident memory, threads, open files, uptime (pure)."""
    return {
        "status": "healthy",
        "pid": system.pid,
        "rss_bytes": system.rss_bytes,
        "threads": system.threads,
        "open_files": system.open_files,
        "uptime_s": round(time.time() - started_at, 1),
    }


def pool_check(snapshot: Snapshot, verdict: HealthCheck) -> dict[str, Any]:
    """The ``connection_pool`` check from a monitor snapshot and its verdict (pure).

    An unreadable database makes this check unhealthy too: the pool cannot serve anything.
    """
    db = snapshot.database
    status, warnings, recommendations = (
        verdict.status,
        list(verdict.warnings),
        list(verdict.recommendations),
    )
    if snapshot.database_error:
        status = "unhealthy"
        warnings.append(f"database metrics unavailable: {snapshot.database_error}")
        recommendations.append("check that the database server is running and reachable")
    return {
        "status": status,
        "pool_size": snapshot.pool.pool_size,
        "checked_out": snapshot.pool.checked_out,
        "overflow": snapshot.pool.overflow,
        "warnings": warnings,
        "recommendations": recommendations,
        "database_metrics": {
            "total_connections": db.total_connections if db else None,
            "active_connections": db.active_connections if db else None,
            "idle_connections": db.idle_connections if db else None,
            "cache_hit_ratio": db.cache_hit_ratio if db else None,
        },
    }


def combine(checks: dict[str, dict[str, Any]]) -> Status:
    """Overall status: the worst of the checks' statuses (pure)."""
    return worst(*(check["status"] for check in checks.values()))


def health_detailed(
    engine: Engine,
    monitor: PoolMonitor | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    cpu_interval_s: float | None = 0.1,
) -> dict[str, Any]:
    """``{status, timestamp, checks: {database, system, process, connection_pool}}`` for ``engine``.

    ``monitor`` (default: a temporary one) supplies the pool counters; CPU % is sampled over
    ``cpu_interval_s`` seconds (None: since the previous sample).
    """
    own = monitor is None
    mon = monitor or PoolMonitor(engine, thresholds)
    try:
        database = database_check(engine)
        reachable = database["status"] == "healthy"
        snapshot = mon.snapshot(cpu_interval_s=cpu_interval_s, read_database=reachable)
        if not reachable:
            snapshot = replace(snapshot, database_error=database.get("error", "check failed"))
    finally:
        if own:
            mon.close()
    checks = {
        "database": database,
        "system": system_check(snapshot.system, thresholds),
        "process": process_check(snapshot.system, psutil.Process().create_time()),
        "connection_pool": pool_check(snapshot, evaluate(snapshot, thresholds)),
    }
    return {
        "status": combine(checks),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "checks": checks,
    }


def health_basic(engine: Engine) -> dict[str, Any]:
    """``{status, timestamp, database}``: only the database round trip, for liveness probes."""
    database = database_check(engine)
    return {
        "status": database["status"],
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": database,
    }


def http_status(report: dict[str, Any]) -> int:
    """200 while the service can work (healthy or warning), 503 when unhealthy (pure)."""
    return 503 if report["status"] == "unhealthy" else 200
