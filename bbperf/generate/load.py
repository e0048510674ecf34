"""Generate a dataset and load it in one transaction: nothing half-loaded survives an interruption."""

from __future__ import annotations

import io
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from queue import Full, Queue
from typing import Any

import numpy as np
import psycopg2
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.asof import as_of_date
from bbperf.errors import ConfigError, DataError, QueryError
from bbperf.generate import binary as b
from bbperf.generate.bookings import (
    CLIENT_CHUNK_ROWS,
    ClientTally,
    block_count,
    bookings,
    clients,
    n_clients,
    week_count,
)
from bbperf.generate.cast import build_cast
from bbperf.generate.fakes import build_pools
from bbperf.generate.fingerprint import fingerprints
from bbperf.generate.profile import Profile, load_profile
from bbperf.schema import META_TABLE, TABLE_ORDER, create_schema, require_schema
from bbperf.target import query_error, schema_of

DATASET_KEY = "dataset"
COPY_BUFFER_BYTES = 1 << 20
Columns = dict[str, b.Fixed | b.Var]
# Random streams: one per purpose, and one per week of bookings, so any week is reproducible alone.
_CAST, _CLIENTS, _BOOKINGS = 1, 2, 3


@dataclass(frozen=True)
class DatasetInfo:
    """Provenance of a loaded dataset (what ``bbperf_meta`` holds under key ``dataset``)."""

    profile: str
    scale: float
    seed: int
    as_of: str
    fingerprints: dict[str, dict[str, Any]]
    bbperf_version: str
    server_version: str
    loaded_at: str
    load_seconds: float = 0.0
    copy_seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> dict[str, int]:
        return {t: int(fp["rows"]) for t, fp in self.fingerprints.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_as_of(as_of: str | date | datetime | None) -> date:
    """The dataset's anchor day (UTC); None means today. See ``bbperf.asof``."""
    return as_of_date(as_of)


MAX_SCALE = 1000.0


def check_scale(scale: Any) -> float:
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise ConfigError(f"scale {scale!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"scale must be a positive finite number, got {scale!r}")
    if value > MAX_SCALE:
        raise ConfigError(
            f"scale {value:g} is above the largest bbperf generates ({MAX_SCALE:g}, about "
            f"{MAX_SCALE:g} million appointments at the default profile)"
        )
    return value


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer | str):
        raise ConfigError(f"seed {seed!r} is not an integer")
    try:
        value = int(seed)
    except ValueError:
        raise ConfigError(f"seed {seed!r} is not an integer") from None
    if value < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    return value


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _chunks(
    profile: Profile, scale: float, seed: int, as_of: date
) -> Iterator[tuple[str, Columns, int, bool]]:
    """(table, columns, rows, last chunk of the table?) in load order; big tables come in many chunks."""
    as_of_us = int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp()) * 1_000_000
    pools = build_pools(seed)
    cast = build_cast(profile, scale, _rng(seed, _CAST), pools, as_of_us)
    for table in ("organizations", "users", "user_organizations", "services"):
        columns, n = cast.tables[table]
        yield table, columns, n, True
    tally = ClientTally.empty(n_clients(profile, cast))
    next_appointment, next_payment = 1, 1
    weeks, blocks = week_count(profile), block_count(cast)
    for week in range(weeks):
        for block in range(blocks):
            (appts, n_a), (pays, n_p) = bookings(
                profile,
                cast,
                week,
                block,
                _rng(seed, _BOOKINGS, week, block),
                as_of_us,
                as_of.weekday(),
                next_appointment,
                next_payment,
                tally,
                pools,
            )
            next_appointment += n_a
            next_payment += n_p
            last = week == weeks - 1 and block == blocks - 1
            yield "appointments", appts, n_a, last
            yield "payments", pays, n_p, last
    chunks = -(-n_clients(profile, cast) // CLIENT_CHUNK_ROWS)
    for i, (columns, n) in enumerate(
        clients(profile, cast, tally, _rng(seed, _CLIENTS), pools, as_of_us)
    ):
        yield "clients", columns, n, i == chunks - 1


def _payloads(
    profile: Profile, scale: float, seed: int, as_of: date
) -> Iterator[tuple[str, str, bytes, int, bool]]:
    """(table, COPY column list, payload, rows, last) encoded in a background thread, two chunks ahead,
    so generation on one core overlaps the server's COPY on the other."""
    done = object()
    queue: Queue[Any] = Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for table, columns, n, last in _chunks(profile, scale, seed, as_of):
                order, payload = b.encode(columns, n)
                while not stop.is_set():
                    try:
                        queue.put((table, ", ".join(order), payload, n, last), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            queue.put(exc)

    worker = threading.Thread(target=produce, name="bbperf-generate", daemon=True)
    worker.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _foreign_keys(conn: Connection, schema: str) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        text(
            "SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def "
            "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = :s AND c.contype = 'f' AND c.conrelid::regclass::text = ANY(:t) "
            "ORDER BY c.conname"
        ),
        {"s": schema, "t": [f"{schema}.{t}" for t in TABLE_ORDER] + list(TABLE_ORDER)},
    )
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def _secondary_indexes(conn: Connection, schema: str) -> list[tuple[str, str]]:
    """Valid indexes on the dataset's tables that back no constraint (e.g. an applied index set)."""
    rows = conn.execute(
        text(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname), "
            "pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE n.nspname = :s AND t.relname = ANY(:t) AND i.indisvalid "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) "
            "ORDER BY 1"
        ),
        {"s": schema, "t": list(TABLE_ORDER)},
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def _copy(conn: Connection, schema: str, table: str, columns: str, payload: bytes) -> None:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    # FREEZE: the table was truncated in this transaction, so rows can be written frozen (no hint-bit
    # rewrite on first read, no anti-wraparound vacuum later).
    sql = f'COPY "{schema}".{table} ({columns}) FROM STDIN (FORMAT binary, FREEZE)'
    cursor.copy_expert(sql, io.BytesIO(payload), size=COPY_BUFFER_BYTES)


