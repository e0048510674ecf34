"""Capture a workload from pg_stat_statements: the top statements of the current database, grouped by
the fingerprint of PostgreSQL's own parser, each ``$n`` placeholder tied to the column it is compared
with. Read-only: it needs only ``pg_read_all_stats`` (to see other roles' statement texts)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.catalog import columns, extension_schema
from bbperf.errors import ConfigError, QueryError
from bbperf.sql import unwrap_prepared
from bbperf.sqlnames import qualified, quote
from bbperf.target import query_error
from bbperf.urls import describe_target
from bbperf.workload.file import Statement, Workload, placeholders_of
from bbperf.workload.parse import Analysis, Relation, analyze, typed_literals_as_casts

Order = Literal["total", "mean"]
_HIDDEN = "<insufficient privilege>"
# Scratch relations bbperf's measurements create (e.g. write cost's ``_bbperf_batch``): statements
# touching them are bbperf's own traffic, never part of a captured workload.
OWN_SCRATCH_PREFIX = "_bbperf_"


@dataclass
class _Group:
    analysis: Analysis
    calls: int = 0
    total_ms: float = 0.0
    rows: int = 0
    queryids: tuple[int, ...] = ()
    best_calls: int = -1


def capture(
    engine: Engine,
    *,
    top: int = 20,
    min_calls: int = 1,
    order: Order = "total",
    name: str = "captured",
    since: Counters | None = None,
) -> Workload:
    """The ``top`` statements of the current database by total (or mean) execution time; with
    ``since`` (a ``counters`` snapshot), only what ran after it: calls, time and rows are the
    differences, and a statement that did not run since is left out — pg_stat_statements is never
    reset, so other users' statistics stay as they were.

    Statements are grouped by fingerprint (their pg_stat_statements entries differ by role, by
    IN-list length or by constants left in); groups with fewer than ``min_calls`` calls are left out,
    and so are utility statements and statements that read no user table (pings, catalog queries).
    Calls, total/mean time (ms) and rows per call are the group's sums over its entries.
    """
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if min_calls < 1:
        raise ConfigError(f"--min-calls must be at least 1, got {min_calls}")
    if order not in ("total", "mean"):
        raise ConfigError(f"--order must be total or mean, not {order!r}")
    try:
        with engine.connect() as conn:
            rows, version = _statements(conn)
            if since is not None:
                rows = _since(rows, since)
            groups, skipped = _group(rows)
            key = (lambda g: g.total_ms) if order == "total" else (lambda g: g.total_ms / g.calls)
            chosen = sorted(
                (g for g in groups.values() if g.calls >= min_calls), key=key, reverse=True
            )[:top]
            relations = {r for g in chosen for r in g.analysis.relations}
            tables = lookup_tables(conn, relations)
            columns = table_columns(conn, set(tables.values()))
    except DBAPIError as exc:
        raise query_error(exc, "pg_stat_statements") from None
    statements = _statements_of(chosen, tables, columns)
    meta: dict[str, Any] = {
        "captured_at": datetime.now(UTC).replace(microsecond=0),
        "target": describe_target(engine.url),
        "server_version_num": version,
        "order": order,
        "top": top,
        "min_calls": min_calls,
        "groups_seen": len(groups),
        "entries_left_out": skipped,
    }
    return Workload(name, statements, source="pg_stat_statements", meta=meta)


def lookup_tables(
    conn: Connection, relations: Iterable[Relation]
) -> dict[Relation, tuple[str, str]]:
    """Each relation → (schema, table) it names on the target's search_path; unknown ones omitted."""
    out: dict[Relation, tuple[str, str]] = {}
    for rel in relations:
        name = qualified(rel.schema, rel.name) if rel.schema else quote(rel.name)
        row = conn.execute(
            text(
                "SELECT n.nspname, c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(:name)"
            ),
            {"name": name},
        ).first()
        if row is not None:
            out[rel] = (str(row[0]), str(row[1]))
    return out


def table_columns(
    conn: Connection, tables: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], set[str]]:
    """(schema, table) → its column names."""
    out: dict[tuple[str, str], set[str]] = {}
    for schema, table in tables:
        out[(schema, table)] = set(columns(conn, schema, table))
    return out


@dataclass(frozen=True)
class _Row:
    queryid: int | None
    userid: int | None
    query: str
    calls: int
    total_exec_time: float
    rows: int


