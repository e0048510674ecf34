"""The maintenance checklist from the database: index usage, bloat, table statistics, cache, advice.

Readers (``index_usage``, ``table_stats``, ``bloat``, ``cache_hits``, ``top_statements``) query the
server and return DataFrames; ``recommendations`` is pure and turns them into actions with the SQL.
``verdict`` and ``claims`` (pure) are what notebook 04 tells the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from bbperf.catalog import extension_schema
from bbperf.experiment import register
from bbperf.humanize import format_value
from bbperf.sql import statement_text
from bbperf.sqlnames import qualified, qualified_if_needed
from bbperf.target import schema_of

STALE_MODIFIED_SHARE = 0.10  # ANALYZE when more than this share of rows changed since the last one
DEAD_TUPLE_SHARE = 0.20  # VACUUM when dead tuples exceed this share of live + dead
LEAF_DENSITY_MIN_PCT = 50.0  # a b-tree whose leaves are emptier than this is worth a REINDEX
MIN_BLOAT_BYTES = 1 << 20  # ignore bloat in indexes smaller than 1 MiB: REINDEX would win nothing
CACHE_HIT_MIN = 0.90

EXPERIMENT = register(
    "04_health_maintenance",
    "Health and maintenance",
    ["monitoring.health_detailed", "roadmap.slow_query_alerts"],
)


def _frame(engine: Engine, sql: str, **params: object) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(text(sql), params)
        return pd.DataFrame(result.mappings().all(), columns=list(result.keys()))


def index_usage(engine: Engine) -> pd.DataFrame:
    """One row per index: scans, tuples read, size, whether it backs a constraint, whether unused."""
    schema = schema_of(engine)
    df = _frame(
        engine,
        """
        SELECT s.relname AS table_name, s.indexrelname AS index_name, s.idx_scan AS scans,
               s.idx_tup_read AS tuples_read, pg_relation_size(s.indexrelid) AS size_bytes,
               (i.indisunique OR i.indisprimary) AS enforces_constraint,
               pg_get_indexdef(s.indexrelid) AS definition
        FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
        WHERE s.schemaname = :schema ORDER BY s.relname, s.indexrelname""",
        schema=schema,
    )
    df["unused"] = (df["scans"] == 0) & ~df["enforces_constraint"].astype(bool)
    return df


def table_stats(engine: Engine) -> pd.DataFrame:
    """Live and dead tuples, changes since ANALYZE, last (auto)analyze and (auto)vacuum per table."""
    schema = schema_of(engine)
    return _frame(
        engine,
        """
        SELECT relname AS table_name, n_live_tup AS live_tuples, n_dead_tup AS dead_tuples,
               n_mod_since_analyze AS modified_since_analyze, seq_scan, idx_scan,
               greatest(last_analyze, last_autoanalyze) AS last_analyzed,
               greatest(last_vacuum, last_autovacuum) AS last_vacuumed,
               pg_total_relation_size(relid) AS total_bytes
        FROM pg_stat_user_tables WHERE schemaname = :schema ORDER BY relname""",
        schema=schema,
    )


@dataclass(frozen=True)
class Bloat:
    """pgstattuple's view of tables (dead and free space) and b-tree indexes (leaf density)."""

    tables: pd.DataFrame
    indexes: pd.DataFrame
    available: bool


def bloat(engine: Engine) -> Bloat:
    """Exact bloat via pgstattuple (reads every page: seconds per GB); empty when it is not installed."""
    schema = schema_of(engine)
    ext = extension_schema(engine, "pgstattuple")
    if ext is None:
        return Bloat(pd.DataFrame(), pd.DataFrame(), available=False)
    tables = _frame(
        engine,
        f"""
        SELECT c.relname AS table_name, t.table_len AS size_bytes, t.dead_tuple_percent,
               t.free_percent, t.tuple_count AS tuples
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
             LATERAL {qualified(ext, "pgstattuple")}(c.oid) t
        WHERE n.nspname = :schema AND c.relkind = 'r' ORDER BY c.relname""",
        schema=schema,
    )
    indexes = _frame(
        engine,
        f"""
        SELECT t.relname AS table_name, c.relname AS index_name, s.index_size AS size_bytes,
               s.avg_leaf_density, s.leaf_fragmentation
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_am am ON am.oid = c.relam,
             LATERAL {qualified(ext, "pgstatindex")}(c.oid) s
        WHERE n.nspname = :schema AND am.amname = 'btree' ORDER BY t.relname, c.relname""",
        schema=schema,
    )
    return Bloat(tables, indexes, available=True)


