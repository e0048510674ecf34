"""Resumable loads: every chunk COPYed into a staging table in its own transaction (which also records
it in a progress table), keys and indexes built on the staging tables in parallel, then one short
transaction swaps staging for the real tables. Readers see the previous dataset until the swap commits.

Resume is **per chunk** (≤ 16,384 rows): a rerun of the same command (same load key: profile, scale,
seed, as-of, bbperf version) generates every chunk again for its ids and the client tally but encodes
and sends only those without a progress row. bbperf creates and drops only ``_load_*`` tables; it
refuses up front when the swap would lose anything on the real tables it did not create.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import psycopg2
from sqlalchemy import Connection, Engine, text

from bbperf import __version__
from bbperf.errors import SchemaError
from bbperf.generate.steps import server_connections
from bbperf.generate.stream import PAYLOAD_ROWS, Encoded, GenerationPlan, Sink
from bbperf.schema import TABLE_ORDER
from bbperf.sqlnames import qualified, quote

STAGING_PREFIX = "_load_"
PROGRESS_TABLE = "_load_progress"
COPY_BUFFER_BYTES = 1 << 20
LOAD_MEMORY = "256MB"
# The swap waits at most this long for readers of the old tables to finish, then fails (resumable).
SWAP_LOCK_TIMEOUT = "60s"
CONNECT_TIMEOUT_S = 10  # a chunk writer's connection to a server that does not answer
BIGGEST_FIRST = (
    "appointments",
    "payments",
    "clients",
    "services",
    "users",
    "user_organizations",
    "organizations",
)


def staging(table: str) -> str:
    return f"{STAGING_PREFIX}{table}"


def temporary_name(name: str) -> str:
    """A staging table's name for an index or constraint that becomes ``name`` at the swap."""
    return f"{STAGING_PREFIX}{name}"[:63]


def load_key(plan: GenerationPlan) -> str:
    """What identifies a load's chunks: profile (its content), scale, seed, as-of, generator version."""
    wanted = {
        "profile": repr(plan.profile),
        "scale": plan.scale,
        "seed": plan.seed,
        "as_of": plan.as_of.isoformat(),
        "bbperf": __version__,
        "payload_rows": PAYLOAD_ROWS,
    }
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:32]


def dsn_of(engine: Engine) -> str:
    """A libpq URL for the engine's database (with its password: for connections, not for output)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class ChunkWriter:
    """One connection that commits chunks into the staging tables, one transaction per chunk."""

    def __init__(self, sink: Sink, application_name: str) -> None:
        self.sink = sink
        # Blocking libpq (no wait callback in a worker, none during the stream): the timeout holds.
        self.conn = psycopg2.connect(
            sink.dsn, application_name=application_name, connect_timeout=CONNECT_TIMEOUT_S
        )
        with self.conn.cursor() as cur:
            cur.execute("SET statement_timeout = 0")
        self.conn.commit()
        self.copy_seconds: dict[str, float] = {}

    def write(self, chunk: Encoded) -> Encoded:
        """COPY ``chunk`` and record it in one transaction; the chunk comes back without its payload."""
        if chunk.skipped:
            return chunk
        started = time.perf_counter()
        schema = self.sink.schema
        with self.conn.cursor() as cur:
            if chunk.rows:
                cur.copy_expert(
                    f"COPY {qualified(schema, staging(chunk.table))} ({chunk.columns}) "
                    "FROM STDIN (FORMAT binary)",
                    io.BytesIO(chunk.payload),
                    size=COPY_BUFFER_BYTES,
                )
            cur.execute(
                f"INSERT INTO {qualified(schema, PROGRESS_TABLE)} "
                "(load_key, table_name, chunk, rows, checksum) VALUES (%s, %s, %s, %s, %s)",
                (self.sink.key, chunk.table, chunk.chunk, chunk.rows, chunk.checksum),
            )
        self.conn.commit()
        spent = time.perf_counter() - started
        self.copy_seconds[chunk.table] = self.copy_seconds.get(chunk.table, 0.0) + spent
        return replace(chunk, payload=b"", committed=True)

    def write_all(self, chunks: list[Encoded]) -> list[Encoded]:
        return [self.write(c) for c in chunks]

    def close(self) -> None:
        with contextlib.suppress(psycopg2.Error):
            self.conn.close()


_BLOCKERS = """
WITH t AS (
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :s AND c.relname = ANY(:t) AND c.relkind IN ('r', 'p')
),
seqs AS (  -- the tables' identity sequences: dropped with them
    SELECT d.objid AS oid FROM pg_depend d JOIN t ON d.refobjid = t.oid
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i') AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S'
),
ours AS (
    SELECT 'pg_class'::regclass AS classid, oid FROM t
    UNION ALL SELECT 'pg_class'::regclass, oid FROM seqs
    UNION ALL SELECT 'pg_type'::regclass, reltype FROM pg_class WHERE oid IN (SELECT oid FROM t)
)
SELECT DISTINCT CASE
    WHEN d.classid = 'pg_rewrite'::regclass AND r.rulename = '_RETURN'
        THEN 'view ' || r.ev_class::regclass::text
    ELSE o.type || ' ' || o.identity END AS what
