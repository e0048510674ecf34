"""What notebooks 05 and 06 tell the report: one verdict line each and the road map's replica and
PgBouncer claims, computed from the experiments' results (pure: no server needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bbperf.experiment import ci_verdict, register, times, times_ci
from bbperf.humanize import format_value
from bbperf.topology.topologyrun import BouncerExperiment, ReplicaExperiment

REPLICA = register("05_read_replica", "Read replica", ["roadmap.replica_offloads_analytics"])
PGBOUNCER = register("06_pgbouncer", "PgBouncer", ["roadmap.pgbouncer_multiplexes"])


def quantile_ratio_ci(
    before: Sequence[float],
    after: Sequence[float],
    q: float = 95.0,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """percentile_q(before) / percentile_q(after) with a percentile-bootstrap 95 % CI, each side
    resampled alone. Above 1: ``after`` is faster at that percentile."""
    a, b = np.asarray(before, float), np.asarray(after, float)
    if a.size < 2 or b.size < 2:
        raise ValueError("quantile_ratio_ci needs at least two samples on each side")
    rng = np.random.default_rng(seed)
    boot = np.percentile(rng.choice(a, (n_boot, a.size)), q, axis=1) / np.percentile(
        rng.choice(b, (n_boot, b.size)), q, axis=1
    )
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(np.percentile(a, q) / np.percentile(b, q)), float(low), float(high)


def _ms(value: Any) -> str:
    return format_value(None if value is None or pd.isna(value) else float(value), "ms")


def oltp_p95_ratio(exp: ReplicaExperiment) -> tuple[float, float, float] | None:
    """OLTP p95 with analytics on the primary ÷ with analytics on the replica, with its 95 % CI
    (above 1: moving analytics to the replica helped); None when a run has too few requests."""
    try:
        primary, replica = exp.run("primary"), exp.run("replica")
        return quantile_ratio_ci(primary.oltp.latencies_ms, replica.oltp.latencies_ms)
    except (StopIteration, ValueError):
        return None


def replica_gain_figure(exp: ReplicaExperiment) -> dict[str, Any] | None:
    """The headline ratio of notebook 05 as a figure for ``Results.add(**figure)``, or None."""
    ratio = None if exp.skipped else oltp_p95_ratio(exp)
    if ratio is None:
        return None
    point, low, high = ratio
    return {
        "name": "oltp_p95_gain_analytics_on_replica",
        "value": point,
        "unit": "x",
        "better": "higher",
        "ci_low": low,
        "ci_high": high,
        "n": min(len(r.oltp.latencies_ms) for r in exp.runs),
        "headline": True,
        "description": "OLTP p95 with analytics on the primary ÷ with analytics on the replica",
    }


def replica_verdict(exp: ReplicaExperiment) -> str:
    """Notebook 05's line: the OLTP p95 gain from moving analytics to the replica (95 % CI), the
    replica's staleness, and what the fault run saw; "skipped: …" without a replica."""
    if exp.skipped:
        return f"skipped: {exp.skipped}"
    ratio = oltp_p95_ratio(exp)
    if ratio is None:
        return "No OLTP requests completed in both runs: nothing to compare."
    point, low, high = ratio
    if low > 1:
        effect = f"ran {times(point)} faster at p95"
    elif high < 1:
        effect = f"ran {times(1 / point)} slower at p95"
    else:
        effect = "showed no measurable change at p95"
    stale = exp.summary().set_index("analytics_on").loc["replica"]
    text = (
        f"With analytics on the replica, OLTP reads on the primary {effect} (p95 with analytics on "
        f"the primary ÷ on the replica: {times(point)}, 95 % CI {times(low)} – {times(high)}); the first "
        f"replica read after a commit already saw it in {int(stale.staleness_first_read_fresh)} of "
        f"{int(stale.staleness_probes)} probes"
    )
    if exp.fault is not None:
        text += (
            f"; stopped mid-run, {exp.fault.fell_back} analytics requests fell back to the primary "
            f"and {exp.fault.analytics.errors} failed"
        )
    return text + "."


def replica_claims(exp: ReplicaExperiment) -> list[dict[str, Any]]:
    """The road map's "read replicas for analytics" claim, checked on this run (none when skipped)."""
    ratio = None if exp.skipped else oltp_p95_ratio(exp)
    if ratio is None:
        return []
    point, low, high = ratio
    served = exp.run("replica").analytics.on_replica
    verdict = ci_verdict(low, high) if served else "refuted"
    return [
        {
            "claim": "roadmap.replica_offloads_analytics",
            "measured": f"{served} analytics requests served by the replica; OLTP p95 on the primary "
            f"{times_ci(point, low, high)} against analytics on the primary, "
            "one machine for both servers",
            "verdict": verdict,
            "figure": "oltp_p95_ms_analytics_on_replica",
        }
    ]


def _at_top(exp: BouncerExperiment) -> tuple[int, pd.Series, pd.Series] | None:
    if exp.skipped or exp.steps is None or not len(exp.steps):
        return None
    top = int(exp.steps.clients.max())
    rows = exp.steps[exp.steps.clients == top].set_index("via")
    if not {"direct", "pgbouncer"} <= set(rows.index):
        return None
    return top, rows.loc["direct"], rows.loc["pgbouncer"]


def pgbouncer_verdict(exp: BouncerExperiment) -> str:
    """Notebook 06's line: clients served directly vs through PgBouncer at the largest step, the
    server connections behind them, the latency price and the session state that leaks."""
    if exp.skipped:
        return f"skipped: {exp.skipped}"
    found = _at_top(exp)
    if found is None:
        return "No step ran both directly and through PgBouncer: nothing to compare."
    top, direct, pooled = found
    text = (
        f"{top:,} clients connecting at once: {int(pooled.connected):,} served through PgBouncer on "
        f"{int(pooled.server_connections_peak)} server connections, {int(direct.connected):,} "
        f"directly ({int(direct.refused + direct.backlog_full):,} refused)"
    )
    if pooled.latency_p95_ms and direct.latency_p95_ms:
        text += (
            f"; p95 latency {_ms(pooled.latency_p95_ms)} through PgBouncer vs "
            f"{_ms(direct.latency_p95_ms)} directly"
        )
    if exp.trap is not None and len(exp.trap):
        text += (
            f"; {int(exp.trap.leaked.sum())} of {len(exp.trap)} kinds of session state leak "
            "between clients under transaction pooling"
        )
    return text + "."


def pgbouncer_claims(exp: BouncerExperiment) -> list[dict[str, Any]]:
    """The road map's "PgBouncer for connection multiplexing" claim (none when skipped)."""
    found = _at_top(exp)
    if found is None:
        return []
    top, direct, pooled = found
    served, peak = int(pooled.connected), int(pooled.server_connections_peak)
    few = peak <= exp.default_pool_size + 1  # +1: PgBouncer's own admin/auth connection
    if served == top and few and served > int(direct.connected):
        verdict = "confirmed"
    elif served > int(direct.connected):
        verdict = "partly"
    else:
        verdict = "refuted"
    leaked = int(exp.trap.leaked.sum()) if exp.trap is not None else 0
    return [
        {
            "claim": "roadmap.pgbouncer_multiplexes",
            "measured": f"{served:,} of {top:,} clients served on {peak} server connections "
            f"(default_pool_size {exp.default_pool_size}) vs {int(direct.connected):,} directly"
            + (f"; {leaked} kinds of session state leak" if leaked else ""),
            "verdict": verdict,
            "figure": "max_clients_served_pgbouncer",
        }
    ]