# (userid, queryid) → (calls, total execution time in ms, rows) of pg_stat_statements' entries
Counters = dict[tuple[int | None, int | None], tuple[int, float, int]]


def counters(engine: Engine) -> Counters:
    """A snapshot of the current database's pg_stat_statements counters, for ``capture(since=…)``:
    the statements a replay or an application runs after it, without resetting anything."""
    try:
        with engine.connect() as conn:
            rows, _ = _statements(conn)
    except DBAPIError as exc:
        raise query_error(exc, "pg_stat_statements") from None
    return {
        (r.userid, r.queryid): (int(r.calls), float(r.total_exec_time), int(r.rows)) for r in rows
    }


def _since(rows: list[Any], before: Counters) -> list[Any]:
    """Each entry's counters minus ``before``'s; entries that did not run since are left out."""
    out = []
    for r in rows:
        calls, total_ms, n = before.get((r.userid, r.queryid), (0, 0.0, 0))
        if r.calls > calls:
            out.append(
                _Row(r.queryid, r.userid, r.query, r.calls - calls, r.total_exec_time - total_ms,
                     r.rows - n)
            )  # fmt: skip
    return out


def _statements(conn: Connection) -> tuple[list[Any], int]:
    schema = extension_schema(conn, "pg_stat_statements")
    if schema is None:
        raise QueryError(
            "pg_stat_statements is not installed in this database: an administrator runs "
            "CREATE EXTENSION pg_stat_statements (with shared_preload_libraries = pg_stat_statements)"
        )
    version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
    toplevel = " AND toplevel" if version >= 140000 else ""
    rows = conn.execute(
        text(
            f"SELECT queryid, userid, query, calls, total_exec_time, rows FROM {qualified(schema, 'pg_stat_statements')} "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            f"AND calls > 0{toplevel}"
        )
    ).all()
    hidden = sum(1 for r in rows if r.query == _HIDDEN)
    if rows and hidden == len(rows):
        raise QueryError(
            "pg_stat_statements hides other roles' statements from this role: "
            "GRANT pg_read_all_stats TO it (read-only), then capture again"
        )
    return list(rows), version


def _group(rows: list[Any]) -> tuple[dict[str, _Group], int]:
    groups: dict[str, _Group] = {}
    skipped = 0
    for row in rows:
        analysis = _capturable(row.query)
        if analysis is None:
            skipped += 1
            continue
        group = groups.setdefault(analysis.fingerprint, _Group(analysis))
        group.calls += int(row.calls)
        group.total_ms += float(row.total_exec_time)
        group.rows += int(row.rows)
        group.queryids += (int(row.queryid),) if row.queryid is not None else ()
        if row.calls > group.best_calls:  # the text of the busiest entry stands for the group
            group.analysis, group.best_calls = analysis, int(row.calls)
    return groups, skipped


def _capturable(query: str | None) -> Analysis | None:
    if not query or query == _HIDDEN:
        return None
    try:
        analysis = analyze(typed_literals_as_casts(unwrap_prepared(query)))
    except QueryError:
        return None
    if analysis.kind == "utility":
        return None
    if any(r.name.startswith(OWN_SCRATCH_PREFIX) for r in analysis.user_relations):
        return None  # bbperf's own measurement (the write-cost batches), not the application's
    user = [r for r in analysis.user_relations if not r.name.startswith("pg_")]
    return analysis if user else None


def _statements_of(
    groups: list[_Group],
    tables: dict[Relation, tuple[str, str]],
    columns: dict[tuple[str, str], set[str]],
) -> list[Statement]:
    out: list[Statement] = []
    used: set[str] = set()
    for g in groups:
        a = g.analysis
        first = next((r.name for r in a.user_relations), "statement")
        base = f"{a.kind}_{first}"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        out.append(
            Statement(
                name=name,
                sql=a.sql,
                fingerprint=a.fingerprint,
                kind=a.kind,
                read_only=a.read_only,
                calls=g.calls,
                total_ms=g.total_ms,
                mean_ms=g.total_ms / g.calls if g.calls else None,
                rows_per_call=g.rows / g.calls if g.calls else None,
                queryids=tuple(sorted(g.queryids)),
                placeholders=placeholders_of(a, tables, columns),
            )
        )
    return out