FROM pg_depend d
JOIN ours ON d.refclassid = ours.classid AND d.refobjid = ours.oid
CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) o
LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
WHERE d.deptype IN ('n', 'a')
  -- the tables' own parts, rebuilt on the staging tables: indexes, identity sequences, defaults,
  -- constraints (the dataset's foreign keys among them) and the foreign keys' internal triggers
  AND NOT (d.classid = 'pg_class'::regclass AND (d.objid IN (SELECT oid FROM seqs)
        OR d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM t))))
  AND NOT (d.classid = 'pg_attrdef'::regclass
        AND (SELECT adrelid FROM pg_attrdef WHERE oid = d.objid) IN (SELECT oid FROM t))
  AND NOT (d.classid = 'pg_constraint'::regclass
        AND (SELECT conrelid FROM pg_constraint WHERE oid = d.objid) IN (SELECT oid FROM t))
  AND NOT (d.classid = 'pg_trigger'::regclass
        AND (SELECT tgisinternal FROM pg_trigger WHERE oid = d.objid))
UNION
SELECT 'grants on ' || c.oid::regclass::text FROM pg_class c
WHERE (c.oid IN (SELECT oid FROM t) OR c.oid IN (SELECT oid FROM seqs)) AND c.relacl IS NOT NULL
UNION
SELECT 'partitioning of ' || c.oid::regclass::text FROM pg_class c
WHERE c.oid IN (SELECT oid FROM t) AND (c.relkind = 'p' OR c.relispartition)
UNION
SELECT 'inheritance of ' || i.inhrelid::regclass::text FROM pg_inherits i
WHERE i.inhrelid IN (SELECT oid FROM t)
UNION
SELECT 'row level security on ' || c.oid::regclass::text FROM pg_class c
WHERE c.oid IN (SELECT oid FROM t) AND (c.relrowsecurity OR c.relforcerowsecurity)
UNION
SELECT 'storage parameters on ' || c.oid::regclass::text FROM pg_class c
WHERE c.oid IN (SELECT oid FROM t) AND c.reloptions IS NOT NULL
ORDER BY 1
"""


def swap_blockers(conn: Connection, schema: str) -> list[str]:
    """What the swap would lose on the dataset's tables that bbperf did not create: views, triggers,
    policies, rules, statistics, publications, grants, partitioning, foreign keys from other tables…
    (the dependency walk of ``bbperf.catalog.outside_dependents``, aimed at the seven tables)."""
    rows = conn.execute(text(_BLOCKERS), {"s": schema, "t": list(TABLE_ORDER)})
    return [str(r[0]) for r in rows]


def refuse_blockers(conn: Connection, schema: str) -> None:
    blockers = swap_blockers(conn, schema)
    if blockers:
        listed = "; ".join(blockers[:5]) + ("; …" if len(blockers) > 5 else "")
        raise SchemaError(
            f"refusing a resumable load: its swap replaces the dataset's tables, and {len(blockers)} "
            f"object(s) bbperf did not create would be lost with them ({listed}); "
            "load without --resumable, or drop them first"
        )


def prepare(conn: Connection, schema: str, key: str) -> frozenset[tuple[str, int]]:
    """Staging tables and the progress table for ``key``: kept from an interrupted load with the
    same key, started over otherwise. Returns the (table, chunk) pairs already committed."""
    q = quote(schema)
    conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {q}.{PROGRESS_TABLE} (load_key text NOT NULL, "
            "table_name text NOT NULL, chunk bigint NOT NULL, rows bigint NOT NULL, "
            "checksum numeric NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (load_key, table_name, chunk))"
        )
    )
    keys = set(conn.execute(text(f"SELECT DISTINCT load_key FROM {q}.{PROGRESS_TABLE}")).scalars())
    present = set(
        conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relname = ANY(:t)"
            ),
            {"s": schema, "t": [staging(t) for t in TABLE_ORDER]},
        ).scalars()
    )
    if keys != {key} or len(present) != len(TABLE_ORDER):
        for name in sorted(present):
            conn.execute(text(f"DROP TABLE {q}.{name}"))
        conn.execute(text(f"DELETE FROM {q}.{PROGRESS_TABLE}"))
        for table in TABLE_ORDER:
            conn.execute(
                text(
                    f"CREATE TABLE {q}.{staging(table)} (LIKE {q}.{table} INCLUDING DEFAULTS "
                    "INCLUDING CONSTRAINTS INCLUDING IDENTITY)"
                )
            )
        return frozenset()
    rows = conn.execute(
        text(f"SELECT table_name, chunk FROM {q}.{PROGRESS_TABLE} WHERE load_key = :k"),
        {"k": key},
    )
    return frozenset((str(t), int(c)) for t, c in rows)


def recorded(conn: Connection, schema: str, key: str) -> dict[str, dict[str, Any]]:
    """Rows and checksum per table, summed over the recorded chunks: the dataset's fingerprints."""
    rows = conn.execute(
        text(
            "SELECT table_name, sum(rows)::bigint, sum(checksum)::text "
            f"FROM {qualified(schema, PROGRESS_TABLE)} WHERE load_key = :k GROUP BY table_name"
        ),
        {"k": key},
    ).all()
    sums = {str(t): (int(n), str(c)) for t, n, c in rows}
    return {
        t: {"rows": sums.get(t, (0, "0"))[0], "checksum": sums.get(t, (0, "0"))[1]}
        for t in TABLE_ORDER
    }


