"""Generate a dataset and load it in one transaction: nothing half-loaded survives an interruption.

Phases (each timed, stored with the provenance): ``prepare`` (truncate, drop foreign keys, the big
tables' primary keys and secondary indexes), ``copy`` and ``waiting`` (one binary COPY stream, and the
time it waited for chunks generated, encoded and fingerprinted ahead of it), ``indexes`` (rebuild
keys and indexes), ``constraints``
(foreign keys re-added NOT VALID: no scan), ``sequences``, ``provenance``; then after the commit
``validate+analyze``: per table, VALIDATE CONSTRAINT (one join each) and ANALYZE, tables in
parallel on ``server_connections(jobs)`` connections (a table's own steps conflict, different
tables' do not). ``generate(..., resumable=True)`` loads through staging tables instead
(``bbperf.generate.staging``, ``bbperf.generate.resume``).
"""

from __future__ import annotations

import io
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path

import psycopg2
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.catalog import secondary_indexes
from bbperf.errors import ConfigError, DataError, QueryError, first_line
from bbperf.generate.dataset import (
    DatasetInfo,
    DatasetSpec,
    check_jobs,
    counts_match,
    dataset_info,
    dataset_spec,
)
from bbperf.generate.profile import load_profile
from bbperf.generate.progress import Progress, estimated_rows
from bbperf.generate.resume import committed_chunks, committed_rows, load_resumable
from bbperf.generate.steps import (
    BULK_TABLES,
    Phases,
    foreign_keys,
    loaded_info,
    primary_keys_to_rebuild,
    server_connections,
    store_info,
)
from bbperf.generate.stream import GenerationPlan
from bbperf.generate.workers import chunks
from bbperf.interrupt import wait_callback
from bbperf.loadguards import blockers
from bbperf.ownership import owned_data_directory
from bbperf.schema import TABLE_ORDER, create_schema, require_schema
from bbperf.sqlnames import qualified, quote
from bbperf.target import query_error, schema_of

COPY_BUFFER_BYTES = 1 << 20
# Sorts for index builds and the foreign-key checks' joins: enough to stay in memory at SF 10.
LOAD_MEMORY = "256MB"
# What a loaded row takes on the server's volume, measured on a real load of profile default at
# SF 0.1 (192,482 rows, --jobs 2, after VACUUM/ANALYZE): tables with keys and indexes grew 162 B/row
# (145 resumable) and the load wrote 163 B/row of WAL (126 resumable). Rounded up.
TABLE_BYTES_PER_ROW = 170
WAL_BYTES_PER_ROW = 170
# Left free after the estimate: PostgreSQL PANICs when a WAL write finds the disk full, and its crash
# recovery writes WAL and a checkpoint before the server accepts connections again.
FREE_MARGIN_BYTES = 64 << 20
# After a resumable load (rows committed chunk by chunk, not COPYed with FREEZE): VACUUM (FREEZE,
# ANALYZE) rather than ANALYZE; see docs/scale.md for the measurement behind the choice.
FREEZE_AFTER_RESUMABLE = True


def generate(
    engine: Engine,
    profile: str = "tiny",
    scale: float = 1.0,
    seed: int = 42,
    as_of: str | date | datetime | None = None,
    *,
    jobs: int = 1,
    progress: bool = True,
    scratch_dir: Path | None = None,
    resumable: bool = False,
) -> DatasetInfo:
    """Replace the dataset in the engine's schema with ``profile`` at ``scale`` from ``seed``, anchored
    on ``as_of`` (default today, UTC).

    ``jobs`` worker processes generate, encode and fingerprint chunks ahead of the one COPY stream
    (1: a background thread); the rows, their order and the fingerprints are the same for any
    ``jobs``. ``scratch_dir`` holds the client tally's temporary files (default: the system's
    temporary directory). Everything happens in one transaction; VACUUM (ANALYZE) runs after the commit.
    Raises ConfigError / ProfileError before touching the database, SchemaError when the schema is
    missing, QueryError (after rolling back) when the server fails.

    ``resumable``: chunks go to staging tables a transaction each (``jobs`` workers COPY on their own
    connections), then one short transaction swaps them in (``bbperf.generate.staging``); rerunning
    after a dropped connection sends only the chunks not yet committed. SchemaError, before any
    work, when the swap would lose objects on the tables that bbperf did not create.

    On a server bbperf owns, ConfigError before any work when the load would not fit on the data
    directory's volume (``check_free_space``).
    """
    return generate_spec(
        engine,
        dataset_spec(profile, scale, seed, as_of),
        jobs=jobs,
        progress=progress,
        scratch_dir=scratch_dir,
        resumable=resumable,
    )


