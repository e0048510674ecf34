"""Convert appointments and payments to declarative range partitions (and back) in one transaction.

appointments is partitioned on ``start_time``, payments on ``created_at``. PostgreSQL requires every
unique constraint of a partitioned table to contain the partition key, so the primary key ``(id)``
becomes ``(id, start_time)`` / ``(id, created_at)``: ids still come from the identity sequence, but the
database no longer proves them unique across partitions. A foreign key must reference a unique
constraint, so ``payments.appointment_id → appointments.id`` cannot exist while appointments is
partitioned: ``apply`` drops it and records it in ``bbperf_meta``; ``drop`` re-creates (and so
re-validates) it. Check constraints, defaults, identity, the other foreign keys and every secondary
index (an applied index set) are carried over with their names. A DEFAULT partition takes rows
outside the generated ranges.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf import meta
from bbperf.catalog import foreign_keys, secondary_indexes
from bbperf.errors import ConfigError, DataError, QueryError
from bbperf.generate import require_dataset
from bbperf.schema import require_schema
from bbperf.sqlnames import qualified, quote
from bbperf.target import query_error, schema_of

if TYPE_CHECKING:
    import pandas as pd

Granularity = Literal["month", "week", "day"]
GRANULARITIES: tuple[str, ...] = ("month", "week", "day")
PARTITION_KEYS: dict[str, str] = {"appointments": "start_time", "payments": "created_at"}
META_KEY = "partitioning"
KEPT_SUFFIX = "_kept"
STALE_FUNCTION = "bbperf_partition_kept_stale"
MAX_PARTITIONS = 2000  # per table: beyond this the lock table and the planner both suffer


@dataclass(frozen=True)
class TableChange:
    """What a conversion did to one table."""

    table: str
    key: str
    partitioned: bool
    partitions: int
    rows: int
    primary_key: str
    indexes: int


@dataclass(frozen=True)
class Conversion:
    """The result of ``apply`` or ``drop``: per table, the foreign keys affected, the time taken."""

    action: str
    by: str | None
    tables: list[TableChange]
    foreign_keys_dropped: list[str] = field(default_factory=list)
    foreign_keys_restored: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([asdict(t) for t in self.tables])


# -- pure: partition bounds --------------------------------------------------------------------
def _floor(moment: datetime, by: str) -> datetime:
    day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if by == "month":
        return day.replace(day=1)
    if by == "week":
        return day - timedelta(days=day.weekday())
    return day


def _next(start: datetime, by: str) -> datetime:
    if by == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + timedelta(days=7 if by == "week" else 1)


def check_granularity(by: str) -> str:
    if by not in GRANULARITIES:
        raise ConfigError(f"granularity {by!r} is not one of {', '.join(GRANULARITIES)}")
    return by


def bounds(first: datetime, last: datetime, by: str) -> list[tuple[datetime, datetime]]:
    """Calendar ranges [from, to) in UTC covering ``first`` .. ``last`` (inclusive) by month/week/day."""
    check_granularity(by)
    first, last = first.astimezone(UTC), last.astimezone(UTC)
    ranges = []
    start = _floor(first, by)
    while start <= last:
        end = _next(start, by)
        ranges.append((start, end))
        start = end
    return ranges


def equal_bounds(first: datetime, last: datetime, count: int) -> list[tuple[datetime, datetime]]:
    """``count`` equal ranges [from, to) covering ``first`` .. ``last`` (to study partition counts)."""
    if count < 1:
        raise ConfigError(f"partition count must be at least 1, got {count}")
    first, last = first.astimezone(UTC), last.astimezone(UTC) + timedelta(microseconds=1)
    step = (last - first) / count
    edges = [first + step * i for i in range(count)] + [last]
    return list(zip(edges[:-1], edges[1:], strict=True))


def partition_name(table: str, start: datetime, by: str | None, index: int) -> str:
    if by == "month":
        return f"{table}_p{start:%Y_%m}"
    if by in ("week", "day"):
        return f"{table}_p{start:%Y_%m_%d}"
    return f"{table}_part{index:04d}"


# -- catalog reads -----------------------------------------------------------------------------
def _relkind(conn: Connection, schema: str, table: str) -> str | None:
    return conn.execute(
        text(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relname = :t"
        ),
        {"s": schema, "t": table},
    ).scalar()


def _recorded(conn: Connection, schema: str) -> dict[str, Any]:
    return dict(meta.read(conn, schema, META_KEY) or {})


def _record(conn: Connection, schema: str, value: dict[str, Any] | None) -> None:
    if value is None:
        meta.delete(conn, schema, META_KEY)
        return
    meta.write(conn, schema, META_KEY, value)


# -- the conversion ----------------------------------------------------------------------------
def _convert(
    conn: Connection,
    schema: str,
    table: str,
    ranges: list[tuple[datetime, datetime]] | None,
    by: str | None,
    *,
    copy_rows: bool = True,
    keep: bool = False,
) -> TableChange:
    """Rebuild ``table`` as a range-partitioned table over ``ranges`` (None: as a plain table);
    without ``copy_rows`` the new table is the layout only (keys and indexes, no rows). With
    ``keep`` the old table is not dropped but kept, indexes and all, as ``<table>_kept``."""
    key = PARTITION_KEYS[table]
    q = quote(schema)
    old = f"{table}_old"
    indexes = secondary_indexes(conn, schema, [table])
    for name, _ in indexes:
        if keep:
            conn.execute(text(f"ALTER INDEX {q}.{quote(name)} RENAME TO {quote(_kept_name(name))}"))
        else:
            conn.execute(text(f"DROP INDEX {q}.{quote(name)}"))
    sequence = conn.execute(
        text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": f"{q}.{table}"}
    ).scalar_one()
    last_id = conn.execute(text(f"SELECT max(id) FROM {q}.{table}")).scalar()
    # Free every name the new table takes: the table, its key's index and its identity sequence.
    conn.execute(text(f"ALTER TABLE {q}.{table} RENAME TO {old}"))
    conn.execute(text(f"ALTER TABLE {q}.{old} RENAME CONSTRAINT {table}_pkey TO {old}_pkey"))
    conn.execute(text(f"ALTER SEQUENCE {sequence} RENAME TO {old}_id_seq"))
    partition_by = f" PARTITION BY RANGE ({key})" if ranges is not None else ""
    conn.execute(
        text(
            f"CREATE TABLE {q}.{table} (LIKE {q}.{old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            f"INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS){partition_by}"
        )
    )
    for i, (start, end) in enumerate(ranges or []):
        conn.execute(
            text(
                f"CREATE TABLE {q}.{partition_name(table, start, by, i)} PARTITION OF {q}.{table} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        )
    if ranges is not None:
        conn.execute(text(f"CREATE TABLE {q}.{table}_default PARTITION OF {q}.{table} DEFAULT"))
    # Rows first, keys and indexes after: one build per index beats maintaining it row by row.
    rows = (
        conn.execute(
            text(f"INSERT INTO {q}.{table} OVERRIDING SYSTEM VALUE SELECT * FROM {q}.{old}")
        ).rowcount
        if copy_rows
        else 0
    )
    if keep:
        _rename_table(conn, schema, old, _kept_name(table))
    else:
        conn.execute(text(f"DROP TABLE {q}.{old}"))
    primary_key = f"id, {key}" if ranges is not None else "id"
    conn.execute(
        text(f"ALTER TABLE {q}.{table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({primary_key})")
    )
    for _, definition in indexes:
        conn.execute(text(definition))
    if last_id is not None:
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"),
            {"t": f"{q}.{table}", "v": int(last_id)},
        )
    return TableChange(
        table=table,
        key=key,
        partitioned=ranges is not None,
        partitions=len(ranges) + 1 if ranges is not None else 0,
        rows=int(rows),
        primary_key=f"({primary_key})",
        indexes=len(indexes),
    )


def _kept_name(name: str) -> str:
    """The name a table, index or sequence has while it waits as a kept plain copy (≤ 63 bytes)."""
    return f"{name[:58]}{KEPT_SUFFIX}"


def _rename_table(conn: Connection, schema: str, table: str, to: str) -> None:
    """Rename ``table`` with its primary key constraint and identity sequence (``<name>_pkey``,
    ``<name>_id_seq``), so that every name the table takes follows it."""
    q = quote(schema)
    sequence = conn.execute(
        text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": f"{q}.{table}"}
    ).scalar_one()
    conn.execute(text(f"ALTER TABLE {q}.{quote(table)} RENAME TO {quote(to)}"))
    conn.execute(
        text(
            f"ALTER TABLE {q}.{quote(to)} RENAME CONSTRAINT {quote(table + '_pkey')} TO {quote(to + '_pkey')}"
        )
    )
    conn.execute(text(f"ALTER SEQUENCE {sequence} RENAME TO {quote(to + '_id_seq')}"))


def _kept_state(conn: Connection, schema: str, tables: list[str]) -> dict[str, list[str]]:
    """Per table, the secondary indexes (names) a kept plain copy must give back on restore."""
    return {t: [name for name, _ in secondary_indexes(conn, schema, [t])] for t in tables}


def _watch_writes(conn: Connection, schema: str, tables: list[str]) -> None:
    """Statement triggers that mark the kept copies stale in bbperf_meta on any write (INSERT,
    UPDATE, DELETE, TRUNCATE) to the partitioned tables: from then on only a rewrite is exact."""
    q = quote(schema)
    meta_table = qualified(schema, meta.META_TABLE)
    conn.execute(
        text(
            f"CREATE FUNCTION {q}.{STALE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"UPDATE {meta_table} SET value = value || '{{\"kept_stale\": true}}'::jsonb "
            f"WHERE key = '{META_KEY}'; RETURN NULL; END $$"
        )
    )
    for table in tables:
        conn.execute(
            text(
                f"CREATE TRIGGER {STALE_FUNCTION} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {q}.{table} FOR EACH STATEMENT EXECUTE FUNCTION {q}.{STALE_FUNCTION}()"
            )
        )


def _kept_usable(
    conn: Connection, schema: str, recorded: dict[str, Any], tables: list[str]
) -> bool:
    """Whether the kept plain copies hold exactly what the partitioned tables hold now: recorded
    for every table, no write since the conversion, and the same secondary indexes."""
    kept = recorded.get("kept")
    if not kept or recorded.get("kept_stale") or set(kept) != set(tables):
        return False
    present = {t: sorted(n for n, _ in secondary_indexes(conn, schema, [t])) for t in tables}
    return all(present[t] == sorted(kept[t]) for t in tables)


def _restore_kept(conn: Connection, schema: str, table: str, indexes: list[str]) -> TableChange:
    """Put the kept plain copy of ``table`` back in its place: the partitioned table is dropped and
    the copy, its key, identity sequence and indexes take their names again. Nothing is rewritten."""
    q = quote(schema)
    kept = _kept_name(table)
    conn.execute(text(f"DROP TABLE {q}.{table}"))
    _rename_table(conn, schema, kept, table)
    for name in indexes:
        conn.execute(text(f"ALTER INDEX {q}.{quote(_kept_name(name))} RENAME TO {quote(name)}"))
    rows = conn.execute(text(f"SELECT count(*) FROM {q}.{table}")).scalar_one()
    return TableChange(
        table=table,
        key=PARTITION_KEYS[table],
        partitioned=False,
        partitions=0,
        rows=int(rows),
        primary_key="(id)",
        indexes=len(indexes),
    )


def _drop_kept(conn: Connection, schema: str, recorded: dict[str, Any]) -> None:
    """Drop the kept copies this conversion recorded and the trigger function watching writes."""
    q = quote(schema)
    for table in recorded.get("kept") or {}:
        conn.execute(text(f"DROP TABLE IF EXISTS {q}.{quote(_kept_name(table))}"))
    conn.execute(text(f"DROP FUNCTION IF EXISTS {q}.{STALE_FUNCTION}() CASCADE"))


def time_span(conn: Connection, schema: str, table: str) -> tuple[datetime, datetime] | None:
    key = PARTITION_KEYS[table]
    row = conn.execute(text(f"SELECT min({key}), max({key}) FROM {qualified(schema, table)}")).one()
    return (row[0], row[1]) if row[0] is not None else None


@contextlib.contextmanager
def _one_transaction(engine: Engine, action: str) -> Iterator[Connection]:
    """engine.begin(), with a failed statement reported in one line (everything was rolled back)."""
    try:
        with engine.begin() as conn:
            yield conn
    except DBAPIError as exc:
        hint = ""
        if "max_locks_per_transaction" in str(exc):
            hint = "; fewer partitions (a coarser --by) take fewer locks, or raise max_locks_per_transaction"
        raise QueryError(
            f"partition {action} failed and was rolled back, nothing changed: {query_error(exc)}{hint}"
        ) from None


def _prepare(engine: Engine, conn: Connection, schema: str) -> None:
    require_schema(conn, schema)
    require_dataset(engine)
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    conn.execute(text("SET LOCAL lock_timeout = '10s'"))
    tables = ", ".join(qualified(schema, t) for t in PARTITION_KEYS)
    conn.execute(text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"))


def apply(
    engine: Engine,
    by: str = "month",
    *,
    partitions: int | None = None,
    keep_plain: bool = False,
    owner: str | None = None,
) -> Conversion:
    """Partition appointments and payments by ``by`` (month, week or day, UTC calendar ranges).

    ``partitions`` instead splits each table's time span into that many equal ranges (to study how
    planning time grows with the partition count). ``keep_plain`` keeps the plain tables (renamed
    ``<table>_kept``, with their indexes) so that ``drop`` can put them back without rewriting a
    row, as long as nothing writes to the partitioned tables meanwhile (statement triggers watch;
    after a write ``drop`` rewrites as usual); it costs the tables' disk space until ``drop``.
    One transaction: on any failure nothing changes. Raises DataError when no dataset is loaded,
    the tables are already partitioned, or a ``<table>_kept`` table is in the way. ``owner`` (a
    notebook's name) is recorded so that ``undo_interrupted`` can tell a run of it that never got
    to ``drop`` from a partitioning somebody wants.
    """
    check_granularity(by)
    if partitions is not None and not 1 <= partitions <= MAX_PARTITIONS:
        raise ConfigError(
            f"partition count must be between 1 and {MAX_PARTITIONS}, got {partitions}"
        )
    schema = schema_of(engine)
    started = time.perf_counter()
    with _one_transaction(engine, "apply") as conn:
        _prepare(engine, conn, schema)
        for table in PARTITION_KEYS:
            if _relkind(conn, schema, table) == "p":
                raise DataError(
                    f"{schema}.{table} is already partitioned: run `bbperf partition drop` first"
                )
            if keep_plain and _relkind(conn, schema, _kept_name(table)) is not None:
                raise DataError(
                    f"{schema}.{_kept_name(table)} exists: bbperf keeps its plain copy under that name"
                )
        plans: dict[str, list[tuple[datetime, datetime]]] = {}
        for table in PARTITION_KEYS:
            span = time_span(conn, schema, table)
            if span is None:
                plans[table] = []
            elif partitions is not None:
                plans[table] = equal_bounds(*span, partitions)
            else:
                plans[table] = bounds(*span, by)
            if len(plans[table]) > MAX_PARTITIONS:
                raise ConfigError(
                    f"{table} would get {len(plans[table])} partitions by {by} "
                    f"(limit {MAX_PARTITIONS}): choose a coarser granularity"
                )
        fks = foreign_keys(conn, schema, list(PARTITION_KEYS))
        for fk in fks:
            conn.execute(
                text(f"ALTER TABLE {qualified(schema, fk['table'])} DROP CONSTRAINT {fk['name']}")
            )
        label = by if partitions is None else None
        copies = _kept_state(conn, schema, list(PARTITION_KEYS)) if keep_plain else None
        changes = [
            _convert(conn, schema, t, plans[t], label, keep=keep_plain) for t in PARTITION_KEYS
        ]
        if keep_plain:
            _watch_writes(conn, schema, list(PARTITION_KEYS))
        # A foreign key can only reference a unique constraint, and none on a partitioned table
        # can be on id alone: references *to* the partitioned tables wait in bbperf_meta.
        kept = [fk for fk in fks if fk["references"] not in PARTITION_KEYS]
        waiting = [fk for fk in fks if fk["references"] in PARTITION_KEYS]
        for fk in kept:
            _add_foreign_key(conn, schema, fk)
        _record(
            conn,
            schema,
            {
                "by": by if partitions is None else f"{partitions} equal ranges",
                "tables": {c.table: c.key for c in changes},
                "foreign_keys_waiting": waiting,
                "applied_at": datetime.now(UTC).isoformat(timespec="seconds"),
                **({"kept": copies} if copies is not None else {}),
                **({"owner": owner} if owner else {}),
            },
        )
    _analyze(engine, schema)
    return Conversion(
        "apply",
        by if partitions is None else f"{partitions} equal ranges",
        changes,
        foreign_keys_dropped=[f"{fk['table']}.{fk['name']}" for fk in waiting],
        seconds=round(time.perf_counter() - started, 3),
    )


@contextlib.contextmanager
def empty_layout(engine: Engine, partitions: int) -> Iterator[Connection]:
    """A connection that sees appointments and payments split into ``partitions`` equal ranges of
    their time span (+ DEFAULT; 0: plain tables), with their keys and indexes but no rows, inside a
    transaction that is always rolled back: nothing is copied and nothing changes.

    For planning-time studies, whose cost follows the partition and index count, not the rows; the
    tables are locked (ACCESS EXCLUSIVE) while the block runs. DataError when no dataset is loaded
    or the tables are partitioned already.
    """
    if not 0 <= partitions <= MAX_PARTITIONS:
        raise ConfigError(
            f"partition count must be between 0 and {MAX_PARTITIONS}, got {partitions}"
        )
    schema = schema_of(engine)
    with engine.connect() as conn:
        conn.begin()
        try:
            _prepare(engine, conn, schema)
            for table in PARTITION_KEYS:
                if _relkind(conn, schema, table) == "p":
                    raise DataError(
                        f"{schema}.{table} is already partitioned: run `bbperf partition drop` first"
                    )
            fks = foreign_keys(conn, schema, list(PARTITION_KEYS))
            for fk in fks:
                conn.execute(
                    text(
                        f"ALTER TABLE {qualified(schema, fk['table'])} DROP CONSTRAINT {fk['name']}"
                    )
                )
            for table in PARTITION_KEYS:
                span = time_span(conn, schema, table)
                ranges = (
                    None if not partitions else (equal_bounds(*span, partitions) if span else [])
                )
                _convert(conn, schema, table, ranges, None, copy_rows=False)
            yield conn
        finally:
            conn.rollback()


def drop(engine: Engine) -> Conversion:
    """Convert partitioned appointments and payments back to plain tables, restoring the foreign keys
    ``apply`` had to drop. The plain copies ``apply(keep_plain=True)`` kept are put back when nothing
    wrote to the partitioned tables since and their indexes are the same (no row rewritten); else
    the rows are copied and the kept copies dropped. One transaction. DataError when the tables are
    not partitioned."""
    schema = schema_of(engine)
    started = time.perf_counter()
    with _one_transaction(engine, "drop") as conn:
        _prepare(engine, conn, schema)
        partitioned = [t for t in PARTITION_KEYS if _relkind(conn, schema, t) == "p"]
        if not partitioned:
            raise DataError(
                f"appointments and payments in {schema} are not partitioned: nothing to drop"
            )
        recorded = _recorded(conn, schema)
        fks = foreign_keys(conn, schema, list(PARTITION_KEYS))
        for fk in fks:
            conn.execute(
                text(f"ALTER TABLE {qualified(schema, fk['table'])} DROP CONSTRAINT {fk['name']}")
            )
        if _kept_usable(conn, schema, recorded, partitioned):
            changes = [_restore_kept(conn, schema, t, recorded["kept"][t]) for t in partitioned]
        else:
            changes = [_convert(conn, schema, t, None, None) for t in partitioned]
        _drop_kept(conn, schema, recorded)
        waiting = list(recorded.get("foreign_keys_waiting", []))
        for fk in fks + waiting:
            _add_foreign_key(conn, schema, fk)
        _record(conn, schema, None)
    _analyze(engine, schema)
    return Conversion(
        "drop",
        recorded.get("by"),
        changes,
        foreign_keys_restored=[f"{fk['table']}.{fk['name']}" for fk in waiting],
        seconds=round(time.perf_counter() - started, 3),
    )


def undo_interrupted(engine: Engine, owner: str) -> Conversion | None:
    """``drop`` a partitioning that ``apply(owner=owner)`` made and nothing dropped since (a run of
    ``owner`` was interrupted in between), so that the next run starts from plain tables again.
    None when the tables are plain, or were partitioned by anyone else: that is left alone."""
    with engine.connect() as conn:
        if not meta.exists(conn, schema_of(engine)):
            return None
        recorded = _recorded(conn, schema_of(engine))
    if not recorded or recorded.get("owner") != owner:
        return None
    return drop(engine)


def _add_foreign_key(conn: Connection, schema: str, fk: dict[str, str]) -> None:
    conn.execute(
        text(
            f"ALTER TABLE {qualified(schema, fk['table'])} ADD CONSTRAINT {fk['name']} {fk['definition']}"
        )
    )


def _analyze(engine: Engine, schema: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in PARTITION_KEYS:
            conn.execute(text(f"ANALYZE {qualified(schema, table)}"))


# -- status ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionStatus:
    """Whether the tables are partitioned, by what, and one row per partition."""

    schema: str
    by: str | None
    tables: dict[str, bool]
    partitions: pd.DataFrame
    foreign_keys_waiting: list[str]

    @property
    def partitioned(self) -> bool:
        return any(self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "by": self.by,
            "tables": self.tables,
            "foreign_keys_waiting": self.foreign_keys_waiting,
            "partitions": self.partitions.to_dict("records"),
        }


def status(engine: Engine) -> PartitionStatus:
    """Partitioning of appointments and payments: per partition its bounds, rows (estimated) and bytes."""
    import pandas as pd

    schema = schema_of(engine)
    with engine.connect() as conn:
        require_schema(conn, schema)
        tables = {t: _relkind(conn, schema, t) == "p" for t in PARTITION_KEYS}
        frame = pd.DataFrame(
            conn.execute(
                text(
                    "SELECT p.relname AS table, c.relname AS partition, "
                    "pg_get_expr(c.relpartbound, c.oid) AS bounds, "
                    "GREATEST(c.reltuples, 0)::bigint AS estimated_rows, "
                    "pg_total_relation_size(c.oid) AS total_bytes "
                    "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
                    "WHERE n.nspname = :s AND p.relname = ANY(:t) AND c.relkind IN ('r', 'p') "
                    "ORDER BY p.relname, c.relname"
                ),
                {"s": schema, "t": list(PARTITION_KEYS)},
            )
            .mappings()
            .all(),
            columns=["table", "partition", "bounds", "estimated_rows", "total_bytes"],
        )
        recorded = _recorded(conn, schema) if any(tables.values()) else {}
    waiting = [f"{fk['table']}.{fk['name']}" for fk in recorded.get("foreign_keys_waiting", [])]
    return PartitionStatus(schema, recorded.get("by"), tables, frame, waiting)
