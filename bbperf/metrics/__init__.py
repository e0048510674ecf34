"""Six-figure barber metrics: the original four queries, the CTE rewrite, drift between them, speed,
and the ladder of faster variants proven equal to the original."""

from bbperf.metrics.ladder import LADDER, equivalence, ladder_metrics
from bbperf.metrics.model import ActionItem, RawMetrics, SixFigureMetrics, derive
from bbperf.metrics.queries import VARIANTS, fetch_raw, six_figure_metrics, statements

__all__ = [
    "LADDER",
    "VARIANTS",
    "ActionItem",
    "RawMetrics",
    "SixFigureMetrics",
    "derive",
    "equivalence",
    "ladder_metrics",
    "fetch_raw",
    "six_figure_metrics",
    "statements",
]
