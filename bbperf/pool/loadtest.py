"""Pool load benchmark: real threads issue a workload through each environment's pool.

``pool_load`` records, per environment and concurrency, throughput, request latency p50/p95/p99,
checkout wait, pool timeouts, server refusals, overflow used and server-side connections, plus the
PoolMonitor's verdict mid-step. Running out of server connections is data (``server_refusals``),
never a crash. ``pool_costs`` and ``recommend_pool_size`` live in bbperf.pool.costs and are
re-exported here.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psutil
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bbperf.errors import ConfigError, DataError, first_line
from bbperf.pool.describe import make_engine, pool_config
from bbperf.pool.monitor import PoolMonitor, read_database_metrics
from bbperf.pool.snapshot import DatabaseMetrics, evaluate, percentile
from bbperf.sql import parse_one
from bbperf.target import schema_of, user_engine
from bbperf.urls import mask_text

Workload = str | Callable[[Connection], object]
WORKLOADS = {
    "select1": "SELECT 1",
    "sleep_5ms": "SELECT pg_sleep(0.005)",
    "point_lookup": "indexed primary-key lookup of one random appointment",
}
_REFUSED = ("too many clients", "remaining connection slots", "too many connections for")
_SAMPLE_EVERY_S = 0.05


def validate(environments: Sequence[str], concurrency: Sequence[int], duration_s: float) -> None:
    """Reject bad input before anything connects: unknown environments, levels ≤ 0, no duration."""
    if not environments:
        raise ConfigError("no environment given: name at least one of development, staging, ...")
    for env in environments:
        pool_config(env)
    if not concurrency:
        raise ConfigError("no concurrency level given: e.g. concurrency=[1, 4, 16, 64]")
    for level in concurrency:
        if isinstance(level, bool) or not isinstance(level, int) or level <= 0:
            raise ConfigError(f"concurrency {level!r} is not a positive whole number of workers")
    if not duration_s > 0:
        raise ConfigError(f"duration_s {duration_s!r} must be a positive number of seconds")


def resolve_workload(workload: Workload, engine: Engine) -> Callable[[Connection], object]:
    """A callable ``f(conn)``: a built-in name (WORKLOADS), any SQL text, or your own callable."""
    if callable(workload):
        return workload
    if workload == "point_lookup":
        return _point_lookup(engine)
    if workload not in WORKLOADS and not any(c.isspace() for c in workload.strip()):
        raise ConfigError(
            f"unknown workload {workload!r}: choose one of {', '.join(sorted(WORKLOADS))}, "
            "point_lookup, or a SELECT statement"
        )
    if workload in WORKLOADS:
        statement = text(WORKLOADS[workload])
        return lambda conn: conn.execute(statement).all()
    checked = parse_one(workload, allow_writes=False)
    if checked.binds:
        raise ConfigError(
            f"a load-test statement takes no parameters; this one has "
            f"{', '.join(':' + b for b in checked.binds)}: write the values into the SQL"
        )
    # Your SQL runs exactly as parsed, in a read-only transaction (and, on bbperf's own server, as
    # the least-privilege role: see run_step), so a load test can never change data.
    return lambda conn: (
        conn.execution_options(postgresql_readonly=True).exec_driver_sql(checked.numbered).all()
    )


def is_user_sql(workload: Workload) -> bool:
    """True for a workload given as SQL text (not a built-in name or a callable)."""
    return isinstance(workload, str) and workload not in WORKLOADS and workload != "point_lookup"


def _point_lookup(engine: Engine) -> Callable[[Connection], object]:
    try:
        with engine.connect() as conn:
            low, high = conn.execute(text("SELECT min(id), max(id) FROM appointments")).one()
    except DBAPIError:
        low = high = None
    if low is None:
        raise DataError(
            "workload point_lookup needs rows in bbperf's appointments table: load a dataset "
            "first (`bbperf generate`), or use workload='select1'"
        )
    statement = text(
        "SELECT id, barber_id, status, start_time, price FROM appointments WHERE id = :id"
    )
    rng = random.Random(0)
    return lambda conn: conn.execute(statement, {"id": rng.randint(low, high)}).all()


@dataclass
class _Worker:
    latencies_ms: list[float]
    timeouts: int = 0
    refusals: int = 0
    errors: int = 0
    first_error: str | None = None
    finished_at: float = 0.0


def _request(engine: Engine, run: Callable[[Connection], object], worker: _Worker) -> None:
    start = time.perf_counter()
    try:
        with engine.connect() as conn:
            run(conn)
    except PoolTimeout:
        worker.timeouts += 1
    except (DBAPIError, SQLAlchemyError) as exc:
        message = first_line(exc)
        if any(part in message for part in _REFUSED):
            worker.refusals += 1
        else:
            worker.errors += 1
        worker.first_error = worker.first_error or mask_text(message)
        time.sleep(0.01)  # a refused connect returns at once; do not spin on it
    else:
        worker.latencies_ms.append((time.perf_counter() - start) * 1000)


class _BackendPids:
    """Server process ids of the connections one pool opened (so other clients are not counted)."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._pids: set[int] = set()
        event.listen(engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_conn: Any, record: Any) -> None:
        with self._lock:
            self._pids.add(dbapi_conn.info.backend_pid)

    def alive(self, conn: Connection) -> int:
        """How many of them the server still lists in pg_stat_activity."""
        with self._lock:
            pids = sorted(self._pids)
        if not pids:
            return 0
        sql = text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)")
        return int(conn.execute(sql, {"pids": pids}).scalar_one())


