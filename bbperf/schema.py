"""The BookedBarber schema as SQLAlchemy Core metadata, in bbperf's own PostgreSQL schema.

Only keys, uniqueness and CHECK constraints live here: the seed's performance indexes are the "after"
state of the benchmarks (see ``bbperf.indexes``). bbperf marks its schema with a comment and a
``bbperf_meta`` table, and refuses to drop a schema that lacks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from bbperf import __version__, meta
from bbperf.catalog import extension_schema, outside_dependents
from bbperf.config import DEFAULT_SCHEMA, validate_schema
from bbperf.embedded import BENCH_EXTENSIONS
from bbperf.errors import SchemaError, first_line
from bbperf.sqlnames import quote
from bbperf.target import schema_of

SCHEMA_MARKER = "managed by bbperf"
MONEY = Numeric(10, 2)
TZ = DateTime(timezone=True)

BILLING_PLANS = ("individual", "studio", "salon", "enterprise")
USER_ROLES = ("user", "barber", "admin")
UNIFIED_ROLES = (
    "super_admin",
    "platform_admin",
    "enterprise_owner",
    "shop_owner",
    "individual_barber",
    "shop_manager",
    "barber",
    "receptionist",
    "client",
    "viewer",
)
ORG_ROLES = ("owner", "manager", "barber", "receptionist", "viewer")
CUSTOMER_TYPES = ("new", "returning", "vip", "at_risk")
SERVICE_CATEGORIES = (
    "haircut",
    "shave",
    "beard",
    "hair_treatment",
    "styling",
    "color",
    "package",
    "other",
)
APPOINTMENT_STATUSES = ("pending", "confirmed", "cancelled", "completed", "no_show")
PAYMENT_STATUSES = ("pending", "completed", "failed", "refunded", "partially_refunded")
# Foreign-key order: loading and creating go front to back, dropping back to front.
TABLE_ORDER = (
    "organizations",
    "users",
    "user_organizations",
    "clients",
    "services",
    "appointments",
    "payments",
)


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


def build_metadata(schema: str = DEFAULT_SCHEMA) -> MetaData:
    """Fresh metadata for the seven BookedBarber tables plus ``bbperf_meta`` in ``schema``."""
    validate_schema(schema)
    md = MetaData(schema=schema)
    fk = f"{schema}."

    def pk() -> Column[int]:
        return Column("id", Integer, Identity(), primary_key=True)

    Table(
        meta.META_TABLE,
        md,
        Column("key", Text, primary_key=True),
        Column("value", JSONB, nullable=False),
        Column("updated_at", TZ, nullable=False, server_default=text("now()")),
    )
    Table(
        "organizations",
        md,
        pk(),
        Column("name", Text, nullable=False),
        Column("slug", Text, nullable=False, unique=True),
        Column("timezone", Text, nullable=False, server_default="UTC"),
        Column("chairs_count", Integer, nullable=False, server_default="1"),
        Column("billing_plan", Text, nullable=False, server_default="individual"),
        Column("is_active", Boolean, nullable=False, server_default=text("true")),
        Column("created_at", TZ, nullable=False, server_default=text("now()")),
        _one_of("billing_plan", BILLING_PLANS, "ck_organizations_billing_plan"),
        CheckConstraint("chairs_count >= 0", name="ck_organizations_chairs"),
    )
    Table(
        "users",
        md,
        pk(),
        Column("email", Text, nullable=False, unique=True),
        Column("name", Text, nullable=False),
        Column("phone", Text),
        Column("role", Text, nullable=False, server_default="user"),
        Column("unified_role", Text, nullable=False, server_default="client"),
        Column("is_active", Boolean, nullable=False, server_default=text("true")),
        Column("commission_rate", Numeric(5, 4), nullable=False, server_default="0.20"),
        Column("created_at", TZ, nullable=False, server_default=text("now()")),
        _one_of("role", USER_ROLES, "ck_users_role"),
        _one_of("unified_role", UNIFIED_ROLES, "ck_users_unified_role"),
    )
    Table(
        "user_organizations",
        md,
        pk(),
        Column("user_id", Integer, ForeignKey(fk + "users.id"), nullable=False),
        Column("organization_id", Integer, ForeignKey(fk + "organizations.id"), nullable=False),
        Column("role", Text, nullable=False, server_default="barber"),
        Column("is_primary", Boolean, nullable=False, server_default=text("false")),
        Column("created_at", TZ, nullable=False, server_default=text("now()")),
        UniqueConstraint("user_id", "organization_id", name="uq_user_organizations_user_org"),
        _one_of("role", ORG_ROLES, "ck_user_organizations_role"),
    )
    Table(
        "clients",
        md,
        pk(),
        Column("first_name", Text, nullable=False),
        Column("last_name", Text, nullable=False),
        Column("email", Text),
        Column("phone", Text),
        Column("customer_type", Text, nullable=False, server_default="new"),
        Column("barber_id", Integer, ForeignKey(fk + "users.id")),
        Column("total_visits", Integer, nullable=False, server_default="0"),
        Column("total_spent", MONEY, nullable=False, server_default="0"),
        Column("last_visit_date", TZ),
        Column("created_at", TZ, nullable=False, server_default=text("now()")),
        _one_of("customer_type", CUSTOMER_TYPES, "ck_clients_customer_type"),
    )
    Table(
        "services",
        md,
        pk(),
        Column("name", Text, nullable=False),
        Column("category", Text, nullable=False, server_default="haircut"),
        Column("base_price", MONEY, nullable=False),
        Column("duration_minutes", Integer, nullable=False, server_default="30"),
        Column("is_active", Boolean, nullable=False, server_default=text("true")),
        Column("barber_id", Integer, ForeignKey(fk + "users.id")),
        _one_of("category", SERVICE_CATEGORIES, "ck_services_category"),
        CheckConstraint("base_price >= 0", name="ck_services_base_price"),
    )
    Table(
        "appointments",
        md,
        pk(),
        Column("user_id", Integer, ForeignKey(fk + "users.id"), nullable=False),
        Column("barber_id", Integer, ForeignKey(fk + "users.id")),
        Column("client_id", Integer, ForeignKey(fk + "clients.id")),
        Column("service_id", Integer, ForeignKey(fk + "services.id")),
        Column("organization_id", Integer, ForeignKey(fk + "organizations.id")),
        Column("status", Text, nullable=False, server_default="pending"),
        Column("start_time", TZ, nullable=False),
        Column("duration_minutes", Integer, nullable=False, server_default="30"),
        Column("price", MONEY, nullable=False),
        Column("notes", Text),
        Column("created_at", TZ, nullable=False, server_default=text("now()")),
        _one_of("status", APPOINTMENT_STATUSES, "ck_appointments_status"),
        CheckConstraint("duration_minutes > 0", name="ck_appointments_duration"),
    )
    Table(
        "payments",
        md,
        pk(),
        Column("user_id", Integer, ForeignKey(fk + "users.id"), nullable=False),
        Column("appointment_id", Integer, ForeignKey(fk + "appointments.id")),
        Column("barber_id", Integer, ForeignKey(fk + "users.id")),
        Column("amount", MONEY, nullable=False),
        Column("platform_fee", MONEY, nullable=False, server_default="0"),
        Column("barber_amount", MONEY, nullable=False, server_default="0"),
        Column("status", Text, nullable=False, server_default="pending"),
        Column("stripe_payment_intent_id", Text),
        Column("created_at", TZ, nullable=False, server_default=text("now()")),
        _one_of("status", PAYMENT_STATUSES, "ck_payments_status"),
    )
    return md


@dataclass(frozen=True)
class SchemaStatus:
    """State of bbperf's schema on the target."""

    schema: str
    exists: bool
    owned: bool
    tables: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "exists": self.exists,
            "owned": self.owned,
            "tables": self.tables,
        }


