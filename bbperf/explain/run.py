"""Run EXPLAIN on the target: ``explain(engine_or_conn, sql, params)`` returns a parsed Plan.

With ANALYZE the statement really executes, so it always runs inside a transaction (a savepoint when
the caller passes a Connection) that is rolled back: an UPDATE or DELETE under analysis leaves the
data as it was. Sequences (nextval) are not transactional and do advance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.explain.plan import Plan, parse_plan
from bbperf.target import query_error

Params = Mapping[str, Any] | None


def clean_sql(sql: str) -> str:
    """The statement without surrounding blanks and trailing semicolons."""
    return sql.strip().rstrip(";").strip()


def explain_options(
    *, analyze: bool = True, buffers: bool = True, timing: bool = True, verbose: bool = False
) -> str:
    opts = [f"ANALYZE {str(analyze).upper()}", f"BUFFERS {str(buffers).upper()}"]
    if analyze:
        opts.append(f"TIMING {str(timing).upper()}")
    if verbose:
        opts.append("VERBOSE TRUE")
    opts.append("FORMAT JSON")
    return ", ".join(opts)


@contextlib.contextmanager
def rolled_back(engine_or_conn: Engine | Connection) -> Iterator[Connection]:
    """A connection inside a transaction (or savepoint) that is always rolled back."""
    if isinstance(engine_or_conn, Connection):
        savepoint = engine_or_conn.begin_nested()
        try:
            yield engine_or_conn
        finally:
            if savepoint.is_active:
                savepoint.rollback()
        return
    with engine_or_conn.connect() as conn:
        trans = conn.begin()
        try:
            yield conn
        finally:
            if trans.is_active:
                trans.rollback()


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
    """EXPLAIN ``sql`` (SQLAlchemy ``:name`` parameters from ``params``) and parse the JSON plan.

    ``analyze`` executes the statement (rolled back afterwards); ``timing=False`` keeps row counts but
    drops per-node clocks (less overhead, no node times); ``buffers`` adds shared hit/read blocks.
    Failures (syntax, missing relation, statement timeout) raise ``QueryError``.
    """
    statement = clean_sql(sql)
    options = explain_options(analyze=analyze, buffers=buffers, timing=timing, verbose=verbose)
    try:
        with rolled_back(engine_or_conn) as conn:
            data = conn.execute(
                text(f"EXPLAIN ({options}) {statement}"), dict(params or {})
            ).scalar_one()
    except DBAPIError as exc:
        raise query_error(exc, statement) from None
    return parse_plan(data, sql=statement)