def cache_hits(engine: Engine) -> pd.DataFrame:
    """Per table: heap and index blocks found in shared buffers versus read, and the hit ratios."""
    schema = schema_of(engine)
    df = _frame(
        engine,
        """
        SELECT relname AS table_name, heap_blks_hit, heap_blks_read,
               coalesce(idx_blks_hit, 0) AS idx_blks_hit, coalesce(idx_blks_read, 0) AS idx_blks_read
        FROM pg_statio_user_tables WHERE schemaname = :schema ORDER BY relname""",
        schema=schema,
    )
    for kind in ("heap", "idx"):
        hit, read = df[f"{kind}_blks_hit"].astype(float), df[f"{kind}_blks_read"].astype(float)
        df[f"{kind}_hit_ratio"] = (hit / (hit + read)).where(hit + read > 0)
    return df


def overall_hit_ratio(cache: pd.DataFrame) -> float | None:
    """Heap + index blocks hit over all blocks touched, across tables (pure)."""
    hit = float(cache["heap_blks_hit"].sum() + cache["idx_blks_hit"].sum()) if len(cache) else 0.0
    read = (
        float(cache["heap_blks_read"].sum() + cache["idx_blks_read"].sum()) if len(cache) else 0.0
    )
    return hit / (hit + read) if hit + read else None


def top_statements(engine: Engine, limit: int = 10) -> pd.DataFrame:
    """Statements of this database by total execution time (pg_stat_statements); empty without it."""
    ext = extension_schema(engine, "pg_stat_statements")
    if ext is None:
        return pd.DataFrame()
    frame = _frame(
        engine,
        f"""
        SELECT s.calls, round(s.total_exec_time::numeric, 2) AS total_ms,
               round(s.mean_exec_time::numeric, 3) AS mean_ms, s.rows, s.query
        FROM {qualified(ext, "pg_stat_statements")} s
        WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY s.total_exec_time DESC LIMIT :limit""",
        limit=limit,
    )
    frame["query"] = [statement_text(q, engine.url, 120) for q in frame["query"]]
    return frame


def recommendations(
    tables: pd.DataFrame,
    indexes: pd.DataFrame,
    index_bloat: pd.DataFrame | None = None,
    hit_ratio: float | None = None,
    schema: str = "bbperf",
) -> pd.DataFrame:
    """Actions with their reason and SQL (pure): ANALYZE stale tables, VACUUM dead tuples, DROP unused
    indexes, REINDEX bloated ones, and a note on a low cache hit ratio."""
    rows: list[dict[str, str]] = []
    for t in tables.itertuples():
        live, changed = int(t.live_tuples or 0), int(t.modified_since_analyze or 0)
        target = qualified_if_needed(schema, t.table_name)
        if pd.isna(t.last_analyzed) and live + changed > 0:
            rows.append(_rec("analyze", target, "never analyzed", f"ANALYZE {target};"))
        elif changed > STALE_MODIFIED_SHARE * max(live, 1):
            rows.append(
                _rec(
                    "analyze",
                    target,
                    f"{changed:,} rows changed since the last ANALYZE "
                    f"({changed / max(live, 1):.0%} of {live:,})",
                    f"ANALYZE {target};",
                )
            )
        dead = int(t.dead_tuples or 0)
        if dead and dead / (live + dead) > DEAD_TUPLE_SHARE:
            rows.append(
                _rec(
                    "vacuum",
                    target,
                    f"{dead:,} dead tuples ({dead / (live + dead):.0%})",
                    f"VACUUM (ANALYZE) {target};",
                )
            )
    for i in indexes[indexes["unused"]].itertuples() if len(indexes) else ():
        rows.append(
            _rec(
                "drop index",
                qualified_if_needed(schema, i.index_name),
                f"never scanned since statistics were reset; {int(i.size_bytes):,} bytes",
                f"DROP INDEX CONCURRENTLY {qualified_if_needed(schema, i.index_name)};",
            )
        )
    for b in index_bloat.itertuples() if index_bloat is not None and len(index_bloat) else ():
        if (
            int(b.size_bytes) >= MIN_BLOAT_BYTES
            and float(b.avg_leaf_density) < LEAF_DENSITY_MIN_PCT
        ):
            rows.append(
                _rec(
                    "reindex",
                    qualified_if_needed(schema, b.index_name),
                    f"leaf density {float(b.avg_leaf_density):.0f}% of {int(b.size_bytes):,} bytes",
                    f"REINDEX INDEX CONCURRENTLY {qualified_if_needed(schema, b.index_name)};",
                )
            )
    if hit_ratio is not None and hit_ratio < CACHE_HIT_MIN:
        rows.append(
            _rec(
                "tune memory",
                "shared_buffers",
                f"cache hit ratio {hit_ratio:.1%} is under {CACHE_HIT_MIN:.0%}",
                "-- raise shared_buffers or reduce the working set",
            )
        )
    return pd.DataFrame(rows, columns=["action", "target", "reason", "sql"])


