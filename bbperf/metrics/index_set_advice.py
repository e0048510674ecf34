"""Predicted against measured: what the planner's costs promise for the ``metrics`` index set, and
what the server's Execution Time delivers, per variant.

Predicted speedup is the advisor's costing (``bbperf.explain.whatif.plan_costs``) applied to the
whole set: plan cost without the set ÷ plan cost with the set built inside a transaction that is
rolled back (EXPLAIN without ANALYZE).
Measured speedup is median server Execution Time without ÷ with the set really applied. The set's
state is restored at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, text

from bbperf.explain.whatif import Probe, plan_costs
from bbperf.indexes import apply, drop, load_set
from bbperf.indexes.indexdefs import IndexDef
from bbperf.metrics import variant_timing
from bbperf.metrics.ladder import missing_indexes
from bbperf.metrics.ladder_timing import vacuum
from bbperf.metrics.queries import CTE_SQL, window_params
from bbperf.target import schema_of

COMPARED = ("after", "after_equivalent", "barber_driven", "denormalized")


@dataclass(frozen=True)
class _SetIndex:
    """An index of the set, written under the name the what-if costing picks."""

    index: IndexDef
    schema: str

    def ddl(self, name: str) -> str:
        return replace(self.index, name=name).create_sql(self.schema)


def _costs(engine: Engine, sqls: dict[str, str], params: dict, with_set: bool) -> dict[str, float]:
    schema = schema_of(engine)
    indexes = [_SetIndex(i, schema) for i in load_set("metrics").indexes] if with_set else []
    probes = [Probe(v, sql, (params,)) for v, sql in sqls.items()]
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        return {v: c.mean for v, c in plan_costs(conn, probes, indexes).items()}


def predicted_vs_measured(
    engine: Engine,
    user_id: int,
    as_of: datetime,
    variants: Sequence[str] = COMPARED,
    server_rounds: int = 10,
) -> pd.DataFrame:
    """One row per variant: plan cost and server ms without and with the metrics set, the
    predicted (cost) and measured (time) speedups, and their ratio."""
    metrics = load_set("metrics")
    was_applied = not missing_indexes(engine, "barber_driven") and not missing_indexes(
        engine, "denormalized"
    )
    params = window_params(user_id, as_of)
    sqls = {v: CTE_SQL[v] for v in variants}
    try:
        drop(engine, metrics)
        vacuum(engine)
        cost_without = _costs(engine, sqls, params, with_set=False)
        cost_with = _costs(engine, sqls, params, with_set=True)
        ms_without = {
            v: variant_timing.server_timing(engine, v, user_id, as_of, server_rounds).median_ms
            for v in variants
        }
        apply(engine, metrics)
        vacuum(engine)
        ms_with = {
            v: variant_timing.server_timing(engine, v, user_id, as_of, server_rounds).median_ms
            for v in variants
        }
    finally:
        if not was_applied:
            drop(engine, metrics)
    rows = []
    for v in variants:
        predicted = cost_without[v] / cost_with[v] if cost_with[v] else float("nan")
        measured = ms_without[v] / ms_with[v] if ms_with[v] else float("nan")
        rows.append({
            "variant": v, "cost_without": cost_without[v], "cost_with": cost_with[v],
            "predicted_speedup": predicted, "server_ms_without": ms_without[v],
            "server_ms_with": ms_with[v], "measured_speedup": measured,
            "measured_vs_predicted": measured / predicted if predicted else float("nan"),
        })  # fmt: skip
    return pd.DataFrame(rows)
