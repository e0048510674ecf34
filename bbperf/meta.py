"""``bbperf_meta``, the key → JSON table in bbperf's schema where bbperf keeps what it must remember
between runs (the dataset's provenance, index build times, an open index trial, the tables that
partitioning set aside, a cache experiment's journal). Every read and write of it goes through here;
the table itself is created with the others by ``bbperf.schema``."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, text

from bbperf.catalog import relation_exists
from bbperf.sqlnames import qualified, quote

META_TABLE = "bbperf_meta"


def exists(conn: Connection, schema: str) -> bool:
    """True when ``schema`` has its ``bbperf_meta`` table (False also when the schema is missing)."""
    return relation_exists(conn, schema, META_TABLE)


def read(conn: Connection, schema: str, key: str) -> Any | None:
    """The value stored under ``key`` (decoded JSON), or None when there is none."""
    return conn.execute(
        text(f"SELECT value FROM {qualified(schema, META_TABLE)} WHERE key = :k"), {"k": key}
    ).scalar()


def write(conn: Connection, schema: str, key: str, value: Any, *, replace: bool = True) -> None:
    """Store ``value`` (JSON-serialisable) under ``key``; an existing value is replaced, or kept
    when ``replace`` is False."""
    on_conflict = (
        "DO UPDATE SET value = EXCLUDED.value, updated_at = now()" if replace else "DO NOTHING"
    )
    conn.execute(
        text(
            f"INSERT INTO {qualified(schema, META_TABLE)} (key, value) "
            f"VALUES (:k, CAST(:v AS jsonb)) ON CONFLICT (key) {on_conflict}"
        ),
        {"k": key, "v": json.dumps(value)},
    )


def merge(conn: Connection, schema: str, key: str, value: dict[str, Any]) -> None:
    """Merge the object ``value`` into the object under ``key`` (its keys win), in one statement."""
    conn.execute(
        text(
            f"INSERT INTO {qualified(schema, META_TABLE)} (key, value) "
            "VALUES (:k, CAST(:v AS jsonb)) ON CONFLICT (key) DO UPDATE SET "
            f"value = {quote(META_TABLE)}.value || EXCLUDED.value, updated_at = now()"
        ),
        {"k": key, "v": json.dumps(value)},
    )


def add(cursor: Any, schema: str, key: str, field: str, amount: int) -> None:
    """Add ``amount`` to the integer ``field`` of the object under ``key`` (0 when absent), in one
    statement on a DB-API ``cursor``: for writers on a raw driver connection, in their own
    transaction (the caller commits)."""
    table = qualified(schema, META_TABLE)
    cursor.execute(
        f"INSERT INTO {table} (key, value) VALUES (%(k)s, jsonb_build_object(%(f)s::text, %(n)s)) "
        f"ON CONFLICT (key) DO UPDATE SET updated_at = now(), value = {quote(META_TABLE)}.value "
        f"|| jsonb_build_object(%(f)s::text, "
        f"COALESCE(({quote(META_TABLE)}.value ->> %(f)s::text)::int, 0) + %(n)s)",
        {"k": key, "f": field, "n": amount},
    )


def delete(conn: Connection, schema: str, key: str) -> None:
    """Forget ``key`` (nothing happens when it is not stored)."""
    conn.execute(text(f"DELETE FROM {qualified(schema, META_TABLE)} WHERE key = :k"), {"k": key})
