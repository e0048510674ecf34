"""The prices of the fast variants on real PostgreSQL: trigger cost, view staleness, generic plans."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from bbperf.metrics.prices import (
    WRITES,
    flag_generic,
    plan_cache_modes,
    trigger_cost,
    view_staleness,
)
from bbperf.metrics.queries import barber_ids, fetch_raw
from bbperf.metrics.rollup import apply_rollup, rollup_status

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def _rollup_oid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT to_regclass('metrics_running')::oid")).scalar_one())


def test_trigger_cost_measures_every_write_in_every_mode_and_leaves_no_trace(
    tiny_copy: Engine,
) -> None:
    apply_rollup(tiny_copy, "row")
    user = barber_ids(tiny_copy)[0]
    before = fetch_raw(tiny_copy, user, AS_OF, "before")
    table_oid = _rollup_oid(tiny_copy)
    cost = trigger_cost(tiny_copy, rounds=2, batch_rows=50)
    assert _rollup_oid(tiny_copy) == table_oid  # priced on the table built once, never rebuilt
    assert sorted(cost["write"].unique()) == sorted(WRITES)
    assert set(cost["mode"]) == {"none", "row", "statement"}
    assert (cost["rounds"] == 2).all() and (cost["median_ms"] > 0).all()
    assert (cost.loc[cost["mode"] == "none", "slowdown"] == 1.0).all()
    assert rollup_status(tiny_copy)["mode"] == "row"  # left as found
    assert fetch_raw(tiny_copy, user, AS_OF, "before") == before  # every write rolled back


def test_view_staleness_and_generic_plan_flag(tiny_copy: Engine) -> None:
    from bbperf.metrics.variants import create_metrics_view

    create_metrics_view(tiny_copy, AS_OF)
    stale = view_staleness(tiny_copy, refreshes=1, every_min=10)
    assert stale["refresh_ms"] > 0
    assert stale["refresh_ms_per_min"] == pytest.approx(stale["refresh_ms"] / 10)
    frame = plan_cache_modes(tiny_copy, barber_ids(tiny_copy)[0], AS_OF, rounds=2)
    assert list(frame["plan_cache_mode"]) == ["force_custom_plan", "force_generic_plan"]
    assert frame.loc[0, "vs_custom"] == 1.0 and not frame.loc[0, "generic_slower"]
    assert frame.loc[1, "generic_slower"] == (frame.loc[1, "vs_custom"] > 1.1)
    assert flag_generic(frame).startswith("after_equivalent prepared: generic plan ")


def test_predicted_vs_measured_for_the_metrics_set_restores_the_state(tiny_copy: Engine) -> None:
    from bbperf.metrics.index_set_advice import COMPARED, predicted_vs_measured
    from bbperf.metrics.ladder import missing_indexes

    user = barber_ids(tiny_copy)[0]
    frame = predicted_vs_measured(tiny_copy, user, AS_OF, server_rounds=2)
    assert list(frame["variant"]) == list(COMPARED)
    assert (frame[["cost_without", "cost_with", "server_ms_with"]] > 0).all().all()
    # the set lowers barber_driven's plan cost: its per-appointment probes get an index
    barber_driven = frame.set_index("variant").loc["barber_driven"]
    assert barber_driven["predicted_speedup"] > 1
    assert missing_indexes(tiny_copy, "barber_driven") != []  # it was not applied before
