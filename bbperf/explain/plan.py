"""EXPLAIN (FORMAT JSON) parsed into a Plan of PlanNodes with inclusive and exclusive (self) time.

Time accounting, all in milliseconds of wall-clock time:

* PostgreSQL reports ``Actual Total Time`` per loop; a node's inclusive time is that times its loops.
* Below a Gather / Gather Merge each participating process (workers plus the leader) runs the node,
  and loops and times add up over processes; dividing by the number of processes turns that back
  into wall-clock time so it can be subtracted from the Gather's own time.
* A CTE Scan does the work of the CTE's subplan as it reads it, and that subplan is listed as an
  InitPlan of an ancestor: its time is charged to the CTE Scan(s) reading it, not twice to the ancestor.
* Exclusive time = inclusive time minus the children's inclusive time, so the exclusive times of all
  nodes add up to the root's inclusive time (up to the rounding of the reported figures).
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bbperf.explain.pev2 import save_plan
from bbperf.explain.planchart import plan_chart
from bbperf.explain.plancheck import check_node, figure, load_json
from bbperf.explain.textplan import looks_like_text_plan, parse_text
from bbperf.files import MAX_JSON_DEPTH, dumps_json, json_depth

if TYPE_CHECKING:
    import pandas as pd

MISESTIMATE_FACTOR = 10.0
_CONDITION_KEYS = ("Index Cond", "Recheck Cond", "Hash Cond", "Merge Cond", "Join Filter", "Filter")


@dataclass
class PlanNode:
    """One node of a plan. Rows and times are per loop as PostgreSQL reports them unless named total."""

    node_type: str
    relation: str | None = None
    schema: str | None = None
    alias: str | None = None
    index: str | None = None
    parent_relationship: str | None = None
    subplan_name: str | None = None
    cte_name: str | None = None
    join_type: str | None = None
    parallel_aware: bool = False
    startup_cost: float = 0.0
    total_cost: float = 0.0
    plan_rows: float = 0.0
    actual_rows: float | None = None
    loops: int | None = None
    actual_total_ms: float | None = None
    workers_launched: int | None = None
    shared_hit_blocks: int | None = None
    shared_read_blocks: int | None = None
    temp_written_blocks: int | None = None
    conditions: dict[str, str] = field(default_factory=dict)
    rows_removed_by_filter: float | None = None
    sort_key: list[str] | None = None
    sort_method: str | None = None
    children: list[PlanNode] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    node_id: int = 0
    depth: int = 0
    processes: int = 1
    inclusive_ms: float | None = None
    self_ms: float | None = None

    @property
    def executed(self) -> bool:
        return bool(self.loops)

    @property
    def label(self) -> str:
        """``Index Scan using idx on appointments a`` style, like EXPLAIN's text format."""
        text = self.node_type
        if self.join_type and self.join_type != "Inner":
            text = text.replace(" Join", "") + f" {self.join_type} Join"
        if self.index:
            text += f" using {self.index}"
        if self.relation:
            text += f" on {self.relation}"
            if self.alias and self.alias != self.relation:
                text += f" {self.alias}"
        elif self.cte_name:
            text += f" on {self.cte_name}"
        elif self.raw.get("Function Name"):
            text += f" on {self.raw['Function Name']}"
        if self.subplan_name:
            text = f"[{self.subplan_name}] {text}"
        return text

    @property
    def total_rows(self) -> float | None:
        """Rows produced over all loops."""
        if self.actual_rows is None or self.loops is None:
            return None
        return self.actual_rows * self.loops

    @property
    def estimate_factor(self) -> float | None:
        """How far the row estimate was off, as a factor ≥ 1 (both sides floored at one row)."""
        if self.actual_rows is None or not self.loops:
            return None
        estimated, actual = max(self.plan_rows, 1.0), max(self.actual_rows, 1.0)
        return max(estimated, actual) / min(estimated, actual)

    @property
    def misestimated(self) -> bool:
        factor = self.estimate_factor
        return factor is not None and factor >= MISESTIMATE_FACTOR

    @property
    def estimate_direction(self) -> str | None:
        """``under`` when the planner expected fewer rows than came, ``over`` when more."""
        if not self.misestimated or self.actual_rows is None:
            return None
        return "under" if self.actual_rows > self.plan_rows else "over"

    @property
    def rows_removed_total(self) -> float | None:
        if self.rows_removed_by_filter is None or self.loops is None:
            return None
        return self.rows_removed_by_filter * self.loops

    def _repr_html_(self) -> str:
        rows = [
            ("self", _ms(self.self_ms)),
            ("inclusive", _ms(self.inclusive_ms)),
            ("rows (estimated)", f"{_num(self.actual_rows)} ({_num(self.plan_rows)})"),
            ("loops", str(self.loops or "")),
            *((k, v) for k, v in self.conditions.items()),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows
            if v
        )
        return f"<p><b>{html.escape(self.label)}</b></p><table>{body}</table>"

    def walk(self) -> Iterator[PlanNode]:
        """This node and its descendants, depth first, in EXPLAIN's order."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Plan:
    """A parsed EXPLAIN result. Times in ms; ``analyzed`` is False for a plain EXPLAIN."""

    root: PlanNode
    planning_ms: float | None = None
    execution_ms: float | None = None
    raw: list[dict[str, Any]] = field(default_factory=list, repr=False)
    sql: str | None = None

    @property
    def analyzed(self) -> bool:
        return self.root.actual_total_ms is not None

    @property
    def total_ms(self) -> float | None:
        """The root's inclusive time (execution time minus triggers and executor start/end)."""
        return self.root.inclusive_ms

    @property
    def total_cost(self) -> float:
        return self.root.total_cost

    def nodes(self) -> list[PlanNode]:
        return list(self.root.walk())

    def relations(self) -> set[str]:
        return {n.relation for n in self.nodes() if n.relation}

    def to_frame(self) -> pd.DataFrame:
        """One row per node (pandas DataFrame), in EXPLAIN's order."""
        import pandas as pd

        rows = [
            {
                "node_id": n.node_id,
                "depth": n.depth,
                "node": n.label,
                "node_type": n.node_type,
                "relation": n.relation,
                "index": n.index,
                "plan_rows": n.plan_rows,
                "actual_rows": n.actual_rows,
                "loops": n.loops,
                "estimate_factor": n.estimate_factor,
                "misestimated": n.misestimated,
                "inclusive_ms": n.inclusive_ms,
                "self_ms": n.self_ms,
                "self_pct": _pct(n.self_ms, self.total_ms),
                "shared_hit_blocks": n.shared_hit_blocks,
                "shared_read_blocks": n.shared_read_blocks,
                "filter": n.conditions.get("Filter"),
                "rows_removed_by_filter": n.rows_removed_total,
                "total_cost": n.total_cost,
            }
            for n in self.nodes()
        ]
        return pd.DataFrame(rows).set_index("node_id")

    def worst_nodes(self, n: int = 3) -> list[PlanNode]:
        """The ``n`` nodes with the largest exclusive time (by cost for a plan without ANALYZE)."""
        if self.analyzed:
            return sorted(self.nodes(), key=lambda node: node.self_ms or 0.0, reverse=True)[:n]
        return sorted(self.nodes(), key=_self_cost, reverse=True)[:n]

    def text(self) -> str:
        """An indented tree: one line per node with self/inclusive time, rows, flags."""
        lines = []
        if self.analyzed:
            lines.append(f"planning {_ms(self.planning_ms)}  execution {_ms(self.execution_ms)}")
        for node in self.nodes():
            lines.append("  " * node.depth + ("-> " if node.depth else "") + _describe(node, self))
            for key, value in node.conditions.items():
                lines.append("  " * node.depth + f"     {key}: {value}")
            if node.rows_removed_total:
                lines.append(
                    "  " * node.depth
                    + f"     rows removed by filter: {node.rows_removed_total:,.0f}"
                )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        header = (
            f"<p>planning {_ms(self.planning_ms)} · execution {_ms(self.execution_ms)}</p>"
            if self.analyzed
            else "<p>estimated plan (no ANALYZE)</p>"
        )
        cells = []
        worst = {id(n) for n in self.worst_nodes(1)} if self.analyzed else set()
        for node in self.nodes():
            style = ' style="background:#fde2e2"' if id(node) in worst else ""
            flag = (
                f" ⚠ rows ×{node.estimate_factor:.0f} {node.estimate_direction}"
                if node.misestimated
                else ""
            )
            pad = node.depth * 1.5
            cells.append(
                f"<tr{style}><td style='text-align:left;padding-left:{pad}em'>{html.escape(node.label)}"
                f"{html.escape(flag)}</td><td>{_ms(node.self_ms)}</td><td>{_ms(node.inclusive_ms)}</td>"
                f"<td>{_num(node.plan_rows)}</td><td>{_num(node.actual_rows)}</td><td>{node.loops or ''}</td>"
                f"<td>{_num(node.shared_hit_blocks)}</td><td>{_num(node.shared_read_blocks)}</td>"
                f"<td style='text-align:left'>{html.escape(node.conditions.get('Filter', ''))}</td></tr>"
            )
        head = (
            "<tr><th>node</th><th>self</th><th>inclusive</th><th>est. rows</th><th>rows</th>"
            "<th>loops</th><th>hit</th><th>read</th><th>filter</th></tr>"
        )
        return f"{header}<table>{head}{''.join(cells)}</table>"

    def chart(self, *, top: int = 12, ax: Any = None, title: str | None = None) -> Any:
        """Self time per node as bars, worst highlighted (``bbperf.explain.planchart``)."""
        return plan_chart(self, top=top, ax=ax, title=title)

    def save(self, path: str | Path, title: str | None = None, *, force: bool = False) -> Path:
        """Write the plan and its query for PEV2 / explain.dalibo.com (``bbperf.explain.pev2``);
        an existing file is replaced only with ``force``."""
        return save_plan(self, path, title, force=force)

    def to_json(self) -> str:
        return dumps_json(self.raw)


