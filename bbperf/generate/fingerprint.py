"""Order-independent table fingerprints: row count and a sum of row hashes, computed in SQL here
(``bbperf data verify``) and as rows stream during a load (``bbperf.generate.rowhash``).

The row text is built from an explicit column list with TimeZone and DateStyle pinned, and hashed with
md5 (stable across PostgreSQL versions, unlike the internal ``hashtext``), so the same rows give the
same fingerprint on PostgreSQL 15 and 18 and in any physical order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, text

from bbperf.generate.dataset import require_dataset
from bbperf.sqlnames import qualified
from bbperf.target import schema_of

# The columns bbperf generates, in the order hashed: other tools may add columns without changing it.
FINGERPRINT_COLUMNS: dict[str, tuple[str, ...]] = {
    "organizations": (
        "id",
        "name",
        "slug",
        "timezone",
        "chairs_count",
        "billing_plan",
        "is_active",
        "created_at",
    ),
    "users": (
        "id",
        "email",
        "name",
        "phone",
        "role",
        "unified_role",
        "is_active",
        "commission_rate",
        "created_at",
    ),
    "user_organizations": ("id", "user_id", "organization_id", "role", "is_primary", "created_at"),
    "clients": (
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "customer_type",
        "barber_id",
        "total_visits",
        "total_spent",
        "last_visit_date",
        "created_at",
    ),
    "services": (
        "id",
        "name",
        "category",
        "base_price",
        "duration_minutes",
        "is_active",
        "barber_id",
    ),
    "appointments": (
        "id",
        "user_id",
        "barber_id",
        "client_id",
        "service_id",
        "organization_id",
        "status",
        "start_time",
        "duration_minutes",
        "price",
        "notes",
        "created_at",
    ),
    "payments": (
        "id",
        "user_id",
        "appointment_id",
        "barber_id",
        "amount",
        "platform_fee",
        "barber_amount",
        "status",
        "stripe_payment_intent_id",
        "created_at",
    ),
}


def fingerprint_sql(schema: str, table: str) -> str:
    columns = ", ".join(FINGERPRINT_COLUMNS[table])
    # 15 hex digits = 60 bits: fits a bigint; the sum is numeric, so it cannot overflow.
    return (
        f"SELECT count(*) AS rows, coalesce(sum(('x' || left(md5(ROW({columns})::text), 15))::bit(60)::bigint), 0)"
        f"::text AS checksum FROM {qualified(schema, table)}"
    )


def fingerprints(conn: Connection, schema: str) -> dict[str, dict[str, Any]]:
    """{table: {"rows": int, "checksum": str}} for every generated table, in load order."""
    conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
    conn.execute(text("SET LOCAL DateStyle = 'ISO, YMD'"))
    result: dict[str, dict[str, Any]] = {}
    for table in FINGERPRINT_COLUMNS:
        row = conn.execute(text(fingerprint_sql(schema, table))).one()
        result[table] = {"rows": int(row.rows), "checksum": row.checksum}
    return result


def verify(engine: Engine) -> list[dict[str, Any]]:
    """Recompute every table's fingerprint on the server and set it beside the one the load stored:
    [{"table", "rows", "stored_checksum", "server_rows", "server_checksum", "ok"}]. DataError when
    no dataset is loaded."""
    stored = require_dataset(engine)["fingerprints"]
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        server = fingerprints(conn, schema_of(engine))
    return [
        {
            "table": table,
            "rows": stored.get(table, {}).get("rows"),
            "stored_checksum": stored.get(table, {}).get("checksum"),
            "server_rows": fp["rows"],
            "server_checksum": fp["checksum"],
            "ok": stored.get(table) == fp,
        }
        for table, fp in server.items()
    ]
