"""Shard appointments and payments over postgres_fdw (and back), the way PostgreSQL itself can: a
hash-partitioned table whose partitions are foreign tables on the shards.

``apply`` sets the plain tables aside (renamed ``<table>_unsharded``, with their keys, indexes and
foreign keys) and creates in their place a table partitioned by hash of the shard key
(``barber_id``, or ``organization_id`` for appointments when sharding by organization: payments
carry no organization, so they follow the barber), one foreign partition per shard, and copies the
rows through it: PostgreSQL routes each row to its shard. On each shard, bbperf's schema is created
with the seven tables; the five small ones get every row (replicated, so a shard can join and
check its foreign keys locally), appointments and payments only their hash share, then the
indexes the coordinator's tables carry (an applied index set too) and an ANALYZE. The shard drops
its ``payments → appointments`` key: with payments following the barber and appointments the
organization the two may live on different shards, as Citus requires co-location for such a key.

Database-level objects are postgres_fdw's (``bbperf.shard.fdw``): the extension when the database
lacks it, one foreign server per shard named ``bbperf_<schema>_shard_<k>`` and its user mappings. ``apply`` records them in ``bbperf_meta``; ``drop`` copies the rows back into
the set-aside tables (so writes made while sharded survive), removes exactly those objects and drops
bbperf's schema on every shard. The dataset's as_of and fingerprints are untouched by both.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg2
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from bbperf import meta
from bbperf.catalog import secondary_indexes
from bbperf.errors import ConfigError, DataError, QueryError, first_line
from bbperf.generate import require_dataset
from bbperf.interrupt import wait_callback
from bbperf.schema import TABLE_ORDER, create_schema, drop_schema, require_schema, schema_status
from bbperf.shard import fdw
from bbperf.sqlnames import qualified, quote
from bbperf.target import is_embedded, make_engine, query_error, schema_of
from bbperf.urls import mask_text, mask_url

SHARDED_TABLES = ("appointments", "payments")
REPLICATED_TABLES = tuple(t for t in TABLE_ORDER if t not in SHARDED_TABLES)
# The column each table is hashed on, per --by.
SHARD_KEYS: dict[str, dict[str, str]] = {
    "barber": {"appointments": "barber_id", "payments": "barber_id"},
    "organization": {"appointments": "organization_id", "payments": "barber_id"},
}
BY_CHOICES = tuple(SHARD_KEYS)
META_KEY = "sharding"
SET_ASIDE_SUFFIX = "_unsharded"


def check_by(by: str) -> str:
    if by not in SHARD_KEYS:
        raise ConfigError(f"--by {by!r} is not one of {', '.join(BY_CHOICES)}")
    return by


def partition_name(table: str, index: int) -> str:
    return f"{table}_shard_{index}"


def set_aside_name(table: str) -> str:
    return f"{table}{SET_ASIDE_SUFFIX}"


# -- what apply and drop report -------------------------------------------------------------------
@dataclass(frozen=True)
class ShardChange:
    """The result of ``apply`` or ``drop``."""

    action: str
    by: str
    shards: list[str]
    rows: dict[str, int]
    seconds: float
    removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shard_engine(url: str, schema: str) -> Engine:
    """An engine on a shard carrying bbperf's ``schema``, one connection at a time, quick to fail."""
    return make_engine(url, schema=schema, poolclass=NullPool, connect_timeout_s=5)


@contextlib.contextmanager
def _reported(action: str) -> Iterator[None]:
    """A failed statement in one line: the shard it could not reach, or the server's message."""
    try:
        yield
    except (DBAPIError, psycopg2.Error) as exc:
        raise (fdw.shard_error(exc) or _failed(action, exc)) from None


def _failed(action: str, exc: DBAPIError | psycopg2.Error) -> QueryError:
    return QueryError(f"shard {action} failed and was rolled back: {mask_text(first_line(exc))}")


