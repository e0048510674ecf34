"""Server time per call of a ladder variant, as pg_stat_statements counts it.

EXPLAIN ANALYZE times one execution under instrumentation; pg_stat_statements times every real
execution, so it is the figure the issue's targets are stated in. A call is what the application
sends for one barber (four statements for ``before``, one for the others): its server time is the
summed ``total_exec_time`` of those statements over the calls made. The statements are told apart
from anything else the database runs by their query identifiers (``EXPLAIN (VERBOSE)`` prints them),
so other sessions' work never counts. Calls run in ``batches``; each batch gives one mean, and the
result reports the overall mean, the median batch mean and the spread of batch means.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from bbperf.catalog import extension_schema
from bbperf.errors import DataError
from bbperf.metrics.ladder import FETCHERS, require
from bbperf.metrics.queries import window_params
from bbperf.metrics.rollup import read_params
from bbperf.metrics.variant_timing import server_statements
from bbperf.sqlnames import qualified


@dataclass(frozen=True)
class ServerTime:
    """pg_stat_statements' view of ``calls`` calls of one variant for one barber (ms per call)."""

    variant: str
    user_id: int
    calls: int
    statements_per_call: int
    mean_ms: float
    median_batch_ms: float
    min_batch_ms: float
    max_batch_ms: float
    batches: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _statements_view(conn: Connection) -> str:
    schema = extension_schema(conn, "pg_stat_statements")
    if schema is None:
        raise DataError(
            "pg_stat_statements is not installed in this database: run CREATE EXTENSION "
            "pg_stat_statements (the server needs shared_preload_libraries = pg_stat_statements)"
        )
    return qualified(schema, "pg_stat_statements")


def query_ids(conn: Connection, variant: str, user_id: int, as_of: datetime) -> set[int]:
    """The query identifiers of the statements one call of ``variant`` runs."""
    params = read_params(user_id, as_of) if variant == "rollup" else window_params(user_id, as_of)
    ids = set()
    for sql in server_statements(conn, variant):
        plan = conn.execute(text(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}"), params).scalar_one()
        found = plan[0].get("Query Identifier")
        if not found:
            raise DataError(
                "EXPLAIN prints no query identifier: set compute_query_id = auto (or on) so "
                "pg_stat_statements can be read per statement"
            )
        ids.add(int(found))
    return ids


def _totals(conn: Connection, view: str, ids: set[int]) -> tuple[int, float]:
    """Calls and total execution time (ms) of the statements ``ids`` in this database, so far."""
    row = conn.execute(
        text(
            f"SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(total_exec_time), 0) FROM {view} "
            "WHERE queryid = ANY(:ids) AND toplevel "
            "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"ids": list(ids)},
    ).one()
    return int(row[0]), float(row[1])


def server_time(
    engine: Engine,
    variant: str,
    user_id: int,
    as_of: datetime,
    calls: int = 200,
    batches: int = 5,
    warmup: int = 10,
) -> ServerTime:
    """Mean server time (ms) per call of ``variant`` for ``user_id`` over ``calls`` real calls
    (after ``warmup`` untimed ones), in ``batches`` equal batches; the variant's prerequisites are
    checked first. DataError when pg_stat_statements is missing or counted fewer statements than
    were sent (its entries were evicted or reset meanwhile)."""
    require(engine, variant, as_of)
    fetch = FETCHERS[variant]
    per_batch = max(1, calls // batches)
    with engine.connect() as conn:
        view = _statements_view(conn)
        ids = query_ids(conn, variant, user_id, as_of)
        per_call = len(server_statements(conn, variant))
        conn.rollback()
    for _ in range(warmup):
        fetch(engine, user_id, as_of)
    means = []
    with engine.connect() as stats:
        for _ in range(batches):
            calls_before, ms_before = _totals(stats, view, ids)
            stats.rollback()
            for _ in range(per_batch):
                fetch(engine, user_id, as_of)
            calls_after, ms_after = _totals(stats, view, ids)
            stats.rollback()
            if calls_after - calls_before < per_batch * per_call:
                raise DataError(
                    f"pg_stat_statements counted {calls_after - calls_before} statements of "
                    f"{variant} for {per_batch * per_call} sent: was it reset meanwhile?"
                )
            means.append((ms_after - ms_before) / per_batch)
    return ServerTime(
        variant=variant,
        user_id=user_id,
        calls=per_batch * batches,
        statements_per_call=per_call,
        mean_ms=statistics.fmean(means),
        median_batch_ms=statistics.median(means),
        min_batch_ms=min(means),
        max_batch_ms=max(means),
        batches=batches,
    )
