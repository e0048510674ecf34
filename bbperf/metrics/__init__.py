"""Six-figure barber metrics: the original four queries, the CTE rewrite, drift between them, speed."""

from bbperf.metrics.model import ActionItem, RawMetrics, SixFigureMetrics, derive
from bbperf.metrics.queries import VARIANTS, fetch_raw, six_figure_metrics, statements

__all__ = [
    "VARIANTS",
    "ActionItem",
    "RawMetrics",
    "SixFigureMetrics",
    "derive",
    "fetch_raw",
    "six_figure_metrics",
    "statements",
]
