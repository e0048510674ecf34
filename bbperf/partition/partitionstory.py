"""What notebook 07 tells the report: the verdict line and the road map's partitioning claim,
computed from ``bbperf.partition.effects``'s before/after table, planning study and retention frame
(pure: numbers in, sentences out)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bbperf.experiment import ci_verdict, register, times, times_ci
from bbperf.explain.timingstats import median_speedup_across

EXPERIMENT = register("07_partitioning", "Partitioning", ["roadmap.partitioning_time_ranges"])


@dataclass(frozen=True)
class PrunedSpeedup:
    """Median over the queries that pruned partitions of their server-time speedup (before ÷
    after), with its bootstrap 95 % CI; ``queries`` is how many there were."""

    speedup: float
    ci_low: float
    ci_high: float
    queries: int


def pruned_speedup(
    table: pd.DataFrame, samples: Mapping[str, tuple[Sequence[float], Sequence[float]]]
) -> PrunedSpeedup:
    """From ``before_after``'s table and each query's (before, after) server times in ms."""
    names = [q for q in table.loc[table["pruned"], "query"] if q in samples]
    pairs = [samples[q] for q in names if len(samples[q][0]) >= 2 and len(samples[q][1]) >= 2]
    if not pairs:
        return PrunedSpeedup(math.nan, math.nan, math.nan, 0)
    point, low, high = median_speedup_across(pairs)
    return PrunedSpeedup(point, low, high, len(pairs))


def _faster(ratio: float) -> str:
    """×1.34 faster, ×1.39 slower: a ratio below 1 is said the other way round."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "n/a"
    return f"{times(ratio)} faster" if ratio >= 1 else f"{times(1 / ratio)} slower"


def _planning_growth(planning: pd.DataFrame) -> tuple[int, float] | None:
    """(most partitions, median planning time there ÷ unpartitioned)."""
    if not len(planning):
        return None
    by_count = planning.groupby("partitions")["planning_ms"].median()
    if 0 not in by_count.index or len(by_count) < 2 or not by_count[0] > 0:
        return None
    most = int(by_count.index.max())
    return most, float(by_count[most] / by_count[0])


def verdict(
    table: pd.DataFrame, pruned: PrunedSpeedup, planning: pd.DataFrame, kept: pd.DataFrame
) -> str:
    """Notebook 07's line: the pruned (time-range) queries' median server-time speedup with its CI,
    the queries that could not prune, planning time at the most partitions, retention's WAL."""
    if pruned.queries:
        parts = [
            f"After partitioning, the {pruned.queries} queries whose plans pruned partitions "
            + (
                f"ran {_faster(pruned.speedup)}"
                if pruned.ci_low > 1 or pruned.ci_high < 1
                else "showed no measurable change"
            )
            + f" on the server (median speedup {times(pruned.speedup)}, 95 % CI "
            f"{times(pruned.ci_low)} – {times(pruned.ci_high)})"
        ]
    else:
        parts = ["No query's plan pruned partitions"]
    unpruned = table[~table["pruned"]]
    if len(unpruned):
        parts.append(
            f"the {len(unpruned)} that read every partition ran "
            f"{_faster(float(unpruned['speedup'].median()))} (median)"
        )
    growth = _planning_growth(planning)
    if growth:
        parts.append(f"planning took {times(growth[1])} as long at {growth[0]} partitions")
    if len(kept) == 2:
        by = kept.set_index("method")
        delete, drop = by.loc["DELETE"], by.loc["DETACH + DROP"]
        ratio = delete.wal_bytes / max(drop.wal_bytes, 1)
        parts.append(
            f"dropping the oldest month wrote {times(ratio)} less WAL than DELETE"
            if ratio >= 1
            else f"dropping the oldest month wrote {times(1 / ratio)} more WAL than DELETE"
        )
    return "; ".join(parts) + "."


def claims(table: pd.DataFrame, pruned: PrunedSpeedup) -> list[dict[str, Any]]:
    """The road map's "partition the large tables" claim, checked on the time-range queries."""
    if not pruned.queries:
        return []
    faster = table[table["pruned"] & table["significant"] & (table["speedup"] > 1)]
    verdict_word = ci_verdict(pruned.ci_low, pruned.ci_high)
    if verdict_word == "partly" and not len(faster):
        verdict_word = "refuted"
    return [
        {
            "claim": "roadmap.partitioning_time_ranges",
            "measured": f"median {times_ci(pruned.speedup, pruned.ci_low, pruned.ci_high)} over "
            f"{pruned.queries} queries that pruned partitions, {len(faster)} of them significantly faster",
            "verdict": verdict_word,
            "figure": "pruned_queries_median_speedup",
        }
    ]