def generate(
    engine: Engine,
    profile: str = "tiny",
    scale: float = 1.0,
    seed: int = 42,
    as_of: str | date | datetime | None = None,
    *,
    progress: bool = True,
) -> DatasetInfo:
    """Replace the dataset in bbperf's schema with ``profile`` at ``scale`` from ``seed``, anchored on ``as_of``.

    Everything happens in one transaction (TRUNCATE, COPY in chunks, foreign keys re-checked, sequences
    set, fingerprints and provenance written); ANALYZE runs after the commit. Raises ConfigError /
    ProfileError before touching the database, SchemaError when the schema is missing.
    """
    schema = schema_of(engine)
    prof = load_profile(profile)
    scale, seed, day = check_scale(scale), check_seed(seed), normalize_as_of(as_of)
    started = time.perf_counter()
    bars = _Bars(progress)
    first_error: list[BaseException] = []
    try:
        with engine.begin() as conn:
            try:
                info = _load(conn, schema, prof, scale, seed, day, bars, started)
            except (DBAPIError, psycopg2.Error) as exc:
                first_error.append(exc)  # the rollback that follows may fail with a vaguer error
                raise
    except (DBAPIError, psycopg2.Error) as exc:
        failed = first_error[0] if first_error else exc
        # psycopg2's own errors (raw COPY cursor) are not wrapped by SQLAlchemy: wrap for query_error
        cause = query_error(
            failed if isinstance(failed, DBAPIError) else DBAPIError(None, None, failed)
        )
        raise QueryError(f"load failed and was rolled back, nothing changed: {cause}") from None
    finally:
        bars.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in TABLE_ORDER:
            conn.execute(text(f'ANALYZE "{schema}".{table}'))
    return info


