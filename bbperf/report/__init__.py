"""Reports: run notebooks with papermill into HTML + results.json, and compare two reports' figures.

Names are imported on first use, so that ``bbperf compare`` (``bbperf.report.compare``) does not load
the feature packages whose stories the index page reads (``bbperf.report.experiments``).
"""

from __future__ import annotations

from bbperf.lazy import lazy_exports

_EXPORTS = {
    "Report": ".build",
    "run_report": ".build",
    "collect_provenance": ".provenance",
    "NotebookRun": ".runner",
    "discover_notebooks": ".runner",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