# -- the shards' side ------------------------------------------------------------------------------
def _prepare_shard(index: int, url: str, schema: str) -> None:
    """Create bbperf's schema on a shard (refusing one that has it already: it may be another
    coordinator's shard), drop its payments → appointments key, and leave it empty."""
    engine = shard_engine(url, schema)
    try:
        with _reported("apply"):
            if schema_status(engine).exists:
                raise DataError(
                    f"shard {index} ({mask_url(url)}) already has schema {schema!r}: it is a shard "
                    "of another coordinator, or a sharding that was not dropped; drop that first"
                )
            create_schema(engine)
            with engine.begin() as conn:
                for name in _keys_between(conn, schema, "payments", "appointments"):
                    conn.execute(
                        text(
                            f"ALTER TABLE {qualified(schema, 'payments')} DROP CONSTRAINT {quote(name)}"
                        )
                    )
    finally:
        engine.dispose()


def _index_shard(url: str, schema: str, indexes: Sequence[tuple[str, str]]) -> None:
    """Build on a shard, once its rows are in, the indexes the coordinator's plain tables carry, and
    ANALYZE its share: a shard is the same table design, only smaller. Without them a routed query
    reads its whole share where the single server used an index (notebook 10 measured a routed
    query ×19 slower at SF 1 for that reason alone)."""
    engine = shard_engine(url, schema)
    try:
        with (
            _reported("apply"),
            engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        ):
            conn.execute(text("SET statement_timeout = 0"))
            for _, definition in indexes:
                conn.execute(text(definition))
            for table in SHARDED_TABLES:
                conn.execute(text(f"ANALYZE {qualified(schema, table)}"))
    finally:
        engine.dispose()


def _keys_between(conn: Connection, schema: str, table: str, references: str) -> list[str]:
    return list(
        conn.execute(
            text(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid = to_regclass(:t) AND confrelid = to_regclass(:r)"
            ),
            {"t": qualified(schema, table), "r": qualified(schema, references)},
        ).scalars()
    )


def _replicate(coordinator: Engine, url: str, schema: str) -> None:
    """Copy every row of the small tables to a shard (COPY out, COPY in, in load order); psycopg2
    refuses COPY under the CLI's wait callback, so it is lifted meanwhile."""
    source = coordinator.raw_connection()
    engine = shard_engine(url, schema)
    target = engine.raw_connection()
    try:
        with wait_callback(None), source.cursor() as out, target.cursor() as into:
            for table in REPLICATED_TABLES:
                buffer = io.BytesIO()
                out.copy_expert(
                    f"COPY {qualified(schema, table)} TO STDOUT (FORMAT binary)", buffer
                )
                buffer.seek(0)
                into.copy_expert(
                    f"COPY {qualified(schema, table)} FROM STDIN (FORMAT binary)", buffer
                )
        target.commit()
    finally:
        source.rollback()
        source.close()
        target.close()
        engine.dispose()


def _drop_shard_schema(url: str, schema: str) -> None:
    engine = shard_engine(url, schema)
    try:
        with _reported("drop"):
            drop_schema(engine)
    finally:
        engine.dispose()


# -- the coordinator's side ---------------------------------------------------------------------
def _lock(conn: Connection, schema: str) -> None:
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    conn.execute(text("SET LOCAL lock_timeout = '10s'"))
    tables = ", ".join(qualified(schema, t) for t in SHARDED_TABLES)
    conn.execute(text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"))


def _relkind(conn: Connection, schema: str, table: str) -> str | None:
    return conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"),
        {"t": qualified(schema, table)},
    ).scalar()


def recorded(conn: Connection, schema: str) -> dict[str, Any] | None:
    """What ``apply`` recorded (by, keys, shards and their servers), or None when not sharded."""
    return meta.read(conn, schema, META_KEY) if meta.exists(conn, schema) else None


