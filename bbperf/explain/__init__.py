"""EXPLAIN ANALYZE toolkit: plan analysis and diff, timing statistics, what-if index advice."""

from bbperf.explain.diff import PlanDiff, diff
from bbperf.explain.index_advice import Advice, advise
from bbperf.explain.magics import load_ipython_extension
from bbperf.explain.measure import measure
from bbperf.explain.overhead import Overhead, explain_overhead
from bbperf.explain.pgstatviews import (
    measure_query_time,
    missing_index_hints,
    reset_query_stats,
    slow_queries,
)
from bbperf.explain.plan import Plan, PlanNode, parse_plan
from bbperf.explain.run import explain
from bbperf.explain.timingstats import Comparison, Summary, Timing, compare, summarize
from bbperf.explain.verify_advice import VerifiedAdvice, verify

__all__ = [
    "Advice",
    "Comparison",
    "Overhead",
    "Plan",
    "PlanDiff",
    "PlanNode",
    "Summary",
    "Timing",
    "VerifiedAdvice",
    "advise",
    "compare",
    "diff",
    "explain",
    "explain_overhead",
    "load_ipython_extension",
    "measure",
    "measure_query_time",
    "missing_index_hints",
    "parse_plan",
    "reset_query_stats",
    "slow_queries",
    "summarize",
    "verify",
]