def generate_spec(
    engine: Engine,
    spec: DatasetSpec,
    *,
    jobs: int = 1,
    progress: bool = True,
    scratch_dir: Path | None = None,
    resumable: bool = False,
) -> DatasetInfo:
    """``generate`` for a dataset already checked where it was asked for (``dataset_spec``)."""
    schema = schema_of(engine)
    prof = load_profile(spec.profile)
    scale, seed, day = spec.scale, spec.seed, spec.as_of
    jobs = check_jobs(jobs)
    check_no_experiments(engine)
    data_directory = owned_data_directory(engine)
    home = data_directory.parent if data_directory is not None else None
    plan = GenerationPlan(prof, scale, seed, day, scratch_dir, home=home)
    if data_directory is not None:
        check_free_space(engine, plan, data_directory, resumable=resumable)
    started = time.perf_counter()
    phases = Phases()
    bar = Progress(progress, estimated_rows(prof, scale))
    first_error: list[BaseException] = []
    if resumable:
        try:
            info, fks = _resumable(engine, plan, jobs, bar, phases)
        finally:
            bar.close()
        with phases("validate+analyze"):
            validate_and_analyze(engine, fks, jobs, freeze=FREEZE_AFTER_RESUMABLE)
        return _finish(engine, schema, info, phases, started)
    try:
        with engine.begin() as conn:
            try:
                info, fks = _load(conn, schema, plan, jobs, bar, phases)
            except (DBAPIError, psycopg2.Error) as exc:
                first_error.append(exc)  # the rollback that follows may fail with a vaguer error
                raise
            committing = time.perf_counter()
        phases.seconds["commit"] = time.perf_counter() - committing
    except (DBAPIError, psycopg2.Error) as exc:
        failed = first_error[0] if first_error else exc
        # psycopg2's own errors (raw COPY cursor) are not wrapped by SQLAlchemy: wrap for query_error
        cause = query_error(
            failed if isinstance(failed, DBAPIError) else DBAPIError(None, None, failed)
        )
        raise QueryError(f"load failed and was rolled back, nothing changed: {cause}") from None
    finally:
        bar.close()
    with phases("validate+analyze"):
        validate_and_analyze(engine, fks, jobs)
    return _finish(engine, schema, info, phases, started)


def check_no_experiments(engine: Engine) -> None:
    """Refuse to replace the dataset while an experiment built on it is in place.

    A rollup, a materialized view, cache invalidation triggers or partitioned tables were built
    from the old rows: a new load under them leaves figures from both datasets (the rollup keeps
    the old aggregates, the view the old rows). Refusing, rather than rebuilding them, keeps each
    experiment's own choices (trigger mode, granularity, a running listener) with the user, and
    the message names the command that removes each one. What blocks is what the features
    registered with ``bbperf.loadguards`` find (``bbperf.leftovers`` registers when imported).
    DataError in one line; no schema or nothing in place passes.
    """
    if dataset_info(engine) is None:
        return
    blocking = blockers(engine)
    if blocking:
        raise DataError(
            f"refusing to replace the dataset in schema {schema_of(engine)!r} while experiments "
            f"built on it are in place: {'; '.join(blocking)}; remove them first"
        )


def check_free_space(
    engine: Engine, plan: GenerationPlan, data_directory: Path, *, resumable: bool = False
) -> None:
    """ConfigError (one line) when loading ``plan`` would leave less than FREE_MARGIN_BYTES free on
    the volume of ``data_directory``: rows × TABLE_BYTES_PER_ROW, plus rows × WAL_BYTES_PER_ROW up
    to ``max_wal_size`` (checkpoints recycle WAL beyond it). The old dataset stays until the new
    one commits, so what it occupies counts as used; a resumed load needs only its rows not yet
    committed."""
    rows = estimated_rows(plan.profile, plan.scale)
    if resumable:
        rows = max(0, rows - committed_rows(engine, plan))
    with engine.connect() as conn:
        max_wal_bytes = int(
            conn.execute(text("SELECT pg_size_bytes(current_setting('max_wal_size'))")).scalar_one()
        )
    needed = rows * TABLE_BYTES_PER_ROW + min(rows * WAL_BYTES_PER_ROW, max_wal_bytes)
    free = shutil.disk_usage(data_directory).free
    if free - needed < FREE_MARGIN_BYTES:
        raise ConfigError(
            f"the load (profile {plan.profile.name}, scale {plan.scale:g}) needs about "
            f"{_mb(needed)} on the server's volume but {data_directory} has {_mb(free)} free and "
            f"{_mb(FREE_MARGIN_BYTES)} must stay free: free space there, or lower --scale"
        )


def _mb(size_bytes: float) -> str:
    return f"{size_bytes / (1 << 20):,.0f} MB"


def _finish(
    engine: Engine, schema: str, info: DatasetInfo, phases: Phases, started: float
) -> DatasetInfo:
    done = DatasetInfo.from_dict(
        {
            **info.to_dict(),
            "phases": phases.rounded(),
            "load_seconds": round(time.perf_counter() - started, 3),
        }
    )
    store_info(engine, schema, done)
    return done


