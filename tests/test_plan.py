"""The pure EXPLAIN parser on real plans saved from PostgreSQL 18 and 15 (tests/data/plans)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bbperf.explain.plan import Plan, parse_plan

PLANS = Path(__file__).parent / "data" / "plans"
FILES = sorted(PLANS.glob("*.json"))


def load(name: str) -> Plan:
    return parse_plan((PLANS / f"{name}.json").read_text())


def raw_node(name: str, node_type: str) -> dict:
    """The first raw node of ``node_type`` in a saved plan, straight from the JSON."""
    stack = [json.loads((PLANS / f"{name}.json").read_text())[0]["Plan"]]
    while stack:
        node = stack.pop(0)
        if node["Node Type"] == node_type:
            return node
        stack.extend(node.get("Plans", []))
    raise KeyError(node_type)


def test_saved_plans_cover_the_shapes_and_both_versions() -> None:
    plans = {f.stem: parse_plan(f.read_text()) for f in FILES}
    assert len(plans) >= 12
    assert {name[:4] for name in plans} == {"pg15", "pg18"}
    types = {n.node_type for p in plans.values() for n in p.nodes()}
    assert {"Nested Loop", "Hash Join", "Sort", "Gather", "Gather Merge", "CTE Scan"} <= types
    assert any(
        n.node_type == "Nested Loop" and any((c.loops or 0) > 1 for c in n.children)
        for p in plans.values()
        for n in p.nodes()
    )


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_exclusive_times_add_up_to_the_root(path: Path) -> None:
    plan = parse_plan(path.read_text())
    total = plan.total_ms
    assert total is not None and total > 0
    # Negative self times would mean double-counted children (CTEs, parallel workers): none beyond noise.
    assert all(n.self_ms is not None and n.self_ms > -0.01 * total for n in plan.nodes())
    positive = sum(max(n.self_ms or 0.0, 0.0) for n in plan.nodes())
    assert positive == pytest.approx(total, rel=0.05)
    # Wall-clock inclusive times never exceed the root's (parallel loops are divided back).
    assert max(n.inclusive_ms or 0.0 for n in plan.nodes()) <= total * 1.05
    assert plan.execution_ms is not None and total <= plan.execution_ms


@pytest.mark.parametrize("version", ["pg15", "pg18"])
def test_loops_multiply_per_loop_time(version: str) -> None:
    plan = load(f"{version}_nested_loop")
    raw = raw_node(f"{version}_nested_loop", "Bitmap Heap Scan")
    inner = next(n for n in plan.nodes() if n.node_type == "Bitmap Heap Scan")
    assert inner.loops == raw["Actual Loops"] > 1
    assert inner.inclusive_ms == pytest.approx(raw["Actual Total Time"] * raw["Actual Loops"])
    assert inner.total_rows == pytest.approx(raw["Actual Rows"] * raw["Actual Loops"])


@pytest.mark.parametrize("version", ["pg15", "pg18"])
def test_parallel_nodes_are_divided_by_processes(version: str) -> None:
    plan = load(f"{version}_parallel_agg")
    gather = next(n for n in plan.nodes() if n.node_type.startswith("Gather"))
    scan = next(n for n in plan.nodes() if n.node_type == "Seq Scan")
    raw = raw_node(f"{version}_parallel_agg", "Seq Scan")
    processes = gather.workers_launched + 1
    assert scan.processes == processes
    assert scan.inclusive_ms == pytest.approx(
        raw["Actual Total Time"] * raw["Actual Loops"] / processes
    )


@pytest.mark.parametrize("version", ["pg15", "pg18"])
def test_cte_subplan_is_charged_to_its_scan(version: str) -> None:
    plan = load(f"{version}_cte_two_scans")
    cte = next(n for n in plan.nodes() if n.subplan_name == "CTE big")
    first_scan = next(n for n in plan.nodes() if n.node_type == "CTE Scan")
    assert first_scan.self_ms == pytest.approx(first_scan.inclusive_ms - cte.inclusive_ms)
    assert plan.root.self_ms < 0.01 * plan.total_ms
    # Nothing matched "total > 5000": the planner expected a third of the rows.
    assert first_scan.actual_rows == 0 and first_scan.misestimated
    assert first_scan.estimate_direction == "over"
    assert first_scan.rows_removed_total == 20000


def test_estimate_factor_and_flag() -> None:
    plan = load("pg18_hash_join")
    for node in plan.nodes():
        est, act = max(node.plan_rows, 1), max(node.actual_rows, 1)
        assert node.estimate_factor == pytest.approx(max(est, act) / min(est, act))
        assert node.misestimated == (node.estimate_factor >= 10)


def test_buffers_filter_and_frame() -> None:
    plan = load("pg18_gather_merge_sort")
    frame = plan.to_frame()
    assert len(frame) == len(plan.nodes())
    scan = frame[frame.node_type == "Seq Scan"].iloc[0]
    raw = raw_node("pg18_gather_merge_sort", "Seq Scan")
    assert scan.shared_hit_blocks == raw["Shared Hit Blocks"]
    assert scan["filter"] == raw["Filter"]
    assert scan.rows_removed_by_filter == raw["Rows Removed by Filter"] * raw["Actual Loops"]
    assert frame.self_ms.sum() == pytest.approx(plan.total_ms)


def test_worst_nodes_text_and_html() -> None:
    plan = load("pg15_initplan_subplan")
    worst = plan.worst_nodes(2)
    assert (
        worst[0].self_ms
        >= worst[1].self_ms
        >= max(n.self_ms for n in plan.nodes() if n not in worst)
    )
    text = plan.text()
    assert text.splitlines()[1].startswith("Index Scan using customers_pkey on customers c")
    assert "    -> Bitmap Heap Scan on orders o" in text
    assert "[SubPlan 1] Aggregate" in text
    html = plan._repr_html_()
    assert html.count("<tr") == len(plan.nodes()) + 1


def test_plan_without_analyze_ranks_by_cost() -> None:
    data = [
        {
            "Plan": {
                "Node Type": "Hash Join",
                "Join Type": "Left",
                "Total Cost": 100.0,
                "Plan Rows": 10,
                "Plans": [
                    {
                        "Node Type": "Seq Scan",
                        "Relation Name": "a",
                        "Total Cost": 70.0,
                        "Plan Rows": 1000,
                    },
                    {
                        "Node Type": "Hash",
                        "Total Cost": 20.0,
                        "Plan Rows": 5,
                        "Plans": [
                            {
                                "Node Type": "Seq Scan",
                                "Relation Name": "b",
                                "Alias": "x",
                                "Total Cost": 20.0,
                                "Plan Rows": 5,
                            }
                        ],
                    },
                ],
            }
        }
    ]
    plan = parse_plan(json.dumps(data))
    assert not plan.analyzed and plan.total_ms is None
    assert [n.label for n in plan.worst_nodes(2)] == ["Seq Scan on a", "Seq Scan on b x"]
    assert plan.root.label == "Hash Left Join"
    assert "cost 100.00" in plan.text()


@pytest.mark.parametrize("bad", ["[]", "{}", "[1, 2]"])
def test_malformed_json_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_plan(bad)
