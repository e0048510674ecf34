"""EXPLAIN ANALYZE toolkit: plan analysis and diff, timing statistics, what-if index advice."""

from bbperf.explain.measure import measure
from bbperf.explain.plan import Plan, PlanNode, parse_plan
from bbperf.explain.run import explain
from bbperf.explain.stats import Comparison, Summary, Timing, compare, summarize

__all__ = [
    "Comparison",
    "Plan",
    "PlanNode",
    "Summary",
    "Timing",
    "compare",
    "explain",
    "measure",
    "parse_plan",
    "summarize",
]