def _resumable(
    engine: Engine, plan: GenerationPlan, jobs: int, bar: Progress, phases: Phases
) -> tuple[DatasetInfo, list[tuple[str, str, str]]]:
    """``load_resumable``, its failures turned into one line that says what survives."""
    try:
        return load_resumable(engine, plan, jobs, bar, phases)
    except (DBAPIError, psycopg2.Error, QueryError) as exc:
        cause = query_error(exc) if isinstance(exc, DBAPIError) else first_line(exc)
        try:
            # libpq waits in C, so the engine's connect_timeout bounds it: a server that PANICked on
            # a full disk may not answer a new connection.
            with wait_callback(None):
                kept = f"{committed_chunks(engine, plan):,} chunks are committed"
        except (DBAPIError, psycopg2.Error):
            kept = "the committed chunks are kept"
        then = "rerun the same command to resume"
        # A WAL write on a full disk PANICs the server: its clients only see the connection drop.
        full = plan.home is not None and shutil.disk_usage(plan.home).free < FREE_MARGIN_BYTES
        if full or "No space left on device" in str(cause):
            then = f"free space on the server's volume, run `bbperf db start`, then {then}"
        raise QueryError(
            f"resumable load interrupted ({cause}); the previous dataset is unchanged and {kept}: "
            f"{then}"
        ) from None


def _load(
    conn: Connection, schema: str, plan: GenerationPlan, jobs: int, bar: Progress, phases: Phases
) -> tuple[DatasetInfo, list[tuple[str, str, str]]]:
    """Everything inside the load transaction: truncate, COPY, constraints, sequences, provenance."""

    with phases("prepare"):
        require_schema(conn, schema)
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(text(f"SET LOCAL maintenance_work_mem = '{LOAD_MEMORY}'"))
        conn.execute(text(f"SET LOCAL work_mem = '{LOAD_MEMORY}'"))
        tables = ", ".join(qualified(schema, t) for t in TABLE_ORDER)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        fks = foreign_keys(conn, schema)
        for tbl, name, _ in fks:
            conn.execute(text(f"ALTER TABLE {tbl} DROP CONSTRAINT {quote(name)}"))
        # The big tables' primary keys too: one sort after the COPY beats a b-tree insert per row.
        keys = primary_keys_to_rebuild(conn, schema)
        for tbl, name, _ in keys:
            conn.execute(text(f"ALTER TABLE {tbl} DROP CONSTRAINT {quote(name)}"))
        # Building an index once after the load beats maintaining it row by row during COPY (x3-4
        # at SF 1 with the seed set); the drop is part of this transaction, so an interruption
        # keeps them.
        indexes = secondary_indexes(conn, schema, TABLE_ORDER)
        for name, _ in indexes:
            conn.execute(text(f"DROP INDEX {qualified(schema, name)}"))
    copy_seconds: dict[str, float] = {}
    client: dict[str, float] = {}
    sums: dict[str, list[int]] = {t: [0, 0] for t in TABLE_ORDER}
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    stats: dict[str, float] = {}
    with phases("stream"), wait_callback(None):  # psycopg2 refuses COPY under one
        for chunk in chunks(plan, jobs, stats):
            copied = time.perf_counter()
            if chunk.rows:
                # FREEZE: the table was truncated in this transaction, so rows are written frozen
                # (no hint-bit rewrite on first read, no anti-wraparound vacuum later).
                cursor.copy_expert(
                    f"COPY {qualified(schema, chunk.table)} ({chunk.columns}) "
                    "FROM STDIN (FORMAT binary, FREEZE)",
                    io.BytesIO(chunk.payload),
                    size=COPY_BUFFER_BYTES,
                )
            copy_seconds[chunk.table] = (
                copy_seconds.get(chunk.table, 0.0) + time.perf_counter() - copied
            )
            sums[chunk.table][0] += chunk.rows
            sums[chunk.table][1] += chunk.checksum
            for activity, seconds in chunk.seconds.items():
                client[activity] = client.get(activity, 0.0) + seconds
            bar.update(chunk.table, chunk.rows)
    phases.seconds["copy"] = sum(copy_seconds.values())
    phases.seconds["stream"] -= phases.seconds["copy"]  # what is left: waiting for chunks
    phases.seconds["waiting"] = phases.seconds.pop("stream")
    with phases("indexes"):
        for tbl, name, definition in keys:
            conn.execute(text(f"ALTER TABLE {tbl} ADD CONSTRAINT {quote(name)} {definition}"))
        for _, definition in indexes:
            conn.execute(text(definition))
    with phases("constraints"):
        for tbl, name, definition in fks:
            conn.execute(
                text(f"ALTER TABLE {tbl} ADD CONSTRAINT {quote(name)} {definition} NOT VALID")
            )
    with phases("sequences"):
        for table in TABLE_ORDER:
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence(:rel, 'id'), :next, false)"),
                {"rel": qualified(schema, table), "next": sums[table][0] + 1},
            )
    with phases("provenance"):
        fingerprints = {t: {"rows": sums[t][0], "checksum": str(sums[t][1])} for t in TABLE_ORDER}
        info = loaded_info(conn, plan, fingerprints, copy_seconds, client, jobs, stats)
        store_info(conn, schema, info)
    return info, fks


