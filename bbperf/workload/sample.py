"""Fill a workload's placeholders with values that exist: drawn from the compared columns of the
target with ``TABLESAMPLE`` (bounded, repeatable), respecting the operator — ``=`` draws existing
values, ranges draw windows between sampled values. Placeholders that cannot be tied to a column are
listed, never guessed. Read-only."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.errors import ConfigError
from bbperf.sqlnames import quote
from bbperf.target import query_error
from bbperf.workload.file import MAX_VALUE_SETS, Placeholder, Statement, Workload

if TYPE_CHECKING:
    import pandas as pd

_LOWER = (">", ">=")
_UPPER = ("<", "<=")
_PLAIN = (bool, int, float, str, Decimal, datetime, date, time)


@dataclass
class Sampled:
    """The workload with ``values`` filled, and what could not be filled (statement, $n, reason)."""

    workload: Workload
    unresolved: list[tuple[str, int | None, str]] = field(default_factory=list)

    def unresolved_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.unresolved, columns=["statement", "placeholder", "reason"])

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
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
            conn.execute(text("SET TRANSACTION READ ONLY"))
            pools = {
                key: _column_sample(conn, key[0], key[1], sample_rows, seed)
                for key in sorted(wanted, key=str)
                if key[0] and key[1]
            }
            conn.rollback()
    except DBAPIError as exc:
        raise query_error(exc, "TABLESAMPLE") from None
    out = Sampled(workload)
    statements = []
    for statement in workload.statements:
        problems = _problems(statement, pools)
        out.unresolved += problems
        if problems or not statement.placeholders:
            statements.append(replace(statement, values=[] if problems else statement.values))
            continue
        values = [_draw(statement, pools, rng, window_share) for _ in range(sets)]
        statements.append(replace(statement, values=values))
    out.workload = replace(workload, statements=statements)
    return out


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
    rng: random.Random,
    window_share: float,
) -> list[Any]:
    bounds: dict[tuple[Any, Any], dict[str, Any]] = defaultdict(dict)
    ranged = defaultdict(set)
    for p in statement.placeholders:
        if p.operator in _LOWER + _UPPER:
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
        row.append(_value(p, statement, pools, bounds, rng))
    return row


def _value(
    p: Placeholder,
    statement: Statement,
    pools: dict[tuple[Any, Any], list[Any]],
    bounds: dict[tuple[Any, Any], dict[str, Any]],
    rng: random.Random,
) -> Any:
    if p.operator == "limit":
        return max(1, math.ceil(statement.rows_per_call or 1))
    if p.operator == "offset":
        return 0
    key = (p.table, p.column)
    if p.operator in _LOWER:
        return bounds[key]["lower"]
    if p.operator in _UPPER:
        return bounds[key]["upper"]
    if p.operator == "any":
        return [rng.choice(pools[key]) for _ in range(3)]
    return rng.choice(pools[key])


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
