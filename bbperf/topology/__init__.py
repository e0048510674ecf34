"""Topologies beside the embedded server: a streaming read replica and PgBouncer, and the
experiments that price them (notebooks 05 and 06).

Names are imported on first use, so ``bbperf replica`` / ``bbperf pgbouncer`` / ``bbperf db stop``
do not load pandas.
"""

from __future__ import annotations

from bbperf.lazy import lazy_exports

_EXPORTS = {
    "stop_companions": ".companions",
    "pool_load_via": ".bouncerload",
    "BouncerExperiment": ".topologyrun",
    "ReplicaExperiment": ".topologyrun",
    "pgbouncer_conclusion": ".findings",
    "pgbouncer_experiment": ".topologyrun",
    "pgbouncer_figures": ".findings",
    "read_replica_experiment": ".topologyrun",
    "replica_conclusion": ".findings",
    "replica_figures": ".findings",
    "fanout": ".fanout",
    "pool_fit": ".fanout",
    "Lag": ".lag",
    "LagSampler": ".lag",
    "read_lag": ".lag",
    "PgBouncer": ".pgbouncer",
    "PgBouncerMissing": ".pgbouncer",
    "EmbeddedReplica": ".replica",
    "replica_status": ".replicatarget",
    "resolve_replica_url": ".replicatarget",
    "session_state_trap": ".sessiontrap",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
