"""What notebook 03 tells the report: the pool_size advice reconciled with cores × 2 + 1, its verdict
line and the seed summary's pooling and monitoring claims, computed from the load and cost tables
(pure: no database)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bbperf.experiment import register
from bbperf.explain.timingstats import Comparison, compare
from bbperf.humanize import format_value
from bbperf.pool.costs import PoolRecommendation

EXPERIMENT = register(
    "03_connection_pool",
    "Connection pool",
    [
        "pooling.no_setup_delay",
        "pooling.limits_prevent_exhaustion",
        "pooling.sizes",
        "pooling.stale_recycled",
        "monitoring.flags_saturation",
    ],
)


@dataclass(frozen=True)
class PoolAdvice:
    """The pool_size to use, between the measured knee's bracket and the cores × 2 + 1 rule."""

    pool_size: int
    max_overflow: int
    bracket_low: int
    bracket_high: int
    formula: int
    sentence: str


def reconcile(
    rec: PoolRecommendation, concurrency: list[int], usable_connections: int, processes: int = 1
) -> PoolAdvice:
    """Settle the measured knee against cores × 2 + 1.

    The load only ran at ``concurrency`` steps, so the true knee lies between the step below the
    measured knee and the knee itself. When the rule falls inside that bracket it is the better guess
    (the curve in between was not measured); outside it, the measurement wins.
    """
    steps = sorted(set(concurrency))
    below = [c for c in steps if c < rec.knee_concurrency]
    low = below[-1] if below else 1
    high = rec.knee_concurrency
    budget = max(usable_connections // max(processes, 1), 1)
    if low <= rec.formula_pool_size <= high:
        size = rec.formula_pool_size
        why = (
            f"cores × 2 + 1 = {rec.formula_pool_size} lies between {low} (under 90 % of peak) and "
            f"{high} workers (over it), the steps measured: the two agree, so take {size}"
        )
    elif rec.formula_pool_size > high:
        size = high
        why = (
            f"cores × 2 + 1 = {rec.formula_pool_size} is above the measured knee ({high} workers "
            f"already reach 90 % of peak): more connections would only queue inside PostgreSQL, "
            f"so take {size}"
        )
    else:
        size = high
        why = (
            f"the server kept gaining up to {high} workers, more than cores × 2 + 1 = "
            f"{rec.formula_pool_size} (the client shares these cores, and the workload waits on "
            f"round trips): the measurement wins, take {size}"
        )
    size = min(size, budget)
    overflow = max(min(2 * size, budget - size), 0)
    return PoolAdvice(size, overflow, low, high, rec.formula_pool_size, why)


def _median_difference_ci(
    slow: list[float], fast: list[float], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """median(slow) − median(fast) in ms, with a percentile bootstrap 95 % CI."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(slow, float), np.asarray(fast, float)
    boot = np.median(rng.choice(a, (n_boot, a.size)), axis=1) - np.median(
        rng.choice(b, (n_boot, b.size)), axis=1
    )
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(np.median(a) - np.median(b)), float(low), float(high)


@dataclass(frozen=True)
class CostDelta:
    """What one setting adds per request: the median difference (ms) and the ratio test behind it."""

    extra_ms: float
    ci_low_ms: float
    ci_high_ms: float
    comparison: Comparison
    n: int


def cost_delta(costs: pd.DataFrame, measure: str, slow: str, fast: str) -> CostDelta:
    """``slow`` vs ``fast`` variant of one ``measure`` of ``pool_costs``: extra ms per request."""
    rows = costs.set_index(["measure", "variant"])
    a = list(rows.loc[(measure, slow), "samples_ms"])
    b = list(rows.loc[(measure, fast), "samples_ms"])
    extra, low, high = _median_difference_ci(a, b)
    return CostDelta(extra, low, high, compare(a, b), min(len(a), len(b)))


def _ms(value: float) -> str:
    return format_value(value, "ms")


def cost_words(delta: CostDelta) -> str:
    """ "costs 0.08 ms (95 % CI …)", or "costs no measurable time (…)" when the CI spans zero."""
    interval = f"95 % CI {_ms(delta.ci_low_ms)} – {_ms(delta.ci_high_ms)}"
    if delta.ci_low_ms <= 0 <= delta.ci_high_ms:
        return f"costs no measurable time (median difference {_ms(delta.extra_ms)}, {interval})"
    return f"costs {_ms(delta.extra_ms)} ({interval})"


def verdict(
    load: pd.DataFrame,
    configs: pd.DataFrame,
    setup: CostDelta,
    advice: PoolAdvice,
    skipped: Mapping[str, str] | None = None,
) -> str:
    """The one line the report's index page shows for the pool notebook; ``skipped`` (environment
    → reason, from ``pool_reach``) names the configs that could not connect."""
    not_loaded = "".join(f" {env} skipped: {reason}." for env, reason in (skipped or {}).items())
    peak = load.loc[load["throughput_rps"].idxmax()]
    refusals = int(load["server_refusals"].sum())
    timeouts = int(load["pool_timeouts"].sum())
    return (
        f"A pooled request saves {_ms(setup.extra_ms)} of connection set-up "
        f"(95 % CI {_ms(setup.ci_low_ms)} – {_ms(setup.ci_high_ms)}, "
        f"{format_value(setup.comparison.speedup, 'x')} faster); throughput peaks at "
        f"{peak.throughput_rps:,.0f} req/s with {int(peak.concurrency)} workers "
        f"({peak.environment}); {timeouts} pool timeouts, {refusals} server refusals; "
        f"pool_size {advice.pool_size} suits this server (the seed configured "
        + "/".join(str(int(s)) for s in configs["pool_size"])
        + ")."
        + not_loaded
    )


def claims(
    load: pd.DataFrame,
    configs: pd.DataFrame,
    usable_connections: int,
    setup: CostDelta,
    pre_ping: CostDelta,
    advice: PoolAdvice,
) -> list[dict[str, Any]]:
    """The seed summary's pooling and monitoring claims (ids in bbperf/report/claims.toml)."""
    rows: list[dict[str, Any]] = [
        {
            "claim": "pooling.no_setup_delay",
            "measured": f"checkout + SELECT 1 takes {_ms(setup.comparison.after_median)} pooled vs "
            f"{_ms(setup.comparison.before_median)} with a new connection per request "
            f"(+{_ms(setup.extra_ms)}, 95 % CI {_ms(setup.ci_low_ms)} – {_ms(setup.ci_high_ms)})",
            "verdict": "confirmed"
            if setup.comparison.significant and setup.extra_ms > 0
            else "refuted",
            "figure": "connection_setup_overhead_ms",
        }
    ]
    capacity = configs["pool_size"] + configs["max_overflow"]
    over = [f"{env} {cap}" for env, cap in capacity.items() if cap > usable_connections]
    refusals = int(load["server_refusals"].sum())
    rows.append(
        {
            "claim": "pooling.limits_prevent_exhaustion",
            "measured": f"{refusals} server refusals in {len(load)} load steps; one process's pool "
            f"may open {', '.join(f'{e} {c}' for e, c in capacity.items())} connections against "
            f"{usable_connections} usable",
            "verdict": "partly" if over else ("confirmed" if refusals == 0 else "refuted"),
        }
    )
    ratio = {env: size / advice.pool_size for env, size in configs["pool_size"].items()}
    fitting = [env for env, r in ratio.items() if 0.5 <= r <= 2]
    rows.append(
        {
            "claim": "pooling.sizes",
            "measured": f"this server keeps about {advice.pool_size} connections busy; configured "
            + ", ".join(f"{env} {int(s)}" for env, s in configs["pool_size"].items()),
            "verdict": "confirmed"
            if len(fitting) == len(ratio)
            else "partly"
            if fitting
            else "refuted",
        }
    )
    rows.append(
        {
            "claim": "pooling.stale_recycled",
            "measured": f"pre-ping is on everywhere and {cost_words(pre_ping)} per checkout; "
            "recovery from a dropped connection and pool_recycle were not exercised",
            "verdict": "partly",
        }
    )
    saturated = load[load["concurrency"] > 0.8 * load["pool_size"]]
    flagged = saturated[saturated["status"] == "unhealthy"]
    rows.append(
        {
            "claim": "monitoring.flags_saturation",
            "measured": f"unhealthy at {len(flagged)} of {len(saturated)} steps with more workers than "
            "80 % of pool_size",
            "verdict": "confirmed"
            if len(flagged) == len(saturated)
            else "partly"
            if len(flagged)
            else "refuted",
        }
    )
    return rows
