"""Speed of the metrics variants: server time from EXPLAIN ANALYZE, client time end to end.

Server time is PostgreSQL's Execution Time for each statement a call sends (summed over before's
four), with planning time kept apart. Client time is one whole call as the service makes it:
pool checkout (with its pre-ping), every round trip, and the Python that counts before's rows.
Variants are interleaved in a shuffled order each round, so drift in machine load hits all alike.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text

from bbperf.explain import Timing, compare, explain
from bbperf.explain.timingstats import median_ci, relative_ci_half_width
from bbperf.generate import ensure_dataset
from bbperf.indexes import apply as apply_set
from bbperf.indexes import drop, load_set
from bbperf.metrics.model import RawMetrics
from bbperf.metrics.queries import BEFORE_STATEMENTS, CTE_SQL, barber_ids, fetch_raw, window_params
from bbperf.metrics.rollup import READ_SQL as ROLLUP_READ_SQL
from bbperf.metrics.rollup import fetch_from_rollup, read_params
from bbperf.metrics.variants import (
    VIEW_READ_SQL,
    create_metrics_view,
    drop_metrics_view,
    ensure_prepared,
    execute_sql,
    fetch_from_view,
    fetch_prepared,
    refresh_metrics_view,
)
from bbperf.progress import bar as progress_bar
from bbperf.sqlnames import qualified
from bbperf.target import schema_of

# Indexes of the `metrics` set before issue 23 reshaped it (replaced by partial and narrower ones).
FORMER_METRICS_INDEXES = (
    "idx_metrics_appointments_user_status_client",
    "idx_metrics_payments_user_status_created",
)
# Custom plans PostgreSQL makes for a prepared statement before it may switch to the generic one.
PREPARED_WARMUP = 5
# Rounds sized to a CI width time at least this many rounds (the bootstrap needs a few samples).
MIN_ROUNDS = 5
BENCH_VARIANTS = ("before", "after", "after_equivalent", "prepared", "view")
Fetcher = Callable[[Engine, int, datetime], RawMetrics]

FETCHERS: dict[str, Fetcher] = {
    "before": partial(fetch_raw, variant="before"),
    "after": partial(fetch_raw, variant="after"),
    "after_equivalent": partial(fetch_raw, variant="after_equivalent"),
    "prepared": fetch_prepared,
    "view": fetch_from_view,
    "barber_driven": partial(fetch_raw, variant="barber_driven"),
    "denormalized": partial(fetch_raw, variant="denormalized"),
    "rollup": fetch_from_rollup,
}

_LOAD_SQL = """
SELECT u.id AS user_id, COUNT(a.id) AS appointments_30d
FROM users u LEFT JOIN appointments a
  ON a.user_id = u.id AND a.status = 'completed'
 AND a.start_time >= :since_30d AND a.start_time < :as_of