def chunk_count(conn: Connection, schema: str, key: str) -> int:
    return int(
        conn.execute(
            text(f"SELECT count(*) FROM {qualified(schema, PROGRESS_TABLE)} WHERE load_key = :k"),
            {"k": key},
        ).scalar_one()
    )


def keys_and_indexes(conn: Connection, schema: str) -> dict[str, list[tuple[str, str, str]]]:
    """Per table: (kind, name, definition) of its primary, unique and exclusion constraints
    (kind "constraint") and of the indexes that back none (kind "index": an applied index set)."""
    rows = conn.execute(
        text(
            "SELECT t.relname, 'constraint', c.conname, pg_get_constraintdef(c.oid) "
            "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE n.nspname = :s AND t.relname = ANY(:t) AND c.contype IN ('p', 'u', 'x') "
            "UNION ALL "
            "SELECT t.relname, 'index', ic.relname, "
            "CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || "
            "substr(pg_get_indexdef(i.indexrelid), strpos(pg_get_indexdef(i.indexrelid), ' USING ')) "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE n.nspname = :s AND t.relname = ANY(:t) AND i.indisvalid "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) "
            "ORDER BY 1, 2 DESC, 3"
        ),
        {"s": schema, "t": list(TABLE_ORDER)},
    )
    found: dict[str, list[tuple[str, str, str]]] = {t: [] for t in TABLE_ORDER}
    for table, kind, name, definition in rows:
        found[str(table)].append((str(kind), str(name), str(definition)))
    return found