def _shard_table(conn: Connection, schema: str, table: str, key: str, shards: int) -> int:
    """Set ``table`` aside, create its hash-partitioned replacement over one foreign table per
    shard, and copy the rows through it; return the rows copied."""
    aside = set_aside_name(table)
    q = quote(schema)
    conn.execute(text(f"ALTER TABLE {q}.{quote(table)} RENAME TO {quote(aside)}"))
    conn.execute(
        text(
            f"CREATE TABLE {q}.{quote(table)} (LIKE {q}.{quote(aside)} INCLUDING DEFAULTS "
            f"INCLUDING CONSTRAINTS) PARTITION BY HASH ({quote(key)})"
        )
    )
    # New ids come from the set-aside table's identity sequence: one sequence, no collisions.
    conn.execute(
        text(
            conn.execute(
                text(
                    "SELECT format('ALTER TABLE %s ALTER COLUMN id SET DEFAULT nextval(%L::regclass)', "
                    "CAST(:t AS text), pg_get_serial_sequence(:a, 'id'))"
                ),
                {"t": f"{q}.{quote(table)}", "a": f"{q}.{quote(aside)}"},
            ).scalar_one()
        )
    )
    for index in range(shards):
        conn.execute(
            text(
                f"CREATE FOREIGN TABLE {q}.{quote(partition_name(table, index))} PARTITION OF "
                f"{q}.{quote(table)} FOR VALUES WITH (MODULUS {shards}, REMAINDER {index}) "
                f"SERVER {quote(fdw.server_name(schema, index))} "
                + fdw.options_sql(conn, {"schema_name": schema, "table_name": table})
            )
        )
    return int(
        conn.execute(
            text(f"INSERT INTO {q}.{quote(table)} SELECT * FROM {q}.{quote(aside)}")
        ).rowcount
    )