def _rec(action: str, target: str, reason: str, sql: str) -> dict[str, str]:
    return {"action": action, "target": target, "reason": reason, "sql": sql}


def index_scans(engine: Engine) -> pd.DataFrame:
    """A snapshot of every index's cumulative scans in bbperf's schema, to diff with a later one.

    Backends flush their counters at transaction end at most once a second (and when idle or
    exiting): dispose of the workload's pool before the second snapshot so no scans are missing.
    """
    return _frame(
        engine,
        """
        SELECT s.relname AS table_name, s.indexrelname AS index_name, s.idx_scan AS scans,
               s.idx_tup_read AS tuples_read, pg_relation_size(s.indexrelid) AS size_bytes,
               (i.indisunique OR i.indisprimary) AS enforces_constraint
        FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
        WHERE s.schemaname = :schema ORDER BY s.relname, s.indexrelname""",
        schema=schema_of(engine),
    )


def index_usage_window(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Scans each index gained between two ``index_scans`` snapshots, and a verdict (pure).

    Verdicts: ``used``; ``unused in window`` (existed for the whole window, no scan, enforces no
    constraint: a candidate to drop if the window was representative); ``enforces a constraint``;
    ``new in window`` (built after the first snapshot: too young to judge, never "unused").
    """
    keys = ["table_name", "index_name"]
    merged = after.merge(
        before[[*keys, "scans", "tuples_read"]], on=keys, how="left", suffixes=("", "_before")
    )
    new = merged["scans_before"].isna()
    merged["scans_gained"] = (merged["scans"] - merged["scans_before"].fillna(0)).astype(int)
    merged["tuples_read_gained"] = (
        merged["tuples_read"] - merged["tuples_read_before"].fillna(0)
    ).astype(int)
    constraint = merged["enforces_constraint"].astype(bool)
    merged["verdict"] = "unused in window"
    merged.loc[constraint, "verdict"] = "enforces a constraint"
    merged.loc[new, "verdict"] = "new in window"
    merged.loc[merged["scans_gained"] > 0, "verdict"] = "used"
    columns = [*keys, "scans_gained", "tuples_read_gained", "size_bytes", "verdict"]
    return merged[columns].sort_values(["scans_gained", *keys], ascending=[False, True, True])


# -- what notebook 04 tells the report (pure) ---------------------------------------------------
HEALTH_SECTIONS = ("database", "system", "process", "connection_pool")


def calibrated_threshold_ms(
    quiet: pd.DataFrame, factor: float = 5.0, floor_ms: float = 2.0
) -> float:
    """An alert threshold for this dataset and machine: ``factor`` × the slowest statement's p95
    estimate (or mean) in a quiet window, and at least ``floor_ms``. ``quiet`` is the alerts of an
    ``alert_timeline`` window run with a threshold near zero, so every statement reports its figures."""
    if not len(quiet):
        return floor_ms
    slowest = float(quiet[["mean_ms", "p95_estimate_ms"]].max(axis=None))
    return max(floor_ms, factor * slowest)


@dataclass(frozen=True)
class AlertCheck:
    """How the alert timeline treated its deliberately slow query: it ran in ``bad_window`` (1-based)
    of ``windows``; it alerted in ``alerted_windows``; ``other_alerts`` came from the rest."""

    windows: int
    bad_window: int
    alerted_windows: tuple[int, ...]
    other_alerts: int
    threshold_ms: float

    @classmethod
    def from_alerts(
        cls, alerts: pd.DataFrame, marker: str, windows: int, bad_window: int, threshold_ms: float
    ) -> AlertCheck:
        """From ``alert_timeline``'s alerts: the bad query is the one whose text holds ``marker``."""
        bad = alerts["query"].astype(str).str.contains(marker, regex=False)
        return cls(
            windows,
            bad_window,
            tuple(sorted({int(w) for w in alerts.loc[bad, "window"]})),
            int((~bad).sum()),
            threshold_ms,
        )

    @property
    def caught(self) -> bool:
        return self.bad_window in self.alerted_windows

    @property
    def clean(self) -> bool:
        """Caught in its own window only, and nothing else alerted."""
        return self.alerted_windows == (self.bad_window,) and self.other_alerts == 0


def _health_words(health: dict[str, Any]) -> str:
    checks = health.get("checks") or {}
    return ", ".join(f"{name} {checks[name].get('status', '?')}" for name in checks) or "no checks"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def verdict(
    health: dict[str, Any],
    hit_ratio: float | None,
    alerts: AlertCheck,
    window_review: pd.DataFrame,
) -> str:
    """Notebook 04's line: health status, whether the slow query's alert came in its own window
    (and what else alerted), the cache hit ratio and index use over the workload window. Counters
    the run itself makes (unused indexes, the actions they call for) are left out."""
    if alerts.caught:
        alerted = (
            f"the deliberately slow query alerted in window {alerts.bad_window} of "
            f"{alerts.windows}, the one it ran in"
            + (f" (and in windows {', '.join(map(str, alerts.alerted_windows))})"
               if len(alerts.alerted_windows) > 1 else "")
        )  # fmt: skip
    else:
        alerted = (
            f"the deliberately slow query did NOT alert (it ran in window {alerts.bad_window})"
        )
    counts = window_review["verdict"].value_counts() if len(window_review) else pd.Series()
    judged = int(counts.get("used", 0) + counts.get("unused in window", 0))
    return (
        f"Health {health.get('status', 'unknown')} ({_health_words(health)}); {alerted}, with "
        f"{_count(alerts.other_alerts, 'other alert')} at {format_value(alerts.threshold_ms, 'ms')}; "
        "cache hit ratio "
        + (
            format_value(hit_ratio, "ratio")
            if hit_ratio is not None
            else "not measured (no blocks read)"
        )
        + f"; {int(counts.get('used', 0))} of {judged} indexes judged over the workload window were "
        "used."
    )


def claims(health: dict[str, Any], alerts: AlertCheck) -> list[dict[str, Any]]:
    """The seed's detailed-health claim and the road map's slow-query alerts, checked on this run."""
    checks = health.get("checks") or {}
    present = [s for s in HEALTH_SECTIONS if s in checks]
    database_ok = (checks.get("database") or {}).get("status") == "healthy"
    if len(present) == len(HEALTH_SECTIONS) and database_ok:
        health_verdict = "confirmed"
    else:
        health_verdict = "partly" if present else "refuted"
    missing = [s for s in HEALTH_SECTIONS if s not in checks]
    return [
        {
            "claim": "monitoring.health_detailed",
            "measured": f"status {health.get('status', 'unknown')}; {_health_words(health)}"
            + (f"; missing: {', '.join(missing)}" if missing else ""),
            "verdict": health_verdict,
        },
        {
            "claim": "roadmap.slow_query_alerts",
            "measured": f"a slow query run in window {alerts.bad_window} of {alerts.windows} alerted "
            + (
                f"in window{'s' if len(alerts.alerted_windows) > 1 else ''} "
                f"{', '.join(map(str, alerts.alerted_windows))}; "
                if alerts.alerted_windows
                else "in no window; "
            )
            + f"{_count(alerts.other_alerts, 'other alert')} at "
            f"{format_value(alerts.threshold_ms, 'ms')}",
            "verdict": "confirmed" if alerts.clean else "partly" if alerts.caught else "refuted",
            "figure": "bad_query_alert_windows",
        },
    ]