def build_keys(
    engine: Engine, schema: str, wanted: dict[str, list[tuple[str, str, str]]], jobs: int
) -> None:
    """The real tables' keys and indexes, built on the staging tables under temporary names: one
    connection per table, ``server_connections(jobs)`` tables at once, biggest first. Idempotent (a rerun skips what a
    previous attempt built)."""

    def run(table: str) -> None:
        target = qualified(schema, staging(table))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SET statement_timeout = 0"))
            conn.execute(text(f"SET maintenance_work_mem = '{LOAD_MEMORY}'"))
            have = set(
                conn.execute(
                    text(
                        "SELECT ic.relname FROM pg_index i JOIN pg_class ic "
                        "ON ic.oid = i.indexrelid WHERE i.indrelid = CAST(:t AS regclass)"
                    ),
                    {"t": target},
                ).scalars()
            )
            for kind, name, definition in wanted[table]:
                tmp = temporary_name(name)
                if tmp in have:
                    continue
                if kind == "constraint":
                    conn.execute(
                        text(f"ALTER TABLE {target} ADD CONSTRAINT {quote(tmp)} {definition}")
                    )
                else:  # definition: "[UNIQUE ] USING method (columns) …"
                    unique = definition.startswith("UNIQUE ")
                    create = "CREATE UNIQUE INDEX" if unique else "CREATE INDEX"
                    body = definition.removeprefix("UNIQUE ")
                    conn.execute(text(f"{create} {quote(tmp)} ON {target}{body}"))

    with ThreadPoolExecutor(max_workers=server_connections(jobs)) as pool:
        list(pool.map(run, BIGGEST_FIRST))


def swap(
    conn: Connection,
    schema: str,
    wanted: dict[str, list[tuple[str, str, str]]],
    rows: dict[str, int],
    fks: list[tuple[str, str, str]],
) -> None:
    """Inside the caller's (short) transaction: drop the dataset's foreign keys, replace each real
    table with its staging table (keys, indexes and identity sequence renamed to the real names, the
    sequence set past the loaded ids), and re-add the foreign keys NOT VALID."""
    q = quote(schema)
    conn.execute(text(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
    conn.execute(
        text(f"LOCK TABLE {', '.join(f'{q}.{t}' for t in TABLE_ORDER)} IN ACCESS EXCLUSIVE MODE")
    )
    refuse_blockers(conn, schema)  # again, under the lock: nothing can have appeared since
    for tbl, name, _ in fks:
        conn.execute(text(f"ALTER TABLE {tbl} DROP CONSTRAINT {quote(name)}"))
    for table in TABLE_ORDER:
        sequence = conn.execute(
            text("SELECT s.relname FROM pg_class s WHERE s.oid = CAST(:q AS regclass)"),
            {
                "q": conn.execute(
                    text(f"SELECT pg_get_serial_sequence('{q}.{table}', 'id')")
                ).scalar()
            },
        ).scalar()
        staged_sequence = conn.execute(
            text(f"SELECT pg_get_serial_sequence('{q}.{staging(table)}', 'id')")
        ).scalar()
        # No CASCADE: anything the check above missed makes the swap fail and roll back.
        conn.execute(text(f"DROP TABLE {q}.{table}"))
        conn.execute(text(f"ALTER TABLE {q}.{staging(table)} RENAME TO {table}"))
        for kind, name, _ in wanted[table]:
            tmp = temporary_name(name)
            if kind == "constraint":
                conn.execute(
                    text(f"ALTER TABLE {q}.{table} RENAME CONSTRAINT {quote(tmp)} TO {quote(name)}")
                )
            else:
                conn.execute(text(f"ALTER INDEX {q}.{quote(tmp)} RENAME TO {quote(name)}"))
        if sequence and staged_sequence:
            conn.execute(text(f"ALTER SEQUENCE {staged_sequence} RENAME TO {quote(sequence)}"))
            conn.execute(text(f"SELECT setval('{q}.\"{sequence}\"', {rows[table] + 1}, false)"))
    for tbl, name, definition in fks:
        conn.execute(text(f"ALTER TABLE {tbl} ADD CONSTRAINT {quote(name)} {definition} NOT VALID"))
