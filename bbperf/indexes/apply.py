"""Apply, drop and inspect an index set inside bbperf's schema, recording each build's time and size."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bbperf import meta
from bbperf.catalog import relation_size_bytes
from bbperf.errors import first_line
from bbperf.indexes.indexdefs import IndexDef, IndexSet
from bbperf.indexes.liveschema import read_catalog
from bbperf.indexes.validate import validate
from bbperf.schema import require_schema
from bbperf.target import schema_of

BUILDS_KEY = "index_builds"
# A set applied for a measurement that drops it afterwards; still there means the run was cut short.
TRIAL_KEY = "index_trial"
APPLY_COLUMNS = ["index", "table", "result", "build_ms", "size_bytes", "reason"]
STATUS_COLUMNS = [
    "index", "table", "kind", "exists", "valid", "size_bytes", "scans", "build_ms", "definition",
]  # fmt: skip


def _autocommit(engine: Engine) -> Connection:
    # CREATE/DROP INDEX CONCURRENTLY refuse to run inside a transaction block.
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _build(
    conn: Connection, index: IndexDef, schema: str, concurrently: bool, repair: bool
) -> float:
    """Create ``index`` (dropping an INVALID leftover first when ``repair``); return build time ms."""
    if repair:
        conn.execute(text(index.drop_sql(schema, concurrently=concurrently)))
    started = time.perf_counter()
    try:
        conn.execute(text(index.create_sql(schema, concurrently=concurrently)))
    except DBAPIError:
        # A failed CONCURRENTLY build leaves an INVALID index behind: never leave one we made.
        conn.execute(text(index.drop_sql(schema)))
        raise
    return (time.perf_counter() - started) * 1000


def record_builds(conn: Connection, schema: str, builds: dict[str, dict[str, Any]]) -> None:
    """Merge ``builds`` (index → {set, build_ms, size_bytes, concurrently, built_at}) into bbperf_meta."""
    meta.merge(conn, schema, BUILDS_KEY, builds)


def recorded_builds(conn: Connection, schema: str) -> dict[str, dict[str, Any]]:
    """What ``record_builds`` stored: index name → build facts."""
    return dict(meta.read(conn, schema, BUILDS_KEY) or {})


def start_trial(engine: Engine, index_set: IndexSet, by: str) -> None:
    """Mark ``index_set`` as applied by ``by`` (e.g. "notebook 01's benchmark") only until it drops
    it: if the run is interrupted first, the mark stays and bbperf.leftovers lists the set."""
    schema = schema_of(engine)
    value = {"set": index_set.name, "source": index_set.source, "by": by}
    with engine.begin() as conn:
        meta.write(conn, schema, TRIAL_KEY, value)


def open_trial(conn: Connection, schema: str) -> dict[str, str] | None:
    """The mark ``start_trial`` left and no ``drop`` of its set has cleared, or None (also when
    the schema or its bbperf_meta does not exist)."""
    if not meta.exists(conn, schema):
        return None
    value = meta.read(conn, schema, TRIAL_KEY)
    return dict(value) if value else None


def apply(
    engine: Engine,
    index_set: IndexSet,
    *,
    concurrently: bool = False,
) -> pd.DataFrame:
    """Validate ``index_set`` and build what validation allows (APPLY_COLUMNS, one row per index).

    Indexes already present are left alone; INVALID ones (an interrupted CONCURRENTLY build) are
    dropped and rebuilt; skipped ones carry validation's reason; a build the server rejects is
    reported as ``failed`` and the rest still run. Build time (ms) and size go to bbperf_meta.
    """
    schema = schema_of(engine)
    report = validate(engine, index_set)
    rows: list[dict[str, Any]] = []
    builds: dict[str, dict[str, Any]] = {}
    with _autocommit(engine) as conn:
        conn.execute(text("SET statement_timeout = 0"))
        try:
            for index, check in zip(index_set.indexes, report.itertuples(), strict=True):
                row = {"index": index.name, "table": index.table, "build_ms": None,
                       "size_bytes": None, "reason": check.reason}  # fmt: skip
                if check.action == "none":
                    row["result"] = "exists"
                elif check.action == "skip":
                    row["result"] = f"skipped: {check.status}"
                else:
                    try:
                        build_ms = _build(
                            conn, index, schema, concurrently, check.action == "repair"
                        )
                    except DBAPIError as exc:
                        row.update(result="failed", reason=first_line(exc))
                    else:
                        size = relation_size_bytes(conn, schema, index.name)
                        row.update(result="repaired" if check.action == "repair" else "created",
                                   build_ms=round(build_ms, 3), size_bytes=size)  # fmt: skip
                        builds[index.name] = {
                            "set": index_set.name, "build_ms": round(build_ms, 3),
                            "size_bytes": size, "concurrently": concurrently,
                            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                        }  # fmt: skip
                rows.append(row)
        finally:
            # Also after Ctrl-C: keep what was built; an interrupted CONCURRENTLY build leaves an
            # INVALID index that the next apply repairs. A broken connection is thrown away.
            try:
                if builds:
                    record_builds(conn, schema, builds)
                conn.execute(text("RESET statement_timeout"))
            except SQLAlchemyError:
                conn.invalidate()
    frame = pd.DataFrame(rows, columns=APPLY_COLUMNS)
    frame["size_bytes"] = frame["size_bytes"].astype("Int64")
    return frame


def drop(
    engine: Engine,
    index_set: IndexSet,
    *,
    concurrently: bool = False,
) -> pd.DataFrame:
    """Drop the set's indexes from bbperf's schema: only indexes named in the set, never keys.

    Rows: index, table, result (dropped / absent / refused), reason.
    """
    schema = schema_of(engine)
    rows: list[dict[str, Any]] = []
    with _autocommit(engine) as conn:
        require_schema(conn, schema)
        catalog = read_catalog(conn, schema)
        for index in index_set.indexes:
            existing = catalog.index(index.name)
            row = {"index": index.name, "table": index.table, "result": "absent", "reason": ""}
            if existing is None:
                kind = catalog.relations.get(index.name)
                if kind is not None:
                    row.update(
                        result="refused", reason=f"{index.name} is not an index (relkind {kind})"
                    )
            elif existing.backs_constraint:
                row.update(result="refused", reason="backs a key or unique constraint")
            else:
                try:
                    conn.execute(text(index.drop_sql(schema, concurrently=concurrently)))
                    row["result"] = "dropped"
                except DBAPIError as exc:
                    row.update(result="failed", reason=first_line(exc))
            rows.append(row)
        if any(r["result"] == "dropped" for r in rows):
            builds = recorded_builds(conn, schema)
            for r in rows:
                if r["result"] == "dropped":
                    builds.pop(r["index"], None)
            meta.write(conn, schema, BUILDS_KEY, builds)
        trial = open_trial(conn, schema)
        if trial is not None and trial.get("set") == index_set.name:
            meta.delete(conn, schema, TRIAL_KEY)
    return pd.DataFrame(rows, columns=["index", "table", "result", "reason"])


def status(engine: Engine, index_set: IndexSet | None = None) -> pd.DataFrame:
    """Indexes in bbperf's schema (STATUS_COLUMNS): exists, valid, size, scans, recorded build time.

    With ``index_set``: one row per index of the set, ``exists`` False for those not built.
    Without: every index in the schema, keys included (``kind`` constraint / unique / index).
    """
    schema = schema_of(engine)
    with engine.connect() as conn:
        require_schema(conn, schema)
        catalog = read_catalog(conn, schema)
        scans = {
            r.indexrelname: int(r.idx_scan)
            for r in conn.execute(
                text(
                    "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE schemaname = :s"
                ),
                {"s": schema},
            )
        }
        builds = recorded_builds(conn, schema)
    names = [i.name for i in index_set.indexes] if index_set else [i.name for i in catalog.indexes]
    tables = {i.name: i.table for i in index_set.indexes} if index_set else {}
    rows = []
    for name in names:
        found = catalog.index(name)
        rows.append({
            "index": name,
            "table": found.table if found else tables[name],
            "kind": found.kind if found else None,
            "exists": found is not None,
            "valid": found.valid if found else None,
            "size_bytes": found.size_bytes if found else None,
            "scans": scans.get(name) if found else None,
            "build_ms": builds.get(name, {}).get("build_ms") if found else None,
            "definition": found.definition if found else None,
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=STATUS_COLUMNS)
    return frame.astype({"size_bytes": "Int64", "scans": "Int64"})
