"""TEXT-format EXPLAIN (psql, auto_explain) parsed into the same tree and self times as FORMAT JSON,
on pairs captured back to back from PostgreSQL 18 and 15 (tests/data/plans/text, see capture.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bbperf.explain.plan import Plan, PlanNode, parse_plan
from bbperf.explain.textplan import looks_like_text_plan

PAIRS = Path(__file__).parent / "data" / "plans" / "text"
TEXTS = sorted(PAIRS.glob("*.txt"))


def shape(node: PlanNode) -> tuple[object, ...]:
    """What the two captures of one statement share: the plan, its estimates and its identifiers."""
    relationship = (
        node.parent_relationship if node.parent_relationship in ("InitPlan", "SubPlan") else None
    )
    return (
        node.depth,
        node.node_type,
        node.relation,
        node.alias,
        node.index,
        node.cte_name,
        node.subplan_name,
        relationship,
        node.join_type,
        node.parallel_aware,
        tuple(sorted(node.conditions.items())),
        node.self_ms is None,
    )


def test_pairs_cover_every_shape_on_both_versions() -> None:
    names = {p.stem for p in TEXTS}
    assert len(names) == 28 and all((PAIRS / f"{n}.json").exists() for n in names)
    assert {n.split("_", 1)[0] for n in names} == {"pg15", "pg18"}


@pytest.mark.parametrize("path", TEXTS, ids=[p.stem for p in TEXTS])
def test_text_gives_the_json_tree(path: Path) -> None:
    text = parse_plan(path.read_text())
    json_plan = parse_plan(path.with_suffix(".json").read_text())
    assert [shape(n) for n in text.nodes()] == [shape(n) for n in json_plan.nodes()]
    # Same statistics, so the same estimates (an UPDATE's rolled-back twin sees a little bloat).
    for a, b in zip(text.nodes(), json_plan.nodes(), strict=True):
        assert (a.startup_cost, a.total_cost, a.plan_rows) == pytest.approx(
            (b.startup_cost, b.total_cost, b.plan_rows), rel=0.01
        )
    assert text.execution_ms is not None and text.planning_ms is not None


@pytest.mark.parametrize("path", TEXTS, ids=[p.stem for p in TEXTS])
def test_text_self_times_add_up_to_the_root(path: Path) -> None:
    """Loops, workers and CTEs are accounted as for JSON: every ms is charged to exactly one node."""
    plan = parse_plan(path.read_text())
    assert plan.root.inclusive_ms is not None
    charged = sum(n.self_ms or 0.0 for n in plan.nodes())
    assert charged == pytest.approx(plan.root.inclusive_ms, abs=1e-6)
    # Times are printed to 0.001 ms per loop: a parent may show less than its children, times loops.
    for n in plan.nodes():
        loops = max([n.loops or 1] + [c.loops or 1 for c in n.children])
        assert (n.self_ms or 0.0) >= -0.001 * loops


def test_cte_is_charged_once_to_its_first_scan() -> None:
    """pg15_cte_two_scans.txt, by hand: the CTE (136.361 ms) runs inside the first scan of big."""
    plan = parse_plan((PAIRS / "pg15_cte_two_scans.txt").read_text())
    by_label = {(n.node_type, n.subplan_name, n.alias): n for n in plan.nodes()}
    cte = by_label[("Aggregate", "CTE big", None)]
    first = by_label[("CTE Scan", None, "big")]
    second = by_label[("CTE Scan", None, "big_1")]
    assert cte.inclusive_ms == 136.361 and cte.self_ms == pytest.approx(136.361 - 28.971)
    assert first.self_ms == pytest.approx(142.456 - 136.361)
    assert second.self_ms == pytest.approx(1.355)
    assert plan.root.self_ms == pytest.approx(145.857 - 142.460 - 3.388)
    assert (plan.planning_ms, plan.execution_ms) == (0.119, 146.436)


def test_parallel_workers_and_loops_from_text() -> None:
    plan = parse_plan((PAIRS / "pg18_parallel_agg.txt").read_text())
    gather = next(n for n in plan.nodes() if n.node_type == "Gather Merge")
    scan = next(n for n in plan.nodes() if n.node_type == "Seq Scan")
    assert gather.workers_launched == 2 and scan.parallel_aware and scan.loops == 3
    assert scan.processes == 3 and scan.inclusive_ms == pytest.approx(scan.actual_total_ms or 0)


PSQL = """                                  QUERY PLAN
-------------------------------------------------------------------------------
 Limit  (cost=0.29..8.31 rows=1 width=4) (actual time=0.020..0.021 rows=1 loops=1)
   ->  Index Only Scan Backward using users_pkey on bbperf.users u  (cost=0.29..8.31 rows=1 width=4) (actual time=0.019..0.019 rows=1 loops=1)
         Index Cond: (u.id < 10)
         Heap Fetches: 0
 Planning Time: 0.100 ms
 Execution Time: 0.040 ms
(6 rows)
"""

AUTO_EXPLAIN = """2026-11-30 04:00:00.000 UTC [123] LOG:  duration: 0.052 ms  plan:
\tQuery Text: SELECT count(*) FROM appointments WHERE barber_id = 7
\tAggregate  (cost=8.30..8.31 rows=1 width=8) (actual time=0.030..0.031 rows=1 loops=1)
\t  ->  Nested Loop Left Join  (cost=0.00..8.29 rows=1 width=0) (never executed)
\t        Join Filter: (a.id = b.id)
\t        ->  Seq Scan on appointments a  (cost=0.00..4.00 rows=1 width=4) (actual time=0.010..0.011 rows=0 loops=1)
\t              Filter: (barber_id = 7)
\t              Rows Removed by Filter: 40
\t        ->  Hash Right Anti Join  (cost=0.00..4.28 rows=1 width=4) (never executed)
\t              Hash Cond: (b.x = c.x)
"""


def test_psql_output_with_header_footer_and_margin() -> None:
    plan = parse_plan(PSQL)
    limit, scan = plan.nodes()
    assert (
        limit.node_type,
        scan.node_type,
        scan.index,
        scan.relation,
        scan.schema,
        scan.alias,
    ) == (
        "Limit",
        "Index Only Scan",
        "users_pkey",
        "users",
        "bbperf",
        "u",
    )
    assert scan.raw["Scan Direction"] == "Backward" and scan.conditions == {
        "Index Cond": "(u.id < 10)"
    }
    assert plan.execution_ms == 0.040 and scan.depth == 1


def test_auto_explain_log_with_never_executed_nodes() -> None:
    plan = parse_plan(AUTO_EXPLAIN)
    agg, loop, scan, anti = plan.nodes()
    assert (loop.node_type, loop.join_type, loop.loops, loop.actual_rows) == (
        "Nested Loop",
        "Left",
        0,
        0.0,
    )
    assert (anti.node_type, anti.join_type) == ("Hash Join", "Right Anti")
    assert scan.rows_removed_by_filter == 40 and scan.parent_relationship == "Outer"
    assert anti.parent_relationship == "Inner" and agg.self_ms == pytest.approx(
        0.031
    )  # its child never ran


def test_detection_and_garbage() -> None:
    assert looks_like_text_plan(PSQL) and not looks_like_text_plan('[{"Plan": {}}]')
    with pytest.raises(ValueError, match="EXPLAIN"):
        parse_plan("this is not a plan")


def plan_from(path: Path) -> Plan:
    return parse_plan(path.read_text())
