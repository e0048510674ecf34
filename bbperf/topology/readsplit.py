"""The read-replica experiment: the OLTP mix on the primary while the analytics mix runs on the
primary or on the replica; lag sampled throughout; read-your-writes staleness probed; and what
happens when the replica stops mid-run (``fallback`` or errors, never a hang).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Engine, text

from bbperf.errors import BbperfError, ConfigError, first_line
from bbperf.metrics.queries import fetch_raw
from bbperf.pool.snapshot import percentile
from bbperf.topology.lag import Lag, LagSampler
from bbperf.topology.mix import (
    DRIVER_ERRORS,
    AnalyticsRouter,
    DatasetShape,
    Tally,
    analytics_request,
    book,
    drive,
    point_read,
)

Placement = Literal["primary", "replica"]


@dataclass
class PlacementRun:
    """One run: where analytics went, what OLTP and analytics saw, lag readings, staleness probes."""

    placement: Placement
    duration_s: float = 0.0
    oltp: Tally = field(default_factory=Tally)
    analytics: Tally = field(default_factory=Tally)
    writes: int = 0
    lag: list[Lag] = field(default_factory=list)
    staleness_ms: list[float] = field(default_factory=list)
    staleness_timeouts: int = 0
    staleness_first_read_fresh: int = 0
    fell_back: int = 0
    events: list[str] = field(default_factory=list)

    def summary(self, max_lag_s: float = 1.0) -> dict[str, Any]:
        """One row of figures (ms, requests/s, bytes, s); lag flagged beyond ``max_lag_s``."""
        oltp = sorted(self.oltp.latencies_ms)
        analytics = sorted(self.analytics.latencies_ms)
        readable = [x for x in self.lag if x.error is None]
        lag_s = sorted(x.lag_s for x in readable if x.lag_s is not None)
        lag_b = sorted(float(x.lag_bytes) for x in readable if x.lag_bytes is not None)
        stale = sorted(self.staleness_ms)
        beyond = sum(1 for x in readable if x.beyond(max_lag_s))
        return {
            "analytics_on": self.placement,
            "oltp_requests": len(oltp),
            "oltp_throughput_rps": len(oltp) / self.duration_s if self.duration_s else None,
            "oltp_p50_ms": percentile(oltp, 50),
            "oltp_p95_ms": percentile(oltp, 95),
            "oltp_p99_ms": percentile(oltp, 99),
            "analytics_requests": len(analytics),
            "analytics_p50_ms": percentile(analytics, 50),
            "analytics_p95_ms": percentile(analytics, 95),
            "analytics_on_replica": self.analytics.on_replica,
            "analytics_fell_back": self.fell_back,
            "analytics_errors": self.analytics.errors,
            "writes": self.writes,
            "lag_readings": len(self.lag),
            "lag_bytes_p95": percentile(lag_b, 95),
            "lag_s_p95": percentile(lag_s, 95),
            "lag_s_max": lag_s[-1] if lag_s else None,
            "lag_beyond_threshold": beyond,
            "lag_unreadable": len(self.lag) - len(readable),
            "lagging": beyond > 0,
            "staleness_probes": len(stale) + self.staleness_timeouts,
            "staleness_p50_ms": percentile(stale, 50),
            "staleness_p95_ms": percentile(stale, 95),
            "staleness_timeouts": self.staleness_timeouts,
            "staleness_first_read_fresh": self.staleness_first_read_fresh,
        }


def _check(
    duration_s: float, oltp_concurrency: int, write_rate_per_s: float, analytics: int
) -> None:
    if not duration_s > 0:
        raise ConfigError(f"duration_s {duration_s!r} must be a positive number of seconds")
    for name, value in (
        ("oltp_concurrency", oltp_concurrency),
        ("analytics_concurrency", analytics),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} {value!r} must be a positive whole number of threads")
    if not write_rate_per_s >= 0:
        raise ConfigError(f"write_rate_per_s {write_rate_per_s!r} must be 0 or more per second")


def run_placement(
    primary: Engine,
    replica: Engine | None,
    shape: DatasetShape,
    placement: Placement,
    *,
    duration_s: float = 3.0,
    oltp_concurrency: int = 4,
    write_rate_per_s: float = 50.0,
    analytics_concurrency: int = 2,
    fallback: bool = False,
    probe_staleness: bool = False,
    staleness_timeout_s: float = 5.0,
    interrupt: tuple[float, Callable[[], object]] | None = None,
    seed: int = 0,
) -> PlacementRun:
    """Drive the mixes for ``duration_s`` seconds with analytics on ``placement``.

    ``replica`` is needed for placement ``replica``, lag readings and staleness probes.
    ``interrupt=(at_s, action)`` calls ``action`` ``at_s`` seconds in (e.g. stop the replica).
    Threads: ``oltp_concurrency`` readers and one writer (``write_rate_per_s`` bookings with a
    payment) on the primary, ``analytics_concurrency`` analytics readers, one prober.
    """
    _check(duration_s, oltp_concurrency, write_rate_per_s, analytics_concurrency)
    if placement == "replica" and replica is None:
        raise ConfigError("analytics on the replica need a replica: start one or pass its URL")
    run = PlacementRun(placement)
    router = AnalyticsRouter(
        primary, replica if placement == "replica" else None, fallback=fallback
    )
    # The prober owns one barber: no other writer touches the figures it waits for.
    probe_barber, writer_barbers = shape.barbers[0], shape.barbers[1:] or shape.barbers
    workers: list[Callable[[float], None]] = []
    for n in range(oltp_concurrency):
        workers.append(_oltp_worker(primary, shape, run.oltp, random.Random(seed * 1000 + n)))
    if write_rate_per_s > 0:
        workers.append(_writer(primary, shape, run, writer_barbers, write_rate_per_s, seed))
    for n in range(analytics_concurrency):
        rng = random.Random(seed * 1000 + 500 + n)
        workers.append(_analytics_worker(router, shape, run.analytics, rng))
    if probe_staleness and replica is not None:
        workers.append(
            _prober(primary, replica, shape, run, probe_barber, staleness_timeout_s, seed)
        )
    if interrupt is not None:
        workers.append(_interrupter(run, *interrupt))
    sampler = LagSampler(primary, replica) if replica is not None else None
    if sampler is not None:
        sampler.__enter__()
    try:
        run.duration_s = drive(duration_s, workers)
    finally:
        if sampler is not None:
            sampler.__exit__()
            run.lag = sampler.readings
    run.fell_back = router.fell_back
    if router.first_failure:
        what = "fell back to the primary" if fallback else "failed (fallback off)"
        count = router.fell_back if fallback else run.analytics.errors
        run.events.append(
            f"replica failed: {router.first_failure}; {count} analytics requests {what}"
        )
    return run


def _timed(tally: Tally, action: Callable[[], object]) -> None:
    start = time.perf_counter()
    try:
        result = action()
    except (*DRIVER_ERRORS, BbperfError) as exc:
        tally.fail(exc)
        time.sleep(0.01)  # a dead server answers at once: do not spin on it
        return
    tally.latencies_ms.append((time.perf_counter() - start) * 1000)
    if result == "replica":
        tally.on_replica += 1


def _oltp_worker(
    engine: Engine, shape: DatasetShape, tally: Tally, rng: random.Random
) -> Callable[[float], None]:
    def read() -> None:
        sql, params = point_read(shape, rng)
        with engine.connect() as conn:
            conn.execute(text(sql), params).all()

    def loop(deadline: float) -> None:
        read()  # warm-up: connection and plan caches, not timed
        while time.perf_counter() < deadline:
            _timed(tally, read)

    return loop


def _writer(
    engine: Engine,
    shape: DatasetShape,
    run: PlacementRun,
    barbers: tuple[int, ...],
    rate_per_s: float,
    seed: int,
) -> Callable[[float], None]:
    rng = random.Random(seed * 1000 + 900)

    def loop(deadline: float) -> None:
        next_at = time.perf_counter()
        while next_at < deadline:
            try:
                book(engine, shape, rng.choice(barbers), rng)
                run.writes += 1
            except DRIVER_ERRORS as exc:
                run.oltp.fail(exc)
            next_at += 1.0 / rate_per_s
            time.sleep(max(0.0, next_at - time.perf_counter()))

    return loop


def _analytics_worker(
    router: AnalyticsRouter, shape: DatasetShape, tally: Tally, rng: random.Random
) -> Callable[[float], None]:
    def loop(deadline: float) -> None:
        while time.perf_counter() < deadline:
            # A ReplicaUnavailable is counted as an error like any other failure.
            _timed(tally, partial(router.run, analytics_request(shape, rng)))

    return loop


def _payment_count(engine: Engine, user_id: int, shape: DatasetShape) -> int:
    return int(fetch_raw(engine, user_id, shape.as_of, "after_equivalent").payments_30d)


def _prober(
    primary: Engine,
    replica: Engine,
    shape: DatasetShape,
    run: PlacementRun,
    barber: int,
    timeout_s: float,
    seed: int,
) -> Callable[[float], None]:
    """Commit a payment on the primary, then read the barber's metrics on the replica until they
    count it: the staleness is the time from commit to the end of the first replica read that
    includes it (an upper bound: the write became visible at most one read earlier)."""
    rng = random.Random(seed * 1000 + 950)

    def loop(deadline: float) -> None:
        while time.perf_counter() < deadline:
            try:
                expected = _payment_count(primary, barber, shape) + 1
                book(primary, shape, barber, rng)
                committed = time.perf_counter()
                run.writes += 1
                first = True
                while True:
                    seen = _payment_count(replica, barber, shape) >= expected
                    finished = time.perf_counter()  # the write was visible by the end of this read
                    if seen:
                        run.staleness_ms.append((finished - committed) * 1000)
                        run.staleness_first_read_fresh += first
                        break
                    first = False
                    if finished - committed > timeout_s:
                        run.staleness_timeouts += 1
                        break
            except (*DRIVER_ERRORS, BbperfError) as exc:
                run.events.append(f"staleness probe stopped: {first_line(exc)}")
                return
            time.sleep(0.02)

    return loop


def _interrupter(
    run: PlacementRun, at_s: float, action: Callable[[], object]
) -> Callable[[float], None]:
    def fire(deadline: float) -> None:
        start = time.perf_counter()
        threading.Event().wait(min(at_s, max(0.0, deadline - start)))
        asked = time.perf_counter() - start
        action()
        run.events.append(
            f"replica stop asked {asked:.1f} s into the run, done at {time.perf_counter() - start:.1f} s"
        )

    return fire


def summarize_runs(runs: list[PlacementRun], max_lag_s: float = 1.0) -> pd.DataFrame:
    """One row per run (see ``PlacementRun.summary``); the same columns when there is none."""
    columns = list(PlacementRun("primary").summary(max_lag_s))
    return pd.DataFrame([r.summary(max_lag_s) for r in runs], columns=columns)
