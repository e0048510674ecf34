"""Plan diff on hand-made analyzed plans with exact times (no server)."""

from __future__ import annotations

import pytest

from bbperf.explain.diff import OTHER, diff
from bbperf.explain.plan import parse_plan


def node(node_type: str, ms: float, rows: float, children=(), **extra):  # type: ignore[no-untyped-def]
    return {
        "Node Type": node_type,
        "Actual Total Time": ms,
        "Actual Rows": rows,
        "Actual Loops": 1,
        "Plan Rows": rows,
        "Total Cost": ms,
        "Plans": list(children),
        **extra,
    }


BEFORE = parse_plan(
    [
        {
            "Plan": node(
                "Sort", 40.0, 10, [node("Seq Scan", 30.0, 10, **{"Relation Name": "appointments"})]
            ),
            "Execution Time": 41.0,
        }
    ]
)
AFTER = parse_plan(
    [
        {
            "Plan": node(
                "Bitmap Heap Scan",
                2.0,
                10,
                [node("Bitmap Index Scan", 0.5, 10, **{"Index Name": "idx_bss"})],
                **{"Relation Name": "appointments"},
            ),
            "Execution Time": 2.5,
        }
    ]
)


def test_scan_change_nodes_and_speedup() -> None:
    d = diff(BEFORE, AFTER)
    assert [str(c) for c in d.scan_changes] == [
        "appointments: Seq Scan → Bitmap Heap Scan + Bitmap Index Scan using idx_bss"
    ]
    assert d.added == ["Bitmap Heap Scan on appointments", "Bitmap Index Scan using idx_bss"]
    assert d.removed == ["Seq Scan on appointments", "Sort"]
    assert d.speedup == pytest.approx(41.0 / 2.5)


def test_time_per_relation() -> None:
    frame = diff(BEFORE, AFTER).to_frame()
    assert frame.loc["appointments"].to_dict() == {
        "before_ms": 30.0,
        "after_ms": 2.0,
        "delta_ms": -28.0,
    }
    assert frame.loc[OTHER].to_dict() == {"before_ms": 10.0, "after_ms": 0.0, "delta_ms": -10.0}


def test_identical_plans() -> None:
    d = diff(BEFORE, BEFORE)
    assert d.scan_changes == [] and d.added == [] and d.removed == [] and d.speedup == 1.0
    assert "(×1.00)" in d.text()
