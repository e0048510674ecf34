"""Pool costs and sizing: pre-ping and connection setup measured per request, pool_size from a curve.

``pool_costs`` measures pre-ping (on vs off) and connection setup (NullPool vs pool);
``recommend_pool_size`` turns a ``pool_load`` throughput curve into a pool_size for this server.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.pool import NullPool

from bbperf.errors import ConfigError, DataError
from bbperf.pool.describe import make_engine
from bbperf.pool.snapshot import percentile
from bbperf.target import schema_of


def pool_costs(engine: Engine, rounds: int = 200, environment: str = "development") -> pd.DataFrame:
    """Per-request cost of pre-ping (on vs off) and of connection setup (NullPool vs pool), in ms.

    Each request is checkout + ``SELECT 1`` + checkin, timed on one thread; variants interleave
    round by round so background load hits both alike. One row per variant with the median, IQR
    and the raw samples.
    """
    if rounds <= 0:
        raise ConfigError(f"rounds {rounds!r} must be a positive number")
    url, schema = engine.url, schema_of(engine)
    engines = {
        ("pre_ping", "on"): make_engine(
            url, environment, schema=schema, echo_pool=False, pool_pre_ping=True
        ),
        ("pre_ping", "off"): make_engine(
            url, environment, schema=schema, echo_pool=False, pool_pre_ping=False
        ),
        ("connection_setup", "NullPool"): make_engine(
            url, environment, schema=schema, poolclass=NullPool
        ),
        ("connection_setup", "QueuePool"): make_engine(
            url, environment, schema=schema, echo_pool=False
        ),
    }
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in engines}
    select1 = text("SELECT 1")
    try:
        for engine in engines.values():  # warm-up: open the pooled connections
            with engine.connect() as conn:
                conn.execute(select1)
        for _ in range(rounds):
            for key, engine in engines.items():
                start = time.perf_counter_ns()
                with engine.connect() as conn:
                    conn.execute(select1).scalar_one()
                samples[key].append((time.perf_counter_ns() - start) / 1e6)
    finally:
        for engine in engines.values():
            engine.dispose()
    rows = []
    for (measure, variant), values in samples.items():
        values.sort()
        low, high = percentile(values, 25), percentile(values, 75)
        rows.append(
            {
                "measure": measure,
                "variant": variant,
                "rounds": rounds,
                "median_ms": percentile(values, 50),
                "iqr_ms": high - low if low is not None and high is not None else None,
                "p95_ms": percentile(values, 95),
                "samples_ms": values,
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PoolRecommendation:
    """A pool_size / max_overflow for this server, with the evidence behind it."""

    pool_size: int
    max_overflow: int
    knee_concurrency: int
    peak_throughput_rps: float
    formula_pool_size: int
    reason: str


def recommend_pool_size(
    results: pd.DataFrame,
    usable_connections: int,
    processes: int = 1,
    share_of_peak: float = 0.9,
    cpu_count: int | None = None,
) -> PoolRecommendation:
    """The smallest concurrency reaching ``share_of_peak`` of the best throughput (pure).

    Only clean steps count (no timeouts, refusals or errors, concurrency within pool capacity),
    so concurrency equals busy server connections. max_overflow doubles that for bursts but keeps
    ``processes`` × (pool_size + max_overflow) within the server's usable connections.
    ``formula_pool_size`` is the classic cores × 2 + 1 cross-check.
    """
    clean = results[
        (results["pool_timeouts"] == 0)
        & (results["server_refusals"] == 0)
        & (results["errors"] == 0)
        & (results["concurrency"] <= results["pool_capacity"])
        & (results["requests"] > 0)
    ]
    if clean.empty:
        raise DataError("no clean load step to recommend from: lower concurrency or fix errors")
    curve = clean.groupby("concurrency")["throughput_rps"].max().sort_index()
    peak = float(curve.max())
    knee = int(curve[curve >= share_of_peak * peak].index[0])
    budget = max(usable_connections // max(processes, 1), 1)
    pool_size = min(knee, budget)
    max_overflow = max(min(2 * pool_size, budget - pool_size), 0)
    formula = (cpu_count or os.cpu_count() or 1) * 2 + 1
    rising = int(curve.idxmax()) == int(curve.index.max())
    reason = (
        f"throughput reaches {share_of_peak:.0%} of its peak ({peak:.0f} req/s) at {knee} "
        f"concurrent connections"
        + (
            "; it was still rising at the highest level measured, so measure higher concurrency"
            if rising
            else ""
        )
        + f"; {processes} process(es) share {usable_connections} usable server connections"
    )
    return PoolRecommendation(pool_size, max_overflow, knee, peak, formula, reason)
