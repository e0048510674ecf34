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

from bbperf.config import load_settings
from bbperf.errors import BbperfError
from bbperf.generate import dataset_as_of
from bbperf.topology.fanout import direct_server_connections, fanout
from bbperf.topology.mix import read_shape, remove_probe_rows
from bbperf.topology.pgbouncer import (
    PgBouncer,
    PgBouncerMissing,
    installed_version,
    session_warnings,
)
from bbperf.topology.readsplit import PlacementRun, run_placement, summarize_runs
from bbperf.topology.replica import REPLICA_URL_ENV, EmbeddedReplica
from bbperf.topology.replicatarget import is_embedded_primary, replica_engine, resolve_replica_url
from bbperf.topology.running import libpq_url
from bbperf.topology.sessiontrap import session_state_trap


def _home(home: Path | None) -> Path:
    return Path(home) if home is not None else load_settings().home


def _url(engine: Engine) -> str:
    """A libpq URL of the engine's target (raw drivers do not know ``+psycopg2``)."""
    return libpq_url(engine.url)


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
    Skipped, with the reason, when pgbouncer is not installed or cannot front this server (no
    password from any source, or a server that does not use SCRAM). Stops what it started."""
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
    try:
        pooled = bouncer.start(
            target,
            schema=str(schema),
            default_pool_size=default_pool_size,
            max_client_conn=max_client_conn,
        )
    except BbperfError as exc:  # no password to be had, or a server PgBouncer cannot log in to
        out.skipped = str(exc)
        return out
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
