"""Run EXPLAIN on the target: ``explain(engine_or_conn, sql, params)`` returns a parsed Plan.

The SQL is checked first (``bbperf.sql.parse_one``: exactly one query or DML statement). With ANALYZE
the statement really executes, so it always runs inside a transaction (a savepoint when the caller
passes a Connection) that is rolled back: an UPDATE or DELETE under analysis leaves the data as it
was, and a query runs read-only. Sequences (nextval) are not transactional and do advance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg2
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.binding import execute_args, prepared, reset_session
from bbperf.explain.plan import Plan, parse_plan
from bbperf.sql import parse_one
from bbperf.target import query_error

Params = Mapping[str, Any] | None


def clean_sql(sql: str) -> str:
    """The statement without surrounding blanks and trailing semicolons."""
    return sql.strip().rstrip(";").strip()


def explain_options(
    *, analyze: bool = True, buffers: bool = True, timing: bool = True, verbose: bool = False
) -> str:
    # No "ANALYZE FALSE": HypoPG ignores its hypothetical indexes when the option is named at all.
    opts = [f"BUFFERS {str(buffers).upper()}"]
    if analyze:
        opts = ["ANALYZE TRUE", *opts, f"TIMING {str(timing).upper()}"]
    if verbose:
        opts.append("VERBOSE TRUE")
    opts.append("FORMAT JSON")
    return ", ".join(opts)


@contextlib.contextmanager
def rolled_back(
    engine_or_conn: Engine | Connection, *, read_only: bool = False
) -> Iterator[Connection]:
    """A connection inside a transaction (or savepoint) that is always rolled back.

    ``read_only`` makes the server refuse any write in it (``SET LOCAL`` ends with the rollback).
    """
    if isinstance(engine_or_conn, Connection):
        savepoint = engine_or_conn.begin_nested()
        try:
            if read_only:
                engine_or_conn.execute(text("SET LOCAL transaction_read_only = on"))
            yield engine_or_conn
        finally:
            if savepoint.is_active:
                savepoint.rollback()
        return
    with engine_or_conn.connect() as conn:
        trans = conn.begin()
        try:
            if read_only:
                conn.execute(text("SET LOCAL transaction_read_only = on"))
            yield conn
        finally:
            if trans.is_active:
                trans.rollback()
            # Session state the statement took (an advisory lock, a prepared statement) ends here.
            try:
                reset_session(conn.connection.dbapi_connection)
            except psycopg2.Error:
                conn.invalidate()


def explain(
    engine_or_conn: Engine | Connection,
    sql: str,
    params: Params = None,
    *,
    analyze: bool = True,
    buffers: bool = True,
    timing: bool = True,
    verbose: bool = False,
) -> Plan:
    """EXPLAIN ``sql`` (``:name`` parameters from ``params``) and parse the JSON plan.

    The statement is prepared as parsed and its values bound by the server
    (``bbperf.sql.prepared``): a value can never become SQL. ``analyze`` executes the statement
    (rolled back afterwards); ``timing=False`` keeps row counts but drops per-node clocks (less
    overhead, no node times); ``buffers`` adds shared hit/read blocks. Failures (syntax, missing
    relation, statement timeout) raise ``QueryError``.
    """
    checked = parse_one(sql)
    values = checked.values(params)
    options = explain_options(analyze=analyze, buffers=buffers, timing=timing, verbose=verbose)
    try:
        with rolled_back(engine_or_conn, read_only=not checked.is_write) as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                with prepared(cursor, checked, values) as name:
                    cursor.execute(
                        f"EXPLAIN ({options}) EXECUTE {name}{execute_args(values)}", values
                    )
                    data = cursor.fetchone()[0]
            finally:
                cursor.close()
    except (DBAPIError, psycopg2.Error) as exc:
        raise query_error(
            exc if isinstance(exc, DBAPIError) else DBAPIError(checked.text, None, exc),
            checked.text,
        ) from None
    return parse_plan(data, sql=checked.text)
