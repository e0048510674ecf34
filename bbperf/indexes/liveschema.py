"""What the live schema holds, read from pg_catalog: tables, columns and every index's shape."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from bbperf.indexes.indexdefs import IndexColumn

_COLUMNS_SQL = text(
    "SELECT c.relname AS table, a.attname AS column FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
)
_RELATIONS_SQL = text(
    "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :s"
)
# indoption bit 0 is DESC; attnum 0 marks an expression column (shown as "(expression)").
_INDEXES_SQL = text(
    "SELECT ic.relname AS name, tc.relname AS table, am.amname AS method, "
    "i.indisvalid AS valid, i.indisunique AS is_unique, i.indisprimary AS is_primary, "
    "i.indnkeyatts AS key_count, "
    "ARRAY(SELECT COALESCE(a.attname::text, '(expression)') "
    "      FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) "
    "      LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
    "      ORDER BY k.ord) AS columns, "
    "i.indoption::int2[] AS options, pg_get_expr(i.indpred, i.indrelid) AS predicate, "
    "EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) AS backs_constraint, "
    "pg_relation_size(i.indexrelid) AS size_bytes, pg_get_indexdef(i.indexrelid) AS definition "
    "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
    "JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = tc.relnamespace "
    "JOIN pg_am am ON am.oid = ic.relam WHERE n.nspname = :s ORDER BY tc.relname, ic.relname"
)


@dataclass(frozen=True)
class ExistingIndex:
    """An index found on the server, in the same shape as an IndexDef where that makes sense."""

    name: str
    table: str
    columns: tuple[IndexColumn, ...]
    include: tuple[str, ...]
    predicate: str | None
    method: str
    valid: bool
    unique: bool
    backs_constraint: bool
    size_bytes: int
    definition: str

    @property
    def kind(self) -> str:
        if self.backs_constraint:
            return "constraint"
        return "unique" if self.unique else "index"


@dataclass(frozen=True)
class Catalog:
    """The schema's tables → columns, its relation names (any kind) and its indexes."""

    schema: str
    columns: dict[str, frozenset[str]] = field(default_factory=dict)
    relations: dict[str, str] = field(default_factory=dict)
    indexes: tuple[ExistingIndex, ...] = ()

    def index(self, name: str) -> ExistingIndex | None:
        return next((i for i in self.indexes if i.name == name), None)


def read_catalog(conn: Connection, schema: str) -> Catalog:
    """Read tables, columns, relation names and indexes of ``schema``."""
    columns: dict[str, set[str]] = {}
    for row in conn.execute(_COLUMNS_SQL, {"s": schema}):
        columns.setdefault(row.table, set()).add(row.column)
    relations = {r.relname: r.relkind for r in conn.execute(_RELATIONS_SQL, {"s": schema})}
    indexes = []
    for r in conn.execute(_INDEXES_SQL, {"s": schema}).mappings():
        names, options, keys = list(r["columns"]), list(r["options"] or []), r["key_count"]
        key_cols = tuple(
            IndexColumn(n, "DESC" if (options[i] if i < len(options) else 0) & 1 else "ASC")
            for i, n in enumerate(names[:keys])
        )
        indexes.append(
            ExistingIndex(
                name=r["name"],
                table=r["table"],
                columns=key_cols,
                include=tuple(names[keys:]),
                predicate=r["predicate"],
                method=r["method"],
                valid=r["valid"],
                unique=r["is_unique"],
                backs_constraint=r["backs_constraint"],
                size_bytes=int(r["size_bytes"]),
                definition=r["definition"],
            )
        )
    return Catalog(schema, {t: frozenset(c) for t, c in columns.items()}, relations, tuple(indexes))
