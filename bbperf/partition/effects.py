"""What partitioning costs and buys, measured: the workload before and after, pruning read from the
plans, planning time against the partition count, and retention by DETACH + DROP versus DELETE.

Readers run the statements; ``pruning`` and ``conclusion`` are pure (plan JSON and numbers in).
Server times come from EXPLAIN ANALYZE (TIMING OFF), planning times from EXPLAIN's summary; both
are compared within one run as ratios, because the machine is shared and noisy.
"""

from __future__ import annotations

import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.catalog import extension_schema, secondary_indexes
from bbperf.errors import DataError
from bbperf.explain import explain, measure
from bbperf.explain.plan import Plan
from bbperf.explain.timingstats import Timing, compare, summarize
from bbperf.generate.fingerprint import fingerprints
from bbperf.partition import layout
from bbperf.progress import bar as progress_bar
from bbperf.sqlnames import qualified, quote
from bbperf.target import schema_of
from bbperf.workload import WorkloadQuery

_TABLES = re.compile(r"\b(appointments|payments)\b")


def touches_partitioned(query: WorkloadQuery) -> bool:
    """True when the query reads appointments or payments, the tables partitioning changes."""
    return bool(_TABLES.search(query.sql))


# -- pure: pruning -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Pruning:
    """Partitions a plan scanned out of those its tables have, and subplans removed at run time
    (partitions pruned while planning do not appear in the plan at all)."""

    partitions_scanned: int
    partitions_total: int
    subplans_removed: int

    @property
    def pruned(self) -> bool:
        return self.partitions_scanned < self.partitions_total


def pruning(doc: dict[str, Any], parents: dict[str, str]) -> Pruning:
    """Read from one EXPLAIN (ANALYZE, FORMAT JSON) document. ``parents`` maps each partition to its
    table; the total counts every partition of the tables the plan touched."""
    scanned: set[str] = set()
    removed = 0
    stack = [doc["Plan"]]
    while stack:
        node = stack.pop()
        removed += int(node.get("Subplans Removed", 0))
        relation = node.get("Relation Name")
        if relation in parents and node.get("Actual Loops", 1) > 0:
            scanned.add(relation)
        stack.extend(node.get("Plans", []))
    tables = {parents[p] for p in scanned}
    total = sum(1 for table in parents.values() if table in tables)
    return Pruning(len(scanned), total, removed)


# -- the workload before and after -------------------------------------------------------------
@dataclass(frozen=True)
class StateRun:
    """One query in one state: its analyzed plan and its timings (client and server)."""

    plan: Plan
    timing: Timing
    planning_ms: list[float]


def planning_times(target: Engine | Connection, query: WorkloadQuery, rounds: int) -> list[float]:
    """Planning time (ms) of ``rounds`` plain EXPLAINs on one connection, after one untimed; on an
    engine's connection rolled back after, on a given connection inside its transaction."""
    if isinstance(target, Connection):
        return _planning_on(target, query, rounds)
    with target.connect() as conn:
        times = _planning_on(conn, query, rounds)
        conn.rollback()
    return times


def _planning_on(conn: Connection, query: WorkloadQuery, rounds: int) -> list[float]:
    times = []
    for i in range(rounds + 1):
        doc = conn.execute(
            text(f"EXPLAIN (SUMMARY ON, FORMAT JSON) {query.sql}"), query.params
        ).scalar_one()
        if i:
            times.append(float(doc[0]["Planning Time"]))
    return times


def run_state(
    engine: Engine, queries: list[WorkloadQuery], rounds: int, warmup: int
) -> dict[str, StateRun]:
    """Plan, timings and planning times of every query in the current state."""
    runs = {}
    for q in queries:
        plan = explain(engine, q.sql, q.params, timing=False)
        timing = measure(
            engine, q.sql, q.params, rounds=rounds, warmup=warmup, server_time=True, label=q.name
        )
        runs[q.name] = StateRun(plan, timing, planning_times(engine, q, rounds))
    return runs


