"""The cache experiment's arithmetic, pure: Zipf popularity, per-policy summaries, the conclusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bbperf.explain.timingstats import bootstrap_ratio_ci


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    """P(rank k) ∝ k^−exponent for k = 1..n, normalised (exponent 0 is uniform)."""
    if n < 1:
        raise ValueError("zipf_weights needs at least one item")
    if exponent < 0:
        raise ValueError(f"Zipf exponent {exponent} must be ≥ 0")
    weights = np.arange(1, n + 1, dtype=float) ** -exponent
    return weights / weights.sum()


@dataclass(frozen=True)
class Read:
    """One read of the experiment: the cached path's time and outcome, and the database variants'
    times for the same barber at the same moment (``before`` doubling as the staleness check)."""

    policy: str
    user_id: int
    at_s: float
    hit: bool
    cached_ms: float
    stale: bool
    before_ms: float
    after_equivalent_ms: float


def reads_frame(reads: Sequence[Read]) -> pd.DataFrame:
    return pd.DataFrame([r.__dict__ for r in reads])


def latency_frame(reads: pd.DataFrame) -> pd.DataFrame:
    """Long form for plotting: one row per (policy, path, ms), paths ``cached hit``, ``cached miss``,
    ``before`` and ``after_equivalent``."""
    cached = reads.assign(path=np.where(reads["hit"], "cached hit", "cached miss"))
    parts = [cached[["policy", "path", "cached_ms"]].rename(columns={"cached_ms": "ms"})]
    for column in ("before_ms", "after_equivalent_ms"):
        part = reads[["policy", column]].rename(columns={column: "ms"})
        parts.append(part.assign(path=column.removesuffix("_ms")))
    return pd.concat(parts, ignore_index=True)[["policy", "path", "ms"]]


def _median(values: pd.Series) -> float:
    return float(values.median()) if len(values) else float("nan")


def summarize_policy(reads: pd.DataFrame, writes: int, memory_bytes: Sequence[int]) -> dict:
    """One policy's figures: hit ratio, stale reads, hit/miss medians next to the database
    variants', hit speed-up over before with its CI, writes seen, memory per cached barber."""
    hits = reads[reads["hit"]]
    misses = reads[~reads["hit"]]
    row = {
        "reads": len(reads),
        "hit_ratio": float(reads["hit"].mean()) if len(reads) else float("nan"),
        "stale_reads": int(reads["stale"].sum()),
        "stale_pct": float(reads["stale"].mean() * 100) if len(reads) else float("nan"),
        "hit_ms": _median(hits["cached_ms"]),
        "hit_p95_ms": float(hits["cached_ms"].quantile(0.95)) if len(hits) else float("nan"),
        "miss_ms": _median(misses["cached_ms"]),
        "before_ms": _median(reads["before_ms"]),
        "after_equivalent_ms": _median(reads["after_equivalent_ms"]),
        "cached_ms": _median(reads["cached_ms"]),
        "writes": writes,
        "memory_bytes_per_barber": float(np.median(memory_bytes)) if memory_bytes else float("nan"),
    }
    speedup = low = high = float("nan")
    if len(hits) >= 2 and len(reads) >= 2:
        # The bootstrap CI alone (numpy only): a gap of this size needs no U test beside it.
        speedup = row["before_ms"] / row["hit_ms"]
        low, high = bootstrap_ratio_ci(reads["before_ms"], hits["cached_ms"], n_boot=2000)
    row.update(hit_speedup=speedup, hit_speedup_ci_low=low, hit_speedup_ci_high=high)
    return row


def conclusion(summary: pd.DataFrame) -> str:
    """Sentences drawn from the per-policy summary (indexed by policy name)."""
    lines: list[str] = []
    for policy, row in summary.iterrows():
        if not row["hit_ratio"] > 0:
            lines.append(
                f"{policy}: no read hit the cache in {int(row['reads'])} reads (a miss took "
                f"{row['miss_ms']:.3f} ms): run longer, or with fewer barbers or writes, to see hits."
            )
            continue
        lines.append(
            f"{policy}: {row['hit_ratio']:.0%} hits over {int(row['reads'])} reads; a hit takes "
            f"{row['hit_ms']:.3f} ms vs {row['before_ms']:.3f} ms for before and "
            f"{row['after_equivalent_ms']:.3f} ms for after_equivalent (×{row['hit_speedup']:.1f} "
            f"over before, 95 % CI ×{row['hit_speedup_ci_low']:.1f}–×{row['hit_speedup_ci_high']:.1f}); "
            f"a miss {row['miss_ms']:.3f} ms; {int(row['stale_reads'])} stale reads "
            f"({row['stale_pct']:.1f} %) under {int(row['writes'])} writes; "
            f"{row['memory_bytes_per_barber']:.0f} bytes per cached barber."
        )
    if {"ttl", "invalidate"} <= set(summary.index):
        ttl, inv = summary.loc["ttl"], summary.loc["invalidate"]
        fresher = "fewer" if inv["stale_reads"] < ttl["stale_reads"] else "no fewer"
        lines.append(
            f"Invalidation by the database served {fresher} stale reads than the TTL "
            f"({int(inv['stale_reads'])} vs {int(ttl['stale_reads'])}) at a hit ratio of "
            f"{inv['hit_ratio']:.0%} vs {ttl['hit_ratio']:.0%}: "
            + (
                "it is the policy to use when figures must match the database."
                if inv["stale_reads"] < ttl["stale_reads"]
                else "with this write rate the TTL was as fresh; look at the hit ratio to choose."
            )
        )
    lines.append(
        "Times are client times on a shared 2-core machine, one run: compare them as ratios."
    )
    return "\n".join(lines)


def write_cost_summary(samples: dict[str, list[float]]) -> dict[str, float]:
    """Medians of ``trigger_write_cost``'s samples and their ratio (with / without) with a 95 %
    bootstrap CI: what database-driven invalidation adds to every write."""
    with_ms, without_ms = samples["with_triggers"], samples["without_triggers"]
    low, high = bootstrap_ratio_ci(with_ms, without_ms, n_boot=2000)
    return {
        "without_triggers_ms": float(np.median(without_ms)),
        "with_triggers_ms": float(np.median(with_ms)),
        "ratio": float(np.median(with_ms) / np.median(without_ms)),
        "ratio_ci_low": low,
        "ratio_ci_high": high,
    }
