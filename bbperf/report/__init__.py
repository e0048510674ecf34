"""Reports: run notebooks with papermill into HTML + results.json, and compare two reports' figures."""

from bbperf.report.build import Report, run_report
from bbperf.report.provenance import collect_provenance
from bbperf.report.runner import NotebookRun, discover_notebooks

__all__ = ["NotebookRun", "Report", "collect_provenance", "discover_notebooks", "run_report"]
