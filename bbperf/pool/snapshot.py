"""Monitor snapshots (pool, database, system) and the pure verdict on them: thresholds, evaluate.

The thresholds are the BookedBarber monitor's: unhealthy when more than 80 % of pool_size is
checked out or overflow exceeds 50 % of pool_size; warnings for > 5 idle-in-transaction sessions,
a heap cache hit ratio under 0.90, CPU over 80 % and memory over 85 %. bbperf adds two: the
server's connection slots almost used up, and a pool that can open more connections than the
server accepts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
