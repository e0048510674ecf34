"""``run_report``: execute notebooks, render them, write index.html, results.json and report.log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bbperf.config import Settings, load_settings
from bbperf.errors import BbperfError
from bbperf.report import secrets
from bbperf.report.index import results_document, write_report_files
from bbperf.report.provenance import collect_provenance, now_utc
from bbperf.report.runner import (
    DATABASE_URL_ENV,
    CodeDisplay,
    NotebookRun,
    discover_notebooks,
    run_notebooks,
)


@dataclass
class Report:
    """A finished report: where it is, each notebook's run, and whether anything went wrong."""

    run_id: str
    out_dir: Path
    runs: list[NotebookRun]
    provenance: dict[str, Any]
    index_html: Path
    results_json: Path
    leaks: list[Path] = field(default_factory=list)

    @property
    def failures(self) -> list[NotebookRun]:
        return [r for r in self.runs if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.leaks


def default_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _connect_for_provenance(settings: Settings) -> Engine | None:
    """An engine on the report's target, or None when it cannot be reached (the notebooks will say why)."""
    from bbperf.target import engine_for

    try:
        return engine_for(settings, echo_pool=False, connect_timeout_s=5)
    except BbperfError:
        return None


def run_report(
    *,
    notebooks_dir: str | Path = "notebooks",
    notebooks: Sequence[str] | None = None,
    out: str | Path | None = None,
    profile: str | None = None,
    scale: float | None = None,
    seed: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    database_url: str | None = None,
    schema: str | None = None,
    code: CodeDisplay = "show",
    progress: bool = True,
    cell_timeout_s: float | None = 600,
) -> Report:
    """Run notebooks (all of ``notebooks_dir``, or those named) into ``out`` (``reports/<run-id>``).

    ``profile``, ``scale``, ``seed`` and any extra ``parameters`` go to each notebook that declares them
    in its ``parameters`` cell; None keeps the notebook's default. The database is ``database_url`` or
    ``BBPERF_DATABASE_URL`` or the embedded server, passed to kernels through the environment only.
    A failing notebook is marked in the report; the others still run.
    """
    settings = load_settings(database_url=database_url, schema=schema)
    sources = discover_notebooks(notebooks_dir, notebooks)
    run_id = default_run_id()
    out_dir = Path(out) if out else Path("reports") / run_id
    if out:
        run_id = out_dir.name
    params = {"profile": profile, "scale": scale, "seed": seed, **(parameters or {})}
    started_at = now_utc()
    engine = _connect_for_provenance(settings)
    try:
        runs = run_notebooks(
            sources,
            out_dir,
            params,
            environment=kernel_environment(settings),
            code=code,
            progress=progress,
            cell_timeout_s=cell_timeout_s,
        )
        provenance = collect_provenance(
            engine,
            started_at=started_at,
            parameters={k: v for k, v in params.items() if v is not None},
        )
    finally:
        if engine is not None:
            engine.dispose()
    index, results = write_report_files(out_dir, results_document(run_id, runs, provenance))
    write_log(out_dir / "report.log", runs)
    hidden = secrets.secrets_of(settings.database_url)
    leaks = secrets.find_leaks(out_dir, hidden)
    secrets.redact(leaks, hidden)
    return Report(run_id, out_dir, runs, provenance, index, results, leaks)


def kernel_environment(settings: Settings) -> dict[str, str]:
    """What kernels must see to work on the report's target: URL and schema, via the environment only."""
    env = {"BBPERF_HOME": str(settings.home), "BBPERF_SCHEMA": settings.schema}
    if settings.database_url:
        env[DATABASE_URL_ENV] = settings.database_url
    return env


def write_log(path: Path, runs: Sequence[NotebookRun]) -> Path:
    """One line per notebook: status, seconds, figures recorded, error."""
    lines = []
    for run in runs:
        figures = sum(len(r.get("figures", {})) for r in run.results)
        status = "ok" if run.ok else "FAILED"
        lines.append(
            f"{run.name}\t{status}\t{run.duration_s:.1f}s\t{figures} figures"
            f"{chr(9) + run.error if run.error else ''}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
