"""Before/after benchmark of an index set on workload queries: server time (EXPLAIN ANALYZE) and
client time (``bbperf.explain.measure``), speedups with bootstrap CIs, and how each plan changed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Engine, text

from bbperf.catalog import extension_schema
from bbperf.explain import Comparison, Plan, Timing, compare, explain, measure
from bbperf.explain.diff import diff
from bbperf.explain.index_advice import Advice, advise
from bbperf.explain.timingstats import relative_ci_half_width
from bbperf.humanize import format_value
from bbperf.indexes.apply import apply, drop, start_trial
from bbperf.indexes.indexdefs import IndexSet
from bbperf.sqlnames import qualified
from bbperf.target import is_embedded, schema_of
from bbperf.workload import WorkloadQuery

# Rounds sized to a CI width: stop once the median server time is known to ±10 % (95 % CI).
DEFAULT_CI_WIDTH = 0.10
MIN_ROUNDS = 5
# Above this many rows in a table, "auto" skips the advisor unless HypoPG is there.
ADVISOR_MAX_ROWS = 200_000


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
                "server_significant": r.server.significant,
                "client_significant": r.client.significant,
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
                "advisor_candidate": str(best.candidate) if best else (
                    "none" if r.advice else "not asked"),
                "advisor_predicted": best.predicted_speedup if best else (
                    1.0 if r.advice else None),
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


@dataclass(frozen=True)
class MedianSpeedup:
    """The median speedup over several queries, with a bootstrap CI (each query's samples resampled)."""

    speedup: float
    ci_low: float
    ci_high: float
    queries: int
    rounds: int

    @property
    def significant(self) -> bool:
        """The whole interval lies on one side of ×1."""
        return self.ci_low > 1.0 or self.ci_high < 1.0


def median_speedup_ci(
    results: list[QueryResult],
    *,
    side: Literal["server", "client"] = "server",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> MedianSpeedup:
    """Median over ``results`` of median(before) / median(after) in ``side`` time, with a percentile
    bootstrap CI: each round resamples every query's before and after samples, recomputes each
    query's ratio and takes the median across queries."""
    import numpy as np

    if not results:
        return MedianSpeedup(math.nan, math.nan, math.nan, 0, 0)
    rng = np.random.default_rng(seed)
    boot = np.empty((len(results), n_boot))
    point = []
    rounds = 0
    for i, r in enumerate(results):
        pick = (lambda run: run.timing.server_ms or ()) if side == "server" else (
            lambda run: run.timing.samples_ms)  # fmt: skip
        before, after = np.asarray(pick(r.before), float), np.asarray(pick(r.after), float)
        rounds = max(rounds, before.size, after.size)
        point.append(np.median(before) / np.median(after))
        med_b = np.median(rng.choice(before, (n_boot, before.size)), axis=1)
        med_a = np.median(rng.choice(after, (n_boot, after.size)), axis=1)
        boot[i] = med_b / med_a
    medians = np.median(boot, axis=0)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(medians, [tail, 100.0 - tail])
    return MedianSpeedup(float(np.median(point)), float(low), float(high), len(results), rounds)


def times(ratio: float) -> str:
    """×522, ×14.2, ×1.46: three significant digits, so ×1.46 never reads as ×1."""
    return format_value(ratio, "x")


def median_speedup(values: list[float]) -> float:
    """Median of positive ratios (NaN when empty): the headline 'typical speedup'."""
    clean = sorted(v for v in values if v and math.isfinite(v) and v > 0)
    return float(pd.Series(clean).median()) if clean else math.nan


def measure_to_width(
    engine: Engine,
    query: WorkloadQuery,
    *,
    max_rounds: int,
    warmup: int,
    ci_width: float = DEFAULT_CI_WIDTH,
    min_rounds: int = MIN_ROUNDS,
) -> Timing:
    """Rounds sized to a CI width: ``min_rounds`` first, then batches until the server-time median's
    95 % CI is within ±``ci_width`` (a fraction) or ``max_rounds`` is reached. 0 → always ``max_rounds``.
    """
    first = min(max_rounds, max(min_rounds, 2)) if ci_width > 0 else max_rounds
    timing = measure(
        engine, query.sql, query.params, rounds=first, warmup=warmup, server_time=True,
        label=query.name,
    )  # fmt: skip
    while (
        len(timing.samples_ms) < max_rounds
        and relative_ci_half_width(timing.server_ms or ()) > ci_width
    ):
        more = measure(
            engine, query.sql, query.params, server_time=True, label=query.name, warmup=0,
            rounds=min(min_rounds, max_rounds - len(timing.samples_ms)),
        )  # fmt: skip
        timing = replace(
            timing,
            samples_ms=timing.samples_ms + more.samples_ms,
            server_ms=(timing.server_ms or ()) + (more.server_ms or ()),
        )
    return timing


def advisor_is_cheap(engine: Engine, index_set: IndexSet) -> bool:
    """Whether what-if advice costs little here: HypoPG is installed (hypothetical indexes), or this
    is bbperf's own server and the set's tables hold at most ``ADVISOR_MAX_ROWS`` rows (without HypoPG
    each candidate index is built for real inside a rolled-back transaction: about a second per
    candidate at 1 M rows — and never on a server bbperf does not own)."""
    tables = sorted({i.table for i in index_set.indexes})
    schema = schema_of(engine)
    with engine.connect() as conn:
        if extension_schema(conn, "hypopg"):
            return True
        if not is_embedded(engine):
            return False
        largest = conn.execute(
            text(
                "SELECT coalesce(max(c.reltuples), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relname = ANY(:tables)"
            ),
            {"schema": schema, "tables": tables},
        ).scalar_one()
    return float(largest) <= ADVISOR_MAX_ROWS


def _measure_all(
    engine: Engine, queries: list[WorkloadQuery], rounds: int, warmup: int, ci_width: float
) -> list[QueryRun]:
    runs = []
    for q in queries:
        plan = explain(engine, q.sql, q.params)
        timing = measure_to_width(engine, q, max_rounds=rounds, warmup=warmup, ci_width=ci_width)
        runs.append(QueryRun(plan, timing))
    return runs


def run_benchmark(
    engine: Engine,
    index_set: IndexSet,
    queries: list[WorkloadQuery],
    *,
    rounds: int = 15,
    warmup: int = 3,
    ci_width: float = DEFAULT_CI_WIDTH,
    advisor: bool | Literal["auto"] = True,
) -> Benchmark:
    """Measure ``queries`` without the set's indexes, apply the set, measure again.

    Leaves the set applied (``drop`` it to return to the keys-only state). Tables are ANALYZEd first
    so both states plan from the same statistics. Per query and state: ``warmup`` untimed runs, then
    timed rounds until the server median's 95 % CI is within ±``ci_width`` (at least 5, at most
    ``rounds``; ``ci_width=0`` runs exactly ``rounds``).
    ``advisor`` also asks ``bbperf.explain.index_advice.advise`` (before the set) for its best index;
    ``"auto"`` asks only when that is cheap (see ``advisor_is_cheap``).
    """
    schema = schema_of(engine)
    drop(engine, index_set)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in sorted({i.table for i in index_set.indexes}):
            conn.execute(text(f"ANALYZE {qualified(schema, table)}"))
    before = _measure_all(engine, queries, rounds, warmup, ci_width)
    wanted = advisor_is_cheap(engine, index_set) if advisor == "auto" else advisor
    advice = [
        advise(engine, q.sql, q.params, max_candidates=3) if wanted else None for q in queries
    ]
    start_trial(engine, index_set, "the index benchmark (notebook 01)")
    applied = apply(engine, index_set)
    after = _measure_all(engine, queries, rounds, warmup, ci_width)
    results = [
        QueryResult(q, tuple(i.name for i in index_set.serving(q.name)), b, a, adv)
        for q, b, a, adv in zip(queries, before, after, advice, strict=True)
    ]
    return Benchmark(index_set, results, applied)


def composite_results(bench: Benchmark) -> list[QueryResult]:
    """The results of the queries a composite (multi-column) index of the set serves."""
    names = set(composite_queries(bench.index_set, [r.query for r in bench.results]))
    return [r for r in bench.results if r.query.name in names]


def with_ci(m: MedianSpeedup) -> str:
    return f"{times(m.speedup)} (95 % CI {times(m.ci_low)} – {times(m.ci_high)})"


def conclusion(bench: Benchmark, validation: pd.DataFrame, write_cost: pd.DataFrame) -> str:
    """A short verdict in Markdown, every number computed from the benchmark's own results."""
    table = bench.table().set_index("query")
    composite = composite_results(bench)
    server = median_speedup_ci(composite, side="server")
    client = median_speedup_ci(composite, side="client")
    faster = table[table["server_significant"] & (table["server_speedup"] > 1)]
    flat = [q for q in table.index if q not in faster.index]
    client_faster = table[table["client_significant"] & (table["client_speedup"] > 1)]
    skipped = validation[validation["action"] == "skip"]
    built = bench.applied[bench.applied["result"].isin(["created", "repaired", "exists"])]
    lines = [
        f"- **{len(composite)} queries served by the composite indexes**: median speedup "
        f"{with_ci(server)} in server time, {with_ci(client)} end to end (client clock).",
        f"- {len(faster)} of {len(table)} queries got significantly faster on the server, "
        f"{len(client_faster)} end to end; "
        + (
            f"no measurable server-side gain for {', '.join(flat)}."
            if flat
            else "every query improved."
        ),
        f"- {len(built)} of {len(bench.index_set)} indexes built; skipped by validation: "
        + ("; ".join(f"{r.index} ({r.status})" for r in skipped.itertuples()) or "none")
        + ".",
    ]
    for row in write_cost.itertuples():
        lines.append(
            f"- Write cost on {row.table}: {row.set_indexes} extra indexes make a batch INSERT "
            f"{times(row.slowdown)} slower ({row.without_rows_per_s:,.0f} → "
            f"{row.with_rows_per_s:,.0f} rows/s)."
        )
    return "\n".join(lines)