def parse_plan(data: str | list[Any] | dict[str, Any], sql: str | None = None) -> Plan:
    """A Plan from EXPLAIN output: FORMAT JSON (the text, the list, or its one element) or the TEXT
    format psql prints and auto_explain logs (``bbperf.explain.textplan``) — the same tree either way."""
    if isinstance(data, str) and looks_like_text_plan(data):
        data = parse_text(data)
    parsed: Any = load_json(data) if isinstance(data, str) else data
    if json_depth(parsed) > MAX_JSON_DEPTH:
        raise ValueError(f"EXPLAIN output nested more than {MAX_JSON_DEPTH} levels deep: refused")
    if isinstance(parsed, list):
        if len(parsed) != 1 or not isinstance(parsed[0], dict):
            raise ValueError("EXPLAIN JSON must be a list holding one object with a 'Plan' key")
        parsed = parsed[0]
    if not isinstance(parsed, dict) or not isinstance(parsed.get("Plan"), dict):
        raise ValueError("EXPLAIN JSON has no 'Plan' object")
    doc: dict[str, Any] = parsed
    root = _node(doc["Plan"], depth=0, counter=[0])
    _account(root, processes=1)
    _exclusive(root, _cte_charges(root))
    return Plan(
        root=root,
        planning_ms=figure(doc, "Planning Time", "the plan"),
        execution_ms=figure(doc, "Execution Time", "the plan"),
        raw=[doc],
        sql=sql,
    )


