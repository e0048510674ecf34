"""What the fast variants cost elsewhere: the rollup's triggers on writes, the view's staleness
window, the prepared statement's generic plan.

* ``trigger_cost``: latency of the writes an application makes — one booking (appointment + payment
  inserted), the same booking back-dated by ``BACKDATE_DAYS`` (it moves every later running total
  of the barber), one status change, one refund, and a batch insert — with no triggers, row-level
  triggers and statement-level triggers, interleaved, every write rolled back. The rollup is built
  at most once: each mode's triggers are swapped in inside a transaction that is rolled back.
* ``view_staleness``: the view is exact only up to its last refresh; a refresh costs
  ``refresh_ms``, so refreshing every N minutes buys reads that are up to N minutes stale at
  ``refresh_ms / N`` ms of server time per minute.
* ``plan_cache_modes``: ``prepared``'s Execution + Planning time under ``force_custom_plan`` and
  ``force_generic_plan``; a generic plan slower than the custom one is flagged.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text

from bbperf.errors import DataError
from bbperf.explain import explain
from bbperf.metrics.queries import window_params
from bbperf.metrics.rollup import (
    apply_rollup,
    drop_rollup,
    installed_mode,
    lock_sources,
    swap_triggers,
)
from bbperf.metrics.variants import execute_sql, prepare_sql, refresh_metrics_view
from bbperf.target import schema_of

WRITES = ("book", "book_backdated", "status_change", "refund", "batch_insert")
BACKDATE_DAYS = 300
TRIGGER_MODES = ("none", "row", "statement")


def _sample(conn: Connection) -> dict[str, Any]:
    """A completed, paid appointment to copy and touch (the newest one)."""
    row = (
        conn.execute(
            text(
                "SELECT a.id, a.user_id, a.barber_id, a.client_id, a.start_time, "
                "a.duration_minutes, a.price, p.id AS payment_id FROM appointments a "
                "JOIN payments p ON p.appointment_id = a.id "
                "WHERE a.status = 'completed' AND p.status = 'completed' ORDER BY a.id DESC LIMIT 1"
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise DataError("no completed, paid appointment to write with: generate a dataset first")
    return dict(row)


def _write(conn: Connection, kind: str, s: dict[str, Any], batch_rows: int) -> float:
    """One write of ``kind`` in a savepoint, rolled back; ms (client clock)."""
    savepoint = conn.begin_nested()
    started = time.perf_counter_ns()
    if kind in ("book", "book_backdated"):
        if kind == "book_backdated":
            s = {**s, "start_time": s["start_time"] - timedelta(days=BACKDATE_DAYS)}
        new = conn.execute(
            text(
                "INSERT INTO appointments (user_id, barber_id, client_id, status, start_time, "
                "duration_minutes, price) VALUES (:user_id, :barber_id, :client_id, 'completed', "
                ":start_time, :duration_minutes, :price) RETURNING id"
            ),
            s,
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO payments (user_id, appointment_id, amount, status, created_at) "
                "VALUES (:user_id, :a, :price, 'completed', :start_time)"
            ),
            {**s, "a": new},
        )
    elif kind == "status_change":
        conn.execute(text("UPDATE appointments SET status = 'no_show' WHERE id = :id"), s)
    elif kind == "refund":
        conn.execute(text("UPDATE payments SET status = 'refunded' WHERE id = :payment_id"), s)
    else:
        conn.execute(
            text(
                "INSERT INTO appointments (user_id, barber_id, client_id, status, start_time, "
                "duration_minutes, price) SELECT user_id, barber_id, client_id, status, "
                "start_time, duration_minutes, price FROM appointments ORDER BY id DESC LIMIT :n"
            ),
            {"n": batch_rows},
        )
    elapsed = (time.perf_counter_ns() - started) / 1e6
    savepoint.rollback()
    return elapsed


def _timed_writes(
    conn: Connection, mode: str, rounds: int, batch_rows: int, rng: random.Random
) -> dict[tuple[str, str], list[float]]:
    """``rounds`` of every write kind (shuffled each round, after two warm-up rounds) with
    ``mode``'s triggers swapped in; the caller's transaction is rolled back afterwards."""
    schema = schema_of(conn.engine)
    lock_sources(conn, schema)
    swap_triggers(conn, schema, None if mode == "none" else mode)  # type: ignore[arg-type]
    s = _sample(conn)
    samples: dict[tuple[str, str], list[float]] = {}
    for i in range(rounds + 2):
        order = list(WRITES)
        rng.shuffle(order)
        for kind in order:
            ms = _write(conn, kind, s, batch_rows)
            if i >= 2:
                samples.setdefault((kind, mode), []).append(ms)
    return samples


def trigger_cost(
    engine: Engine, rounds: int = 30, batch_rows: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Median write latency (ms) per write kind and trigger mode (none, row, statement).

    The rollup is built once when it is not installed (and dropped again at the end); each mode
    is priced inside one transaction that holds writers off, swaps that mode's triggers in, runs
    every write in a savepoint rolled back, and is rolled back itself — so the rollup is left as
    found. Columns: write, mode, median_ms, iqr_ms, rounds, slowdown (÷ the same write with no
    triggers).
    """
    rng = random.Random(seed)
    samples: dict[tuple[str, str], list[float]] = {}
    with engine.connect() as conn:
        found = installed_mode(conn, schema_of(engine))
    if found is None:
        apply_rollup(engine)
    try:
        for mode in TRIGGER_MODES:
            with engine.connect() as conn, conn.begin() as outer:
                samples.update(_timed_writes(conn, mode, rounds, batch_rows, rng))
                outer.rollback()
    finally:
        if found is None:
            drop_rollup(engine)
    rows = []
    for (kind, mode), values in samples.items():
        q = statistics.quantiles(values, n=4)
        base = statistics.median(samples[(kind, "none")])
        rows.append({
            "write": kind, "mode": mode, "median_ms": statistics.median(values),
            "iqr_ms": q[2] - q[0], "rounds": len(values),
            "slowdown": statistics.median(values) / base,
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values(["write", "mode"], ignore_index=True)


def view_staleness(engine: Engine, refreshes: int = 3, every_min: float = 5.0) -> dict[str, float]:
    """Median refresh time (ms) of the built view and what refreshing every ``every_min`` minutes
    costs: reads are up to that stale, for ``refresh_ms / every_min`` ms of server work a minute."""
    refresh = statistics.median(refresh_metrics_view(engine) for _ in range(refreshes))
    return {
        "refresh_ms": refresh,
        "staleness_window_min": every_min,
        "refresh_ms_per_min": refresh / every_min,
        "server_share_pct": refresh / (every_min * 60_000) * 100,
    }


def _timed(conn: Connection, sql: str, params: dict[str, Any], rounds: int) -> dict[str, float]:
    plans = [explain(conn, sql, params, buffers=False, timing=False) for _ in range(rounds)]
    return {
        "execution_ms": statistics.median(p.execution_ms or 0.0 for p in plans),
        "planning_ms": statistics.median(p.planning_ms or 0.0 for p in plans),
    }


def plan_cache_modes(
    engine: Engine,
    user_id: int,
    as_of: datetime,
    variant: str = "after_equivalent",
    rounds: int = 10,
    slower_by: float = 1.1,
    warmup: int = 2,
) -> pd.DataFrame:
    """``prepared`` under force_custom_plan and force_generic_plan: median Execution and Planning
    time (ms) of ``rounds`` EXPLAIN ANALYZE EXECUTEs each after ``warmup``; ``generic_slower`` is
    True on the generic row when its execution time exceeds the custom plan's by more than
    ``slower_by``×. At SF 1 the generic plan runs ~0.5 s, ×10 and more the custom one: three rounds
    decide a ×1.1 threshold as surely as ten."""
    name, prepare = prepare_sql(variant)
    # Its own statement name: the pooled connection may hold the prepared variant's statement.
    prepare = prepare.replace(f"PREPARE {name} ", f"PREPARE {name}_modes ", 1)
    name += "_modes"
    params = window_params(user_id, as_of)
    rows = []
    with engine.connect() as conn:
        conn.exec_driver_sql(prepare)
        for mode in ("force_custom_plan", "force_generic_plan"):
            conn.execute(text(f"SET plan_cache_mode = {mode}"))
            if warmup:
                _timed(conn, execute_sql(name), params, warmup)
            rows.append({"variant": variant, "plan_cache_mode": mode,
                         **_timed(conn, execute_sql(name), params, rounds)})  # fmt: skip
        conn.execute(text("RESET plan_cache_mode"))
        conn.exec_driver_sql(f"DEALLOCATE {name}")
        conn.commit()
    frame = pd.DataFrame(rows)
    custom = frame.loc[0, "execution_ms"]
    frame["vs_custom"] = frame["execution_ms"] / custom if custom else float("nan")
    frame["generic_slower"] = (frame["plan_cache_mode"] == "force_generic_plan") & (
        frame["vs_custom"] > slower_by
    )
    return frame


def flag_generic(frame: pd.DataFrame) -> str:
    """One sentence from ``plan_cache_modes``: is the generic plan slower, and by how much."""
    generic = frame[frame["plan_cache_mode"] == "force_generic_plan"].iloc[0]
    custom = frame[frame["plan_cache_mode"] == "force_custom_plan"].iloc[0]
    verdict = "SLOWER" if generic["generic_slower"] else "not slower"
    return (
        f"{generic['variant']} prepared: generic plan {verdict} — execution "
        f"{generic['execution_ms']:.3f} ms vs custom {custom['execution_ms']:.3f} ms "
        f"(×{generic['vs_custom']:.2f}); planning {generic['planning_ms']:.3f} ms vs "
        f"{custom['planning_ms']:.3f} ms"
    )
