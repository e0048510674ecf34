"""A plan as a chart: self time per node as horizontal bars, the worst node highlighted, misestimated
row counts marked (rendering only; the numbers come from ``bbperf.explain.plan``).

It reads a plan through the two small protocols below rather than importing ``Plan``: ``Plan.chart``
calls this module, so this module names only what it reads and the two stay out of a circle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WORST = "#c0504d"
OTHER = "#4f81bd"


class ChartNode(Protocol):
    """What a bar needs of a plan node (``bbperf.explain.plan.PlanNode`` has it)."""

    @property
    def self_ms(self) -> float | None: ...
    @property
    def total_cost(self) -> float: ...
    @property
    def children(self) -> Sequence[ChartNode]: ...
    @property
    def depth(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def misestimated(self) -> bool: ...
    @property
    def estimate_factor(self) -> float | None: ...
    @property
    def estimate_direction(self) -> str | None: ...


class ChartPlan(Protocol):
    """What the chart needs of a plan (``bbperf.explain.plan.Plan`` has it)."""

    @property
    def analyzed(self) -> bool: ...
    @property
    def total_ms(self) -> float | None: ...
    @property
    def total_cost(self) -> float: ...
    def nodes(self) -> Sequence[ChartNode]: ...


def plan_chart(
    plan: ChartPlan, *, top: int = 12, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Bars of the ``top`` nodes by self time (ms), in plan order, the worst in red; a node whose row
    estimate is off by ×10 or more is hatched and labelled with the factor. A plan without ANALYZE
    is drawn by self cost instead. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    nodes = plan.nodes()
    if plan.analyzed:
        weight: dict[int, float] = {id(n): max(n.self_ms or 0.0, 0.0) for n in nodes}
        xlabel = "self time, ms"
    else:
        weight = {
            id(n): max(n.total_cost - sum(c.total_cost for c in n.children), 0.0) for n in nodes
        }
        xlabel = "self cost (planner units)"
    kept = sorted(nodes, key=lambda n: weight[id(n)], reverse=True)[:top]
    shown = [n for n in nodes if n in kept]
    worst = max(shown, key=lambda n: weight[id(n)]) if shown else None
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.38 * len(shown) + 1.2))
    labels = []
    for n in shown:
        label = "  " * min(n.depth, 6) + n.label
        if n.misestimated and n.estimate_factor:
            label += f"  ⚠ rows ×{n.estimate_factor:.0f} {n.estimate_direction}"
        labels.append(label[:70])
    bars = ax.barh(
        range(len(shown)),
        [weight[id(n)] for n in shown],
        color=[WORST if n is worst else OTHER for n in shown],
    )
    for bar, n in zip(bars, shown, strict=True):
        if n.misestimated:
            bar.set_hatch("//")
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    total = plan.total_ms if plan.analyzed else plan.total_cost
    ax.set_title(title or (f"where the time goes (total {total:,.3g})" if total else "plan"))
    ax.grid(axis="x", alpha=0.3)
    return ax


def figure_of(ax: Any) -> Any:
    return ax.figure