def partition_parents(engine: Engine) -> dict[str, str]:
    """Each partition of appointments and payments → its table."""
    frame = layout.status(engine).partitions
    return dict(zip(frame["partition"], frame["table"], strict=True))


def before_after(
    before: dict[str, StateRun], after: dict[str, StateRun], parents: dict[str, str]
) -> pd.DataFrame:
    """One row per query: server median before/after (ms), speedup with its 95 % CI, significance,
    median planning time before/after (ms), partitions scanned of those the tables have, pruned."""
    rows = []
    for name, b in before.items():
        a = after[name]
        server = compare(b.timing.server_ms or (), a.timing.server_ms or ())
        pruned = pruning(a.plan.raw[0], parents)
        rows.append({
            "query": name,
            "server_before_ms": server.before_median,
            "server_after_ms": server.after_median,
            "speedup": server.speedup,
            "ci_low": server.ci_low,
            "ci_high": server.ci_high,
            "significant": server.significant,
            "planning_before_ms": summarize(b.planning_ms).median,
            "planning_after_ms": summarize(a.planning_ms).median,
            "partitions_scanned": pruned.partitions_scanned,
            "partitions_total": pruned.partitions_total,
            "pruned": pruned.pruned,
            "subplans_removed": pruned.subplans_removed,
        })  # fmt: skip
    return pd.DataFrame(rows)


def planning_by_partition_count(
    engine: Engine, queries: list[WorkloadQuery], counts: list[int], rounds: int
) -> pd.DataFrame:
    """Median planning time (ms) of each query with the tables unpartitioned (0) and split into each
    of ``counts`` equal ranges (+ DEFAULT), measured on the layout without rows inside a rolled-back
    transaction (``layout.empty_layout``): planning cost follows the partitions and indexes, not
    the rows, so nothing is copied and the study costs the same at any scale. Columns: partitions,
    query, planning_ms."""
    rows = []
    for count in progress_bar([0, *counts], desc="planning vs partitions", unit="layout"):
        with layout.empty_layout(engine, count) as conn:
            for q in queries:
                median = summarize(planning_times(conn, q, rounds)).median
                rows.append({"partitions": count, "query": q.name, "planning_ms": median})
    return pd.DataFrame(rows)


# -- retention ---------------------------------------------------------------------------------
_PLAIN, _PARTED = "retention_plain", "retention_partitioned"


def _wal_lsn(conn: Connection) -> str:
    return str(conn.execute(text("SELECT pg_current_wal_lsn()")).scalar_one())


def _checkpoint(conn: Connection) -> bool:
    """CHECKPOINT so both methods start with no full-page images owed (needs pg_checkpoint)."""
    try:
        conn.execute(text("CHECKPOINT"))
        return True
    except DBAPIError:
        return False


def _dead_bytes(conn: Connection, schema: str, tables: list[str]) -> int | None:
    ext = extension_schema(conn, "pgstattuple")
    if ext is None:
        return None
    return sum(
        int(
            conn.execute(
                text(
                    f"SELECT dead_tuple_len FROM {qualified(ext, 'pgstattuple')}('{qualified(schema, t)}')"
                )
            ).scalar_one()
        )
        for t in tables
    )


def _copy_indexes(conn: Connection, schema: str, target: str) -> None:
    """The secondary indexes of appointments, unnamed (PostgreSQL names them), on ``target``."""
    for _, definition in secondary_indexes(conn, schema, ["appointments"]):
        conn.execute(
            text(
                re.sub(
                    r"INDEX \S+ ON \S+",
                    f"INDEX ON {qualified(schema, target)}",
                    definition,
                    count=1,
                )
            )
        )