def _load(
    conn: Connection,
    schema: str,
    prof: Profile,
    scale: float,
    seed: int,
    day: date,
    bars: _Bars,
    started: float,
) -> DatasetInfo:
    """Everything inside the load transaction: truncate, COPY, constraints, sequences, provenance."""
    from bbperf import __version__

    require_schema(conn, schema)
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    tables = ", ".join(f'"{schema}".{t}' for t in TABLE_ORDER)
    conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
    fks = _foreign_keys(conn, schema)
    for tbl, name, _ in fks:
        conn.execute(text(f'ALTER TABLE {tbl} DROP CONSTRAINT "{name}"'))
    # Building an index once after the load beats maintaining it row by row during COPY (×3-4 at
    # SF 1 with the seed set); the drop is part of this transaction, so an interruption keeps them.
    indexes = _secondary_indexes(conn, schema)
    for name, _ in indexes:
        conn.execute(text(f"DROP INDEX {name}"))
    table_seconds: dict[str, float] = {}
    mark = time.perf_counter()
    for table, columns, payload, n, last in _payloads(prof, scale, seed, day):
        if n:
            _copy(conn, schema, table, columns, payload)
        bars.update(table, n, last)
        now = time.perf_counter()
        # waiting for the chunk (generation not hidden behind the previous COPY) plus its COPY
        table_seconds[table] = table_seconds.get(table, 0.0) + now - mark
        mark = now
    for tbl, name, definition in fks:
        conn.execute(text(f'ALTER TABLE {tbl} ADD CONSTRAINT "{name}" {definition}'))
    for _, definition in indexes:
        conn.execute(text(definition))
    for table in TABLE_ORDER:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('\"{schema}\".{table}', 'id'), "
                f'coalesce(max(id), 0) + 1, false) FROM "{schema}".{table}'
            )
        )
    info = DatasetInfo(
        profile=prof.name,
        scale=scale,
        seed=seed,
        as_of=day.isoformat(),
        fingerprints=fingerprints(conn, schema),
        bbperf_version=__version__,
        server_version=str(conn.execute(text("SHOW server_version")).scalar_one()),
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        load_seconds=round(time.perf_counter() - started, 3),
        copy_seconds={t: round(v, 3) for t, v in table_seconds.items()},
        versions=_library_versions(),
    )
    conn.execute(
        text(
            f'INSERT INTO "{schema}".{META_TABLE} (key, value) VALUES (:k, CAST(:v AS jsonb)) '
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
        ),
        {"k": DATASET_KEY, "v": json.dumps(info.to_dict())},
    )
    return info


def _library_versions() -> dict[str, str]:
    import faker

    return {"numpy": np.__version__, "faker": faker.VERSION}


class _Bars:
    """One tqdm bar per table, created when the table's first chunk arrives."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def update(self, table: str, n: int, last: bool) -> None:
        if not self.enabled:
            return
        if table not in self.bars:
            from tqdm.auto import tqdm

            self.bars[table] = tqdm(desc=f"{table:>18}", unit=" rows", unit_scale=True, leave=True)
        self.bars[table].update(n)
        if last:
            self.bars.pop(table).close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def dataset_info(engine: Engine) -> dict[str, Any] | None:
    """The provenance of the loaded dataset, or None when there is none (or no schema)."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        if (
            conn.execute(text("SELECT to_regclass(:t)"), {"t": f'"{schema}".{META_TABLE}'}).scalar()
            is None
        ):
            return None
        value = conn.execute(
            text(f'SELECT value FROM "{schema}".{META_TABLE} WHERE key = :k'), {"k": DATASET_KEY}
        ).scalar()
    return dict(value) if value else None


def ensure_dataset(
    engine: Engine,
    profile: str,
    scale: float,
    seed: int,
    as_of: str | date | datetime | None = None,
    *,
    progress: bool = False,
) -> DatasetInfo:
    """The dataset for (profile, scale, seed, as_of): reused when provenance and row counts match,
    generated otherwise. Creates bbperf's schema when it is missing."""
    schema = schema_of(engine)
    scale, seed, day = check_scale(scale), check_seed(seed), normalize_as_of(as_of)
    load_profile(profile)
    current = dataset_info(engine)
    wanted = {"profile": profile, "scale": scale, "seed": seed, "as_of": day.isoformat()}
    if (
        current
        and all(current.get(k) == v for k, v in wanted.items())
        and _counts_match(engine, schema, current)
    ):
        return DatasetInfo(
            **{k: current[k] for k in DatasetInfo.__dataclass_fields__ if k in current}
        )
    if current is None:
        create_schema(engine)
    return generate(engine, profile, scale, seed, day, progress=progress)


def _counts_match(engine: Engine, schema: str, info: dict[str, Any]) -> bool:
    with engine.connect() as conn:
        for table, fp in info.get("fingerprints", {}).items():
            n = conn.execute(text(f'SELECT count(*) FROM "{schema}".{table}')).scalar_one()
            if n != fp["rows"]:
                return False
    return True


def require_dataset(engine: Engine) -> dict[str, Any]:
    """The loaded dataset's provenance; DataError when nothing was generated."""
    info = dataset_info(engine)
    if info is None:
        raise DataError(
            f"no dataset in schema {schema_of(engine)!r}: run `bbperf generate --profile tiny`"
        )
    return info