def _node(raw: dict[str, Any], depth: int, counter: list[int]) -> PlanNode:
    check_node(raw, counter[0])
    node = PlanNode(
        node_type=raw["Node Type"],
        relation=raw.get("Relation Name"),
        schema=raw.get("Schema"),
        alias=raw.get("Alias"),
        index=raw.get("Index Name"),
        parent_relationship=raw.get("Parent Relationship"),
        subplan_name=raw.get("Subplan Name"),
        cte_name=raw.get("CTE Name"),
        join_type=raw.get("Join Type"),
        parallel_aware=bool(raw.get("Parallel Aware")),
        startup_cost=float(raw.get("Startup Cost", 0.0)),
        total_cost=float(raw.get("Total Cost", 0.0)),
        plan_rows=float(raw.get("Plan Rows", 0.0)),
        actual_rows=_float(raw.get("Actual Rows")),
        loops=None if raw.get("Actual Loops") is None else int(raw["Actual Loops"]),
        actual_total_ms=_float(raw.get("Actual Total Time")),
        workers_launched=raw.get("Workers Launched"),
        shared_hit_blocks=raw.get("Shared Hit Blocks"),
        shared_read_blocks=raw.get("Shared Read Blocks"),
        temp_written_blocks=raw.get("Temp Written Blocks"),
        conditions={k: str(raw[k]) for k in _CONDITION_KEYS if k in raw},
        rows_removed_by_filter=_float(raw.get("Rows Removed by Filter")),
        sort_key=raw.get("Sort Key"),
        sort_method=raw.get("Sort Method"),
        raw={k: v for k, v in raw.items() if k != "Plans"},
        node_id=counter[0],
        depth=depth,
    )
    counter[0] += 1
    node.children = [_node(child, depth + 1, counter) for child in raw.get("Plans", [])]
    return node


