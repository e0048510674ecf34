"""A report's front page (index.html, from the package's jinja2 template) and its results.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bbperf.report.indexpage import IndexPage, build_index_page
from bbperf.report.runner import NotebookRun

RESULTS_FORMAT = 2
TEMPLATE = "index.html.j2"


def flatten_figures(runs: Sequence[NotebookRun]) -> list[dict[str, Any]]:
    """Every figure of every notebook as one row, keyed by (notebook, name) for ``compare``."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        for saved in run.results:
            for fig in saved.get("figures", {}).values():
                rows.append({"notebook": saved.get("notebook", run.name), "file": run.name, **fig})
    return rows


def results_document(
    run_id: str,
    runs: Sequence[NotebookRun],
    provenance: dict[str, Any],
    *,
    dataset: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of results.json: the report's dataset, provenance, each notebook's status, dataset
    and chart, and every figure at full precision (with ``ci_low``, ``ci_high``, ``p_value``, ``n``)."""
    return {
        "format": RESULTS_FORMAT,
        "run_id": run_id,
        "ok": all(r.ok for r in runs),
        "dataset": dataset,
        "provenance": provenance,
        "notebooks": {
            r.name: {
                "status": "ok" if r.ok else "failed",
                "error": r.error,
                "duration_s": r.duration_s,
                "sections": [s.to_dict() for s in r.sections],
                "parameters": r.parameters,
                "ipynb": r.ipynb.name,
                "html": r.html.name if r.html else None,
                "chart": f"charts/{r.chart.name}" if r.chart else None,
                "dataset": r.dataset,
                "results": r.results,
            }
            for r in runs
        },
        "figures": flatten_figures(runs),
    }


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("bbperf.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_index_page(page: IndexPage) -> str:
    """index.html for an ``IndexPage``."""
    return str(_environment().get_template(TEMPLATE).render(page=page))


def render_index(document: dict[str, Any]) -> str:
    """index.html from a results document: verdicts, claims, headline figures, charts, provenance."""
    return render_index_page(build_index_page(document))


def write_report_files(out_dir: Path, document: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``results.json`` and ``index.html`` into ``out_dir``; returns both paths."""
    results = out_dir / "results.json"
    results.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(render_index(document), encoding="utf-8")
    return index, results
