"""PostgreSQL's statistics views read (the original's query utilities, done better): slow queries from
pg_stat_statements, missing-index hints from pg_stat_user_tables, and a timing decorator.

``slow_queries`` and ``reset_query_stats`` read pg_stat_statements from whichever schema the extension
was installed in (looked up in pg_extension); ``missing_index_hints`` applies the original heuristic to
pg_stat_user_tables. All return pandas DataFrames.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.catalog import extension_schema
from bbperf.errors import QueryError
from bbperf.sql import statement_text
from bbperf.sqlnames import qualified
from bbperf.target import query_error

if TYPE_CHECKING:
    import pandas as pd

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger("bbperf.queries")


@overload
def measure_query_time(func: F) -> F: ...
@overload
def measure_query_time(
    func: None = None, *, warn_ms: float = 100.0, logger: logging.Logger | None = None
) -> Callable[[F], F]: ...
def measure_query_time(
    func: F | None = None, *, warn_ms: float = 100.0, logger: logging.Logger | None = None
) -> F | Callable[[F], F]:
    """Log how long each call takes (INFO), and WARN when it exceeds ``warn_ms`` (default 100 ms).

    Use bare (``@measure_query_time``) or with arguments (``@measure_query_time(warn_ms=50)``).
    Exceptions propagate; the duration is logged either way.
    """
    log = logger or _log

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed_ms = (time.perf_counter_ns() - start) / 1e6
                if elapsed_ms > warn_ms:
                    log.warning(
                        "%s took %.1f ms (over %.0f ms)", fn.__qualname__, elapsed_ms, warn_ms
                    )
                else:
                    log.info("%s took %.1f ms", fn.__qualname__, elapsed_ms)

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def _statements_schema(conn: Connection) -> str:
    schema = extension_schema(conn, "pg_stat_statements")
    if schema is None:
        raise QueryError(
            "pg_stat_statements is not installed in this database: run CREATE EXTENSION "
            "pg_stat_statements (the server needs shared_preload_libraries = pg_stat_statements)"
        )
    return schema


def slow_queries(
    engine: Engine, *, min_mean_ms: float = 1000.0, limit: int = 20, text_chars: int = 200
) -> pd.DataFrame:
    """Statements of the current database with mean time above ``min_mean_ms``, slowest first.

    Columns: query (first ``text_chars`` characters), calls, total_ms, mean_ms, stddev_ms, rows.
    """
    import pandas as pd

    try:
        with engine.connect() as conn:
            schema = _statements_schema(conn)
            result = conn.execute(
                text(
                    "SELECT query, calls, "
                    "total_exec_time AS total_ms, mean_exec_time AS mean_ms, "
                    "stddev_exec_time AS stddev_ms, rows "
                    f"FROM {qualified(schema, 'pg_stat_statements')} "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND mean_exec_time > :min_mean ORDER BY mean_exec_time DESC LIMIT :limit"
                ),
                {"min_mean": min_mean_ms, "limit": limit},
            )
            frame = pd.DataFrame(result.mappings().all(), columns=list(result.keys()))
    except DBAPIError as exc:
        raise query_error(exc, "pg_stat_statements") from None
    frame["query"] = [statement_text(q, engine.url, text_chars) for q in frame["query"]]
    return frame


def reset_query_stats(engine: Engine) -> None:
    """Clear pg_stat_statements (all databases: the function takes no database filter by default)."""
    try:
        with engine.connect() as conn:
            schema = _statements_schema(conn)
            conn.execute(text(f"SELECT {qualified(schema, 'pg_stat_statements_reset')}()"))
            conn.commit()
    except DBAPIError as exc:
        raise query_error(exc, "pg_stat_statements_reset()") from None


def missing_index_hints(
    engine: Engine,
    *,
    min_seq_scans: int = 100,
    min_seq_rows: int = 10_000,
    max_index_share: float = 0.5,
    schema: str | None = None,
) -> pd.DataFrame:
    """Tables read mostly by sequential scans (the original heuristic): more than ``min_seq_scans``
    seq scans, more than ``min_seq_rows`` rows read by them, index scans under ``max_index_share``
    of all scans. ``schema`` limits the search (default: every user schema)."""
    import pandas as pd

    sql = (
        "SELECT schemaname AS schema, relname AS table, seq_scan, seq_tup_read, "
        "coalesce(idx_scan, 0) AS idx_scan, n_live_tup AS live_rows, "
        "coalesce(idx_scan, 0)::float / nullif(seq_scan + coalesce(idx_scan, 0), 0) AS index_share "
        "FROM pg_stat_user_tables WHERE seq_scan > :scans AND seq_tup_read > :rows "
        "AND coalesce(idx_scan, 0)::float / nullif(seq_scan + coalesce(idx_scan, 0), 0) < :share "
        + ("AND schemaname = :schema " if schema else "")
        + "ORDER BY seq_tup_read DESC"
    )
    params = {
        "scans": min_seq_scans,
        "rows": min_seq_rows,
        "share": max_index_share,
        "schema": schema,
    }
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql), params)
            frame = pd.DataFrame(result.mappings().all(), columns=list(result.keys()))
    except DBAPIError as exc:
        raise query_error(exc, "pg_stat_user_tables") from None
    frame["hint"] = [
        f"{row.seq_scan} sequential scans read {row.seq_tup_read:,} rows of {row.schema}.{row.table}; "
        "EXPLAIN its frequent queries and index their filter columns (bbperf advise)"
        for row in frame.itertuples()
    ]
    return frame