def _schema_exists(conn: Connection, schema: str) -> bool:
    return bool(
        conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).scalar()
    )


def is_owned(conn: Connection, schema: str) -> bool:
    """True when ``schema`` carries bbperf's marker comment and its ``bbperf_meta`` table."""
    comment = conn.execute(
        text(
            "SELECT obj_description(n.oid, 'pg_namespace') FROM pg_namespace n WHERE n.nspname = :s"
        ),
        {"s": schema},
    ).scalar()
    return bool(comment and comment.startswith(SCHEMA_MARKER) and meta.exists(conn, schema))


def require_schema(conn: Connection, schema: str = DEFAULT_SCHEMA) -> None:
    """Raise SchemaError unless bbperf's schema exists and is bbperf's."""
    if not _schema_exists(conn, schema):
        raise SchemaError(f"schema {schema!r} does not exist: run `bbperf schema create`")
    if not is_owned(conn, schema):
        raise SchemaError(f"schema {schema!r} exists but was not created by bbperf")


def create_schema(engine: Engine) -> SchemaStatus:
    """Create the schema and its tables (idempotent); refuse a same-named schema bbperf didn't make."""
    schema = schema_of(engine)

    md = build_metadata(schema)
    with engine.begin() as conn:
        if _schema_exists(conn, schema) and not is_owned(conn, schema):
            raise SchemaError(
                f"schema {schema!r} already exists and was not created by bbperf; "
                "choose another name with --schema or BBPERF_SCHEMA"
            )
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}"))
        md.create_all(conn)
        conn.execute(text(f"COMMENT ON SCHEMA {quote(schema)} IS '{SCHEMA_MARKER} {__version__}'"))
        meta.write(conn, schema, "schema", {"bbperf_version": __version__}, replace=False)
    ensure_extensions(engine)
    return schema_status(engine)


