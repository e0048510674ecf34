"""What notebook 08 tells the report: its verdict line and the road map's result-cache claim, from
the policies' summary (``bbperf.cache.analysis.summarize_policy``) and the triggers' write cost (pure)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bbperf.experiment import register, times

EXPERIMENT = register("08_result_cache", "Result cache", ["roadmap.result_cache"])


def _trigger_cost(write_cost: dict[str, float]) -> str:
    return (
        f"with the invalidation triggers a write takes {times(write_cost['ratio'])} as long "
        f"(95 % CI {times(write_cost['ratio_ci_low'])} – {times(write_cost['ratio_ci_high'])})"
    )


def verdict(
    summary: pd.DataFrame | None, write_cost: dict[str, float], skipped: str | None = None
) -> str:
    """Notebook 08's line: the invalidate policy's hit ratio and hit speed-up over ``before`` (95 %
    CI), stale reads under each policy, and what the triggers cost a write. ``summary`` is indexed
    by policy; "skipped: …" leads when no cache server was available."""
    if skipped or summary is None or "invalidate" not in summary.index:
        return f"skipped: {skipped or 'no invalidate run'}; {_trigger_cost(write_cost)}."
    inv = summary.loc["invalidate"]
    if not inv["hit_ratio"] > 0:
        text = (
            f"No read hit the cache in {int(inv['reads']):,} reads with invalidation by the database "
            "(too few reads for the barbers read: run longer to see hits)"
        )
    elif not np.isfinite(inv["hit_speedup_ci_low"]):
        text = (
            f"With invalidation by the database, {inv['hit_ratio']:.0%} of {int(inv['reads']):,} "
            "reads hit the cache: too few hits to time (run longer)"
        )
    else:
        text = (
            f"With invalidation by the database, {inv['hit_ratio']:.0%} of reads hit the cache and a "
            f"hit was {times(inv['hit_speedup'])} faster than the four queries (95 % CI "
            f"{times(inv['hit_speedup_ci_low'])} – {times(inv['hit_speedup_ci_high'])})"
        )
    text += f"; stale reads: {int(inv['stale_reads'])} of {int(inv['reads']):,}"
    if "ttl" in summary.index:
        ttl = summary.loc["ttl"]
        text += f" vs {int(ttl['stale_reads'])} of {int(ttl['reads']):,} under the TTL"
    return f"{text}; {_trigger_cost(write_cost)}."


def claims(summary: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The road map's "Redis caching for expensive queries" claim, checked on the invalidate policy
    (none when the experiment was skipped)."""
    if summary is None or "invalidate" not in summary.index:
        return []
    inv = summary.loc["invalidate"]
    ttl_stale = int(summary.loc["ttl", "stale_reads"]) if "ttl" in summary.index else None
    count = int(inv["stale_reads"])
    stale = f"{count} stale read{'' if count == 1 else 's'}" + (
        f" (a TTL served {ttl_stale})" if ttl_stale is not None else ""
    )
    if not (inv["hit_ratio"] > 0 and np.isfinite(inv["hit_speedup_ci_low"])):
        # the cache was barely exercised (under two hits to time): this run cannot judge the claim
        return [
            {
                "claim": "roadmap.result_cache",
                "measured": f"{inv['hit_ratio']:.0%} of {int(inv['reads']):,} reads hit the cache, "
                f"too few to time; {stale}",
                "verdict": "not measured",
            }
        ]
    fast = bool(inv["hit_speedup_ci_low"] > 1)
    fresh = int(inv["stale_reads"]) == 0
    return [
        {
            "claim": "roadmap.result_cache",
            "measured": f"invalidate policy: {inv['hit_ratio']:.0%} hits, a hit "
            f"{times(inv['hit_speedup'])} faster (95 % CI {times(inv['hit_speedup_ci_low'])} – "
            f"{times(inv['hit_speedup_ci_high'])}); {stale}",
            "verdict": "confirmed" if fast and fresh else "partly" if fast or fresh else "refuted",
            "figure": "invalidate_hit_speedup",
        }
    ]
