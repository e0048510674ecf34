"""``run_report``: execute notebooks, render them, write index.html, results.json and report.log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from bbperf.config import Settings, load_settings
from bbperf.errors import BbperfError
from bbperf.report import secrets
from bbperf.report.index import results_document, write_report_files
from bbperf.report.provenance import collect_provenance, dataset_fingerprint, now_utc
from bbperf.report.runner import (
    DATABASE_URL_ENV,
    CodeDisplay,
    NotebookRun,
    discover_notebooks,
    run_notebooks,
)
from bbperf.report.story import DATASET_KEYS

# A report with no dataset asked for and none loaded: ~100 k appointments, loads in a few seconds.
DEFAULT_DATASET: dict[str, Any] = {
    "profile": "default",
    "scale": 0.1,
    "seed": 42,
    "as_of": "2026-11-01",
}


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

    def summary(self) -> dict[str, Any]:
        """What ``bbperf report --format json`` prints: where the report is and how each notebook did."""
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "index_html": str(self.index_html),
            "results_json": str(self.results_json),
            "leaks": [str(p) for p in self.leaks],
            "notebooks": [
                {
                    "name": r.name,
                    "status": "ok" if r.ok else "failed",
                    "error": r.error,
                    "duration_s": r.duration_s,
                    "verdict": " ".join(s["verdict"] for s in r.results if s.get("verdict"))
                    or None,
                }
                for r in self.runs
            ],
        }


def default_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _connect_for_provenance(database_url: str | None) -> Engine | None:
    """An engine on the report's target, or None when it cannot be reached (the notebooks will say why)."""
    from bbperf.target import connect

    try:
        return connect(database_url, echo_pool=False, connect_timeout_s=5)
    except BbperfError:
        return None


def report_dataset(
    requested: Mapping[str, Any], loaded: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The one dataset every notebook of a report gets: what was asked for, the rest from the dataset
    already loaded (so ``bbperf generate --scale 1 && bbperf report`` reports on SF 1), the rest from
    ``DEFAULT_DATASET``."""
    loaded = loaded or {}
    return {
        key: next(
            v for v in (requested.get(key), loaded.get(key), DEFAULT_DATASET[key]) if v is not None
        )
        for key in DATASET_KEYS
    }


def _prepare_dataset(engine: Engine | None, dataset: Mapping[str, Any], progress: bool) -> None:
    """Load the report's dataset once, before any notebook, so each of them finds it in place."""
    if engine is None:
        return
    from bbperf.generate import ensure_dataset

    ensure_dataset(
        engine,
        dataset["profile"],
        dataset["scale"],
        dataset["seed"],
        dataset["as_of"],
        progress=progress,
    )


def _loaded_dataset(engine: Engine | None, schema: str) -> dict[str, Any] | None:
    if engine is None:
        return None
    try:
        return dataset_fingerprint(engine, schema)
    except DBAPIError:
        return None


def run_report(
    *,
    notebooks_dir: str | Path = "notebooks",
    notebooks: Sequence[str] | None = None,
    out: str | Path | None = None,
    profile: str | None = None,
    scale: float | None = None,
    seed: int | None = None,
    as_of: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    database_url: str | None = None,
    schema: str | None = None,
    code: CodeDisplay = "show",
    progress: bool = True,
    cell_timeout_s: float | None = 600,
) -> Report:
    """Run notebooks (all of ``notebooks_dir``, or those named) into ``out`` (``reports/<run-id>``).

    One dataset per report: ``profile``, ``scale``, ``seed`` and ``as_of`` (each defaulting to the
    loaded dataset's, then to ``DEFAULT_DATASET``) are loaded once, before the notebooks, and passed to
    every notebook that declares them; any extra ``parameters`` go to notebooks declaring them. The
    database is ``database_url`` or ``BBPERF_DATABASE_URL`` or the embedded server, passed to kernels
    through the environment only. A failing notebook is marked in the report; the others still run.
    """
    settings = load_settings(database_url=database_url, schema=schema)
    sources = discover_notebooks(notebooks_dir, notebooks)
    run_id = default_run_id()
    out_dir = Path(out) if out else Path("reports") / run_id
    if out:
        run_id = out_dir.name
    extra = dict(parameters or {})
    asked = {"profile": profile, "scale": scale, "seed": seed, "as_of": as_of}
    requested = {k: asked[k] if asked[k] is not None else extra.get(k) for k in DATASET_KEYS}
    started_at = now_utc()
    engine = _connect_for_provenance(settings.database_url)

    def record_dataset(run: NotebookRun) -> None:
        run.dataset = _loaded_dataset(engine, settings.schema)

    try:
        dataset = report_dataset(requested, _loaded_dataset(engine, settings.schema))
        params = {**extra, **dataset}
        _prepare_dataset(engine, dataset, progress)
        loaded = _loaded_dataset(engine, settings.schema)
        runs = run_notebooks(
            sources,
            out_dir,
            params,
            environment=kernel_environment(settings),
            code=code,
            progress=progress,
            cell_timeout_s=cell_timeout_s,
            after_each=record_dataset,
        )
        provenance = collect_provenance(
            engine,
            schema=settings.schema,
            started_at=started_at,
            parameters={k: v for k, v in params.items() if v is not None},
        )
    finally:
        if engine is not None:
            engine.dispose()
    document = results_document(run_id, runs, provenance, dataset=loaded or dataset)
    index, results = write_report_files(out_dir, document)
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
