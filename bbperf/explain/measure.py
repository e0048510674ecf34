"""Client-side latency of a statement: warm-up, many rounds, ``perf_counter_ns``, GC off in the loop.

Each round is one autocommit round trip through the raw driver cursor (execute + fetchall), so the
figure is the query's, not SQLAlchemy's: it matches ``pgbench -f`` with one client
(``benchmarks/harness.py`` checks that). Interpret the cache state the Timing states:

* **warm** (default): ``warmup`` untimed rounds first, on the same connection; shared buffers,
  catalog caches and the OS page cache hold whatever the statement touches.
* **cold**: every round opens a new connection (a new backend: empty catalog/relation caches, no
  prepared state, nothing from ``SET``) and, where the server allows it (PostgreSQL 17+ with
  pg_buffercache installed and a superuser), evicts every unpinned page from shared buffers with
  ``pg_buffercache_evict``. The **operating system's page cache is kept** (dropping it needs root
  on the database host), so "cold" reads come from RAM, not disk: this is PostgreSQL-cold, OS-warm.
  No warm-up rounds are run in cold mode.

The statement is prepared once per connection, exactly as parsed, and each round runs
``EXECUTE name(values)``: the server binds the values (a value can never become SQL) and plans each
round afresh (``plan_cache_mode = force_custom_plan``, as a statement sent with literal values would
be). Parsing the text is therefore not in the figure.

``wire_only=True`` measures the query rather than the Python stack, as pgbench does: the EXECUTE is
rendered once before the loop (psycopg2 sends the same bytes either way) and only ``execute`` is timed — the result arrives complete in libpq's buffer — while turning rows into
Python objects happens outside the timed span. The default (False) times what an application sees.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.binding import execute_args, prepared, reset_session
from bbperf.errors import QueryError
from bbperf.explain.run import Params, explain_options
from bbperf.explain.timingstats import Timing
from bbperf.sql import CheckedStatement, parse_one
from bbperf.sqlnames import qualified
from bbperf.target import query_error

_SERVER_EXPLAIN = explain_options(analyze=True, buffers=False, timing=False)


def measure(
    engine: Engine,
    sql: str,
    params: Params = None,
    *,
    rounds: int = 30,
    warmup: int = 5,
    server_time: bool = False,
    cold: bool = False,
    wire_only: bool = False,
    label: str = "",
) -> Timing:
    """Time ``rounds`` executions of ``sql`` after ``warmup`` untimed ones; return a Timing in ms.

    ``server_time`` also runs ``EXPLAIN (ANALYZE, TIMING OFF)`` after each timed round (untimed by
    the client clock) and records the server's Execution Time. Each round runs in its
    own read-only autocommit transaction: a data-modifying statement is refused (``explain`` runs
    one inside a rolled-back transaction). ``wire_only`` leaves parameter
    rendering and row conversion out of the timed span (see the module docstring).
    """
    if rounds < 1 or warmup < 0:
        raise ValueError("measure needs rounds >= 1 and warmup >= 0")
    checked = parse_one(sql, allow_writes=False)
    values = checked.values(params)
    statement = checked.text
    client: list[float] = []
    server: list[float] = []
    cache = "warm"
    try:
        if cold:
            cache = (
                "cold: new connection per round; shared buffers and OS cache kept "
                "(pg_buffercache_evict unavailable)"
            )
            for _ in range(rounds):
                with _autocommit(engine) as conn:
                    if _evict_shared_buffers(conn):
                        cache = "cold: new connection + shared buffers evicted per round (OS cache kept)"
                    with _read_only(conn):
                        _rounds(
                            conn,
                            checked,
                            values,
                            1,
                            0,
                            server_time,
                            client,
                            server,
                            wire_only,
                        )
        else:
            with _autocommit(engine) as conn, _read_only(conn):
                _rounds(
                    conn,
                    checked,
                    values,
                    rounds,
                    warmup,
                    server_time,
                    client,
                    server,
                    wire_only,
                )
    except (DBAPIError, engine.dialect.loaded_dbapi.Error) as exc:
        raise cursor_error(exc, statement) from None
    return Timing(
        samples_ms=tuple(client),
        server_ms=tuple(server) if server_time else None,
        label=label,
        sql=statement,
        warmup=0 if cold else warmup,
        cache=cache,
    )


def cursor_error(exc: BaseException, sql: str) -> QueryError:
    """A QueryError for a failure on a raw driver cursor, whose errors SQLAlchemy does not wrap."""
    return query_error(exc if isinstance(exc, DBAPIError) else DBAPIError(sql, None, exc), sql)


def _autocommit(engine: Engine) -> Connection:
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def _read_only(conn: Connection) -> Iterator[None]:
    """Every transaction inside is read-only and plans each execution for its values; all session
    state (settings, advisory locks, prepared statements) ends before the pool takes it back."""
    conn.execute(text("SET SESSION default_transaction_read_only = on"))
    conn.execute(text("SET SESSION plan_cache_mode = force_custom_plan"))
    try:
        yield
    finally:
        try:
            reset_session(conn.connection.dbapi_connection)
        except psycopg2.Error:
            conn.invalidate()


def _rounds(
    conn: Connection,
    checked: CheckedStatement,
    values: tuple[Any, ...],
    rounds: int,
    warmup: int,
    server_time: bool,
    client: list[float],
    server: list[float],
    wire_only: bool = False,
) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with prepared(cursor, checked, values) as name:
            run_sql = f"EXECUTE {name}{execute_args(values)}"
            explain_sql = f"EXPLAIN ({_SERVER_EXPLAIN}) {run_sql}"
            timed_sql: str = run_sql
            timed_args: tuple[Any, ...] | None = values
            if wire_only:
                timed_sql, timed_args = cursor.mogrify(run_sql, values).decode(), None
            for _ in range(warmup):
                cursor.execute(run_sql, values)
                if cursor.description is not None:
                    cursor.fetchall()
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                for _ in range(rounds):
                    start = time.perf_counter_ns()
                    cursor.execute(timed_sql, timed_args)
                    if wire_only:
                        client.append((time.perf_counter_ns() - start) / 1e6)
                    if cursor.description is not None:
                        cursor.fetchall()
                    if not wire_only:
                        client.append((time.perf_counter_ns() - start) / 1e6)
                    if server_time:
                        cursor.execute(explain_sql, values)
                        (row,) = cursor.fetchall()
                        server.append(float(row[0][0]["Execution Time"]))
            finally:
                if was_enabled:
                    gc.enable()
    finally:
        cursor.close()


def _evict_shared_buffers(conn: Connection) -> bool:
    """Evict unpinned shared buffers when pg_buffercache_evict exists and we may call it."""
    row = conn.execute(
        text(
            "SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.proname = 'pg_buffercache_evict' LIMIT 1"
        )
    ).first()
    if row is None:
        return False
    superuser = conn.execute(
        text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    if not superuser:
        return False
    schema = row[0]
    conn.execute(
        text(
            f"SELECT count(*) FROM {qualified(schema, 'pg_buffercache')} b, "
            f"LATERAL {qualified(schema, 'pg_buffercache_evict')}(b.bufferid) e WHERE b.relfilenode IS NOT NULL"
        )
    )
    return True
