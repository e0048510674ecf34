"""What changed between two plans of one query: scan types, nodes added or removed, time per relation."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bbperf.explain.plan import Plan, PlanNode

if TYPE_CHECKING:
    import pandas as pd

OTHER = "(joins, sorts, aggregates)"


@dataclass(frozen=True)
class ScanChange:
    """How one relation is read before and after, e.g. ``Seq Scan`` → ``Index Scan using idx``."""

    relation: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.relation}: {self.before} → {self.after}"


@dataclass(frozen=True)
class RelationDelta:
    """Exclusive time of the nodes that read ``relation`` (ms), before and after."""

    relation: str
    before_ms: float
    after_ms: float

    @property
    def delta_ms(self) -> float:
        return self.after_ms - self.before_ms


@dataclass
class PlanDiff:
    """The result of ``diff``; ``speedup`` = before / after total time (> 1: after is faster)."""

    before_ms: float | None
    after_ms: float | None
    scan_changes: list[ScanChange] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    relations: list[RelationDelta] = field(default_factory=list)

    @property
    def speedup(self) -> float | None:
        if not self.before_ms or not self.after_ms:
            return None
        return self.before_ms / self.after_ms

    def to_frame(self) -> pd.DataFrame:
        """Time per relation before and after (DataFrame indexed by relation)."""
        import pandas as pd

        rows = [
            {
                "relation": r.relation,
                "before_ms": r.before_ms,
                "after_ms": r.after_ms,
                "delta_ms": r.delta_ms,
            }
            for r in self.relations
        ]
        return pd.DataFrame(
            rows, columns=["relation", "before_ms", "after_ms", "delta_ms"]
        ).set_index("relation")

    def text(self) -> str:
        lines = []
        if self.speedup is not None:
            lines.append(
                f"total {self.before_ms:.3f} ms → {self.after_ms:.3f} ms (×{self.speedup:.2f})"
            )
        lines += [f"scan changed  {c}" for c in self.scan_changes]
        lines += [f"node added    {n}" for n in self.added]
        lines += [f"node removed  {n}" for n in self.removed]
        for r in self.relations:
            lines.append(
                f"time          {r.relation}: {r.before_ms:.3f} → {r.after_ms:.3f} ms "
                f"({r.delta_ms:+.3f})"
            )
        return "\n".join(lines) if lines else "plans are identical in shape"

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text())}</pre>"


def diff(before: Plan, after: Plan) -> PlanDiff:
    """Compare two plans of the same query (e.g. without and with an index)."""
    before_scans, after_scans = _scans(before), _scans(after)
    changes = [
        ScanChange(rel, before_scans[rel], after_scans[rel])
        for rel in sorted(set(before_scans) & set(after_scans))
        if before_scans[rel] != after_scans[rel]
    ]
    b_nodes, a_nodes = (
        Counter(_signature(n) for n in before.nodes()),
        Counter(_signature(n) for n in after.nodes()),
    )
    b_time, a_time = _time_by_relation(before), _time_by_relation(after)
    relations = [
        RelationDelta(rel, b_time.get(rel, 0.0), a_time.get(rel, 0.0))
        for rel in sorted(set(b_time) | set(a_time), key=lambda r: (r == OTHER, r))
    ]
    return PlanDiff(
        before_ms=_total(before),
        after_ms=_total(after),
        scan_changes=changes,
        added=sorted((a_nodes - b_nodes).elements()),
        removed=sorted((b_nodes - a_nodes).elements()),
        relations=relations if before.analyzed and after.analyzed else [],
    )


def _total(plan: Plan) -> float | None:
    return plan.execution_ms if plan.execution_ms is not None else plan.total_ms


def _signature(node: PlanNode) -> str:
    return node.label


def _owner(node: PlanNode, parents: dict[int, PlanNode]) -> str | None:
    """The relation a node reads: its own, or its Bitmap Heap Scan's for a Bitmap Index Scan."""
    if node.relation:
        return node.relation
    parent = parents.get(id(node))
    while node.node_type in ("Bitmap Index Scan", "BitmapAnd", "BitmapOr") and parent is not None:
        if parent.relation:
            return parent.relation
        node, parent = parent, parents.get(id(parent))
    return None


def _parents(plan: Plan) -> dict[int, PlanNode]:
    return {id(child): node for node in plan.nodes() for child in node.children}


def _scans(plan: Plan) -> dict[str, str]:
    """Relation → how it is read (scan types and indexes, sorted, joined by " + ")."""
    parents = _parents(plan)
    ways: dict[str, set[str]] = {}
    for node in plan.nodes():
        rel = _owner(node, parents)
        if rel is None or "Scan" not in node.node_type:
            continue
        how = node.node_type + (f" using {node.index}" if node.index else "")
        ways.setdefault(rel, set()).add(how)
    return {rel: " + ".join(sorted(h)) for rel, h in ways.items()}


def _time_by_relation(plan: Plan) -> dict[str, float]:
    parents = _parents(plan)
    times: dict[str, float] = {}
    for node in plan.nodes():
        key = _owner(node, parents) or OTHER
        times[key] = times.get(key, 0.0) + (node.self_ms or 0.0)
    return times
