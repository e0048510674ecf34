"""How much EXPLAIN ANALYZE itself costs for the query at hand: plain vs TIMING OFF vs TIMING ON.

The three variants run interleaved on one connection (so drift and noise hit them alike), each timed
by the client around one round trip. The plain run sends its result rows to the client while EXPLAIN
discards them on the server, so for queries returning many rows "plain" includes transfer time:
the report states it rather than hiding it. Node-level clocks cost most where a plan has many rows
flowing through many nodes (two clock reads per row per node).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from bbperf.binding import execute_args, prepared, reset_session
from bbperf.explain.measure import cursor_error
from bbperf.explain.run import Params, explain_options
from bbperf.explain.timingstats import Timing, summarize
from bbperf.sql import parse_one

VARIANTS = ("plain", "analyze_timing_off", "analyze_timing_on")


@dataclass(frozen=True)
class Overhead:
    """Client-side medians (ms) of the three variants and the overhead of each EXPLAIN variant (%)."""

    timings: dict[str, Timing]

    @property
    def timing_off_pct(self) -> float:
        return self._pct("analyze_timing_off")

    @property
    def timing_on_pct(self) -> float:
        return self._pct("analyze_timing_on")

    def _pct(self, variant: str) -> float:
        plain = self.timings["plain"].median_ms
        return 100.0 * (self.timings[variant].median_ms / plain - 1.0)

    def to_dict(self) -> dict[str, float]:
        out = {f"{k}_median_ms": t.median_ms for k, t in self.timings.items()}
        out.update(timing_off_pct=self.timing_off_pct, timing_on_pct=self.timing_on_pct)
        return out

    def __str__(self) -> str:
        m = {k: t.median_ms for k, t in self.timings.items()}
        return (
            f"plain {m['plain']:.3f} ms; EXPLAIN ANALYZE TIMING OFF {m['analyze_timing_off']:.3f} ms "
            f"({self.timing_off_pct:+.0f} %), TIMING ON {m['analyze_timing_on']:.3f} ms "
            f"({self.timing_on_pct:+.0f} %); plain includes sending result rows to the client"
        )


def explain_overhead(
    engine: Engine, sql: str, params: Params = None, *, rounds: int = 20, warmup: int = 3
) -> Overhead:
    """Measure plain execution, EXPLAIN (ANALYZE, TIMING OFF) and (ANALYZE, TIMING ON), interleaved.

    The statement runs ``3 × (rounds + warmup)`` times, each run in its own transaction that is
    rolled back (read-only for a query), so a data-modifying statement changes nothing; only the
    execution is timed. It is prepared once and its values bound by the server.
    """
    import time

    checked = parse_one(sql)
    values = checked.values(params)
    samples: dict[str, list[float]] = {k: [] for k in VARIANTS}
    try:
        with engine.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            cursor = dbapi.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute("SET plan_cache_mode = force_custom_plan")
                with prepared(cursor, checked, values) as name:
                    run = f"EXECUTE {name}{execute_args(values)}"
                    texts = {
                        "plain": run,
                        "analyze_timing_off": f"EXPLAIN ({explain_options(timing=False, buffers=False)}) {run}",
                        "analyze_timing_on": f"EXPLAIN ({explain_options(timing=True, buffers=False)}) {run}",
                    }
                    dbapi.commit()  # the PREPARE's own transaction; each run gets a fresh one
                    for i in range(warmup + rounds):
                        for variant in VARIANTS:
                            if not checked.is_write:
                                cursor.execute("SET LOCAL transaction_read_only = on")
                            start = time.perf_counter_ns()
                            cursor.execute(texts[variant], values)
                            if cursor.description is not None:
                                cursor.fetchall()
                            elapsed_ms = (time.perf_counter_ns() - start) / 1e6
                            dbapi.rollback()
                            if i >= warmup:
                                samples[variant].append(elapsed_ms)
            finally:
                cursor.close()
                dbapi.rollback()
                reset_session(dbapi)
    except (DBAPIError, psycopg2.Error) as exc:
        raise cursor_error(exc, checked.text) from None
    summarize(samples["plain"])  # fails loudly on an empty run
    return Overhead(
        {k: Timing(tuple(v), label=k, sql=checked.text, warmup=warmup) for k, v in samples.items()}
    )
