"""Check index advice on a target bbperf owns: build the chosen set, replay the workload before and
after, and put the planner's predicted speedup beside the measured one, per statement — the table
notebook 01 draws for the seed's indexes, for any workload."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.errors import BbperfError, SchemaError
from bbperf.explain.timingstats import compare
from bbperf.sqlnames import qualified
from bbperf.target import query_error, schema_of
from bbperf.workload.file import Workload
from bbperf.workload.replay import Replay, replay
from bbperf.workload.workload_advice import WorkloadAdvice, index_name

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class WorkloadVerification:
    """Replays before and after the advised set; predicted (planner) vs measured (client p50)."""

    advice: WorkloadAdvice
    before: Replay
    after: Replay
    built: list[str]

    def table(self) -> pd.DataFrame:
        """One row per statement measured in both replays: predicted and measured speedup (CI)."""
        return self._table.copy()

    @cached_property
    def _table(self) -> pd.DataFrame:
        import pandas as pd

        predicted = self.advice.statements().set_index("statement")["predicted_speedup"]
        rows = []
        for name in self.advice.base_cost:
            before = self.before.samples_ms.get(name, [])
            after = self.after.samples_ms.get(name, [])
            if len(before) < 2 or len(after) < 2:
                continue
            c = compare(before, after)
            rows.append(
                {
                    "statement": name,
                    "predicted_speedup": predicted.get(name),
                    "measured_speedup": round(c.speedup, 2),
                    "ci_low": round(c.ci_low, 2),
                    "ci_high": round(c.ci_high, 2),
                    "significant": c.significant,
                    "p50_before_ms": round(c.before_median, 3),
                    "p50_after_ms": round(c.after_median, 3),
                    "calls_before": len(before),
                    "calls_after": len(after),
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "built": self.built,
            "throughput_before_per_s": round(self.before.throughput_per_s, 1),
            "throughput_after_per_s": round(self.after.throughput_per_s, 1),
            "statements": self.table().to_dict(orient="records"),
        }

    def text(self) -> str:
        return "\n".join(
            [
                f"built and measured: {', '.join(self.built)}",
                f"throughput {self.before.throughput_per_s:.1f} → "
                f"{self.after.throughput_per_s:.1f} calls/s (one run, same seed; a noisy machine: "
                "read the ratios and their CIs)",
                self.table().to_string(index=False),
                "the indexes were dropped again",
            ]
        )


def verify_workload(
    engine: Engine,
    workload: Workload,
    advice: WorkloadAdvice,
    *,
    owned: bool,
    duration_s: float = 5.0,
    concurrency: int = 1,
    seed: int = 42,
    progress: bool = True,
) -> WorkloadVerification:
    """Replay ``workload`` for ``duration_s`` without, then with, ``advice``'s indexes (built for
    real, in bbperf's schema only, on a target bbperf ``owned``), then drop them."""
    if not owned:
        raise SchemaError(
            "--verify builds indexes, so it runs only on a target bbperf owns (the embedded server): "
            "copy the data there, or apply the advised DDL yourself"
        )
    if not advice.chosen:
        raise BbperfError("the advice keeps no index: nothing to verify")
    schema = schema_of(engine)
    for choice in advice.chosen:
        if choice.candidate.schema != schema:
            raise SchemaError(
                f"refusing to build an index on {choice.candidate.schema}.{choice.candidate.table}: "
                f"verify builds only in bbperf's schema {schema!r}"
            )
    kwargs: dict[str, Any] = {
        "duration_s": duration_s,
        "concurrency": concurrency,
        "seed": seed,
        "progress": progress,
    }
    before = replay(engine, workload, **kwargs)
    built: list[str] = []
    try:
        with engine.begin() as conn:
            for choice in advice.chosen:
                name = index_name(choice.candidate)
                conn.execute(text(choice.candidate.ddl(name)))
                built.append(name)
        after = replay(engine, workload, **kwargs)
    except DBAPIError as exc:
        raise query_error(exc, "CREATE INDEX") from None
    finally:
        with engine.begin() as conn:
            for name in built:
                conn.execute(text(f"DROP INDEX IF EXISTS {qualified(schema, name)}"))
    return WorkloadVerification(advice, before, after, built)
