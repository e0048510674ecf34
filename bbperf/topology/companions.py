"""The processes bbperf runs beside the embedded server, stopped together by ``bbperf db stop``."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from bbperf.topology.pgbouncer import PgBouncer
from bbperf.topology.replica import EmbeddedReplica
from bbperf.topology.running import is_load_worker, processes_of


def stop_companions(home: Path) -> list[str]:
    """Stop the pgbouncer and the replica bbperf started under ``home``; return what was stopped.

    Called before the primary stops: pgbouncer first (it holds server connections), then the
    replica (so it does not spend its shutdown retrying a vanished primary). Any other pgbouncer
    or postmaster still running from a directory under ``home`` (an experiment's private
    PgBouncer, a test replica) is bbperf's too and gets the same fast shutdown; a load worker that
    outlived its coordinator is killed (its uncommitted chunk rolls back).
    """
    stopped = []
    if PgBouncer(home).stop():
        stopped.append("pgbouncer")
    if EmbeddedReplica(home).stop():
        stopped.append("replica")
    primary = str((Path(home) / "pgdata").resolve())
    others = [p for p in processes_of(home) if primary not in p.cmdline()]
    for proc in others:
        # SIGTERM: PgBouncer's immediate shutdown; SIGINT: PostgreSQL's fast shutdown.
        if is_load_worker(proc):
            proc.kill()
            stopped.append(f"load worker {proc.pid}")
            continue
        proc.send_signal(signal.SIGTERM if proc.name() == "pgbouncer" else signal.SIGINT)
        stopped.append(f"{proc.name()} {proc.pid}")
    # SIGKILL needs no waiting (and a killed worker whose parent lives stays a zombie until reaped).
    psutil.wait_procs([p for p in others if not is_load_worker(p)], timeout=15)
    return stopped
