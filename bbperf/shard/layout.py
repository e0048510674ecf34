"""Shard appointments and payments over postgres_fdw (and back), the way PostgreSQL itself can: a
hash-partitioned table whose partitions are foreign tables on the shards.

``apply`` sets the plain tables aside (renamed ``<table>_unsharded``, with their keys, indexes and
foreign keys) and creates in their place a table partitioned by hash of the shard key
(``barber_id``, or ``organization_id`` for appointments when sharding by organization: payments
carry no organization, so they follow the barber), one foreign partition per shard. Each shard's
share (the rows ``satisfies_hash_partition`` gives its partition, where PostgreSQL routes them) is
streamed straight from the set-aside table with COPY (``bbperf.shard.transfer``): at SF 1 that is
~5 s where an INSERT through the foreign tables took ~40. On each shard, bbperf's schema is created
with the seven tables; the five small ones get every row (replicated, so a shard can join and
check its foreign keys locally), appointments and payments only their hash share, then the
indexes the coordinator's tables carry (an applied index set too), the foreign keys (added after
the rows, each checked by one query) and an ANALYZE. The shard has no ``payments → appointments``
key: with payments following the barber and appointments the organization the two may live on
different shards, as Citus requires co-location for such a key.

Database-level objects are postgres_fdw's (``bbperf.shard.fdw``): the extension when the database
lacks it, one foreign server per shard named ``bbperf_<schema>_shard_<k>`` and its user mappings. ``apply`` records them in ``bbperf_meta``; ``drop`` makes the set-aside tables
hold what the shards hold (so writes made while sharded survive; only the difference is written,
so the tables keep their physical order), removes exactly those objects and drops
bbperf's schema on every shard. The dataset's as_of and fingerprints are untouched by both.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg2
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from bbperf import meta
from bbperf.catalog import columns, foreign_keys, secondary_indexes
from bbperf.errors import ConfigError, DataError, QueryError, first_line
from bbperf.generate import require_dataset
from bbperf.schema import TABLE_ORDER, create_schema, drop_schema, require_schema, schema_status
from bbperf.shard import fdw
from bbperf.shard.transfer import stream_copy
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
def _prepare_shard(index: int, url: str, schema: str) -> list[str]:
    """Create bbperf's schema on a shard (refusing one that has it already: it may be another
    coordinator's shard) and leave it empty, without the foreign keys of appointments and payments:
    their rows load faster unchecked, and ``_index_shard`` adds the keys back afterwards, each
    checked by one query. Return the statements that add them back; the payments → appointments
    key is not among them (see the module's docstring)."""
    engine = shard_engine(url, schema)
    try:
        with _reported("apply"):
            if schema_status(engine).exists:
                raise DataError(
                    f"shard {index} ({mask_url(url)}) already has schema {schema!r}: it is a shard "
                    "of another coordinator, or a sharding that was not dropped; drop that first"
                )
            create_schema(engine)
            restore: list[str] = []
            with engine.begin() as conn:
                for fk in foreign_keys(conn, schema, SHARDED_TABLES):
                    table, name = qualified(schema, fk["table"]), quote(fk["name"])
                    conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
                    if (fk["table"], fk["references"]) != ("payments", "appointments"):
                        restore.append(
                            f"ALTER TABLE {table} ADD CONSTRAINT {name} {fk['definition']}"
                        )
            return restore
    finally:
        engine.dispose()


def _index_shard(
    url: str, schema: str, indexes: Sequence[tuple[str, str]], keys: Sequence[str]
) -> None:
    """Build on a shard, once its rows are in, the indexes the coordinator's plain tables carry and
    the foreign keys ``_prepare_shard`` set aside (``keys``), and ANALYZE its share: a shard is the
    same table design, only smaller. Without them a routed query
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
            for statement in keys:
                conn.execute(text(statement))
            for table in SHARDED_TABLES:
                conn.execute(text(f"ANALYZE {qualified(schema, table)}"))
    finally:
        engine.dispose()


def _replicate(coordinator: Engine, index: int, url: str, schema: str) -> None:
    """Copy every row of the small tables to shard ``index`` (COPY out, COPY in, in load order)."""
    source = coordinator.raw_connection()
    engine = shard_engine(url, schema)
    try:
        _no_timeout(source)
        target = _connect_shard(engine, index, url)
        try:
            for table in REPLICATED_TABLES:
                name = qualified(schema, table)
                stream_copy(
                    source,
                    f"COPY {name} TO STDOUT (FORMAT binary)",
                    target,
                    f"COPY {name} FROM STDIN (FORMAT binary)",
                )
            target.commit()
        finally:
            target.close()
    finally:
        source.rollback()
        source.close()
        engine.dispose()


def _connect_shard(engine: Engine, index: int, url: str) -> Any:
    """A DBAPI connection to shard ``index`` for bulk copying, its transaction without the pool's
    statement timeout (a share of SF 10 may take longer than 30 s); one line naming the shard when
    it cannot be reached."""
    try:
        connection = engine.raw_connection()
    except (DBAPIError, psycopg2.Error) as exc:
        raise QueryError(
            f"shard {index} ({mask_url(url)}) is unreachable: {mask_text(first_line(exc))}; "
            "`bbperf shard status` names the shards that run, `bbperf shard start` restarts "
            "bbperf's own"
        ) from None
    _no_timeout(connection)
    return connection


def _no_timeout(connection: Any) -> None:
    """No statement timeout for the DBAPI connection's transaction (SET LOCAL: a pooled connection
    goes back to its pool unchanged)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 0")