def _account(node: PlanNode, processes: int) -> None:
    """Inclusive wall-clock time; ``processes`` is how many backends run this part of the plan."""
    node.processes = processes
    if node.actual_total_ms is not None:
        node.inclusive_ms = node.actual_total_ms * (node.loops or 0) / processes
    below = processes
    if node.node_type in ("Gather", "Gather Merge") and node.workers_launched is not None:
        below = node.workers_launched + 1
        # With parallel_leader_participation off the leader runs none of the workers' part.
        first = node.children[0] if node.children else None
        if first is not None and first.loops == node.workers_launched and first.loops:
            below = node.workers_launched
        below = max(below, 1)
    for child in node.children:
        _account(child, below)


def _cte_charges(root: PlanNode) -> dict[int, list[PlanNode]]:
    """For each node (by id), the CTE subplans whose time it carries instead of its listed parent.

    A CTE subplan is listed as an InitPlan of an ancestor, but its rows are produced while the first
    CTE Scan reads it; several scans of one CTE share that work and only the first is charged.
    """
    charges: dict[int, list[PlanNode]] = {}
    for parent in root.walk():
        for child in parent.children:
            name = child.subplan_name or ""
            if child.parent_relationship != "InitPlan" or not name.startswith("CTE "):
                continue
            scan = next(
                (n for n in root.walk() if n.node_type == "CTE Scan" and n.cte_name == name[4:]),
                None,
            )
            if scan is not None:
                charges.setdefault(id(parent), []).append(child)
                charges.setdefault(id(scan), []).append(child)
    return charges


def _exclusive(node: PlanNode, charges: dict[int, list[PlanNode]]) -> None:
    for child in node.children:
        _exclusive(child, charges)
    if node.inclusive_ms is None:
        return
    listed = [c for c in node.children if c not in charges.get(id(node), [])]
    carried = [c for c in charges.get(id(node), []) if c not in node.children]
    node.self_ms = node.inclusive_ms - sum(c.inclusive_ms or 0.0 for c in listed + carried)


def _self_cost(node: PlanNode) -> float:
    return node.total_cost - sum(child.total_cost for child in node.children)


def _describe(node: PlanNode, plan: Plan) -> str:
    parts = [node.label]
    if node.self_ms is not None:
        parts.append(f"self {_ms(node.self_ms)} ({_pct(node.self_ms, plan.total_ms) or 0:.0f}%)")
        parts.append(f"incl {_ms(node.inclusive_ms)}")
        parts.append(f"rows {_num(node.actual_rows)} est {_num(node.plan_rows)}")
        if node.loops and node.loops > 1:
            parts.append(f"loops {node.loops}")
        if node.misestimated:
            parts.append(f"⚠ estimate off ×{node.estimate_factor:.0f} ({node.estimate_direction})")
    else:
        parts.append(f"cost {node.total_cost:.2f} rows {_num(node.plan_rows)}")
    if node.shared_hit_blocks is not None and node.self_ms is not None:
        parts.append(f"buffers hit {node.shared_hit_blocks} read {node.shared_read_blocks}")
    return "  ".join(parts)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return 100.0 * part / whole


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f} ms"


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