def run_step(
    target: Engine,
    environment: str,
    concurrency: int,
    duration_s: float,
    workload: Workload = "select1",
    warmup: bool = True,
    server_connections: Callable[[], int] | None = None,
    **pool_overrides: Any,
) -> dict[str, Any]:
    """One load step: ``concurrency`` threads for ``duration_s`` seconds through one pool built with
    ``environment``'s settings on ``target``'s URL and schema.

    ``server_connections()`` counts the server connections in use when the pool's own backend
    pids do not (through PgBouncer the driver sees PgBouncer's, not the server's).
    """
    config = pool_config(environment, echo_pool=False, **pool_overrides)
    url, schema = target.url, schema_of(target)
    if is_user_sql(workload):
        url = user_engine(target).url  # the least-privilege role on bbperf's own server
    engine = make_engine(url, environment, schema=schema, echo_pool=False, **pool_overrides)
    probe = make_engine(
        url,
        environment,
        schema=schema,
        pool_size=1,
        max_overflow=0,
        echo_pool=False,
        application_name="bbperf_poolload_probe",
    )
    row: dict[str, Any] = {
        "environment": environment,
        "concurrency": concurrency,
        "pool_size": config.pool_size,
        "max_overflow": config.max_overflow,
        "pool_capacity": config.pool_size + config.max_overflow,
        "pre_ping": config.pool_pre_ping,
    }
    try:
        with probe.connect() as sampler:
            before = read_database_metrics(sampler)
            sampler.commit()
            row.update(_preflight(before, config.pool_size + config.max_overflow, concurrency))
            run = resolve_workload(workload, engine)
            backends = _BackendPids(engine)
            with PoolMonitor(engine) as monitor:
                row.update(
                    _drive(
                        engine,
                        monitor,
                        sampler,
                        run,
                        concurrency,
                        duration_s,
                        warmup,
                        server_connections or (lambda: backends.alive(sampler)),
                    )
                )
    except DBAPIError as exc:
        message = first_line(exc)
        # A step that cannot connect is data, with the same columns as a step that ran.
        row.update(
            status="unhealthy",
            notes=[f"step not run: {mask_text(message)}"],
            warnings=["the pool could not open a connection"],
            recommendations=["check the URL, credentials and sslmode for this environment"],
            requests=0,
        )
    finally:
        engine.dispose()
        probe.dispose()
    return row


def _preflight(db: DatabaseMetrics, capacity: int, concurrency: int) -> dict[str, Any]:
    notes = []
    if capacity > db.usable_connections:
        notes.append(
            f"pool capacity {capacity} exceeds the server's {db.usable_connections} "
            "usable connections (max_connections minus the superuser reserve)"
        )
    needed = min(capacity, concurrency)
    if needed > db.headroom:
        notes.append(
            f"step may open {needed} connections but only {db.headroom} are free: expect refusals"
        )
    return {"max_connections": db.max_connections, "headroom": db.headroom, "notes": notes}


