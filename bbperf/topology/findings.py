"""What notebooks 05 and 06 conclude: their figures for ``bbperf.results`` and the sentences they
print, computed from the experiments' results (pure: no server needed)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bbperf.topology.topologyrun import BouncerExperiment, ReplicaExperiment


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def replica_figures(exp: ReplicaExperiment) -> list[dict[str, Any]]:
    """The figures notebook 05 records (``Results.add(**figure)``), headline ones first."""
    if exp.skipped:
        return [{"name": "experiment", "value": "skipped", "description": exp.skipped}]
    rows = exp.summary().set_index("analytics_on")
    primary, replica = exp.run("primary"), exp.run("replica")
    figures: list[dict[str, Any]] = []
    for run in (primary, replica):
        where = run.placement
        row = rows.loc[where]
        figures += [
            {
                "name": f"oltp_p95_ms_analytics_on_{where}",
                "value": _num(row.oltp_p95_ms),
                "unit": "ms",
                "better": "lower",
                "samples": run.oltp.latencies_ms,
                "headline": True,
                "description": f"OLTP point reads on the primary, p95 client time, analytics on "
                f"the {where}",
            },
            {
                "name": f"oltp_p99_ms_analytics_on_{where}",
                "value": _num(row.oltp_p99_ms),
                "unit": "ms",
                "better": "lower",
            },
            {
                "name": f"oltp_throughput_analytics_on_{where}",
                "value": _num(row.oltp_throughput_rps),
                "unit": "req/s",
                "better": "higher",
            },
            {
                "name": f"analytics_p95_ms_on_{where}",
                "value": _num(row.analytics_p95_ms),
                "unit": "ms",
                "better": "lower",
                "samples": run.analytics.latencies_ms,
            },
        ]
    lag = rows.loc["replica"]
    figures += [
        {
            "name": "staleness_p95_ms",
            "value": _num(lag.staleness_p95_ms),
            "unit": "ms",
            "better": "lower",
            "samples": replica.staleness_ms,
            "headline": True,
            "description": "commit on the primary → first replica metrics read that counts it",
        },
        {"name": "staleness_timeouts", "value": int(lag.staleness_timeouts), "better": "lower"},
        {"name": "lag_s_p95", "value": _num(lag.lag_s_p95), "unit": "s", "better": "lower"},
        {
            "name": "lag_bytes_p95",
            "value": _num(lag.lag_bytes_p95),
            "unit": "bytes",
            "better": "lower",
        },
    ]
    if exp.fault is not None:
        figures += [
            {"name": "fault_analytics_fell_back", "value": exp.fault.fell_back, "unit": "requests"},
            {
                "name": "fault_analytics_errors",
                "value": exp.fault.analytics.errors,
                "unit": "requests",
                "better": "lower",
            },
        ]
    return figures


def replica_conclusion(exp: ReplicaExperiment) -> list[str]:
    """Sentences computed from the figures of notebook 05."""
    if exp.skipped:
        return [f"skipped: {exp.skipped}"]
    rows = exp.summary().set_index("analytics_on")
    p95_primary = _num(rows.loc["primary", "oltp_p95_ms"])
    p95_replica = _num(rows.loc["replica", "oltp_p95_ms"])
    tp_primary = _num(rows.loc["primary", "oltp_throughput_rps"]) or 0.0
    tp_replica = _num(rows.loc["replica", "oltp_throughput_rps"]) or 0.0
    lines = []
    if p95_primary and p95_replica:
        ratio = p95_primary / p95_replica
        verdict = "lower" if ratio > 1.05 else ("higher" if ratio < 0.95 else "about the same")
        lines.append(
            f"With analytics on the replica, OLTP p95 was {p95_replica:.1f} ms against "
            f"{p95_primary:.1f} ms with analytics on the primary ({verdict}: ×{ratio:.2f}); "
            f"throughput {tp_replica:.0f} vs {tp_primary:.0f} req/s."
        )
    stale = rows.loc["replica"]
    if _num(stale.staleness_p95_ms) is not None:
        fresh = int(stale.staleness_first_read_fresh)
        lines.append(
            f"Read-your-writes: in {fresh} of {int(stale.staleness_probes)} probes the first "
            "replica read after the commit already counted the new payment; staleness p50 "
            f"{stale.staleness_p50_ms:.1f} ms, p95 {stale.staleness_p95_ms:.1f} ms "
            f"({int(stale.staleness_timeouts)} never within the probe timeout); replay lag p95 "
            f"{_num(stale.lag_s_p95) or 0:.3f} s. "
            + (
                "A user who must see their own write at once has to read it from the primary."
                if fresh < int(stale.staleness_probes)
                else "Here every read saw its write; under heavier writes it would not."
            )
        )
    if exp.fault is not None:
        fault = exp.fault
        lines.append(
            f"Replica stopped half-way: {fault.fell_back} analytics requests fell back to the "
            f"primary, {fault.analytics.errors} failed, and the run ended after "
            f"{fault.duration_s:.1f} s — nothing waited on the dead replica."
        )
    lines.append(
        "On one machine the replica shares both CPUs, the disk and the client with the primary, so "
        "the OLTP gain measured here understates what a separate host gives; what transfers is the "
        "shape — analytics CPU and buffer churn leave the primary — and the lag and staleness "
        "figures, which depend on WAL volume and replay rather than on where the CPUs are."
    )
    return lines


def pgbouncer_figures(exp: BouncerExperiment) -> list[dict[str, Any]]:
    """The figures notebook 06 records, headline ones first."""
    if exp.skipped or exp.steps is None:
        return [{"name": "experiment", "value": "skipped", "description": exp.skipped or ""}]
    figures: list[dict[str, Any]] = []
    top = int(exp.steps.clients.max())
    for via, steps in exp.steps.groupby("via", sort=False):
        at_top = steps[steps.clients == top].iloc[0]
        figures += [
            {
                "name": f"max_clients_served_{via}",
                "value": int(steps.connected.max()),
                "unit": "clients",
                "better": "higher",
                "headline": True,
                "description": f"clients served of {top:,} connecting at once, {via}",
            },
            {
                "name": f"server_connections_peak_{via}",
                "value": int(steps.server_connections_peak.max()),
                "unit": "connections",
                "better": "lower",
                "headline": True,
                "description": f"server connections at the peak, {via}",
            },
            {
                "name": f"p95_ms_at_{top}_clients_{via}",
                "value": _num(at_top.latency_p95_ms),
                "unit": "ms",
                "better": "lower",
            },
            {
                "name": f"throughput_at_{top}_clients_{via}",
                "value": _num(at_top.throughput_rps),
                "unit": "req/s",
                "better": "higher",
            },
            {
                "name": f"connect_p50_ms_{via}",
                "value": _num(steps.connect_p50_ms.median()),
                "unit": "ms",
                "better": "lower",
            },
            {
                "name": f"refused_{via}",
                "value": int(steps.refused.sum() + steps.backlog_full.sum()),
                "unit": "clients",
                "better": "lower",
            },
        ]
    if exp.trap is not None:
        figures.append(
            {
                "name": "session_state_kinds_leaking",
                "value": int(exp.trap.leaked.sum()),
                "unit": f"of {len(exp.trap)}",
                "description": "under transaction pooling, with psycopg2 and psycopg 3",
            }
        )
    return figures


def pgbouncer_conclusion(exp: BouncerExperiment, usable_connections: int) -> list[str]:
    """Sentences computed from the figures of notebook 06."""
    if exp.skipped or exp.steps is None:
        return [f"skipped: {exp.skipped}"]
    top = int(exp.steps.clients.max())
    rows = exp.steps[exp.steps.clients == top].set_index("via")
    direct, pooled = rows.loc["direct"], rows.loc["pgbouncer"]
    lines = [
        f"{top} clients at once: directly {int(direct.connected)} connected and "
        f"{int(direct.refused + direct.backlog_full)} were refused (the server has "
        f"{usable_connections} usable connections); through PgBouncer {int(pooled.connected)} "
        f"connected on {int(pooled.server_connections_peak)} server connections.",
        f"The price: p95 {_num(pooled.latency_p95_ms) or 0:.1f} ms through PgBouncer vs "
        f"{_num(direct.latency_p95_ms) or 0:.1f} ms for the clients that got in directly — clients "
        "queue for a server connection instead of being refused.",
    ]
    if exp.trap is not None:
        leaked = exp.trap[exp.trap.leaked].state.tolist()
        lines.append(
            f"Session state that leaked between clients under transaction pooling: "
            f"{', '.join(leaked) or 'none'}."
        )
    lines.extend(exp.warnings[1:])
    return lines
