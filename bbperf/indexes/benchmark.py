"""Before/after benchmark of an index set on workload queries: server time (EXPLAIN ANALYZE) and
client time (``bbperf.explain.measure``), speedups with bootstrap CIs, and how each plan changed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from bbperf.explain import Comparison, Plan, Timing, compare, explain, measure
from bbperf.explain.advisor import Advice, advise
from bbperf.explain.diff import diff
from bbperf.indexes.apply import apply, drop
from bbperf.indexes.model import IndexSet
from bbperf.target import schema_of
from bbperf.workload import WorkloadQuery


@dataclass
class QueryRun:
    """One query measured in one state (``before`` or ``after``)."""

    plan: Plan
    timing: Timing


@dataclass
class QueryResult:
    """A query before and after the set: plans, timings and comparisons (speedup > 1: faster)."""

    query: WorkloadQuery
    indexes: tuple[str, ...]
    before: QueryRun
    after: QueryRun
    advice: Advice | None = None
    server: Comparison = field(init=False)
    client: Comparison = field(init=False)

    def __post_init__(self) -> None:
        self.server = compare(self.before.timing.server_ms or (), self.after.timing.server_ms or ())
        self.client = compare(self.before.timing, self.after.timing)

    @property
    def plan_change(self) -> str:
        changes = diff(self.before.plan, self.after.plan).scan_changes
        return "; ".join(str(c) for c in changes) if changes else "unchanged"

    @property
    def indexes_used(self) -> tuple[str, ...]:
        """Every index the after-plan reads (sorted): the set's, or a key the planner preferred."""
        return tuple(sorted({n.index for n in self.after.plan.nodes() if n.index}))

    @property
    def planner_predicted_speedup(self) -> float:
        """The planner's own forecast: estimated cost before / after the set."""
        after = self.after.plan.total_cost
        return self.before.plan.total_cost / after if after else math.inf


@dataclass
class Benchmark:
    """Every query's result plus what applying the set did."""

    index_set: IndexSet
    results: list[QueryResult]
    applied: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """One row per query: medians before/after (ms), speedups with CI, significance, plan change."""
        rows: list[dict[str, Any]] = []
        for r in self.results:
            rows.append({
                "query": r.query.name,
                "indexes": ", ".join(r.indexes),
                "server_before_ms": r.server.before_median,
                "server_after_ms": r.server.after_median,
                "server_speedup": r.server.speedup,
                "server_ci_low": r.server.ci_low,
                "server_ci_high": r.server.ci_high,
                "client_before_ms": r.client.before_median,
                "client_after_ms": r.client.after_median,
                "client_speedup": r.client.speedup,
                "client_ci_low": r.client.ci_low,
                "client_ci_high": r.client.ci_high,
                "significant": r.server.significant and r.client.significant,
                "indexes_used": ", ".join(r.indexes_used) or "none",
                "plan_change": r.plan_change,
            })  # fmt: skip
        return pd.DataFrame(rows)

    def predictions(self) -> pd.DataFrame:
        """Predicted vs measured speedup per query: the advisor's best candidate (planner cost with
        that one index), the planner's cost ratio for the whole set, and the measured server time."""
        rows: list[dict[str, Any]] = []
        for r in self.results:
            best = r.advice.best if r.advice else None
            rows.append({
                "query": r.query.name,
                "advisor_candidate": str(best.candidate) if best else "none",
                "advisor_predicted": best.predicted_speedup if best else 1.0,
                "planner_predicted": r.planner_predicted_speedup,
                "measured": r.server.speedup,
            })  # fmt: skip
        return pd.DataFrame(rows)

    def result(self, name: str) -> QueryResult:
        return next(r for r in self.results if r.query.name == name)


def composite_queries(index_set: IndexSet, queries: list[WorkloadQuery]) -> list[str]:
    """Queries that a multi-column index of the set is meant to serve."""
    composite = [i for i in index_set.indexes if len(i.columns) > 1]
    return [q.name for q in queries if any(q.name in i.serves for i in composite)]


def median_speedup(values: list[float]) -> float:
    """Median of positive ratios (NaN when empty): the headline 'typical speedup'."""
    clean = sorted(v for v in values if v and math.isfinite(v) and v > 0)
    return float(pd.Series(clean).median()) if clean else math.nan


def _measure_all(
    engine: Engine, queries: list[WorkloadQuery], rounds: int, warmup: int
) -> list[QueryRun]:
    runs = []
    for q in queries:
        plan = explain(engine, q.sql, q.params)
        timing = measure(
            engine, q.sql, q.params, rounds=rounds, warmup=warmup, server_time=True, label=q.name
        )
        runs.append(QueryRun(plan, timing))
    return runs


def run_benchmark(
    engine: Engine,
    index_set: IndexSet,
    queries: list[WorkloadQuery],
    *,
    rounds: int = 15,
    warmup: int = 3,
    advisor: bool = True,
) -> Benchmark:
    """Measure ``queries`` without the set's indexes, apply the set, measure again.

    Leaves the set applied (``drop`` it to return to the keys-only state). Tables are ANALYZEd first
    so both states plan from the same statistics. ``rounds`` timed runs after ``warmup`` per state.
    ``advisor`` also asks ``bbperf.explain.advisor.advise`` (before the set) for its best index.
    """
    schema = schema_of(engine)
    drop(engine, index_set)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in sorted({i.table for i in index_set.indexes}):
            conn.execute(text(f"ANALYZE {schema}.{table}"))
    before = _measure_all(engine, queries, rounds, warmup)
    advice = [
        advise(engine, q.sql, q.params, max_candidates=3) if advisor else None for q in queries
    ]
    applied = apply(engine, index_set)
    after = _measure_all(engine, queries, rounds, warmup)
    results = [
        QueryResult(q, tuple(i.name for i in index_set.serving(q.name)), b, a, adv)
        for q, b, a, adv in zip(queries, before, after, advice, strict=True)
    ]
    return Benchmark(index_set, results, applied)


def conclusion(bench: Benchmark, validation: pd.DataFrame, write_cost: pd.DataFrame) -> str:
    """A short verdict in Markdown, every number computed from the benchmark's own results."""
    table = bench.table().set_index("query")
    composite = composite_queries(bench.index_set, [r.query for r in bench.results])
    server = median_speedup(list(table.loc[composite, "server_speedup"])) if composite else math.nan
    client = median_speedup(list(table.loc[composite, "client_speedup"])) if composite else math.nan
    faster = table[table["significant"] & (table["server_speedup"] > 1)]
    flat = [q for q in table.index if q not in faster.index]
    skipped = validation[validation["action"] == "skip"]
    built = bench.applied[bench.applied["result"].isin(["created", "repaired", "exists"])]
    lines = [
        f"- **{len(composite)} queries served by the composite indexes**: median speedup "
        f"×{server:,.0f} in server time (×{client:,.0f} end to end, client clock).",
        f"- {len(faster)} of {len(table)} queries got significantly faster; "
        + (f"no measurable gain for {', '.join(flat)}." if flat else "every query improved."),
        f"- {len(built)} of {len(bench.index_set)} indexes built; skipped by validation: "
        + ("; ".join(f"{r.index} ({r.status})" for r in skipped.itertuples()) or "none")
        + ".",
    ]
    for row in write_cost.itertuples():
        lines.append(
            f"- Write cost on {row.table}: {row.set_indexes} extra indexes make a batch INSERT "
            f"×{row.slowdown:.2f} slower ({row.without_rows_per_s:,.0f} → "
            f"{row.with_rows_per_s:,.0f} rows/s)."
        )
    return "\n".join(lines)