def _copy_share(source: Any, copy_out: str, index: int, url: str, schema: str, table: str) -> int:
    """Stream ``copy_out`` from the coordinator's DBAPI connection into ``table`` on shard
    ``index`` at ``url`` and commit there; the rows the shard took."""
    engine = shard_engine(url, schema)
    target = _connect_shard(engine, index, url)
    try:
        stream_copy(
            source, copy_out, target, f"COPY {qualified(schema, table)} FROM STDIN (FORMAT binary)"
        )
        with target.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {qualified(schema, table)}")
            (rows,) = cursor.fetchone()
        target.commit()
        return int(rows)
    finally:
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


def _shard_table(
    conn: Connection, schema: str, table: str, key: str, shard_urls: Sequence[str]
) -> int:
    """Set ``table`` aside and create its hash-partitioned replacement over one foreign table per
    shard; then stream each shard its share straight from the set-aside table with COPY (the rows
    ``satisfies_hash_partition`` gives that partition: where PostgreSQL would route them), not row
    by row through the foreign tables. Return the rows copied."""
    aside = set_aside_name(table)
    q = quote(schema)
    shards = len(shard_urls)
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
    parent = int(
        conn.execute(
            text("SELECT CAST(to_regclass(:t) AS oid)"), {"t": qualified(schema, table)}
        ).scalar_one()
    )
    source = conn.connection.dbapi_connection
    return sum(
        _copy_share(
            source,
            f"COPY (SELECT * FROM {q}.{quote(aside)} WHERE satisfies_hash_partition("
            f"{parent}, {shards}, {index}, {quote(key)})) TO STDOUT (FORMAT binary)",
            index,
            url,
            schema,
            table,
        )
        for index, url in enumerate(shard_urls)
    )


