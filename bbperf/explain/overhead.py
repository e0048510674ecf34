"""How much EXPLAIN ANALYZE itself costs for the query at hand: plain vs TIMING OFF vs TIMING ON.

The three variants run interleaved on one connection (so drift and noise hit them alike), each timed
by the client around one round trip. The plain run sends its result rows to the client while EXPLAIN
discards them on the server, so for queries returning many rows "plain" includes transfer time:
the report states it rather than hiding it. Node-level clocks cost most where a plan has many rows
flowing through many nodes (two clock reads per row per node).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from bbperf.explain.measure import compile_sql, cursor_error
from bbperf.explain.run import Params, clean_sql, explain_options
from bbperf.explain.stats import Timing, summarize

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

    The statement really runs ``3 × (rounds + warmup)`` times in autocommit: use it on queries only.
    """
    import time

    statement = clean_sql(sql)
    texts = {
        "plain": statement,
        "analyze_timing_off": f"EXPLAIN ({explain_options(timing=False, buffers=False)}) {statement}",
        "analyze_timing_on": f"EXPLAIN ({explain_options(timing=True, buffers=False)}) {statement}",
    }
    compiled = {k: compile_sql(engine, v, params) for k, v in texts.items()}
    samples: dict[str, list[float]] = {k: [] for k in VARIANTS}
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            for i in range(warmup + rounds):
                for variant in VARIANTS:
                    driver_sql, values = compiled[variant]
                    start = time.perf_counter_ns()
                    cursor.execute(driver_sql, values)  # always a mapping: % is escaped
                    cursor.fetchall()
                    if i >= warmup:
                        samples[variant].append((time.perf_counter_ns() - start) / 1e6)
            cursor.close()
    except (DBAPIError, engine.dialect.loaded_dbapi.Error) as exc:
        raise cursor_error(exc, statement) from None
    summarize(samples["plain"])  # fails loudly on an empty run
    return Overhead(
        {k: Timing(tuple(v), label=k, sql=statement, warmup=warmup) for k, v in samples.items()}
    )
