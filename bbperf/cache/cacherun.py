"""The result-cache experiment: Zipf-popular barbers read through the cache while a second
connection writes their appointments and payments; TTL and database-driven invalidation side by side.

Each read times the cached path, then — with writes held off, so "at that moment" is exact — reads
``before`` (the truth: a read whose figures differ from it is *stale*) and ``after_equivalent``.
The writer alternates two writes that each change the barber's 30-day figures: a payment inserted on
one of their completed appointments (marked, deleted at the end: nothing references payments, so the
delete is cheap at any scale), and 15 minutes added to one of their completed appointments (journaled
in ``bbperf_meta`` in the same transaction, reverted at the end — deleting inserted appointments would
make PostgreSQL check every payment per row where ``payments.appointment_id`` has no index). A run
killed half-way is undone by the next. Bounded: ``duration_s`` per policy.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from bbperf import meta
from bbperf.cache.analysis import Read, reads_frame, summarize_policy, zipf_weights
from bbperf.cache.invalidation import (
    Listener,
    install_triggers,
    remove_triggers,
    triggers_installed,
)
from bbperf.cache.readthrough import open_cache, read_through
from bbperf.cache.server import CacheServer
from bbperf.cache.store import POLICIES, CachePolicy, MetricsCache
from bbperf.errors import ConfigError, DataError
from bbperf.metrics.queries import barber_ids, fetch_raw, window_params
from bbperf.target import schema_of

MARKER = "bbperf-cache-experiment"

JOURNAL_KEY = "cache_experiment_journal"
EXTRA_MINUTES = 15

_CANDIDATES_SQL = """
SELECT user_id, id, barber_id, price FROM appointments
WHERE status = 'completed' AND user_id = ANY(:ids)
  AND start_time >= :since_30d AND start_time < :as_of"""

_INSERT_PAYMENT = """
INSERT INTO payments (user_id, appointment_id, barber_id, amount, status,
                      stripe_payment_intent_id, created_at)
VALUES (%(user_id)s, %(id)s, %(barber_id)s, %(price)s, 'completed', %(marker)s, %(created_at)s)"""

_LENGTHEN_APPOINTMENT = """
UPDATE appointments SET duration_minutes = duration_minutes + %(minutes)s WHERE id = %(id)s"""

_REVERT_APPOINTMENTS = """
UPDATE appointments a SET duration_minutes = a.duration_minutes - j.minutes
FROM unnest(CAST(:ids AS int[]), CAST(:minutes AS int[])) AS j(id, minutes)
WHERE a.id = j.id"""


@dataclass(frozen=True)
class ExperimentConfig:
    """Knobs of one run. Durations in seconds, rates per second."""

    duration_s: float = 6.0
    zipf_exponent: float = 1.1
    writes_per_s: float = 20.0
    ttl_s: float = 2.0
    seed: int = 42
    policies: tuple[str, ...] = POLICIES

    def __post_init__(self) -> None:
        if not 0 < self.duration_s <= 600:
            raise ConfigError(f"duration_s {self.duration_s} must be in (0, 600] seconds")
        if self.writes_per_s < 0 or self.ttl_s <= 0 or self.zipf_exponent < 0:
            raise ConfigError("writes_per_s and zipf_exponent must be ≥ 0, ttl_s > 0")
        for name in self.policies:
            CachePolicy.of(name)


@dataclass
class PolicyRun:
    """What one policy's run produced."""

    policy: str
    reads: list[Read] = field(default_factory=list)
    writes: int = 0
    invalidations: int = 0
    memory_bytes: list[int] = field(default_factory=list)