def apply(
    engine: Engine, shard_urls: Sequence[str], by: str = "barber", *, owner: str | None = None
) -> ShardChange:
    """Shard appointments and payments over ``shard_urls`` by ``by`` (barber or organization).

    The shards' schemas are made and the small tables copied first; the coordinator's change is one
    transaction, committed only once every shard holds its share, indexes and keys (each shard
    commits its share before). On a failure the shards' schemas are dropped again and nothing
    changes. DataError when no dataset is loaded, the tables are sharded or
    partitioned already, or a shard holds bbperf's schema already. ``owner`` (a notebook's name) is
    recorded so that ``undo_interrupted`` can tell a run of it that never got to ``drop`` from a
    sharding somebody wants.
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
    prepared: dict[str, list[str]] = {}
    try:
        for index, url in enumerate(shard_urls):
            prepared[url] = _prepare_shard(index, url, schema)
            with _reported("apply"):
                _replicate(engine, index, url, schema)
        with _reported("apply"), engine.begin() as conn:
            _lock(conn, schema)
            created_fdw = fdw.ensure_fdw(conn, schema)
            shards = fdw.create_servers(conn, schema, shard_urls)
            rows = {t: _shard_table(conn, schema, t, keys[t], shard_urls) for t in SHARDED_TABLES}
            # Before the coordinator commits: a shard that cannot take its indexes or keys undoes
            # the whole change. Each shard is its own server: they build at the same time.
            with ThreadPoolExecutor(len(prepared), thread_name_prefix="bbperf-shard") as pool:
                for built in [
                    pool.submit(_index_shard, url, schema, indexes, restore)
                    for url, restore in prepared.items()
                ]:
                    built.result()
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
                    **({"owner": owner} if owner else {}),
                },
            )
    except BaseException:
        for url in prepared:
            with contextlib.suppress(QueryError, DataError, DBAPIError):
                _drop_shard_schema(url, schema)
        raise
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
        rows = _unshard(conn, schema, urls)
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


def undo_interrupted(engine: Engine, owner: str) -> ShardChange | None:
    """``drop`` a sharding that ``apply(owner=owner)`` made and nothing dropped since (a run of
    ``owner`` was interrupted in between), so that the next run starts from plain tables again; its
    shards must run. None when the tables are not sharded, or were sharded by anyone else: that is
    left alone."""
    with engine.connect() as conn:
        record = recorded(conn, schema_of(engine))
    if record is None or record.get("owner") != owner:
        return None
    return drop(engine)


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


def incoming_name(table: str) -> str:
    return f"{table}_from_shards"


def _unshard(conn: Connection, schema: str, urls: Sequence[str]) -> dict[str, int]:
    """Make each set-aside table hold exactly the rows the shards hold now, then give it its name
    back; the rows per table.

    Each shard's share is streamed with COPY into a staging table of bbperf's (unlogged, dropped
    again in this transaction); then only the difference is written: rows changed while sharded
    are updated, new ones inserted, gone ones deleted (in the order the payments → appointments
    key allows). The set-aside tables keep their physical order, indexes and statistics, instead of
    being rewritten row by row through seven indexes and five foreign keys.
    """
    q = quote(schema)
    target = conn.connection.dbapi_connection
    rows: dict[str, int] = {}
    for table in SHARDED_TABLES:
        staging = qualified(schema, incoming_name(table))
        conn.execute(
            text(
                f"CREATE UNLOGGED TABLE {staging} "
                f"(LIKE {q}.{quote(set_aside_name(table))}) WITH (autovacuum_enabled = off)"
            )
        )
        for index, url in enumerate(urls):
            engine = shard_engine(url, schema)
            source = _connect_shard(engine, index, url)
            try:
                stream_copy(
                    source,
                    f"COPY {qualified(schema, table)} TO STDOUT (FORMAT binary)",
                    target,
                    f"COPY {staging} FROM STDIN (FORMAT binary)",
                )
            finally:
                source.rollback()
                source.close()
                engine.dispose()
        conn.execute(text(f"ANALYZE {staging}"))
        rows[table] = int(conn.execute(text(f"SELECT count(*) FROM {staging}")).scalar_one())
    appointments, payments = SHARDED_TABLES
    for table, step in (
        (appointments, "update"),
        (appointments, "insert"),
        (payments, "update"),
        (payments, "insert"),
        (payments, "delete"),
        (appointments, "delete"),
    ):
        conn.execute(text(_merge_sql(conn, schema, table, step)))
    for table in SHARDED_TABLES:
        aside = f"{q}.{quote(set_aside_name(table))}"
        conn.execute(text(f"DROP TABLE {qualified(schema, incoming_name(table))}"))
        conn.execute(text(f"DROP TABLE {q}.{quote(table)}"))
        conn.execute(text(f"ALTER TABLE {aside} RENAME TO {quote(table)}"))
    return rows


def _merge_sql(conn: Connection, schema: str, table: str, step: str) -> str:
    """One step of making the set-aside ``table`` equal its staging copy, matched on ``id``."""
    aside = qualified(schema, set_aside_name(table))
    staging = qualified(schema, incoming_name(table))
    if step == "update":
        names = [quote(c) for c in columns(conn, schema, set_aside_name(table)) if c != "id"]
        return (
            f"UPDATE {aside} AS a SET ({', '.join(names)}) = "
            f"ROW({', '.join(f's.{c}' for c in names)}) FROM {staging} AS s "
            "WHERE s.id = a.id AND ROW(a.*) IS DISTINCT FROM ROW(s.*)"
        )
    if step == "insert":
        return (
            f"INSERT INTO {aside} OVERRIDING SYSTEM VALUE SELECT * FROM {staging} AS s "
            f"WHERE NOT EXISTS (SELECT FROM {aside} AS a WHERE a.id = s.id)"
        )
    return (
        f"DELETE FROM {aside} AS a WHERE NOT EXISTS (SELECT FROM {staging} AS s WHERE s.id = a.id)"
    )


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
