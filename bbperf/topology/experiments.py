"""Notebooks 05 and 06 in one call each: set the topology up, run every measurement, tear down
what was started here, and return the figures (or why the experiment was skipped).

``read_replica_experiment``: analytics on the primary vs on a streaming replica under an OLTP mix,
lag, read-your-writes staleness, and the replica stopped mid-run. ``pgbouncer_experiment``: many
client connections directly vs through PgBouncer, and the session-state trap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from bbperf.errors import BbperfError
from bbperf.topology.readsplit import PlacementRun, run_placement, summarize_runs


def _home(home: Path | None) -> Path:
    from bbperf.config import load_settings

    return Path(home) if home is not None else load_settings().home


def _url(engine: Engine) -> str:
    """A libpq URL of the engine's target (raw drivers do not know ``+psycopg2``)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class ReplicaExperiment:
    """Runs of notebook 05; ``skipped`` says why there are none."""

    skipped: str | None = None
    replica: str | None = None  # "embedded" or "external"
    runs: list[PlacementRun] = field(default_factory=list)
    fault: PlacementRun | None = None
    notes: list[str] = field(default_factory=list)
    max_lag_s: float = 1.0

    def summary(self) -> pd.DataFrame:
        """One row per run; the fault run is labelled ``replica (stopped mid-run)``."""
        runs = [*self.runs, *([self.fault] if self.fault else [])]
        frame = summarize_runs(runs, self.max_lag_s)
        if self.fault is not None:
            frame.loc[len(frame) - 1, "analytics_on"] = "replica (stopped mid-run)"
        return frame

    def run(self, placement: str) -> PlacementRun:
        return next(r for r in self.runs if r.placement == placement)


def read_replica_experiment(
    engine: Engine,
    *,
    duration_s: float = 2.0,
    oltp_concurrency: int = 4,
    write_rate_per_s: float = 50.0,
    analytics_concurrency: int = 2,
    max_lag_s: float = 1.0,
    fallback: bool = True,
    replica_url: str | None = None,
    home: Path | None = None,
    seed: int = 0,
) -> ReplicaExperiment:
    """Analytics on the primary, then on the replica (with staleness probes), then on the replica
    stopped half-way (falling back to the primary when ``fallback``), each for ``duration_s``.

    The replica is ``replica_url`` / ``BBPERF_REPLICA_URL``, else bbperf's embedded replica of
    its embedded server (started here when needed and stopped afterwards). The fault run needs
    the embedded replica: bbperf never stops a replica it does not own. Bookings written by the
    mixes are deleted at the end.
    """
    from bbperf.topology.mix import read_shape, remove_probe_rows
    from bbperf.topology.replica import (
        EmbeddedReplica,
        is_embedded_primary,
        replica_engine,
        resolve_replica_url,
    )
    from bbperf.workload import dataset_as_of

    home = _home(home)
    primary_url = _url(engine)
    out = ReplicaExperiment(max_lag_s=max_lag_s)
    embedded = EmbeddedReplica(home)
    was_running = embedded.process() is not None
    try:
        url = resolve_replica_url(primary_url, home, replica_url, start=False)
        if url is None and is_embedded_primary(primary_url, home):
            url = resolve_replica_url(primary_url, home, replica_url, start=True)
    except BbperfError as exc:
        out.skipped = str(exc)
        return out
    if url is None:
        out.skipped = (
            "no replica: the target is not bbperf's embedded server, so bbperf will not create "
            "one; name an existing replica with BBPERF_REPLICA_URL"
        )
        return out
    owned = not (replica_url or _env_replica())
    out.replica = "embedded" if owned else "external"
    replica = replica_engine(url, pool_size=analytics_concurrency + 2, max_overflow=4)
    shape = read_shape(engine, dataset_as_of(engine))
    remove_probe_rows(engine)
    common: dict[str, Any] = {
        "duration_s": duration_s,
        "oltp_concurrency": oltp_concurrency,
        "write_rate_per_s": write_rate_per_s,
        "analytics_concurrency": analytics_concurrency,
        "seed": seed,
    }
    try:
        out.runs.append(run_placement(engine, replica, shape, "primary", **common))
        out.runs.append(
            run_placement(engine, replica, shape, "replica", probe_staleness=True, **common)
        )
        if owned:
            out.fault = run_placement(
                engine,
                replica,
                shape,
                "replica",
                fallback=fallback,
                interrupt=(duration_s / 2, embedded.stop),
                **common,
            )
            if was_running:
                embedded.start()  # leave it as it was found
        else:
            out.notes.append("fault run skipped: bbperf never stops a replica it did not start")
    finally:
        replica.dispose()
        remove_probe_rows(engine)
        if owned and not was_running:
            embedded.stop()
    return out


def _env_replica() -> str | None:
    import os

    from bbperf.topology.replica import REPLICA_URL_ENV

    return os.environ.get(REPLICA_URL_ENV) or None


@dataclass
class BouncerExperiment:
    """Figures of notebook 06; ``skipped`` says why there are none."""

    skipped: str | None = None
    version: str | None = None
    steps: pd.DataFrame | None = None
    trap: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    default_pool_size: int = 20
    max_client_conn: int = 1100


def pgbouncer_experiment(
    engine: Engine,
    *,
    clients: tuple[int, ...] | list[int] = (50, 1000),
    duration_s: float = 1.0,
    sql: str = "SELECT 1",
    default_pool_size: int = 20,
    max_client_conn: int = 1100,
    trap: bool = True,
    home: Path | None = None,
    binary: str | Path | None = None,
) -> BouncerExperiment:
    """``clients`` connections at once, directly and through a PgBouncer started for this run
    (transaction pooling, ``default_pool_size`` server connections), then the session-state trap.
    Skipped, with the reason, when pgbouncer is not installed. Stops what it started."""
    from bbperf.topology.fanout import direct_server_connections, fanout
    from bbperf.topology.pgbouncer import (
        PgBouncer,
        PgBouncerMissing,
        installed_version,
        session_warnings,
    )
    from bbperf.topology.sessiontrap import session_state_trap

    home = _home(home)
    schema = engine.get_execution_options().get("bbperf_schema") or "bbperf"
    out = BouncerExperiment(default_pool_size=default_pool_size, max_client_conn=max_client_conn)
    try:
        version = installed_version(binary)
    except PgBouncerMissing as exc:
        out.skipped = str(exc)
        return out
    out.version = ".".join(map(str, version))
    out.warnings = session_warnings(version, "transaction")
    target = _url(engine)
    bouncer = PgBouncer(home, directory=home / "pgbouncer-fanout", binary=binary)
    pooled = bouncer.start(
        target,
        schema=str(schema),
        default_pool_size=default_pool_size,
        max_client_conn=max_client_conn,
    )
    direct_count = direct_server_connections(target)
    try:
        out.steps = fanout(
            [
                ("direct", target, direct_count),
                ("pgbouncer", pooled, lambda: bouncer.server_connections(target)),
            ],
            list(clients),
            duration_s,
            sql,
        )
    finally:
        direct_count.close()  # type: ignore[attr-defined]
        bouncer.stop()
    if trap:
        out.trap = session_state_trap(target, home, schema=str(schema), binary=binary)
    return out


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
                "description": "client time of OLTP point reads on the primary",
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
                "description": f"of up to {top} clients connecting at once",
            },
            {
                "name": f"server_connections_peak_{via}",
                "value": int(steps.server_connections_peak.max()),
                "unit": "connections",
                "better": "lower",
                "headline": True,
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
