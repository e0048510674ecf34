"""What bbperf reads from PostgreSQL's catalog in more than one place, asked one way: whether a
relation exists and its size, a table's columns, own indexes and foreign keys, where an extension
lives, and what outside a schema depends on it. Reads only; names are bound as values, never written into the SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from bbperf.sqlnames import qualified


def relation_exists(conn: Connection, schema: str, name: str) -> bool:
    """True when ``schema.name`` is a relation (table, view, index, sequence, ...)."""
    found = conn.execute(text("SELECT to_regclass(:r)"), {"r": qualified(schema, name)})
    return found.scalar() is not None


def relation_size_bytes(conn: Connection, schema: str, name: str) -> int:
    """The main fork's size of ``schema.name`` in bytes (``pg_relation_size``); 0 when it is missing."""
    size = conn.execute(
        text("SELECT pg_relation_size(to_regclass(:r))"), {"r": qualified(schema, name)}
    ).scalar_one()
    return int(size or 0)


def secondary_indexes(
    conn: Connection, schema: str, tables: Sequence[str]
) -> list[tuple[str, str]]:
    """(name, definition) of the valid indexes on ``tables`` in ``schema`` that back no constraint
    (an applied index set, say), ordered by name."""
    rows = conn.execute(
        text(
            "SELECT ic.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE n.nspname = :s AND t.relname = ANY(:t) AND i.indisvalid "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid "
            "AND c.conrelid = i.indrelid) ORDER BY 1"
        ),
        {"s": schema, "t": list(tables)},
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def columns(conn: Connection, schema: str, table: str) -> list[str]:
    """The column names of ``schema.table`` in their order (dropped columns left out; [] when the
    table is missing)."""
    return [
        str(name)
        for name in conn.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": qualified(schema, table)},
        ).scalars()
    ]


def foreign_keys(conn: Connection, schema: str, tables: Sequence[str]) -> list[dict[str, str]]:
    """Foreign keys from or to ``tables`` in ``schema`` (a partition's inherited copies left out):
    {table, name, definition, references}, ordered by table and name."""
    rows = conn.execute(
        text(
            "SELECT t.relname AS table, c.conname AS name, pg_get_constraintdef(c.oid) AS definition, "
            "r.relname AS references FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "JOIN pg_class r ON r.oid = c.confrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE n.nspname = :s AND c.contype = 'f' AND (t.relname = ANY(:t) OR r.relname = ANY(:t)) "
            "AND c.conparentid = 0 ORDER BY t.relname, c.conname"
        ),
        {"s": schema, "t": list(tables)},
    ).mappings()
    return [dict(r) for r in rows]


def extension_schema(target: Engine | Connection, name: str) -> str | None:
    """The schema extension ``name`` is installed in, or None when this database lacks it."""
    sql = text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = :name"
    )
    if isinstance(target, Connection):
        return target.execute(sql, {"name": name}).scalar()
    with target.connect() as conn:
        return conn.execute(sql, {"name": name}).scalar()


def outside_dependents(conn: Connection, schema: str) -> list[str]:
    """Objects outside ``schema`` that depend on something inside it (views, foreign keys, ...).

    These are what ``DROP SCHEMA … CASCADE`` would silently remove along with bbperf's own objects.
    """
    rows = conn.execute(
        text(
            """
            WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = :s),
            ours AS (
                SELECT 'pg_class'::regclass AS classid, c.oid FROM pg_class c, ns
                WHERE c.relnamespace = ns.oid
                UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t, ns
                WHERE t.typnamespace = ns.oid
                UNION ALL SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p, ns
                WHERE p.pronamespace = ns.oid
            )
            SELECT DISTINCT o.type || ' ' || o.identity AS what
            FROM pg_depend d
            JOIN ours ON d.refclassid = ours.classid AND d.refobjid = ours.oid
            CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) o
            -- a default, constraint, rule or trigger belongs where its table lives
            CROSS JOIN LATERAL (SELECT CASE d.classid
                WHEN 'pg_class'::regclass THEN d.objid
                WHEN 'pg_attrdef'::regclass THEN
                    (SELECT adrelid FROM pg_attrdef WHERE oid = d.objid)
                WHEN 'pg_constraint'::regclass THEN
                    (SELECT NULLIF(conrelid, 0) FROM pg_constraint WHERE oid = d.objid)
                WHEN 'pg_rewrite'::regclass THEN
                    (SELECT ev_class FROM pg_rewrite WHERE oid = d.objid)
                WHEN 'pg_trigger'::regclass THEN
                    (SELECT tgrelid FROM pg_trigger WHERE oid = d.objid)
                WHEN 'pg_policy'::regclass THEN
                    (SELECT polrelid FROM pg_policy WHERE oid = d.objid)
                END AS rel) owner
            LEFT JOIN pg_class rc ON rc.oid = owner.rel
            CROSS JOIN ns
            WHERE d.deptype IN ('n', 'a')
              AND COALESCE(rc.relnamespace, (SELECT oid FROM pg_namespace WHERE nspname = o.schema))
                  IS DISTINCT FROM ns.oid
            ORDER BY 1
            """
        ),
        {"s": schema},
    )
    return [r.what for r in rows]
