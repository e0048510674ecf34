"""Pools under load through bbperf's PgBouncer: ``bbperf pool load --via pgbouncer``.

The load itself is ``bbperf.pool.loadtest``; this module puts PgBouncer between the pools and the
server (started for the run and stopped after it unless it was already running), so the pool
package needs nothing of topology and topology stays the layer above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from bbperf.config import default_home
from bbperf.errors import ConfigError
from bbperf.pool.loadtest import pool_load
from bbperf.target import make_engine, schema_of
from bbperf.topology.pgbouncer import PgBouncer
from bbperf.topology.running import libpq_url

VIAS = ("direct", "pgbouncer")


def pool_load_via(
    engine: Engine, *, via: str = "direct", home: Path | None = None, **load: Any
) -> pd.DataFrame:
    """``bbperf.pool.pool_load(engine, **load)`` directly (``via="direct"``) or through bbperf's
    PgBouncer under ``home`` (default ``BBPERF_HOME``; started for the run and stopped after it
    unless it was already running). Through PgBouncer the server connections are PgBouncer's, and
    each row says so in ``via`` and ``notes``."""
    if via not in VIAS:
        raise ConfigError(f"via {via!r}: choose direct or pgbouncer")
    if via == "direct":
        return pool_load(engine, **load)
    url = libpq_url(engine.url)
    bouncer = PgBouncer(home if home is not None else default_home())
    started = bouncer.pid() is None
    pooled = bouncer.start(url, schema=schema_of(engine)) if started else bouncer.url(url)
    # Carries the URL and schema the load's pools are built from; it never connects itself.
    through = make_engine(pooled, schema=schema_of(engine), echo_pool=False)
    try:
        frame = pool_load(
            engine,
            through=through,
            server_connections=lambda: bouncer.server_connections(url),
            **load,
        )
    finally:
        through.dispose()
        if started:
            bouncer.stop()
    # The pre-flight notes compare the pool with max_connections; PgBouncer stands in between.
    note = "through pgbouncer: the pool's client connections share pgbouncer's server connections"
    return frame.assign(via=via, notes=[[note] for _ in range(len(frame))])
