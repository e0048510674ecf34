"""Many client connections at once, directly or through PgBouncer: one thread per client, each
holding its own psycopg2 connection for the whole step (as many app processes would).

A step connects every client at once (connect time and refusals are measured: running out of
``max_connections`` is data), then lets them all run a statement in a loop for ``duration_s``
seconds while the server connections in use are sampled. Threads, not processes: on this machine
1,000 threads hold 1,000 connections; their GIL shares the client CPU, so read the server side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg2

from bbperf.errors import ConfigError, first_line
from bbperf.pool.snapshot import percentile
from bbperf.poolconfig import ENVIRONMENTS, pool_config
from bbperf.sql import parse_one
from bbperf.topology.running import check_open_files
from bbperf.urls import mask_text

APPLICATION_NAME = "bbperf_fanout"
_REFUSED = ("too many clients", "remaining connection slots", "no more connections allowed")
# EAGAIN on a Unix socket: the listen backlog is full, the server is not accepting fast enough.
_BACKLOG = "Resource temporarily unavailable"


@dataclass
class _Client:
    connect_ms: float | None = None
    refused: bool = False
    backlog_full: bool = False
    error: str | None = None
    latencies_ms: list[float] = field(default_factory=list)


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def _client(
    url: str, sql: str, client: _Client, go: threading.Event, stop: threading.Event
) -> None:
    start = time.perf_counter()
    try:
        conn = psycopg2.connect(_dsn(url), connect_timeout=10, application_name=APPLICATION_NAME)
    except psycopg2.Error as exc:
        message = first_line(exc)
        client.refused = any(part in message for part in _REFUSED)
        client.backlog_full = _BACKLOG in message
        client.error = mask_text(message)
        return
    client.connect_ms = (time.perf_counter() - start) * 1000
    conn.autocommit = True
    try:
        go.wait()
        with conn.cursor() as cur:
            while not stop.is_set():
                began = time.perf_counter()
                cur.execute(sql)
                cur.fetchall()
                client.latencies_ms.append((time.perf_counter() - began) * 1000)
    except psycopg2.Error as exc:
        client.error = mask_text(first_line(exc))
    finally:
        conn.close()


def fanout_step(
    url: str,
    clients: int,
    duration_s: float,
    *,
    sql: str = "SELECT 1",
    server_connections: Callable[[], int] | None = None,
    label: str = "direct",
) -> dict[str, Any]:
    """One step: ``clients`` connections opened at once on ``url``, then ``duration_s`` seconds of
    ``sql`` in a loop on each. ``server_connections()`` (sampled every 50 ms) says how many server
    connections are in use. Returns one row of figures (ms, requests/s)."""
    sql = parse_one(sql, allow_writes=False).text
    if isinstance(clients, bool) or not isinstance(clients, int) or clients < 1:
        raise ConfigError(f"clients {clients!r} must be a positive whole number")
    if not duration_s > 0:
        raise ConfigError(f"duration_s {duration_s!r} must be a positive number of seconds")
    check_open_files(clients + 100, "clients")
    states = [_Client() for _ in range(clients)]
    go, stop = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=_client, args=(url, sql, s, go, stop), daemon=True) for s in states
    ]
    connect_start = time.perf_counter()
    for thread in threads:
        thread.start()
    # Every client has connected or failed once no client is still connecting.
    while any(s.connect_ms is None and s.error is None for s in states):
        if time.perf_counter() - connect_start > 60:
            break
        time.sleep(0.01)
    connect_wall_s = time.perf_counter() - connect_start
    peak = 0
    go.set()
    began = time.perf_counter()
    while time.perf_counter() - began < duration_s:
        if server_connections is not None:
            peak = max(peak, server_connections())
        time.sleep(0.05)
    stop.set()
    elapsed = time.perf_counter() - began
    for thread in threads:
        thread.join(timeout=30)
    latencies = sorted(x for s in states for x in s.latencies_ms)
    connects = sorted(s.connect_ms for s in states if s.connect_ms is not None)
    errors = [s.error for s in states if s.error and not (s.refused or s.backlog_full)]
    return {
        "via": label,
        "clients": clients,
        "connected": len(connects),
        "refused": sum(s.refused for s in states),
        "backlog_full": sum(s.backlog_full for s in states),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "connect_p50_ms": percentile(connects, 50),
        "connect_p95_ms": percentile(connects, 95),
        "connect_wall_s": connect_wall_s,
        "requests": len(latencies),
        "throughput_rps": len(latencies) / elapsed,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "latency_p99_ms": percentile(latencies, 99),
        "server_connections_peak": peak if server_connections is not None else None,
    }


def fanout(
    steps: Sequence[tuple[str, str, Callable[[], int] | None]],
    clients: Sequence[int],
    duration_s: float,
    sql: str = "SELECT 1",
) -> pd.DataFrame:
    """Every (label, url, server_connections) in ``steps`` at every client count, one path after
    the other: a PgBouncer keeps its server connections open after its steps, and they would take
    server slots from a direct step run after them. One row per step."""
    rows = [
        fanout_step(url, n, duration_s, sql=sql, server_connections=count, label=label)
        for label, url, count in steps
        for n in clients
    ]
    return pd.DataFrame(rows)


def direct_server_connections(url: str) -> Callable[[], int]:
    """A sampler counting the fan-out's own connections in pg_stat_activity, on a connection
    opened now (before the clients take every slot)."""
    conn = psycopg2.connect(_dsn(url), connect_timeout=10)
    conn.autocommit = True

    def count() -> int:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (APPLICATION_NAME,),
            )
            return int(cur.fetchone()[0])

    count.close = conn.close  # type: ignore[attr-defined]
    return count


def processes_that_fit(
    capacity_per_process: int, usable_connections: int, max_client_conn: int
) -> dict[str, int]:
    """How many app processes, each with a pool of ``capacity_per_process`` connections at most,
    fit the server directly and through PgBouncer (pure)."""
    if capacity_per_process < 1:
        raise ConfigError("capacity_per_process must be at least 1")
    return {
        "processes_direct": usable_connections // capacity_per_process,
        "processes_via_pgbouncer": max_client_conn // capacity_per_process,
    }


def pool_fit(usable_connections: int, max_client_conn: int, default_pool_size: int) -> pd.DataFrame:
    """Per environment: one process's pool capacity (pool_size + max_overflow), and how many such
    processes fit the server directly and through PgBouncer (which keeps ``default_pool_size``
    server connections per database and user whatever the clients)."""
    rows = []
    for env in ENVIRONMENTS:
        config = pool_config(env)
        capacity = config.pool_size + config.max_overflow
        rows.append(
            {
                "environment": env,
                "pool_size": config.pool_size,
                "max_overflow": config.max_overflow,
                "capacity_per_process": capacity,
                **processes_that_fit(capacity, usable_connections, max_client_conn),
                "server_connections_via_pgbouncer": default_pool_size,
            }
        )
    return pd.DataFrame(rows)