WHERE u.id = ANY(:ids)
GROUP BY u.id ORDER BY appointments_30d DESC, u.id"""


@dataclass(frozen=True)
class BarberPick:
    """A barber chosen for timing, and why: busiest, median, or a random sample."""

    label: str
    user_id: int
    appointments_30d: int


def pick_barbers(
    engine: Engine, as_of: datetime, sampled: int = 2, seed: int = 0
) -> list[BarberPick]:
    """The busiest and the median barber by completed appointments in the 30-day window, then
    ``sampled − 2`` more drawn at random (seeded)."""
    params = {**window_params(0, as_of), "ids": barber_ids(engine)}
    with engine.connect() as conn:
        load = [
            (int(r.user_id), int(r.appointments_30d)) for r in conn.execute(text(_LOAD_SQL), params)
        ]
    if not load:
        return []
    picks = [BarberPick("busiest", *load[0])]
    if len(load) > 1:
        picks.append(BarberPick("median", *load[len(load) // 2]))
    rest = [row for row in load if row[0] not in {p.user_id for p in picks}]
    extra = random.Random(seed).sample(rest, min(len(rest), max(0, sampled - len(picks))))
    picks += [BarberPick(f"sample {i}", *row) for i, row in enumerate(extra, start=1)]
    return picks


def server_statements(conn: Connection, variant: str) -> list[str]:
    """The statements one call of ``variant`` runs on the server (PREPAREs on ``conn`` if needed)."""
    if variant == "before":
        return list(BEFORE_STATEMENTS.values())
    if variant == "prepared":
        return [execute_sql(ensure_prepared(conn))]
    if variant == "view":
        return [VIEW_READ_SQL]
    if variant == "rollup":
        return [ROLLUP_READ_SQL]
    return [CTE_SQL[variant]]


def server_timing(
    engine: Engine,
    variant: str,
    user_id: int,
    as_of: datetime,
    rounds: int = 10,
    warmup: int = 2,
    *,
    ci_width: float = 0.0,
    min_rounds: int = MIN_ROUNDS,
) -> Timing:
    """Execution Time (ms) of one call's statements, summed, per round, from
    ``EXPLAIN (ANALYZE, TIMING OFF)``; median planning time in ``extra['planning_ms']``.

    ``warmup`` rounds are discarded; PostgreSQL plans a prepared statement's first five executions
    custom and may run its generic plan from the sixth on, so ``warmup`` = ``PREPARED_WARMUP`` (5)
    times the steady state from the first timed round (at SF 1 with the metrics set, the sixth
    already takes the generic plan's ~0.3 s). With
    ``ci_width`` > 0, timing stops once at least ``min_rounds`` rounds put the median's 95 % CI
    within ±``ci_width`` (a fraction), at most ``rounds``.
    """
    params = read_params(user_id, as_of) if variant == "rollup" else window_params(user_id, as_of)
    executions: list[float] = []
    planning: list[float] = []
    with engine.connect() as conn:
        sqls = server_statements(conn, variant)
        for i in range(warmup + rounds):
            plans = [explain(conn, sql, params, buffers=False, timing=False) for sql in sqls]
            if i >= warmup:
                executions.append(sum(p.execution_ms or 0.0 for p in plans))
                planning.append(sum(p.planning_ms or 0.0 for p in plans))
                if _known_to(executions, ci_width, min_rounds):
                    break
        conn.rollback()
    return Timing(
        samples_ms=tuple(executions),
        label=f"{variant} server",
        sql=";\n".join(sqls),
        warmup=warmup,
        extra={"planning_ms": statistics.median(planning), "statements": len(sqls)},
    )


def _known_to(samples: Sequence[float], ci_width: float, min_rounds: int) -> bool:
    """Enough rounds: at least ``min_rounds`` and the median's 95 % CI within ±``ci_width``."""
    return (
        ci_width > 0 and len(samples) >= min_rounds and relative_ci_half_width(samples) <= ci_width
    )


def client_timings(
    engine: Engine,
    variants: Sequence[str],
    user_id: int,
    as_of: datetime,
    rounds: int = 30,
    warmup: int = 5,
    seed: int = 0,
    *,
    ci_width: float = 0.0,
    min_rounds: int = MIN_ROUNDS,
) -> dict[str, Timing]:
    """End-to-end time (ms) of one call per variant, ``rounds`` times, interleaved in a shuffled
    order each round after ``warmup`` untimed rounds (which also PREPARE on the pooled connection);
    GC is off while timing. With ``ci_width`` > 0, a variant leaves the rounds once its median is
    known to ±``ci_width`` (95 % CI) after at least ``min_rounds`` — the slow ones (``prepared``'s
    generic plan takes ~0.5 s a call at SF 1) stop as soon as they are precise, not when the
    noisiest fast one is — and the rounds end when every variant has left."""
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(warmup):
        for v in variants:
            FETCHERS[v](engine, user_id, as_of)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            order = [v for v in variants if not _known_to(samples[v], ci_width, min_rounds)]
            if not order:
                break
            rng.shuffle(order)
            for v in order:
                start = time.perf_counter_ns()
                FETCHERS[v](engine, user_id, as_of)
                samples[v].append((time.perf_counter_ns() - start) / 1e6)
    finally:
        if was_enabled:
            gc.enable()
    return {
        v: Timing(samples_ms=tuple(s), label=f"{v} end-to-end", warmup=warmup)
        for v, s in samples.items()
    }


def speed_rows(
    barber: BarberPick,
    server: dict[str, Timing],
    client: dict[str, Timing],
    baseline: str = "before",
) -> list[dict[str, Any]]:
    """One row per variant: server and client medians, and the client speedup over ``baseline``
    with its 95 % bootstrap CI and Mann–Whitney significance."""
    rows = []
    for variant, timing in client.items():
        summary = timing.summary
        row: dict[str, Any] = {
            "barber": barber.label,
            "user_id": barber.user_id,
            "appointments_30d": barber.appointments_30d,
            "variant": variant,
            "server_exec_ms": server[variant].median_ms if variant in server else None,
            **_server_ci(server.get(variant)),
            "server_plan_ms": server[variant].extra["planning_ms"] if variant in server else None,
            "client_ms": summary.median,
            "client_iqr_ms": summary.iqr,
        }
        if variant != baseline and baseline in client:
            cmp = compare(client[baseline], timing)
            row.update(
                speedup=cmp.speedup,
                ci_low=cmp.ci_low,
                ci_high=cmp.ci_high,
                p_value=cmp.p_value,
                significant=cmp.significant,
            )
        rows.append(row)
    return rows


def _server_ci(timing: Timing | None) -> dict[str, float | None]:
    """The 95 % bootstrap CI of a server median (None with fewer than two samples)."""
    if timing is None or len(timing.samples_ms) < 2:
        return {"server_ci_low": None, "server_ci_high": None}
    low, high = median_ci(timing.samples_ms)
    return {"server_ci_low": low, "server_ci_high": high}


def benchmark(
    engine: Engine,
    as_of: datetime,
    picks: Iterable[BarberPick],
    variants: Sequence[str] = BENCH_VARIANTS,
    rounds: int = 30,
    warmup: int = 5,
    server_rounds: int = 10,
    *,
    ci_width: float = 0.0,
) -> tuple[pd.DataFrame, dict[tuple[str, str], Timing]]:
    """Server and client timings of every variant for each picked barber.

    ``rounds`` and ``server_rounds`` are maxima when ``ci_width`` > 0 (rounds stop once medians are
    known to ±``ci_width``, 95 % CI). Returns the speed table and the client Timings by (barber
    label, variant) for figures. The ``view`` variant needs ``create_metrics_view(engine, as_of)``
    first.
    """
    rows: list[dict[str, Any]] = []
    timings: dict[tuple[str, str], Timing] = {}
    picks = list(picks)
    with progress_bar(total=len(picks) * (len(variants) + 1), desc="metrics speed") as shown:
        for pick in picks:
            server = {}
            for v in variants:
                server[v] = server_timing(
                    engine, v, pick.user_id, as_of, server_rounds,
                    warmup=PREPARED_WARMUP if v == "prepared" else 2, ci_width=ci_width,
                )  # fmt: skip
                shown.update()
            client = client_timings(
                engine, variants, pick.user_id, as_of, rounds, warmup, ci_width=ci_width
            )
            shown.update()
            rows += speed_rows(pick, server, client)
            timings.update({(pick.label, v): t for v, t in client.items()})
    return pd.DataFrame(rows), timings


def view_costs(engine: Engine, as_of: datetime, refreshes: int = 3) -> dict[str, float]:
    """Build and median refresh time (ms) of the materialized view — the price of its fast reads."""
    build_ms = create_metrics_view(engine, as_of)
    refresh = [refresh_metrics_view(engine) for _ in range(refreshes)]
    return {"view_build_ms": build_ms, "view_refresh_ms": statistics.median(refresh)}


def drop_former_metrics_indexes(engine: Engine) -> None:
    """Drop the indexes an earlier ``metrics`` set built and the current one no longer names, so a
    database that applied it neither pays for them on every write nor plans on them."""
    schema = schema_of(engine)
    with engine.begin() as conn:
        for name in FORMER_METRICS_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {qualified(schema, name)}"))


def set_indexes(engine: Engine, index_set: str) -> None:
    """Leave exactly ``index_set`` of bbperf's named sets on the tables (``seed+metrics`` for
    both): ``none`` drops the seed and metrics sets (and any index of a former ``metrics`` set)."""
    drop_former_metrics_indexes(engine)
    wanted = [] if index_set == "none" else index_set.split("+")
    for name in ("seed", "metrics"):
        if name not in wanted:
            drop(engine, load_set(name))
    for name in wanted:
        apply_set(engine, load_set(name))


def scale_sweep(
    engine: Engine,
    profile: str,
    scales: Sequence[float],
    seed: int,
    as_of: datetime,
    index_set: str = "seed",
    variants: Sequence[str] = BENCH_VARIANTS,
    rounds: int = 10,
    server_rounds: int = 5,
    *,
    ci_width: float = 0.0,
) -> pd.DataFrame:
    """For each scale: load the dataset (reused when already there), set the indexes, build the
    view, and time every variant for the busiest and median barber. One row per
    (scale, barber, variant) with the view's refresh cost; the database ends at the last scale."""
    frames = []
    for scale in scales:
        drop_metrics_view(engine)
        info = ensure_dataset(engine, profile, scale, seed, as_of.date())
        set_indexes(engine, index_set)
        costs = view_costs(engine, as_of, refreshes=1)
        table, _ = benchmark(
            engine,
            as_of,
            pick_barbers(engine, as_of, 2),
            variants,
            rounds,
            warmup=3,
            server_rounds=server_rounds,
            ci_width=ci_width,
        )
        frames.append(table.assign(scale=scale, appointments=info.rows["appointments"], **costs))
    return pd.concat(frames, ignore_index=True)


def conclusion(
    speed: pd.DataFrame, drift_summary: list[dict[str, Any]], barbers: int, target_ms: float = 1.0
) -> str:
    """The notebook's verdict in sentences, computed from its speed table (one index state) and
    drift summary: after's server time against ``target_ms``, the end-to-end speedup and its
    significance, and what the rewrite changed."""
    lines = []
    for label in ("busiest", "median"):
        rows = speed[speed["barber"] == label].set_index("variant")
        if rows.empty or "after" not in rows.index:
            continue
        after = rows.loc["after"]
        verdict = "within" if after["server_exec_ms"] <= target_ms else "over"
        sig = "significant" if after.get("significant") else "not significant"
        lines.append(
            f"{label} barber (user {after['user_id']}, {after['appointments_30d']} appointments in "
            f"30 days): after runs in {after['server_exec_ms']:.3f} ms on the server ({verdict} the "
            f"{target_ms:g} ms target) against {rows.loc['before', 'server_exec_ms']:.3f} ms for "
            f"before's four statements; end to end ×{after['speedup']:.2f} faster (95 % CI "
            f"×{after['ci_low']:.2f}–×{after['ci_high']:.2f}, {sig})."
        )
    raw = [d for d in drift_summary if d["metric"] in ("average_ticket", "visits_365d")]
    if raw:
        changed = "; ".join(
            f"{d['metric']} differs for {d['barbers_drifting']} of {barbers} "
            f"barbers ({d['explained']} explained)"
            for d in raw
        )
        lines.append(
            f"The rewrite is not a pure speed-up: {changed}. after_equivalent keeps "
            "before's meaning in one statement."
        )
    else:
        lines.append(f"No barber of {barbers} shows drift between before and after here.")
    return "\n".join(lines)