def apply(engine: Engine, shard_urls: Sequence[str], by: str = "barber") -> ShardChange:
    """Shard appointments and payments over ``shard_urls`` by ``by`` (barber or organization).

    The shards' schemas are made and the small tables copied first; the coordinator's change is one
    transaction (its remote inserts commit with it). On a failure the shards' schemas are dropped
    again and nothing changes. DataError when no dataset is loaded, the tables are sharded or
    partitioned already, or a shard holds bbperf's schema already.
    """
    check_by(by)
    if not shard_urls:
        raise ConfigError(
            "no shards: start bbperf's with `bbperf shard start --shards N`, or name yours "
            "with --shard-url (repeated)"
        )
    schema = schema_of(engine)
    keys = SHARD_KEYS[by]
    started = time.perf_counter()
    require_dataset(engine)
    with engine.connect() as conn:
        require_schema(conn, schema)
        if recorded(conn, schema) is not None:
            raise DataError(
                f"{schema}.appointments is sharded already: run `bbperf shard drop` first"
            )
        for table in SHARDED_TABLES:
            if _relkind(conn, schema, table) != "r":
                raise DataError(
                    f"{schema}.{table} is not a plain table (partitioned?): "
                    "run `bbperf partition drop` first"
                )
    if is_embedded(engine):
        fdw.ensure_own_roles(engine)
    with engine.connect() as conn:
        indexes = secondary_indexes(conn, schema, SHARDED_TABLES)
    prepared: list[str] = []
    try:
        for index, url in enumerate(shard_urls):
            _prepare_shard(index, url, schema)
            prepared.append(url)
            with _reported("apply"):
                _replicate(engine, url, schema)
        with _reported("apply"), engine.begin() as conn:
            _lock(conn, schema)
            created_fdw = fdw.ensure_fdw(conn, schema)
            shards = fdw.create_servers(conn, schema, shard_urls)
            rows = {
                t: _shard_table(conn, schema, t, keys[t], len(shard_urls)) for t in SHARDED_TABLES
            }
            meta.write(
                conn,
                schema,
                META_KEY,
                {
                    "by": by,
                    "keys": keys,
                    "shards": shards,
                    "created_extension": created_fdw,
                    "applied_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
    except BaseException:
        for url in prepared:
            with contextlib.suppress(QueryError, DataError, DBAPIError):
                _drop_shard_schema(url, schema)
        raise
    for url in shard_urls:
        _index_shard(url, schema, indexes)
    _analyze(engine, schema)
    return ShardChange(
        "apply",
        by,
        [s["url"] for s in shards],
        rows,
        round(time.perf_counter() - started, 3),
    )


def drop(engine: Engine, shard_urls: Sequence[str] | None = None) -> ShardChange:
    """Bring appointments and payments back from the shards into plain tables: the rows the shards
    hold now are copied into the set-aside tables, which take their names back; the foreign
    tables, servers and user mappings ``apply`` made (and postgres_fdw, if it made it) are dropped,
    then bbperf's schema on every shard. ``shard_urls`` reach the shards (needed when a recorded URL
    held a password); default: the recorded ones. DataError when the tables are not sharded.
    """
    schema = schema_of(engine)
    started = time.perf_counter()
    with _reported("drop"), engine.begin() as conn:
        record = recorded(conn, schema)
        if record is None:
            raise DataError(
                f"appointments and payments in {schema} are not sharded: nothing to drop"
            )
        urls = _drop_urls(record, shard_urls)
        _lock(conn, schema)
        rows = {t: _unshard_table(conn, schema, t) for t in SHARDED_TABLES}
        removed = fdw.drop_servers(conn, schema, record)
        meta.delete(conn, schema, META_KEY)
    for url in urls:
        _drop_shard_schema(url, schema)
    _analyze(engine, schema)
    return ShardChange(
        "drop",
        record["by"],
        [s["url"] for s in record["shards"]],
        rows,
        round(time.perf_counter() - started, 3),
        removed=removed,
    )


def _drop_urls(record: dict[str, Any], shard_urls: Sequence[str] | None) -> list[str]:
    shards = record["shards"]
    if shard_urls:
        if len(shard_urls) != len(shards):
            raise ConfigError(
                f"the tables are sharded over {len(shards)} shards but {len(shard_urls)} "
                "--shard-url were given"
            )
        return list(shard_urls)
    masked = [s["url"] for s in shards if "***" in s["url"]]
    if masked:
        raise ConfigError(
            f"a shard's URL held a password bbperf did not keep ({masked[0]}): "
            "name every shard again with --shard-url"
        )
    return [s["url"] for s in shards]


def _unshard_table(conn: Connection, schema: str, table: str) -> int:
    q = quote(schema)
    aside = f"{q}.{quote(set_aside_name(table))}"
    if table == SHARDED_TABLES[0]:
        conn.execute(
            text("TRUNCATE " + ", ".join(f"{q}.{quote(set_aside_name(t))}" for t in SHARDED_TABLES))
        )
    rows = conn.execute(
        text(f"INSERT INTO {aside} OVERRIDING SYSTEM VALUE SELECT * FROM {q}.{quote(table)}")
    ).rowcount
    conn.execute(text(f"DROP TABLE {q}.{quote(table)}"))
    conn.execute(text(f"ALTER TABLE {aside} RENAME TO {quote(table)}"))
    return int(rows)


def _analyze(engine: Engine, schema: str) -> None:
    with (
        _reported("analyze"),
        engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
    ):
        for table in SHARDED_TABLES:
            conn.execute(text(f"ANALYZE {qualified(schema, table)}"))


# -- status ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardLayout:
    """Whether appointments and payments are sharded, by what, and per shard its rows or why it
    cannot be read."""

    schema: str
    by: str | None
    keys: dict[str, str]
    shards: list[dict[str, Any]]

    @property
    def sharded(self) -> bool:
        return self.by is not None

    @property
    def unreachable(self) -> list[dict[str, Any]]:
        return [s for s in self.shards if s.get("error")]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layout_status(engine: Engine) -> ShardLayout:
    """The sharding recorded on ``engine``'s target, and each shard's row counts read through its
    foreign tables (a shard that cannot be reached gets its error line instead)."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        require_schema(conn, schema)
        record = recorded(conn, schema)
    if record is None:
        return ShardLayout(schema, None, {}, [])
    shards = []
    for shard in record["shards"]:
        entry = {"shard": shard["index"], "server": shard["server"], "url": shard["url"]}
        try:
            with engine.connect() as conn:
                for table in SHARDED_TABLES:
                    name = qualified(schema, partition_name(table, shard["index"]))
                    entry[f"{table}_rows"] = conn.execute(
                        text(f"SELECT count(*) FROM {name}")
                    ).scalar_one()
            entry["reachable"] = True
        except DBAPIError as exc:
            reported = fdw.shard_error(exc) or query_error(exc)
            entry.update(reachable=False, error=str(reported))
        shards.append(entry)
    return ShardLayout(schema, record["by"], dict(record["keys"]), shards)