def _fill_copy(engine: Engine, target: str, key: str) -> None:
    """Copy every appointment into the scratch table ``target``, then its primary key on ``key``,
    appointments' secondary indexes and VACUUM ANALYZE, on a connection of its own."""
    schema = schema_of(engine)
    q = quote(schema)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SET statement_timeout = 0"))
        try:
            conn.execute(text(f"INSERT INTO {q}.{target} SELECT * FROM {q}.appointments"))
            conn.execute(text(f"ALTER TABLE {q}.{target} ADD PRIMARY KEY ({key})"))
            _copy_indexes(conn, schema, target)
            conn.execute(text(f"VACUUM (ANALYZE) {q}.{target}"))
        finally:
            conn.execute(text("RESET statement_timeout"))


def retention(engine: Engine) -> pd.DataFrame:
    """Remove the oldest month of appointments from two scratch copies (with the same indexes): a
    plain table by DELETE, a monthly-partitioned one by DETACH PARTITION + DROP TABLE.

    Columns: method, rows_removed, ms, wal_bytes (pg_current_wal_lsn before/after), dead_bytes left
    (pgstattuple; None without it), table_bytes after (heap + indexes). The dataset is not touched;
    the copies live in bbperf's schema and are dropped at the end.
    """
    schema = schema_of(engine)
    q = quote(schema)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SET statement_timeout = 0"))
        try:
            span = layout.time_span(conn, schema, "appointments")
            if span is None:
                raise DataError("no appointments to remove: generate a dataset first")
            ranges = layout.bounds(*span, "month")
            conn.execute(text(
                f"CREATE TABLE {q}.{_PLAIN} (LIKE {q}.appointments INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ))  # fmt: skip
            conn.execute(text(
                f"CREATE TABLE {q}.{_PARTED} (LIKE {q}.appointments INCLUDING DEFAULTS "
                "INCLUDING CONSTRAINTS) PARTITION BY RANGE (start_time)"
            ))  # fmt: skip
            for start, end in ranges:
                conn.execute(text(
                    f"CREATE TABLE {q}.{layout.partition_name(_PARTED, start, 'month', 0)} "
                    f"PARTITION OF {q}.{_PARTED} FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                ))  # fmt: skip
            # The two copies fill on two connections at once (~16 → ~10 s at SF 1 on 2 cores);
            # nothing is timed until both are done.
            with ThreadPoolExecutor(2, thread_name_prefix="bbperf-retention") as pool:
                for filled in [
                    pool.submit(_fill_copy, engine, target, key)
                    for target, key in ((_PLAIN, "id"), (_PARTED, "id, start_time"))
                ]:
                    filled.result()
            lo, hi = ranges[0]
            oldest = layout.partition_name(_PARTED, lo, "month", 0)
            rows = []
            for method in ("DELETE", "DETACH + DROP"):
                _checkpoint(conn)
                lsn = _wal_lsn(conn)
                started = time.perf_counter()
                # autocommit: each statement commits on its own, and its commit is timed with it
                if method == "DELETE":
                    removed = conn.execute(
                        text(
                            f"DELETE FROM {q}.{_PLAIN} WHERE start_time >= :lo AND start_time < :hi"
                        ),
                        {"lo": lo, "hi": hi},
                    ).rowcount
                else:
                    removed = int(
                        conn.execute(text(f"SELECT count(*) FROM {q}.{oldest}")).scalar_one()
                    )
                    started = time.perf_counter()  # the count is not part of the removal
                    conn.execute(text(f"ALTER TABLE {q}.{_PARTED} DETACH PARTITION {q}.{oldest}"))
                    conn.execute(text(f"DROP TABLE {q}.{oldest}"))
                ms = (time.perf_counter() - started) * 1000
                wal = int(conn.execute(
                    text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :lsn)"), {"lsn": lsn}
                ).scalar_one())  # fmt: skip
                left = [_PLAIN] if method == "DELETE" else [
                    layout.partition_name(_PARTED, s, "month", 0) for s, _ in ranges[1:]
                ]  # fmt: skip
                size = conn.execute(
                    text("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                         "WHERE c.relnamespace = to_regnamespace(:s) AND c.relname = ANY(:t)"),
                    {"s": schema, "t": left},
                ).scalar_one()  # fmt: skip
                rows.append({"method": method, "rows_removed": int(removed), "ms": ms,
                             "wal_bytes": wal, "dead_bytes": _dead_bytes(conn, schema, left),
                             "table_bytes": int(size or 0)})  # fmt: skip
        finally:
            conn.execute(text(f"DROP TABLE IF EXISTS {q}.{_PLAIN}, {q}.{_PARTED}"))
            conn.execute(text("RESET statement_timeout"))
    return pd.DataFrame(rows)


# -- the verdict -------------------------------------------------------------------------------
def conclusion(table: pd.DataFrame, planning: pd.DataFrame, kept: pd.DataFrame) -> str:
    """A short Markdown verdict, every number computed from the three frames (pure)."""

    def ratio(value: float) -> str:
        return f"×{value:.2f}" if math.isfinite(value) else "n/a"

    faster = table[table["significant"] & (table["speedup"] > 1)]
    slower = table[table["significant"] & (table["speedup"] < 1)]
    pruned = table[table["pruned"]]
    lines = [
        "- **Faster after partitioning** (significant): "
        + (", ".join(f"{r.query} {ratio(r.speedup)}" for r in faster.itertuples()) or "none"),
        "- **Slower after partitioning** (significant): "
        + (", ".join(f"{r.query} {ratio(r.speedup)}" for r in slower.itertuples()) or "none"),
        f"- Plans pruned partitions for {len(pruned)} of {len(table)} queries "
        f"({', '.join(pruned['query']) or 'none'}); the others read every partition of their tables: "
        "their filters do not bound the partition key.",
    ]
    if len(planning):
        by_count = planning.groupby("partitions")["planning_ms"].median()
        base = by_count.get(0, math.nan)
        growth = ", ".join(f"{n} partitions {ratio(v / base)}" for n, v in by_count.items() if n)
        lines.append(
            f"- Median planning time {base:.3f} ms unpartitioned; relative to that: {growth or 'n/a'}."
        )
    if len(kept) == 2:
        d, p = kept.set_index("method").loc["DELETE"], kept.set_index("method").loc["DETACH + DROP"]
        lines.append(
            f"- Removing the oldest month ({int(d.rows_removed):,} rows): DELETE {d.ms:.1f} ms and "
            f"{int(d.wal_bytes):,} WAL bytes, leaving {_bytes(d.dead_bytes)} dead; DETACH + DROP "
            f"{p.ms:.1f} ms and {int(p.wal_bytes):,} WAL bytes, nothing left to vacuum: DELETE took "
            f"{ratio(d.ms / max(p.ms, 1e-9))} the time and wrote {ratio(d.wal_bytes / max(p.wal_bytes, 1))} "
            "the WAL of DETACH + DROP."
        )
    return "\n".join(lines)


def _bytes(value: Any) -> str:
    return (
        "unmeasured (no pgstattuple)"
        if value is None or pd.isna(value)
        else f"{int(value):,} bytes"
    )


def live_fingerprints(engine: Engine) -> dict[str, dict[str, Any]]:
    """Fingerprints of the rows as they are now (``bbperf.generate.fingerprint``), not as recorded."""
    with engine.begin() as conn:
        return fingerprints(conn, schema_of(engine))


def point_lookup(engine: Engine) -> WorkloadQuery:
    """An appointment fetched by id alone — the access partitioning on start_time cannot prune."""
    with engine.connect() as conn:
        middle = conn.execute(
            text("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY id) FROM appointments")
        ).scalar()
    return WorkloadQuery(
        "appointment_by_id",
        "one appointment looked up by its id (no partition key in the filter)",
        "SELECT id, start_time, status, price FROM appointments WHERE id = :id",
        {"id": int(middle or 1)},
    )