def _drive(
    engine: Engine,
    monitor: PoolMonitor,
    sampler: Connection,
    run: Callable[[Connection], object],
    concurrency: int,
    duration_s: float,
    warmup: bool,
    count_server: Callable[[], int],
) -> dict[str, Any]:
    workers = [_Worker([]) for _ in range(concurrency)]
    state: dict[str, float] = {}

    def start_clock() -> None:
        monitor.reset()
        state["start"] = time.perf_counter()
        state["deadline"] = state["start"] + duration_s

    barrier = threading.Barrier(concurrency + 1, action=start_clock)

    def loop(worker: _Worker) -> None:
        if warmup:
            _request(engine, run, _Worker([]))
        barrier.wait()
        while time.perf_counter() < state["deadline"]:
            _request(engine, run, worker)
        worker.finished_at = time.perf_counter()

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    barrier.wait()
    psutil.cpu_percent(interval=None)
    peaks = {"checked_out": 0, "overflow": 0, "server": 0}
    mid = None
    while any(t.is_alive() for t in threads):
        pool = monitor.pool_snapshot()
        server = count_server()
        sampler.commit()
        peaks = {
            "checked_out": max(peaks["checked_out"], pool.checked_out),
            "overflow": max(peaks["overflow"], pool.overflow),
            "server": max(peaks["server"], server),
        }
        if mid is None and time.perf_counter() >= state["start"] + duration_s / 2:
            mid = monitor.snapshot(conn=sampler, cpu_interval_s=None)
            sampler.commit()
        time.sleep(_SAMPLE_EVERY_S)
    for thread in threads:
        thread.join()
    elapsed = max(w.finished_at for w in workers) - state["start"]
    final = monitor.pool_snapshot()
    mid = mid or monitor.snapshot(conn=sampler, cpu_interval_s=None)
    verdict = evaluate(mid)
    lat = sorted(x for w in workers for x in w.latencies_ms)
    waits = sorted(final.checkout_wait_ms)
    errors = [w.first_error for w in workers if w.first_error]
    return {
        "duration_s": round(elapsed, 3),
        "requests": len(lat),
        "throughput_rps": len(lat) / elapsed,
        "latency_p50_ms": percentile(lat, 50),
        "latency_p95_ms": percentile(lat, 95),
        "latency_p99_ms": percentile(lat, 99),
        "checkout_wait_p50_ms": percentile(waits, 50),
        "checkout_wait_p95_ms": percentile(waits, 95),
        "checkout_wait_max_ms": waits[-1] if waits else None,
        "pool_timeouts": sum(w.timeouts for w in workers),
        "server_refusals": sum(w.refusals for w in workers),
        "errors": sum(w.errors for w in workers),
        "first_error": errors[0] if errors else None,
        "overflow_used": peaks["overflow"],
        "checked_out_peak": peaks["checked_out"],
        "server_connections_peak": peaks["server"],
        "connects": final.connects,
        "status": verdict.status,
        "warnings": verdict.warnings,
        "recommendations": verdict.recommendations,
    }


def pool_load(
    engine: Engine,
    environments: Sequence[str] = ("development",),
    concurrency: Sequence[int] = (1, 4, 16, 64),
    duration_s: float = 2.0,
    workload: Workload = "select1",
    warmup: bool = True,
    *,
    through: Engine | None = None,
    server_connections: Callable[[], int] | None = None,
    **pool_overrides: Any,
) -> pd.DataFrame:
    """One row per (environment, concurrency): the load step's figures (see ``run_step``).

    ``workload`` is a WORKLOADS name, SQL text or a callable ``f(conn)``; ``pool_overrides``
    replace PoolConfig fields for every environment (``pool_timeout_s=1``, ``pool_pre_ping=False``).
    ``through``: an engine whose URL and schema the pools are built on instead of ``engine``'s (a
    PgBouncer in front of the server: ``bbperf.topology.bouncerload``), with
    ``server_connections()`` counting the server's side.
    Every step is run even when an earlier one ran out of connections.
    """
    validate(environments, concurrency, duration_s)
    resolve_workload(workload, engine)  # refuse a bad workload before any step runs
    return pd.DataFrame(
        [
            run_step(
                through or engine,
                env,
                level,
                duration_s,
                workload,
                warmup,
                server_connections=server_connections,
                **pool_overrides,
            )
            for env in environments
            for level in concurrency
        ]
    )