class Writer(threading.Thread):
    """Writes on its own connection — a client that knows nothing of the cache — at a fixed rate,
    barbers drawn with the readers' popularity. Each write is one committed transaction, made
    while holding ``lock`` so readers can check staleness with no commit in between."""

    def __init__(
        self,
        engine: Engine,
        candidates: dict[int, list[dict[str, Any]]],
        weights: np.ndarray,
        barbers: Sequence[int],
        as_of: datetime,
        config: ExperimentConfig,
        lock: threading.Lock,
    ) -> None:
        super().__init__(name="bbperf-cache-writer", daemon=True)
        self.engine, self.candidates, self.as_of = engine, candidates, as_of
        self.weights, self.barbers, self.config, self.lock = weights, list(barbers), config, lock
        self.writes = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        if self.config.writes_per_s <= 0:
            return
        rng = np.random.default_rng(self.config.seed + 1)
        interval = 1.0 / self.config.writes_per_s
        raw = self.engine.raw_connection()
        try:
            next_at = time.monotonic()
            while not self._stopping.wait(max(0.0, next_at - time.monotonic())):
                user_id = int(rng.choice(self.barbers, p=self.weights))
                rows = self.candidates.get(user_id)
                if rows:
                    row = rows[int(rng.integers(len(rows)))]
                    with self.lock:
                        self._write(raw, row, rng, payment=self.writes % 2 == 0)
                    self.writes += 1
                next_at += interval
        except BaseException as exc:  # surfaced by the experiment after join
            self.error = exc
        finally:
            raw.close()

    def _write(
        self, raw: Any, row: dict[str, Any], rng: np.random.Generator, payment: bool
    ) -> None:
        created = self.as_of - timedelta(days=float(rng.uniform(1, 29)))
        params = {**row, "marker": MARKER, "created_at": created}
        params.update(minutes=EXTRA_MINUTES)
        cur = raw.cursor()
        try:
            cur.execute(_INSERT_PAYMENT if payment else _LENGTHEN_APPOINTMENT, params)
            if not payment:  # journaled in the same transaction, for undo_writes
                meta.add(cur, schema_of(self.engine), JOURNAL_KEY, str(row["id"]), EXTRA_MINUTES)
            raw.commit()
        finally:
            cur.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)


def undo_writes(engine: Engine) -> int:
    """Undo every write an experiment made (this run's or a killed one's), in one transaction:
    delete the marked payments, take the journaled minutes back off. Returns the rows touched."""
    with engine.begin() as conn:
        payments = conn.execute(
            text("DELETE FROM payments WHERE stripe_payment_intent_id = :m"), {"m": MARKER}
        ).rowcount
        schema = schema_of(engine)
        journal = meta.read(conn, schema, JOURNAL_KEY) or {}
        appointments = conn.execute(
            text(_REVERT_APPOINTMENTS),
            {"ids": [int(i) for i in journal], "minutes": [int(m) for m in journal.values()]},
        ).rowcount
        meta.delete(conn, schema, JOURNAL_KEY)
    return int(payments) + int(appointments)


def _candidates(
    engine: Engine, barbers: Sequence[int], as_of: datetime
) -> dict[int, list[dict[str, Any]]]:
    """Each barber's completed appointments in the 30-day window: what the writer changes."""
    params = {**window_params(0, as_of), "ids": list(barbers)}
    out: dict[int, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for r in conn.execute(text(_CANDIDATES_SQL), params).mappings():
            out.setdefault(int(r["user_id"]), []).append(dict(r))
    return out


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter_ns()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter_ns() - start) / 1e6


def run_policy(
    engine: Engine,
    server: CacheServer,
    policy: CachePolicy,
    barbers: Sequence[int],
    as_of: datetime,
    config: ExperimentConfig,
) -> PolicyRun:
    """One bounded run of ``policy``: empty cache, listener (for invalidate), writer, readers."""
    cache: MetricsCache = open_cache(engine, server, policy)
    cache.flush()
    weights = zipf_weights(len(barbers), config.zipf_exponent)
    order = list(np.random.default_rng(config.seed).permutation(barbers))  # who is popular
    lock = threading.Lock()
    listener = Listener(engine, cache).start_and_wait() if policy.name == "invalidate" else None
    writer = Writer(
        engine, _candidates(engine, barbers, as_of), weights, order, as_of, config, lock
    )
    run = PolicyRun(policy.name)
    rng = np.random.default_rng(config.seed + 2)
    gc.disable()
    writer.start()
    started = time.monotonic()
    try:
        while (now := time.monotonic() - started) < config.duration_s:
            user_id = int(rng.choice(order, p=weights))
            with lock:
                (raw, hit), cached_ms = _timed(read_through, engine, cache, user_id, as_of)
                truth, before_ms = _timed(fetch_raw, engine, user_id, as_of, "before")
            _, equivalent_ms = _timed(fetch_raw, engine, user_id, as_of, "after_equivalent")
            run.reads.append(
                Read(
                    policy.name,
                    user_id,
                    now,
                    hit,
                    cached_ms,
                    raw.values() != truth.values(),
                    before_ms,
                    equivalent_ms,
                )
            )
    finally:
        gc.enable()
        writer.stop()
        if listener is not None:
            listener.stop()
            run.invalidations = listener.invalidations
        run.writes = writer.writes
        run.memory_bytes = [m for u in cache.cached_barbers() if (m := cache.memory_bytes(u))]
        cache.flush()
        cache.client.close()
    if writer.error is not None:
        raise DataError(f"the experiment's writer failed: {writer.error}") from None
    return run