def ensure_extensions(engine: Engine) -> dict[str, str]:
    """Install missing bench extensions into bbperf's schema where the server allows it.

    Returns extension → "installed in <schema>" / "created in <schema>" / "unavailable: <reason>".
    Extensions already installed elsewhere are left exactly where they are.
    """
    schema = schema_of(engine)
    result: dict[str, str] = {}
    for ext in BENCH_EXTENSIONS:
        with engine.connect() as conn:
            where = extension_schema(conn, ext)
            if where:
                result[ext] = f"installed in {where}"
                continue
            try:
                # The lookup above autobegan a transaction: CREATE runs in it and commits.
                conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {ext} SCHEMA {quote(schema)}"))
                conn.commit()
                result[ext] = f"created in {schema}"
            except Exception as exc:  # noqa: BLE001 - permission or availability, reported not raised
                result[ext] = f"unavailable: {first_line(exc)}"
    return result


def drop_schema(engine: Engine, *, cascade: bool = False) -> bool:
    """Drop bbperf's schema and everything in it; return False when it did not exist.

    Refuses (SchemaError) a schema without bbperf's marker, so nothing bbperf did not create is lost,
    and a schema that objects outside it depend on (a view or foreign key in ``public``, say),
    naming them, unless ``cascade`` — then those objects are dropped too.
    """
    schema = schema_of(engine)
    with engine.begin() as conn:
        if not _schema_exists(conn, schema):
            return False
        if not is_owned(conn, schema):
            raise SchemaError(
                f"refusing to drop schema {schema!r}: it does not carry bbperf's marker "
                "(it was not created by bbperf)"
            )
        outside = outside_dependents(conn, schema)
        if outside and not cascade:
            raise SchemaError(
                f"refusing to drop schema {schema!r}: {len(outside)} object(s) outside it depend "
                f"on it ({'; '.join(outside[:5])}{'; …' if len(outside) > 5 else ''}); "
                "drop them first, or pass --cascade to drop them too"
            )
        conn.execute(text(f"DROP SCHEMA {quote(schema)} CASCADE"))
    return True


def schema_status(engine: Engine) -> SchemaStatus:
    """Whether the schema exists and is bbperf's, and per table: estimated rows, size, indexes."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        if not _schema_exists(conn, schema):
            return SchemaStatus(schema, exists=False, owned=False, tables=[])
        owned = is_owned(conn, schema)
        rows = conn.execute(
            text(
                "SELECT c.relname AS table, GREATEST(c.reltuples, 0)::bigint AS estimated_rows, "
                "pg_total_relation_size(c.oid) AS total_bytes, "
                "(SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid) AS indexes "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') ORDER BY c.relname"
            ),
            {"s": schema},
        ).mappings()
        tables = [dict(r) for r in rows]
    return SchemaStatus(schema, exists=True, owned=owned, tables=tables)
