"""Advice checked by measurement: the top picks built one at a time, the statement's server time
measured before and after each, and a pick whose gain is not significant withdrawn, with the
predicted (planner cost) and measured (EXPLAIN ANALYZE Execution Time) speedups side by side.

Two ways to build, both only in bbperf's own schema:

* ``rolled back`` (bbperf's own server, the default): one transaction measures the statement, then
  per pick a savepoint creates the index, measures again and rolls back — nothing is ever
  committed. The build holds a SHARE lock on the table until its rollback, which is why this is
  for the server bbperf owns.
* ``concurrently`` (``allow_build``; required on a server bbperf does not own): CREATE INDEX
  CONCURRENTLY under a lock timeout, measured from fresh connections, then DROP INDEX
  CONCURRENTLY of exactly the index this run built.

Each round runs with ``plan_cache_mode = force_custom_plan``, so every value gets the plan it
would get on its own. Only statements that read are measured: a write would repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg2
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.binding import execute_args, prepared
from bbperf.errors import BbperfError, ConfigError, SchemaError
from bbperf.explain.diff import PlanDiff, diff
from bbperf.explain.index_advice import Advice, CandidateCost
from bbperf.explain.measure import measure
from bbperf.explain.plan import Plan, parse_plan
from bbperf.explain.run import explain
from bbperf.explain.timingstats import Comparison, compare
from bbperf.explain.whatif import Candidate
from bbperf.sql import parse_one, scratch_name
from bbperf.sqlnames import qualified
from bbperf.target import is_embedded, query_error, schema_of

if TYPE_CHECKING:
    import pandas as pd

LOCK_TIMEOUT_MS = 5000  # never wait behind live writers to build an index
PICKS = 3


@dataclass
class Verification:
    """One pick built for real: predicted (planner cost ratio) vs measured (server time ratio)."""

    candidate: Candidate
    predicted_speedup: float
    measured: Comparison
    plan_diff: PlanDiff

    @property
    def kept(self) -> bool:
        """True when the measured gain is significant (CI above 1 and Mann–Whitney p < alpha)."""
        return self.measured.significant and self.measured.speedup > 1

    def text(self) -> str:
        verdict = "kept" if self.kept else "WITHDRAWN: the measured gain is not significant"
        return (
            f"{self.candidate}: predicted ×{self.predicted_speedup:.2f}, measured "
            f"{self.measured} → {verdict}\n{self.plan_diff.text()}"
        )


@dataclass
class VerifiedAdvice:
    """The picks verified for one statement, in the advice's order."""

    advice: Advice
    how: str
    rounds: int
    checks: list[Verification] = field(default_factory=list)

    @property
    def kept(self) -> list[Verification]:
        return [c for c in self.checks if c.kept]

    @property
    def withdrawn(self) -> list[Verification]:
        return [c for c in self.checks if not c.kept]

    def table(self) -> pd.DataFrame:
        """Predicted vs measured per pick: speedups, the measured CI and p-value, the verdict."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "index": str(c.candidate),
                    "predicted_speedup": round(c.predicted_speedup, 2),
                    "measured_speedup": round(c.measured.speedup, 2),
                    "ci_low": round(c.measured.ci_low, 2),
                    "ci_high": round(c.measured.ci_high, 2),
                    "p_value": float(f"{c.measured.p_value:.3g}"),
                    "server_ms_before": round(c.measured.before_median, 3),
                    "server_ms_after": round(c.measured.after_median, 3),
                    "verdict": "kept" if c.kept else "withdrawn",
                }
                for c in self.checks
            ]
        )

    def text(self) -> str:
        lines = [
            f"verified {len(self.checks)} pick(s), {self.how}, {self.rounds} rounds each "
            "(server Execution Time, 95 % CI):",
            self.table().to_string(index=False),
        ]
        for check in self.withdrawn:
            lines.append(f"withdrawn: {check.candidate} (measured {check.measured})")
        if not self.kept:
            lines.append("no advice stands: no pick measured a significant gain")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "rounds": self.rounds,
            "picks": self.table().to_dict(orient="records"),
            "kept": [str(c.candidate) for c in self.kept],
            "withdrawn": [str(c.candidate) for c in self.withdrawn],
        }


def picks_of(advice: Advice, picks: int = PICKS) -> list[CandidateCost]:
    """The best pick, then the next useful candidates by planner cost, ``picks`` in all."""
    best = advice.best
    if best is None:
        return []
    useful = [c for c in advice.costs if c.used and c.cost_after < c.cost_before and c is not best]
    return [best, *useful][:picks]


def verify(
    engine: Engine,
    advice: Advice,
    *,
    picks: int = PICKS,
    rounds: int = 30,
    warmup: int = 5,
    allow_build: bool = False,
) -> VerifiedAdvice:
    """Build each of the top ``picks`` in turn, measure the statement before and after, undo it.

    Measured with the advice's first value set. Rolled back on bbperf's own server; CONCURRENTLY
    with ``allow_build`` (the only way on a server bbperf does not own). Only in bbperf's schema.
    """
    chosen = picks_of(advice, picks)
    if not chosen:
        raise BbperfError("no candidate index lowered the plan cost: nothing to verify")
    if parse_one(advice.sql).is_write:
        raise ConfigError("--verify measures statements that read; this one writes")
    owned = is_embedded(engine)
    schema = schema_of(engine)
    for pick in chosen:
        cand = pick.candidate
        if not owned and not allow_build:
            raise SchemaError(
                f"--verify builds an index on {cand.schema}.{cand.table}, on a server bbperf does "
                "not own: pass --allow-build to build it CONCURRENTLY under a lock timeout and "
                "drop it after"
            )
        if cand.schema != schema:
            raise SchemaError(
                f"refusing to build an index on {cand.schema}.{cand.table}: verify only builds in "
                f"bbperf's schema {schema!r}"
            )
    if owned and not allow_build:
        checks = _rolled_back(engine, advice, chosen, rounds, warmup)
        how = "each built in a transaction rolled back"
    else:
        checks = [_concurrently(engine, advice, pick, rounds, warmup) for pick in chosen]
        how = "each built CONCURRENTLY and dropped"
    return VerifiedAdvice(advice, how, rounds, checks)


def _rolled_back(
    engine: Engine, advice: Advice, chosen: list[CandidateCost], rounds: int, warmup: int
) -> list[Verification]:
    checks = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
            before_plan, before = _server_times(conn, advice, rounds, warmup)
            for pick in chosen:
                savepoint = conn.begin_nested()
                try:
                    name = scratch_name(f"bbperf_verify_{pick.candidate.table}")
                    conn.execute(text(pick.candidate.ddl(name)))
                    after_plan, after = _server_times(conn, advice, rounds, warmup)
                finally:
                    savepoint.rollback()
                checks.append(
                    Verification(
                        pick.candidate,
                        pick.predicted_speedup,
                        compare(before, after),
                        diff(before_plan, after_plan),
                    )
                )
            conn.rollback()
    except DBAPIError as exc:
        raise query_error(exc, advice.sql) from None
    return checks


def _server_times(
    conn: Connection, advice: Advice, rounds: int, warmup: int
) -> tuple[Plan, list[float]]:
    """The last plan and ``rounds`` Execution Times (ms) of the statement on ``conn``, after
    ``warmup`` untimed runs; EXPLAIN (ANALYZE, TIMING OFF) keeps the clock overhead out."""
    checked = parse_one(advice.sql)
    values = checked.values(advice.params)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    times: list[float] = []
    try:
        with prepared(cursor, checked, values) as name:
            sql = f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) EXECUTE {name}{execute_args(values)}"
            for i in range(warmup + rounds):
                cursor.execute(sql, values)
                plan = parse_plan(cursor.fetchone()[0], sql=checked.text)
                if i >= warmup:
                    times.append(float(plan.execution_ms or 0.0))
    except psycopg2.Error as exc:
        raise query_error(DBAPIError(checked.text, None, exc), checked.text) from None
    finally:
        cursor.close()
    return plan, times


def _concurrently(
    engine: Engine, advice: Advice, pick: CandidateCost, rounds: int, warmup: int
) -> Verification:
    cand = pick.candidate
    name = scratch_name(f"bbperf_verify_{cand.table}")
    ddl = cand.ddl(name).replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
    before_plan = explain(engine, advice.sql, advice.params)
    before = measure(engine, advice.sql, advice.params, rounds=rounds, warmup=warmup,
                     server_time=True)  # fmt: skip
    built = False
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f"SET lock_timeout = {LOCK_TIMEOUT_MS}"))
            conn.execute(text(ddl))
            built = True
        after = measure(engine, advice.sql, advice.params, rounds=rounds, warmup=warmup,
                        server_time=True)  # fmt: skip
        after_plan = explain(engine, advice.sql, advice.params)
    except DBAPIError as exc:
        raise query_error(exc, ddl) from None
    finally:
        if built:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(
                    text(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(cand.schema, name)}")
                )
    return Verification(
        cand,
        pick.predicted_speedup,
        compare(before.server_ms or before.samples_ms, after.server_ms or after.samples_ms),
        diff(before_plan, after_plan),
    )