def run_experiment(
    engine: Engine, server: CacheServer, as_of: datetime, config: ExperimentConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every policy in turn on the same stream: (per-policy summary indexed by policy, all reads).

    Installs the invalidation triggers for the run and removes them after (unless they were there
    before), and undoes the writer's writes, so the dataset ends as it began.
    """
    config = config or ExperimentConfig()
    barbers = barber_ids(engine)
    if not barbers:
        raise DataError("no barbers in the dataset: run `bbperf generate` first")
    had_triggers = triggers_installed(engine) > 0
    undo_writes(engine)  # a run that was killed left its writes behind
    runs: list[PolicyRun] = []
    try:
        install_triggers(engine)
        for name in config.policies:
            policy = CachePolicy.of(name, config.ttl_s if name == "ttl" else None)
            runs.append(run_policy(engine, server, policy, barbers, as_of, config))
            undo_writes(engine)
    finally:
        undo_writes(engine)
        if not had_triggers:
            remove_triggers(engine)
    reads = pd.concat([reads_frame(r.reads) for r in runs], ignore_index=True)
    summary = pd.DataFrame.from_records(
        [
            {
                **summarize_policy(reads[reads["policy"] == r.policy], r.writes, r.memory_bytes),
                "invalidations": r.invalidations,
            }
            for r in runs
        ],
        index=[r.policy for r in runs],
    )
    summary.index.name = "policy"
    return summary, reads


def trigger_write_cost(
    engine: Engine, as_of: datetime, rounds: int = 40, block: int = 10
) -> dict[str, list[float]]:
    """Client time (ms) of one committed write — 15 minutes on and then off one completed
    appointment, so the data ends unchanged — without and with the invalidation triggers, in
    alternating blocks of ``block`` writes (installing triggers is DDL: not per write).

    Returns ``{"without_triggers": [...], "with_triggers": [...]}``, ``rounds`` samples each; the
    triggers end as they were found.
    """
    if rounds < 2 or block < 1:
        raise ConfigError("trigger_write_cost needs rounds ≥ 2 and block ≥ 1")
    candidates = _candidates(engine, barber_ids(engine), as_of)
    row = next((rows[0] for rows in candidates.values() if rows), None)
    if row is None:
        raise DataError("no completed appointment in the 30-day window to write to")
    had = triggers_installed(engine) > 0
    samples: dict[str, list[float]] = {"without_triggers": [], "with_triggers": []}
    sql = text("UPDATE appointments SET duration_minutes = duration_minutes + :m WHERE id = :id")
    net = 0  # minutes added and not yet taken back
    try:
        while min(len(v) for v in samples.values()) < rounds:
            for state in samples:
                (install_triggers if state == "with_triggers" else remove_triggers)(engine)
                for _ in range(block):
                    minutes = -EXTRA_MINUTES if net else EXTRA_MINUTES
                    start = time.perf_counter_ns()
                    with engine.begin() as conn:
                        conn.execute(sql, {"m": minutes, "id": row["id"]})
                    samples[state].append((time.perf_counter_ns() - start) / 1e6)
                    net += minutes
    finally:
        if net:
            with engine.begin() as conn:
                conn.execute(sql, {"m": -net, "id": row["id"]})
        (install_triggers if had else remove_triggers)(engine)
    return {k: v[:rounds] for k, v in samples.items()}
