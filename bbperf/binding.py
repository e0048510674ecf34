"""Running a checked statement with its values bound by the server.

The statement's text is PREPAREd exactly as pglast parsed it (``CheckedStatement.numbered``); values only ever
travel as the arguments of EXECUTE, where PostgreSQL binds them as parameters of the one prepared
statement. Whatever a value holds, it cannot become a second statement or leave a string literal: it
is never part of the statement's text.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import re
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg2.extensions

from bbperf.sql import CheckedStatement

_INDETERMINATE = "42P18"  # could not determine data type of parameter $n
_TYPE_OF: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "bigint"),
    (float, "double precision"),
    (decimal.Decimal, "numeric"),
    (datetime.datetime, "timestamptz"),
    (datetime.date, "date"),
    (datetime.time, "time"),
    (str, "text"),
)


def _sql_type(value: Any) -> str:
    for python_type, pg_type in _TYPE_OF:
        if isinstance(value, python_type):
            if python_type is datetime.datetime and value.tzinfo is None:
                return "timestamp"
            return pg_type
    return "text"


def execute_args(values: tuple[Any, ...]) -> str:
    """``(%s, %s, …)`` for EXECUTE with ``values`` (empty string when there are none)."""
    return f"({', '.join(['%s'] * len(values))})" if values else ""


@contextlib.contextmanager
def prepared(cursor: Any, statement: CheckedStatement, values: tuple[Any, ...]) -> Iterator[str]:
    """PREPARE ``statement`` on a psycopg2 ``cursor`` under a fresh name; yield the name; DEALLOCATE.

    Run it with ``cursor.execute(f"EXECUTE {name}{execute_args(values)}", values)`` (or prefix
    ``EXPLAIN (…)``). The session's ``standard_conforming_strings`` is made ``on`` first, so the server
    reads backslashes in literals exactly as pglast did. A parameter whose type the statement does not
    fix (``SELECT :x IS NULL``) is typed from its Python value.
    """
    if statement.executes is not None:  # already prepared by bbperf on this connection
        yield statement.executes
        return
    name = f"bbperf_{secrets.token_hex(6)}"
    _prepare(cursor, name, statement.numbered, [_sql_type(v) for v in values])
    try:
        yield name
    finally:
        _deallocate(cursor, name)


def _prepare(cursor: Any, name: str, numbered: str, fallback: list[str]) -> None:
    """PREPARE ``numbered`` as ``name``, the server inferring each ``$n``'s type; one it cannot infer
    is declared ``fallback[n - 1]`` and the PREPARE tried again."""
    if cursor.connection.get_parameter_status("standard_conforming_strings") != "on":
        _in_savepoint(cursor, "SET standard_conforming_strings = on")
    types: list[str] = ["unknown"] * len(fallback)
    for _ in range(len(fallback) + 1):
        declared = f"({', '.join(types)})" if any(t != "unknown" for t in types) else ""
        try:
            _in_savepoint(cursor, f"PREPARE {name}{declared} AS {numbered}")
            return
        except cursor.connection.DatabaseError as exc:
            number = _indeterminate_parameter(exc)
            if number is None or not 1 <= number <= len(fallback) or types[number - 1] != "unknown":
                raise
            types[number - 1] = fallback[number - 1]


def parameter_types(cursor: Any, numbered: str, count: int) -> list[str]:
    """The type the server infers for each of ``$1`` … ``$count`` in ``numbered`` (``text`` where it
    cannot tell), read from ``pg_prepared_statements`` after a PREPARE that runs nothing."""
    name = f"bbperf_{secrets.token_hex(6)}"
    _prepare(cursor, name, numbered, ["text"] * count)
    try:
        cursor.execute(
            "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = %s", (name,)
        )
        return list(cursor.fetchone()[0])
    finally:
        _deallocate(cursor, name)


def _indeterminate_parameter(exc: Any) -> int | None:
    if getattr(exc, "pgcode", None) != _INDETERMINATE:
        return None
    match = re.search(r"parameter \$(\d+)", str(exc))
    return int(match.group(1)) if match else None


def _in_savepoint(cursor: Any, sql: str) -> None:
    """Run ``sql`` (no parameters: ``%`` is not interpreted); inside a transaction, in a savepoint so
    a failure leaves the transaction usable."""
    status = cursor.connection.info.transaction_status
    if status != psycopg2.extensions.TRANSACTION_STATUS_INTRANS:
        cursor.execute(sql)
        return
    cursor.execute("SAVEPOINT bbperf_prepare")
    try:
        cursor.execute(sql)
    except Exception:
        cursor.execute("ROLLBACK TO SAVEPOINT bbperf_prepare")
        raise
    cursor.execute("RELEASE SAVEPOINT bbperf_prepare")


def _deallocate(cursor: Any, name: str) -> None:
    """DEALLOCATE ``name`` unless the transaction is aborted (then the caller's rollback comes first
    and ``reset_session`` or closing the connection ends it)."""
    if cursor.closed or cursor.connection.closed:
        return
    if cursor.connection.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INERROR:
        return
    cursor.execute(f"DEALLOCATE {name}")


def reset_session(dbapi_connection: Any) -> None:
    """End every piece of session state a user statement may have left on a connection bbperf owns:
    ``DISCARD ALL`` releases session advisory locks, resets SET, drops prepared statements and
    temporary tables. Run between transactions."""
    previous = dbapi_connection.autocommit
    if dbapi_connection.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        dbapi_connection.rollback()
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("DISCARD ALL")
    finally:
        dbapi_connection.autocommit = previous
