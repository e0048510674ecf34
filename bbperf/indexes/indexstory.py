"""What notebook 01 tells the report: its verdict line and the seed summary's index claims, computed
from a ``Benchmark`` and the set's validation (pure: no database)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bbperf.experiment import register
from bbperf.explain import Plan
from bbperf.indexes.index_set_timing import (
    Benchmark,
    composite_results,
    median_speedup_ci,
    times,
    with_ci,
)

EXPERIMENT = register(
    "01_index_benchmark",
    "Index benchmark",
    [
        "indexes.orders_of_magnitude",
        "indexes.migration_applies",
        "indexes.composite_joins",
        "indexes.less_scanned",
        "indexes.holds_as_data_grows",
    ],
)


def verdict(bench: Benchmark, validation: pd.DataFrame, write_cost: pd.DataFrame) -> str:
    """The one line the report's index page shows for this benchmark."""
    server = median_speedup_ci(composite_results(bench), side="server")
    built = bench.applied[bench.applied["result"].isin(["created", "repaired", "exists"])]
    skipped = validation[validation["action"] == "skip"]
    text = (
        f"{len(built)} of {len(bench.index_set)} {bench.index_set.name} indexes build"
        + (f" ({len(skipped)} skipped by validation)" if len(skipped) else "")
        + f"; the composite queries run {with_ci(server)} faster on the server"
    )
    slower = [
        f"{row.table} inserts {times(row.slowdown)} slower" for row in write_cost.itertuples()
    ]
    return text + ("; " + ", ".join(slower) if slower else "") + "."


def _blocks(plan: Plan) -> int | None:
    root = plan.root
    if root.shared_hit_blocks is None and root.shared_read_blocks is None:
        return None
    return int((root.shared_hit_blocks or 0) + (root.shared_read_blocks or 0))


def claims(bench: Benchmark, validation: pd.DataFrame) -> list[dict[str, Any]]:
    """The seed summary's index claims (ids in bbperf/report/claims.toml), checked on this run."""
    composite = composite_results(bench)
    server = median_speedup_ci(composite, side="server")
    hundredfold = sum(1 for r in composite if r.server.speedup >= 100)
    if server.ci_low >= 100:
        magnitude = "confirmed"
    elif server.ci_low > 10:
        magnitude = "partly"
    else:
        magnitude = "refuted"
    skipped = validation[validation["action"] == "skip"]
    joins = [
        r for r in composite
        if any(n.node_type in ("Hash Join", "Nested Loop", "Merge Join") for n in r.before.plan.nodes())
    ]  # fmt: skip
    join_ok = [r for r in joins if r.server.significant and r.server.speedup > 1]
    ratios = [
        b / a
        for r in composite
        if (b := _blocks(r.before.plan)) is not None and (a := _blocks(r.after.plan))
    ]
    rows: list[dict[str, Any]] = [
        {
            "claim": "indexes.orders_of_magnitude",
            "measured": f"median {with_ci(server)} on the server over {server.queries} composite "
            f"queries; {hundredfold} of them ≥ ×100",
            "verdict": magnitude,
            "figure": "composite_median_speedup",
        },
        {
            "claim": "indexes.migration_applies",
            "measured": f"{len(validation) - len(skipped)} of {len(validation)} apply; "
            + ("; ".join(f"{r.index}: {r.status}" for r in skipped.itertuples()) or "none skipped"),
            "verdict": "refuted" if len(skipped) else "confirmed",
        },
    ]
    if joins:
        rows.append({
            "claim": "indexes.composite_joins",
            "measured": f"{len(join_ok)} of {len(joins)} join queries significantly faster: "
            + ", ".join(f"{r.query.name} {times(r.server.speedup)}" for r in joins),
            "verdict": "confirmed" if len(join_ok) == len(joins) else "partly" if join_ok else "refuted",
        })  # fmt: skip
    if ratios:
        median_ratio = float(pd.Series(ratios).median())
        rows.append({
            "claim": "indexes.less_scanned",
            "measured": f"composite queries touch {times(median_ratio)} fewer buffers (median)",
            "verdict": "confirmed" if median_ratio > 1 else "refuted",
        })  # fmt: skip
    return rows
