"""PoolMonitor: pool, PostgreSQL and system metrics for an engine, and a verdict with advice.

The thresholds are the BookedBarber monitor's: unhealthy when more than 80 % of pool_size is
checked out or overflow exceeds 50 % of pool_size; warnings for > 5 idle-in-transaction sessions,
a heap cache hit ratio under 0.90, CPU over 80 % and memory over 85 %. bbperf adds two: the
server's connection slots almost used up, and a pool that can open more connections than the
server accepts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import psutil
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

Status = Literal["healthy", "warning", "unhealthy"]
_RANK: dict[Status, int] = {"healthy": 0, "warning": 1, "unhealthy": 2}


@dataclass(frozen=True)
class Thresholds:
    """Where the monitor draws its lines: ratios are fractions (0.8 = 80 %), percents 0–100."""

    checked_out_ratio: float = 0.80
    overflow_ratio: float = 0.50
    idle_in_transaction: int = 5
    cache_hit_ratio: float = 0.90
    cpu_percent: float = 80.0
    memory_percent: float = 85.0
    server_connections_ratio: float = 0.90


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class PoolSnapshot:
    """The pool's state and its event counters since the monitor was attached; times in ms."""

    pool_type: str
    dialect: str
    pool_size: int
    max_overflow: int
    checked_in: int
    checked_out: int
    overflow: int
    total: int
    checkouts: int
    checkout_wait_ms: list[float] = field(repr=False)
    connects: int = 0
    invalidations: int = 0
    recycles: int = 0

    @property
    def capacity(self) -> int:
        """Most connections the pool may hold at once (pool_size + max_overflow)."""
        return self.pool_size + max(self.max_overflow, 0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        waits = sorted(data.pop("checkout_wait_ms"))
        data["checkout_wait_ms"] = {
            "count": len(waits),
            "p50": percentile(waits, 50),
            "p95": percentile(waits, 95),
            "max": waits[-1] if waits else None,
        }
        return data


@dataclass(frozen=True)
class DatabaseMetrics:
    """pg_stat_activity for the current database, its size, heap cache hit ratio, connection slots.

    ``waiting`` counts sessions waiting on a lock; ``server_connections`` counts client backends on
    every database; ``headroom`` is what is left of max_connections after the superuser reserve.
    ``cache_hit_ratio`` is None before any table block was read.
    """

    total_connections: int
    active_connections: int
    idle_connections: int
    idle_in_transaction: int
    waiting_connections: int
    database_size_bytes: int
    cache_hit_ratio: float | None
    max_connections: int
    reserved_connections: int
    server_connections: int

    @property
    def usable_connections(self) -> int:
        return self.max_connections - self.reserved_connections

    @property
    def headroom(self) -> int:
        return self.usable_connections - self.server_connections

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "headroom": self.headroom}


@dataclass(frozen=True)
class SystemMetrics:
    """This machine's CPU and memory use, and this process's open files and threads."""

    cpu_percent: float
    memory_percent: float
    open_files: int
    threads: int
    pid: int
    rss_bytes: int


@dataclass(frozen=True)
class Snapshot:
    """Everything the monitor saw at one moment; ``database`` is None when it could not be read."""

    taken_at: str
    pool: PoolSnapshot
    system: SystemMetrics
    database: DatabaseMetrics | None = None
    database_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "taken_at": self.taken_at,
            "pool": self.pool.to_dict(),
            "system": asdict(self.system),
            "database": self.database.to_dict() if self.database else None,
            "database_error": self.database_error,
        }


@dataclass(frozen=True)
class HealthCheck:
    """A verdict: each warning has the recommendation at the same position."""

    status: Status
    warnings: list[str]
    recommendations: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def worst(*statuses: Status) -> Status:
    """The most severe of ``statuses`` (healthy when none)."""
    return max(statuses, key=_RANK.__getitem__, default="healthy")


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile of already sorted values; None for an empty list."""
    if not sorted_values:
        return None
    rank = (len(sorted_values) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def evaluate(snapshot: Snapshot, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> HealthCheck:
    """Judge a snapshot: pure, so every threshold is testable without a server."""
    found: list[tuple[Status, str, str]] = []
    pool, db, system, t = snapshot.pool, snapshot.database, snapshot.system, thresholds
    if pool.pool_size > 0 and pool.checked_out > t.checked_out_ratio * pool.pool_size:
        found.append(
            (
                "unhealthy",
                f"{pool.checked_out} of {pool.pool_size} pooled connections checked out "
                f"(> {t.checked_out_ratio:.0%} of pool_size)",
                "raise pool_size, or shorten how long requests hold a connection",
            )
        )
    if pool.pool_size > 0 and pool.overflow > t.overflow_ratio * pool.pool_size:
        found.append(
            (
                "unhealthy",
                f"overflow at {pool.overflow} connections (> {t.overflow_ratio:.0%} of "
                f"pool_size {pool.pool_size})",
                "raise pool_size so steady load does not live in overflow",
            )
        )
    if db is not None:
        if db.idle_in_transaction > t.idle_in_transaction:
            found.append(
                (
                    "warning",
                    f"{db.idle_in_transaction} sessions idle in transaction "
                    f"(> {t.idle_in_transaction})",
                    "commit or roll back promptly; set idle_in_transaction_session_timeout",
                )
            )
        if db.cache_hit_ratio is not None and db.cache_hit_ratio < t.cache_hit_ratio:
            found.append(
                (
                    "warning",
                    f"heap cache hit ratio {db.cache_hit_ratio:.2f} (< {t.cache_hit_ratio:.2f})",
                    "raise shared_buffers or add indexes so queries read fewer blocks",
                )
            )
        if db.server_connections > t.server_connections_ratio * db.usable_connections:
            found.append(
                (
                    "warning",
                    f"{db.server_connections} of {db.usable_connections} usable server "
                    f"connections in use (> {t.server_connections_ratio:.0%})",
                    "lower pool_size + max_overflow per process, or put PgBouncer in front",
                )
            )
        if pool.capacity > db.usable_connections:
            found.append(
                (
                    "warning",
                    f"pool may open {pool.capacity} connections (pool_size + max_overflow) "
                    f"but the server accepts {db.usable_connections}",
                    f"keep pool_size + max_overflow at or below {db.usable_connections} "
                    "divided by the number of processes",
                )
            )
    if system.cpu_percent > t.cpu_percent:
        found.append(
            (
                "warning",
                f"CPU at {system.cpu_percent:.0f} % (> {t.cpu_percent:.0f} %)",
                "reduce concurrency or move the database to a less loaded host",
            )
        )
    if system.memory_percent > t.memory_percent:
        found.append(
            (
                "warning",
                f"memory at {system.memory_percent:.0f} % (> {t.memory_percent:.0f} %)",
                "lower work_mem or the number of connections, or add memory",
            )
        )
    return HealthCheck(
        status=worst(*(status for status, _, _ in found)),
        warnings=[w for _, w, _ in found],
        recommendations=[r for _, _, r in found],
    )


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

        from bbperf.target import describe_db_error

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
