"""PoolMonitor: pool, PostgreSQL and system metrics for an engine, and a verdict with advice.

The snapshot dataclasses, thresholds and the pure ``evaluate`` live in bbperf.pool.snapshot; this
module reads the metrics (pool events, pg_stat_activity, psutil).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psutil
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from bbperf.pool.snapshot import (
    DEFAULT_THRESHOLDS,
    DatabaseMetrics,
    HealthCheck,
    PoolSnapshot,
    Snapshot,
    SystemMetrics,
    Thresholds,
    evaluate,
)
from bbperf.target import describe_db_error

_ACTIVITY_SQL = text("""
SELECT count(*) FILTER (WHERE datname = current_database()) AS total,
       count(*) FILTER (WHERE datname = current_database() AND state = 'active') AS active,
       count(*) FILTER (WHERE datname = current_database() AND state = 'idle') AS idle,
       count(*) FILTER (WHERE datname = current_database()
                          AND state IN ('idle in transaction', 'idle in transaction (aborted)'))
           AS idle_in_transaction,
       count(*) FILTER (WHERE datname = current_database() AND wait_event_type = 'Lock') AS waiting,
       count(*) AS server_connections,
       pg_database_size(current_database()) AS size_bytes,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved
FROM pg_stat_activity WHERE backend_type = 'client backend'
""")
_CACHE_SQL = text("""
SELECT sum(heap_blks_hit) AS hit, sum(heap_blks_read) AS read FROM pg_statio_user_tables
""")


def read_database_metrics(conn: Connection) -> DatabaseMetrics:
    """Read pg_stat_activity, database size, cache hits and connection limits on ``conn``."""
    act = conn.execute(_ACTIVITY_SQL).mappings().one()
    cache = conn.execute(_CACHE_SQL).mappings().one()
    hit, read = int(cache["hit"] or 0), int(cache["read"] or 0)
    return DatabaseMetrics(
        total_connections=act["total"],
        active_connections=act["active"],
        idle_connections=act["idle"],
        idle_in_transaction=act["idle_in_transaction"],
        waiting_connections=act["waiting"],
        database_size_bytes=int(act["size_bytes"]),
        cache_hit_ratio=hit / (hit + read) if hit + read else None,
        max_connections=act["max_connections"],
        reserved_connections=act["reserved"],
        server_connections=act["server_connections"],
    )


def read_system_metrics(cpu_interval_s: float | None = 0.1) -> SystemMetrics:
    """CPU % over ``cpu_interval_s`` (None: since the last call), memory %, this process."""
    proc = psutil.Process(os.getpid())
    with proc.oneshot():
        threads, rss = proc.num_threads(), proc.memory_info().rss
        open_files = len(proc.open_files())
    return SystemMetrics(
        cpu_percent=psutil.cpu_percent(interval=cpu_interval_s),
        memory_percent=psutil.virtual_memory().percent,
        open_files=open_files,
        threads=threads,
        pid=proc.pid,
        rss_bytes=rss,
    )


class PoolMonitor:
    """Counts an engine's pool events and reads its metrics; ``close()`` detaches the listeners.

    Checkout wait is the time spent getting a connection out of the pool (queueing plus opening
    a new connection), excluding pre-ping. SQLAlchemy has no event before a checkout starts, so
    the monitor times the pool's ``_do_get``. A recycle is a reconnect of a pooled connection that was not
    invalidated first (pool_recycle expiry, or a pool-wide invalidation after a disconnect).
    """

    def __init__(self, engine: Engine, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
        self.engine = engine
        self.thresholds = thresholds
        self._lock = threading.Lock()
        self._depth = threading.local()
        self._waits_ms: list[float] = []
        self._counts = {"checkouts": 0, "connects": 0, "invalidations": 0, "recycles": 0}
        self._listeners: dict[str, Callable[..., None]] = {
            "connect": self._on_connect,
            "checkout": self._on_checkout,
            "invalidate": self._on_invalidate,
            "soft_invalidate": self._on_invalidate,
        }
        for name, fn in self._listeners.items():
            event.listen(engine, name, fn)
        self._pool = engine.pool
        self._do_get = engine.pool._do_get
        engine.pool._do_get = self._timed_do_get  # type: ignore[method-assign]

    def close(self) -> None:
        """Stop listening; the counters keep their values."""
        for name, fn in self._listeners.items():
            event.remove(self.engine, name, fn)
        self._pool._do_get = self._do_get  # type: ignore[method-assign]

    def __enter__(self) -> PoolMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Zero the counters and forget the recorded waits."""
        with self._lock:
            self._waits_ms.clear()
            self._counts = dict.fromkeys(self._counts, 0)

    def _timed_do_get(self) -> ConnectionPoolEntry:
        # QueuePool._do_get retries by calling itself: time only the outermost call.
        if getattr(self._depth, "busy", False):
            return self._do_get()
        self._depth.busy = True
        start = time.perf_counter()
        try:
            return self._do_get()
        finally:
            elapsed_ms = (time.perf_counter() - start) * 1000
            self._depth.busy = False
            with self._lock:
                self._waits_ms.append(elapsed_ms)

    def _bump(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _on_connect(self, dbapi_conn: Any, record: Any) -> None:
        self._bump("connects")
        info = record.record_info
        if info is None:
            return
        if info.get("bbperf_opened") and not info.pop("bbperf_invalidated", False):
            self._bump("recycles")
        info["bbperf_opened"] = True

    def _on_checkout(self, dbapi_conn: Any, record: Any, proxy: Any) -> None:
        self._bump("checkouts")

    def _on_invalidate(self, dbapi_conn: Any, record: Any, exc: BaseException | None) -> None:
        self._bump("invalidations")
        if record.record_info is not None:
            record.record_info["bbperf_invalidated"] = True

    def pool_snapshot(self) -> PoolSnapshot:
        """The pool's current state and the counters (no database round trip)."""
        pool = self.engine.pool
        # Other pools (SQLite's StaticPool) hold one connection and keep no counts.
        size, max_overflow, checked_in, checked_out, overflow = 1, 0, 0, 0, 0
        if isinstance(pool, QueuePool):
            size, max_overflow = pool.size(), pool._max_overflow
            checked_in, checked_out = pool.checkedin(), pool.checkedout()
            overflow = max(pool.overflow(), 0)
        with self._lock:
            waits, counts = list(self._waits_ms), dict(self._counts)
        return PoolSnapshot(
            pool_type=type(pool).__name__,
            dialect=self.engine.dialect.name,
            pool_size=size,
            max_overflow=max_overflow,
            checked_in=checked_in,
            checked_out=checked_out,
            overflow=overflow,
            total=checked_in + checked_out,
            checkout_wait_ms=waits,
            **counts,
        )

    def snapshot(
        self,
        conn: Connection | None = None,
        cpu_interval_s: float | None = 0.1,
        read_database: bool = True,
    ) -> Snapshot:
        """Pool, database and system metrics; database ones via ``conn`` or a pooled connection.

        A database that cannot be read leaves ``database`` None and its error in ``database_error``;
        ``read_database=False`` skips it (when the caller already knows the server is down).
        """
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        pool = self.pool_snapshot()
        database, error = None, None
        if read_database and self.engine.dialect.name == "postgresql":
            try:
                if conn is not None:
                    database = read_database_metrics(conn)
                else:
                    with self.engine.connect() as own:
                        database = read_database_metrics(own)
            except DBAPIError as exc:
                error = describe_db_error(exc, self.engine)
            except SQLAlchemyError as exc:
                error = str(exc).splitlines()[0]
        return Snapshot(
            taken_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            pool=pool,
            system=read_system_metrics(cpu_interval_s),
            database=database,
            database_error=error,
        )

    def check(self, snapshot: Snapshot | None = None) -> HealthCheck:
        """healthy / warning / unhealthy for ``snapshot`` (default: a fresh one)."""
        return evaluate(snapshot or self.snapshot(), self.thresholds)
