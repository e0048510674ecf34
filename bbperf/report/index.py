"""A report's front page (index.html: notebooks, status, headline figures) and results.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from bbperf.report.runner import NotebookRun

RESULTS_FORMAT = 1


def flatten_figures(runs: Sequence[NotebookRun]) -> list[dict[str, Any]]:
    """Every figure of every notebook as one row, keyed by (notebook, name) for ``compare``."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        for saved in run.results:
            for fig in saved.get("figures", {}).values():
                rows.append({"notebook": saved.get("notebook", run.name), "file": run.name, **fig})
    return rows


def results_document(
    run_id: str, runs: Sequence[NotebookRun], provenance: dict[str, Any]
) -> dict[str, Any]:
    """The content of results.json: provenance, each notebook's status, and every figure."""
    return {
        "format": RESULTS_FORMAT,
        "run_id": run_id,
        "ok": all(r.ok for r in runs),
        "provenance": provenance,
        "notebooks": {
            r.name: {
                "status": "ok" if r.ok else "failed",
                "error": r.error,
                "duration_s": r.duration_s,
                "parameters": r.parameters,
                "ipynb": r.ipynb.name,
                "html": r.html.name if r.html else None,
                "results": r.results,
            }
            for r in runs
        },
        "figures": flatten_figures(runs),
    }


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _provenance_rows(prov: dict[str, Any]) -> list[tuple[str, str]]:
    server = prov.get("postgresql") or {}
    machine = prov.get("machine") or {}
    git = (prov.get("bbperf") or {}).get("git") or {}
    dataset = prov.get("dataset") or {}
    settings = server.get("settings") or {}
    return [
        (
            "bbperf",
            f"{(prov.get('bbperf') or {}).get('version', '')} "
            f"{git.get('commit', '')[:12]}{' (modified)' if git.get('dirty') else ''}",
        ),
        ("PostgreSQL", server.get("version") or server.get("error", "")),
        ("settings", ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None)),
        (
            "machine",
            f"{machine.get('platform', '')}, {machine.get('cpu_count', '')} CPUs, "
            f"{(machine.get('memory_bytes') or 0) / 2**30:.1f} GiB",
        ),
        (
            "parameters",
            ", ".join(f"{k}={v}" for k, v in (prov.get("parameters") or {}).items())
            or "notebook defaults",
        ),
        (
            "dataset at the end",
            ", ".join(
                f"{k}={dataset[k]}" for k in ("profile", "scale", "seed", "as_of") if k in dataset
            )
            or "none recorded",
        ),
        ("started / finished", f"{prov.get('started_at', '')} / {prov.get('finished_at', '')}"),
    ]


def render_index(document: dict[str, Any]) -> str:
    """index.html from a results document: notebook status with links, headline figures, provenance."""
    nb_rows = []
    for name, nb in document["notebooks"].items():
        link = f'<a href="{escape(nb["html"])}">{escape(name)}</a>' if nb["html"] else escape(name)
        status = "ok" if nb["status"] == "ok" else '<b class="failed">FAILED</b>'
        recorded = {k: v for r in nb["results"] for k, v in (r.get("parameters") or {}).items()}
        shown = ", ".join(f"{k}={v}" for k, v in recorded.items())
        nb_rows.append(
            [
                link,
                status,
                f"{nb['duration_s']:.1f}",
                escape(shown),
                escape(nb["error"] or ""),
                f'<a href="{escape(nb["ipynb"])}">ipynb</a>',
            ]
        )
    headline = [f for f in document["figures"] if f.get("headline")]
    fig_rows = [
        [
            escape(f["notebook"]),
            escape(f["name"]),
            escape(format_value(f["value"])),
            escape(f.get("unit") or ""),
            escape(f.get("better") or ""),
            escape(f.get("description") or ""),
        ]
        for f in headline
    ]
    prov_rows = [[escape(k), escape(v)] for k, v in _provenance_rows(document["provenance"])]
    verdict = "all notebooks ran" if document["ok"] else "some notebooks FAILED"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>bbperf report {
        escape(document["run_id"])
    }</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }} .failed {{ color: #b00; }}
</style></head><body>
<h1>bbperf report {escape(document["run_id"])}</h1>
<p>{verdict}; figures for machines in <a href="results.json">results.json</a>
(compare two runs with <code>bbperf compare OLD/results.json NEW/results.json</code>).</p>
<h2>Notebooks</h2>
{_table(["notebook", "status", "seconds", "ran with", "error", "executed"], nb_rows)}
<h2>Headline figures</h2>
{
        _table(["notebook", "figure", "value", "unit", "better", "what"], fig_rows)
        if fig_rows
        else "<p>No headline figures recorded.</p>"
    }
<h2>Provenance</h2>
{_table(["", ""], prov_rows)}
</body></html>
"""


def write_report_files(out_dir: Path, document: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``results.json`` and ``index.html`` into ``out_dir``; returns both paths."""
    results = out_dir / "results.json"
    results.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(render_index(document), encoding="utf-8")
    return index, results
