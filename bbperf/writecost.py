"""What an index set costs on the write side: build time and size per index, and INSERT throughput
into appointments and payments with and without the set (each measured batch is rolled back)."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text

from bbperf.errors import DataError
from bbperf.indexes.apply import status
from bbperf.indexes.indexdefs import IndexSet
from bbperf.sqlnames import qualified
from bbperf.target import schema_of

WRITE_TABLES = ("appointments", "payments")
# Columns copied into a batch: everything but the identity key.
_BATCH_COLUMNS = {
    "appointments": "user_id, barber_id, client_id, service_id, organization_id, status, "
    "start_time, duration_minutes, price, notes, created_at",
    "payments": "user_id, appointment_id, barber_id, amount, platform_fee, barber_amount, status, "
    "stripe_payment_intent_id, created_at",
}


def build_costs(engine: Engine, index_set: IndexSet) -> pd.DataFrame:
    """Build time (ms, as recorded by ``apply``) and size of each of the set's indexes that exists."""
    frame = status(engine, index_set)
    built = frame[frame["exists"]]
    return built[["index", "table", "build_ms", "size_bytes"]].reset_index(drop=True)


def _timed_batch(conn: Connection, schema: str, table: str, drop: list[str]) -> float:
    """INSERT the staged batch into ``table`` (after dropping ``drop``) and roll back; ms."""
    columns = _BATCH_COLUMNS[table]
    with conn.begin() as trans:
        for name in drop:
            conn.execute(text(f"DROP INDEX {qualified(schema, name)}"))
        started = time.perf_counter()
        conn.execute(
            text(
                f"INSERT INTO {qualified(schema, table)} ({columns}) SELECT {columns} FROM _bbperf_batch"
            )
        )
        elapsed = (time.perf_counter() - started) * 1000
        trans.rollback()
    return elapsed


def insert_cost(
    engine: Engine,
    index_set: IndexSet,
    *,
    rows: int = 2000,
    rounds: int = 5,
    tables: tuple[str, ...] = WRITE_TABLES,
) -> pd.DataFrame:
    """INSERT throughput with and without the set's indexes, per table; nothing is left behind.

    A batch of ``rows`` existing rows (the newest by id) is staged in a temporary table, then
    inserted ``rounds`` times with the set's indexes in place and ``rounds`` times with them
    dropped inside the same transaction, alternating; every batch is rolled back. The set must be
    applied (its existing indexes are the "with" state). Times in ms, rates in rows/s.
    """
    schema = schema_of(engine)
    existing = status(engine, index_set)
    existing = existing[existing["exists"] & existing["valid"].fillna(False).astype(bool)]
    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for table in tables:
            on_table = list(existing.loc[existing["table"] == table, "index"])
            with conn.begin():
                conn.execute(text("DROP TABLE IF EXISTS _bbperf_batch"))
                conn.execute(text(
                    f"CREATE TEMP TABLE _bbperf_batch AS SELECT {_BATCH_COLUMNS[table]} "
                    f"FROM {qualified(schema, table)} ORDER BY id DESC LIMIT :n"
                ), {"n": rows})  # fmt: skip
            staged = conn.execute(text("SELECT count(*) FROM _bbperf_batch")).scalar_one()
            conn.commit()
            if staged == 0:
                raise DataError(f"{schema}.{table} is empty: generate a dataset first")
            with_ms, without_ms = [], []
            for _ in range(rounds):
                with_ms.append(_timed_batch(conn, schema, table, []))
                without_ms.append(_timed_batch(conn, schema, table, on_table))
            med_with, med_without = statistics.median(with_ms), statistics.median(without_ms)
            out.append({
                "table": table,
                "set_indexes": len(on_table),
                "rows": staged,
                "without_ms": med_without,
                "with_ms": med_with,
                "without_rows_per_s": staged / med_without * 1000,
                "with_rows_per_s": staged / med_with * 1000,
                "slowdown": med_with / med_without,
            })  # fmt: skip
            with conn.begin():
                conn.execute(text("DROP TABLE _bbperf_batch"))
    return pd.DataFrame(out)