def validate_and_analyze(
    engine: Engine, fks: list[tuple[str, str, str]], jobs: int = 1, *, freeze: bool = False
) -> None:
    """VALIDATE every foreign key in ``fks`` and VACUUM (ANALYZE) every table of the dataset
    (``freeze``: VACUUM (FREEZE, ANALYZE), for rows not COPYed with FREEZE): each table's steps on
    one connection, up to ``server_connections(jobs)`` tables at once, the biggest first.

    VACUUM, not ANALYZE alone, even after ``COPY FREEZE``, whose pages are already frozen: each
    COPY of a chunk leaves a few pages the server pre-extended but never filled (SF 1: 1,380 of
    appointments' 14,747, 414 of clients' 2,472). VACUUM visits only the pages not yet all-visible
    (0.02 s for appointments at SF 1) and puts those empty ones in the free space map. Without it
    the load's inserts fire autovacuum a minute later, in the middle of whatever runs then, and
    autovacuum's estimate from those pages lowers ``reltuples`` under ANALYZE's exact count
    (appointments 1,003,586 → 916,582, clients 128,000 → 106,850): plans would change under a
    measurement. After VACUUM (ANALYZE) the count is ANALYZE's and autovacuum has nothing to do."""
    schema = schema_of(engine)
    biggest_first = ("appointments", "payments", "clients", "services", "users")
    tables = [*biggest_first, "user_organizations", "organizations"]

    def run(table: str) -> None:
        relation = qualified(schema, table)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SET statement_timeout = 0"))
            conn.execute(text(f"SET maintenance_work_mem = '{LOAD_MEMORY}'"))
            for tbl, name, definition in fks:
                if tbl in (relation, table, f"{schema}.{table}"):
                    # A big parent's key is checked by a merge join (its fresh primary key in
                    # order, the children sorted), not by a hash of millions of keys: at SF 10
                    # payments -> appointments 11.0 -> 3.5 s, appointments -> clients 6.2 -> 2.7 s;
                    # a small parent's hash stays faster (appointments -> users 1.4 s, 2.3 merged).
                    merged = _references(definition) in BULK_TABLES
                    if merged:
                        conn.execute(text("SET enable_hashjoin = off"))
                    conn.execute(text(f"ALTER TABLE {relation} VALIDATE CONSTRAINT {quote(name)}"))
                    if merged:
                        conn.execute(text("RESET enable_hashjoin"))
            conn.execute(text(f"VACUUM ({'FREEZE, ' if freeze else ''}ANALYZE) {relation}"))

    try:
        with ThreadPoolExecutor(max_workers=server_connections(jobs)) as pool:
            list(pool.map(run, tables))
    except DBAPIError as exc:
        raise QueryError(
            f"the rows are loaded but a constraint check or ANALYZE failed: {query_error(exc)}; "
            "run `bbperf generate` again"
        ) from None


_REFERENCES = re.compile(r'REFERENCES\s+(?:(?:"(?:[^"]|"")+"|\w+)\.)?("(?:[^"]|"")+"|\w+)\s*\(')


def _references(definition: str) -> str:
    """The table a foreign key's definition (``pg_get_constraintdef``) references, unqualified."""
    found = _REFERENCES.search(definition)
    if found is None:
        return ""
    name = found.group(1)
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def ensure_dataset(
    engine: Engine,
    profile: str,
    scale: float,
    seed: int,
    as_of: str | date | datetime | None = None,
    *,
    jobs: int = 1,
    progress: bool = False,
    scratch_dir: Path | None = None,
) -> DatasetInfo:
    """The dataset for (profile, scale, seed, as_of): reused when provenance and row counts match,
    generated otherwise. Creates bbperf's schema when it is missing."""
    schema = schema_of(engine)
    spec = dataset_spec(profile, scale, seed, as_of)
    current = dataset_info(engine)
    if (
        current
        and all(current.get(k) == v for k, v in spec.provenance().items())
        and counts_match(engine, schema, current)
    ):
        return DatasetInfo.from_dict(current)
    if current is None:
        create_schema(engine)
    return generate_spec(engine, spec, jobs=jobs, progress=progress, scratch_dir=scratch_dir)
