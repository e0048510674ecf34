"""Fill a workload's placeholders with values that exist: drawn from the compared columns of the
target with ``TABLESAMPLE`` (bounded, repeatable), respecting the operator — ``=`` draws existing
values, ranges draw windows between sampled values, a column with a unique index gets fresh values to
insert. A placeholder no column explains (a ``COALESCE`` default, the interval added to a bound, a
``generate_series`` bound) takes a stated default for the type the server infers for it
(``DEFAULTS``; a timestamp is drawn from the statement's own sampled timestamps), and each such
choice is listed (``Sampled.defaulted``). What still cannot be filled is listed with the reason,
never guessed. Read-only: PREPARE (which runs nothing) and EXPLAIN check each filled statement."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg2
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.binding import parameter_types
from bbperf.errors import ConfigError, first_line
from bbperf.sqlnames import quote
from bbperf.target import query_error
from bbperf.workload.file import MAX_VALUE_SETS, Placeholder, Statement, Workload
from bbperf.workload.parse import analyze

if TYPE_CHECKING:
    import pandas as pd

# Values for placeholders no column explains, by the type the server infers for them (stated, not
# guessed from data). LIMIT with no captured rows per call takes DEFAULT_LIMIT.
DEFAULT_LIMIT = 20
DEFAULTS: dict[str, Any] = {
    "smallint": 0,
    "integer": 0,
    "bigint": 0,
    "numeric": 0,
    "real": 0.0,
    "double precision": 0.0,
    "boolean": False,
    "text": "",
    "character varying": "",
    "interval": "30 days",
    "json": "{}",
    "jsonb": "{}",
}
_TEMPORAL = ("timestamp with time zone", "timestamp without time zone", "date")
_LOWER = (">", ">=")
_UPPER = ("<", "<=")
_PLAIN = (bool, int, float, str, Decimal, datetime, date, time)


@dataclass
class Sampled:
    """The workload with ``values`` filled, and what could not be filled (statement, $n, reason)."""

    workload: Workload
    unresolved: list[tuple[str, int | None, str]] = field(default_factory=list)
    defaulted: list[tuple[str, int, str]] = field(default_factory=list)

    def unresolved_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.unresolved, columns=["statement", "placeholder", "reason"])

    def defaulted_frame(self) -> pd.DataFrame:
        """Placeholders filled with a stated default (statement, $n, which default)."""
        import pandas as pd

        return pd.DataFrame(self.defaulted, columns=["statement", "placeholder", "default"])

    @property
    def filled(self) -> list[str]:
        return [s.name for s in self.workload.statements if s.placeholders and s.values]


def sample(
    engine: Engine,
    workload: Workload,
    *,
    sets: int = 20,
    sample_rows: int = 1000,
    window_share: float = 0.05,
    seed: int = 42,
    timeout_ms: int = 5000,
) -> Sampled:
    """Draw ``sets`` value sets per statement from the target.

    Each referenced column is read once: ``SELECT col FROM table TABLESAMPLE SYSTEM (p) REPEATABLE
    (seed) … LIMIT sample_rows`` with ``p`` sized from the table's estimated rows, under
    ``statement_timeout = timeout_ms`` — a bounded read on any table size. A window spans
    ``window_share`` of the sampled values (a lone bound opens that share at the edge). ``LIMIT $n``
    takes the captured rows per call; ``OFFSET $n`` takes 0.
    """
    if not 1 <= sets <= MAX_VALUE_SETS:
        raise ConfigError(f"--sets must be between 1 and {MAX_VALUE_SETS:,}, got {sets}")
    if not 0 < window_share <= 1:
        raise ConfigError(f"window share must be in (0, 1], got {window_share}")
    rng = random.Random(seed)
    wanted = {
        (p.table, p.column)
        for s in workload.statements
        for p in s.placeholders
        if p.resolved and p.table
    }
    out = Sampled(workload)
    statements = []
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
            conn.execute(text("SET TRANSACTION READ ONLY"))
            pools = {
                key: _column_sample(conn, key[0], key[1], sample_rows, seed)
                for key in sorted(wanted, key=str)
                if key[0] and key[1]
            }
            unique = {key for key in pools if _is_unique(conn, *key)}
            for statement in workload.statements:
                filled, problems, defaulted = _fill(
                    conn, statement, pools, unique, rng, sets, window_share
                )
                out.unresolved += problems
                out.defaulted += defaulted
                statements.append(filled)
            conn.rollback()
    except DBAPIError as exc:
        raise query_error(exc, "TABLESAMPLE") from None
    unfilled = {name: reason for name, _, reason in out.unresolved}
    out.workload = replace(
        workload, statements=statements, meta={**workload.meta, "unfilled": unfilled}
    )
    return out


def _fill(
    conn: Connection,
    statement: Statement,
    pools: dict[tuple[Any, Any], list[Any]],
    unique: set[tuple[Any, Any]],
    rng: random.Random,
    sets: int,
    window_share: float,
) -> tuple[Statement, list[tuple[str, int | None, str]], list[tuple[str, int, str]]]:
    """``statement`` with ``sets`` value sets, or with none and the reasons; the stated defaults used."""
    if not statement.placeholders:
        return statement, [], []
    problems = _problems(statement, pools)
    open_numbers = {number for _, number, _ in problems}
    defaults: dict[int, Any] = {}
    defaulted: list[tuple[str, int, str]] = []
    temporal: list[Any] = []
    if open_numbers:
        try:
            types = _types(conn, statement)
        except DBAPIError as exc:
            reason = f"the server refuses it: {first_line(exc)}"
            return replace(statement, values=[]), [(statement.name, None, reason)], []
        temporal = [v for p in statement.placeholders for v in pools.get((p.table, p.column), [])]
        temporal = [v for v in temporal if isinstance(v, datetime | date)]
        if not temporal and any(types[n - 1] in _TEMPORAL for n in open_numbers if n):
            temporal = _temporal_sample(conn, statement, rng)
        still = []
        for name, number, reason in problems:
            kind = types[number - 1] if number else None
            p = next(p for p in statement.placeholders if p.number == number)
            if p.operator == "limit":
                defaults[number], how = DEFAULT_LIMIT, f"LIMIT {DEFAULT_LIMIT} (no rows per call)"
            elif kind in _TEMPORAL and temporal:
                defaults[number], how = None, f"{kind} drawn from the statement's own table's times"
            elif kind in DEFAULTS:
                defaults[number], how = DEFAULTS[kind], f"{kind} {DEFAULTS[kind]!r}"
            else:
                still.append((name, number, f"{reason}; no stated default for type {kind}"))
                continue
            defaulted.append((statement.name, number, how))
        if still:
            return replace(statement, values=[]), still, []
    values = []
    for _ in range(sets):
        row = _draw(statement, pools, unique, rng, window_share, defaults)
        for number, value in defaults.items():
            if value is None:  # a timestamp: one of the statement's own sampled times
                row[_index(statement, number)] = rng.choice(temporal)
        values.append(row)
    filled = replace(statement, values=values)
    refused = _explains(conn, filled)
    if refused is not None:
        return replace(statement, values=[]), [(statement.name, None, refused)], []
    return filled, [], defaulted


def _temporal_sample(conn: Connection, statement: Statement, rng: random.Random) -> list[Any]:
    """Times from the first timestamp or date column (by name) of the tables ``statement`` reads,
    for a time placeholder no column of its own explains (a bound inside a CTE's filter)."""
    for relation in analyze(statement.sql).user_relations:
        rel = ".".join(quote(part) for part in relation.qualified.split(".", 1))
        found = conn.execute(
            text(
                "SELECT c.relnamespace::regnamespace::text || '.' || c.relname, a.attname "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE a.attrelid = to_regclass(:rel) AND a.attnum > 0 AND NOT a.attisdropped "
                "AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) "
                "ORDER BY a.attname LIMIT 1"
            ),
            {"rel": rel},
        ).first()
        if found is not None:
            return _column_sample(conn, found[0], found[1], 200, rng.randrange(2**31))
    return []


def _index(statement: Statement, number: int) -> int:
    return next(i for i, p in enumerate(statement.placeholders) if p.number == number)


def _types(conn: Connection, statement: Statement) -> list[str]:
    count = max(p.number for p in statement.placeholders)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        return parameter_types(cursor, statement.sql, count)
    except psycopg2.Error as exc:
        raise DBAPIError(statement.sql, None, exc) from None
    finally:
        cursor.close()


def _explains(conn: Connection, statement: Statement) -> str | None:
    """None when the server plans ``statement`` with its first value set (EXPLAIN runs nothing, and
    this transaction is read-only), else why not."""
    try:
        with conn.begin_nested():
            conn.execute(text("EXPLAIN " + statement.bind_sql()), statement.params(0))
    except DBAPIError as exc:
        return f"the server refuses the filled statement: {first_line(exc)}"
    return None


def _problems(
    statement: Statement, pools: dict[tuple[Any, Any], list[Any]]
) -> list[tuple[str, int | None, str]]:
    out: list[tuple[str, int | None, str]] = []
    for p in statement.placeholders:
        if p.operator == "limit" and statement.rows_per_call is None:
            out.append((statement.name, p.number, "LIMIT with no captured rows per call"))
        elif not p.resolved:
            reason = (
                "not compared with a column"
                if p.operator is None
                else f"column {p.column!r} not tied to one table"
            )
            out.append((statement.name, p.number, reason))
        elif p.table and not pools.get((p.table, p.column)):
            out.append((statement.name, p.number, f"no values in {p.table}.{p.column}"))
    return out


def _draw(
    statement: Statement,
    pools: dict[tuple[Any, Any], list[Any]],
    unique: set[tuple[Any, Any]],
    rng: random.Random,
    window_share: float,
    defaults: dict[int, Any],
) -> list[Any]:
    bounds: dict[tuple[Any, Any], dict[str, Any]] = defaultdict(dict)
    ranged = defaultdict(set)
    for p in statement.placeholders:
        if p.operator in _LOWER + _UPPER and p.number not in defaults:
            ranged[(p.table, p.column)].add("lower" if p.operator in _LOWER else "upper")
    for key, sides in ranged.items():
        values = sorted(pools[key])
        n = len(values)
        width = max(1, round(window_share * n))
        if sides == {"lower", "upper"}:
            start = rng.randrange(max(1, n - width))
            bounds[key] = {"lower": values[start], "upper": values[min(n - 1, start + width)]}
        elif sides == {"lower"}:
            bounds[key] = {"lower": values[rng.randrange(max(0, n - width - 1), n)]}
        else:
            bounds[key] = {"upper": values[rng.randrange(0, min(n, width + 1))]}
    row = []
    for p in statement.placeholders:
        if p.number in defaults:
            row.append(defaults[p.number])
        else:
            row.append(_value(p, statement, pools, unique, bounds, rng))
    return row


def _value(
    p: Placeholder,
    statement: Statement,
    pools: dict[tuple[Any, Any], list[Any]],
    unique: set[tuple[Any, Any]],
    bounds: dict[tuple[Any, Any], dict[str, Any]],
    rng: random.Random,
) -> Any:
    key = (p.table, p.column)
    if p.operator in ("insert", "set") and key in unique:
        return _fresh(rng.choice(pools[key]), rng)
    if p.operator == "limit":
        return max(1, math.ceil(statement.rows_per_call or 1))
    if p.operator == "offset":
        return 0
    if p.operator in _LOWER:
        return bounds[key]["lower"]
    if p.operator in _UPPER:
        return bounds[key]["upper"]
    if p.operator == "any":
        return [rng.choice(pools[key]) for _ in range(3)]
    return rng.choice(pools[key])


def _fresh(value: Any, rng: random.Random) -> Any:
    """A value like ``value`` for a column with a unique index, unlikely to exist: writing a sampled
    one would only measure the unique violation."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value + 1_000_000_000 + rng.randrange(1_000_000_000)
    return f"{value}_replay{rng.randrange(10**9)}"


def _is_unique(conn: Connection, table: str, column: str) -> bool:
    """True when a one-column unique index (or key) covers ``table.column``."""
    rel = ".".join(quote(part) for part in table.split(".", 1))
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                "WHERE i.indrelid = to_regclass(:rel) AND i.indisunique "
                "AND i.indnkeyatts = 1 AND a.attname = :column)"
            ),
            {"rel": rel, "column": column},
        ).scalar()
    )


def _column_sample(conn: Connection, table: str, column: str, limit: int, seed: int) -> list[Any]:
    rel = ".".join(quote(part) for part in table.split(".", 1))
    found = conn.execute(
        text(
            "SELECT c.reltuples, n.nspname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(:rel)"
        ),
        {"rel": rel},
    ).first()
    if found is None:
        return []
    estimate, schema = found
    if schema.startswith("pg_") or schema == "information_schema":
        return []  # system catalogs hold secrets (pg_authid) and are never sampled
    # Ask for ~4× the rows needed (pages vary); small or never-analysed tables are read whole,
    # still capped by the LIMIT.
    percent = 100.0 if estimate <= 0 else min(100.0, max(0.01, 400.0 * limit / float(estimate)))
    col = quote(column)
    rows = conn.execute(
        text(
            f"SELECT {col} FROM {rel} TABLESAMPLE SYSTEM (:pct) REPEATABLE (:seed) "
            f"WHERE {col} IS NOT NULL LIMIT :limit"
        ),
        {"pct": percent, "seed": seed, "limit": limit},
    ).scalars()
    return [_plain(v) for v in rows]


def _plain(value: Any) -> Any:
    """A value the TOML file can hold (timedelta and others as text the server casts back)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, timedelta):
        return f"{value.total_seconds()} seconds"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list) and all(isinstance(v, _PLAIN) for v in value):
        return value
    return str(value)
