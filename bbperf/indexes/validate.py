"""Check an index set against the live schema before anything runs: one row per index, with the
action bbperf would take (create, repair, none, skip) and the reason."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.errors import first_line
from bbperf.indexes.indexdefs import IndexColumn, IndexDef, IndexSet
from bbperf.indexes.liveschema import Catalog, ExistingIndex, read_catalog
from bbperf.schema import require_schema
from bbperf.target import schema_of

REPORT_COLUMNS = ["index", "table", "columns", "status", "action", "reason", "note"]
APPLY_ACTIONS = ("create", "repair")


@dataclass(frozen=True)
class _Shape:
    """The comparable part of an index: table, key columns, INCLUDE, predicate, method."""

    name: str
    table: str
    columns: tuple[IndexColumn, ...]
    include: tuple[str, ...]
    predicate: str
    method: str


def _normalize_predicate(predicate: str | None) -> str:
    return "".join(ch for ch in (predicate or "").lower() if ch not in "() \t\n")


def _shape(index: IndexDef | ExistingIndex) -> _Shape:
    where = index.where if isinstance(index, IndexDef) else index.predicate
    return _Shape(
        index.name,
        index.table,
        tuple(index.columns),
        tuple(index.include),
        _normalize_predicate(where),
        index.method,
    )


def _covers(other: _Shape, candidate: _Shape) -> str | None:
    """'duplicate' or 'redundant' when ``other`` already gives everything ``candidate`` would."""
    if other.table != candidate.table or other.predicate != candidate.predicate:
        return None
    if other.method != candidate.method:
        return None
    if not set(candidate.include) <= {*(c.name for c in other.columns), *other.include}:
        return None
    n = len(candidate.columns)
    if other.columns == candidate.columns:
        return "duplicate"
    if (
        candidate.method == "btree"
        and len(other.columns) > n
        and other.columns[:n] == candidate.columns
    ):
        return "redundant"
    return None


def _row(index: IndexDef, status: str, action: str, reason: str = "") -> dict[str, str]:
    return {
        "index": index.name,
        "table": index.table,
        "columns": ", ".join(c.sql() for c in index.columns),
        "status": status,
        "action": action,
        "reason": reason,
        "note": index.note,
    }


def _basic(index: IndexDef, catalog: Catalog, predicate_error: str | None) -> dict[str, str] | None:
    """The row for an index that cannot or need not be built, or None when it is buildable."""
    columns = catalog.columns.get(index.table)
    if columns is None:
        return _row(
            index, "unknown table", "skip", f"table {catalog.schema}.{index.table} does not exist"
        )
    missing = [c for c in index.referenced_columns if c not in columns]
    if missing:
        return _row(
            index, "unknown column", "skip", f"{index.table} has no column {', '.join(missing)}"
        )
    if predicate_error:
        return _row(index, "bad predicate", "skip", f"WHERE {index.where}: {predicate_error}")
    existing = catalog.index(index.name)
    if existing is not None:
        if existing.table != index.table:
            return _row(
                index,
                "name taken",
                "skip",
                f"{index.name} is an index on {existing.table}; rename or drop it first",
            )
        if not existing.valid:
            return _row(
                index,
                "invalid",
                "repair",
                "INVALID (an interrupted CONCURRENTLY build?): drop and rebuild",
            )
        if _covers(_shape(existing), _shape(index)) == "duplicate":
            return _row(index, "exists", "none", "already applied")
        return _row(
            index,
            "name taken",
            "skip",
            f"an index {index.name} with another definition exists: {existing.definition}",
        )
    kind = catalog.relations.get(index.name)
    if kind is not None:
        return _row(
            index, "name taken", "skip", f"{index.name} is already a relation (relkind {kind})"
        )
    return None


def check(
    index_set: IndexSet, catalog: Catalog, predicate_errors: dict[str, str] | None = None
) -> pd.DataFrame:
    """Pure validation of ``index_set`` against ``catalog``: a DataFrame with REPORT_COLUMNS.

    Unknown tables/columns, bad predicates and name clashes are skipped; an index that another
    (existing, or earlier in the set) index already provides is a ``duplicate``, and one whose key
    is a leading prefix of another's (same predicate, btree) is ``redundant``: both are skipped.
    """
    predicate_errors = predicate_errors or {}
    rows: dict[str, dict[str, str]] = {}
    buildable: list[IndexDef] = []
    for index in index_set.indexes:
        row = _basic(index, catalog, predicate_errors.get(index.name))
        if row is None:
            buildable.append(index)
        else:
            rows[index.name] = row
    mine = {i.name for i in index_set.indexes}
    others = [_shape(e) for e in catalog.indexes if e.name not in mine and e.valid]
    for pos, index in enumerate(buildable):
        shape = _shape(index)
        set_shapes = [_shape(o) for j, o in enumerate(buildable) if j != pos]
        earlier = {o.name for o in buildable[:pos]}
        verdict = None
        for other in others + set_shapes:
            found = _covers(other, shape)
            # Of two identical definitions in the set, the later one is the duplicate.
            if found == "duplicate" and other.name in mine and other.name not in earlier:
                continue
            if found:
                where = "existing index" if other.name not in mine else "index in this set"
                verdict = (found, f"{where} {other.name} already covers it")
                break
        rows[index.name] = (
            _row(index, verdict[0], "skip", verdict[1]) if verdict else _row(index, "ok", "create")
        )
    ordered = [rows[i.name] for i in index_set.indexes]
    return pd.DataFrame(ordered, columns=REPORT_COLUMNS)


def predicate_errors(conn: Connection, index_set: IndexSet, catalog: Catalog) -> dict[str, str]:
    """Plan ``SELECT 1 FROM table WHERE <predicate>`` for each partial index; collect failures."""
    errors: dict[str, str] = {}
    for index in index_set.indexes:
        if not index.where or index.table not in catalog.columns:
            continue
        try:
            with conn.begin_nested():
                conn.execute(
                    text(
                        f"EXPLAIN SELECT 1 FROM {catalog.schema}.{index.table} WHERE {index.where}"
                    )
                )
        except DBAPIError as exc:
            errors[index.name] = first_line(exc)
    return errors


def validate(engine: Engine, index_set: IndexSet) -> pd.DataFrame:
    """Validate ``index_set`` against the live ``schema`` (see ``check``); nothing is changed."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        require_schema(conn, schema)
        catalog = read_catalog(conn, schema)
        errors = predicate_errors(conn, index_set, catalog)
        conn.rollback()
    return check(index_set, catalog, errors)


def buildable(report: pd.DataFrame) -> list[str]:
    """Names of the indexes the report says to create or repair."""
    return list(report.loc[report["action"].isin(APPLY_ACTIONS), "index"])
