"""The processes bbperf runs beside the embedded server, stopped together by ``bbperf db stop``."""

from __future__ import annotations

from pathlib import Path


def stop_companions(home: Path) -> list[str]:
    """Stop the pgbouncer and the replica bbperf started under ``home``; return what was stopped.

    Called before the primary stops: pgbouncer first (it holds server connections), then the
    replica (so it does not spend its shutdown retrying a vanished primary).
    """
    from bbperf.topology.pgbouncer import PgBouncer
    from bbperf.topology.replica import EmbeddedReplica

    stopped = []
    if PgBouncer(home).stop():
        stopped.append("pgbouncer")
    if EmbeddedReplica(home).stop():
        stopped.append("replica")
    return stopped
