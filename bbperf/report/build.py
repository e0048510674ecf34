"""``run_report``: execute notebooks, render them, write index.html, results.json and report.log."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from bbperf.config import Settings, load_settings
from bbperf.dataset_defaults import DEFAULT_DATASET
from bbperf.errors import BbperfError, ConfigError, first_line
from bbperf.files import is_system_path
from bbperf.generate import ensure_dataset
from bbperf.generate.dataset import dataset_spec
from bbperf.leftovers import tidy
from bbperf.report.index import results_document, write_report_files
from bbperf.report.indexpage import DATASET_KEYS
from bbperf.report.provenance import collect_provenance, dataset_fingerprint, now_utc
from bbperf.report.runner import (
    DATABASE_URL_ENV,
    CodeDisplay,
    NotebookRun,
    check_parameter_names,
    declared_parameters,
    discover_notebooks,
    run_notebooks,
)
from bbperf.runlock import exclusive_run
from bbperf.secrets import find_leaks, passwords, redact_files
from bbperf.target import engine_for


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


def _connect_for_provenance(settings: Settings) -> Engine | None:
    """An engine on the report's target, or None when it cannot be reached (the notebooks will say why)."""
    try:
        return engine_for(settings, echo_pool=False, connect_timeout_s=5)
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


def _tidy_after_failure(engine: Engine, run: NotebookRun) -> None:
    """A notebook that failed half-way may leave its experiment's objects (a view, triggers,
    partitioned tables) and so change what the next notebook measures: remove them, and say so."""
    try:
        removed = tidy(engine)
    except (BbperfError, DBAPIError) as exc:
        run.error = f"{run.error}; could not tidy after it: {first_line(exc)}"
        return
    if removed:
        run.error = f"{run.error}; removed what it left: {', '.join(removed)}"


def _prepare_dataset(engine: Engine | None, dataset: Mapping[str, Any], progress: bool) -> None:
    """Load the report's dataset once, before any notebook, so each of them finds it in place."""
    if engine is None:
        return
    # Importing bbperf.leftovers registers its load guard: a load refuses to run under experiments.

    ensure_dataset(
        engine,
        dataset["profile"],
        dataset["scale"],
        dataset["seed"],
        dataset["as_of"],
        progress=progress,
    )


def _loaded_dataset(engine: Engine | None) -> dict[str, Any] | None:
    if engine is None:
        return None
    try:
        return dataset_fingerprint(engine)
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
    asked = {"profile": profile, "scale": scale, "seed": seed, "as_of": as_of}
    user_params = {**(parameters or {}), **{k: v for k, v in asked.items() if v is not None}}
    check_parameters(sources, user_params, cell_timeout_s)
    run_id = default_run_id()
    out_dir = Path(out) if out else Path("reports") / run_id
    if out:
        run_id = out_dir.name
    engine = _connect_for_provenance(settings)
    # One run on this schema at a time: a second report or load would change the tables under it.
    with exclusive_run(engine, "report"):
        claim_out_dir(out_dir)
        started = time.time()
        started_at = now_utc()

        def record_dataset(run: NotebookRun) -> None:
            if not run.ok and engine is not None:
                _tidy_after_failure(engine, run)
            run.dataset = _loaded_dataset(engine)

        try:
            dataset = report_dataset(user_params, _loaded_dataset(engine))
            params = {**user_params, **dataset}
            _prepare_dataset(engine, dataset, progress)
            loaded = _loaded_dataset(engine)
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
                started_at=started_at,
                parameters={k: v for k, v in params.items() if v is not None},
            )
        finally:
            if engine is not None:
                engine.dispose()
        document = results_document(run_id, runs, provenance, dataset=loaded or dataset)
        index, results = write_report_files(out_dir, document)
        write_log(out_dir / "report.log", runs)
        hidden = passwords(settings.database_url)
        leaks = find_leaks(written_since(out_dir, started), hidden)
        redact_files(leaks, hidden)
        return Report(run_id, out_dir, runs, provenance, index, results, leaks)


def check_parameters(
    sources: Sequence[Path], params: Mapping[str, Any], cell_timeout_s: float | None
) -> None:
    """Refuse, before any notebook runs, a parameter no chosen notebook declares, a dataset asked
    for that ``dataset_spec`` refuses (unknown profile, bad scale, seed or as_of), and a cell
    timeout that is not a positive number of seconds."""
    check_parameter_names(params)
    declared = set().union(*(declared_parameters(source) for source in sources))
    # The dataset's four values load the report's dataset even when no notebook declares them.
    unknown = sorted(
        k
        for k, v in params.items()
        if v is not None and k not in declared and k not in DATASET_KEYS
    )
    if unknown:
        raise ConfigError(
            f"no chosen notebook declares parameter(s) {', '.join(unknown)}: "
            f"known are {', '.join(sorted(declared))}"
        )
    asked = {k: params[k] for k in DATASET_KEYS if params.get(k) is not None}
    dataset_spec(**{**DEFAULT_DATASET, **asked})
    if cell_timeout_s is not None and not (0 < cell_timeout_s <= 86_400):
        raise ConfigError(
            f"cell timeout {cell_timeout_s!r} must be a positive number of seconds (at most a day)"
        )


REPORT_MARKER = ".bbperf-report"


def claim_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` for a report, or reuse one an earlier report made; refuse anything else.

    A folder that holds files bbperf did not write (no ``.bbperf-report`` marker), a file, the
    filesystem root, a system folder or the home folder itself are refused: a report never
    rewrites a user's files.
    """
    resolved = out_dir.expanduser().resolve()
    if is_system_path(resolved) or resolved == Path.home().resolve():
        raise ConfigError(f"refusing to write a report into {resolved}: choose a new folder")
    if resolved.exists() and not resolved.is_dir():
        raise ConfigError(f"report folder {out_dir} is a file: choose a new folder")
    if resolved.is_dir() and any(resolved.iterdir()) and not (resolved / REPORT_MARKER).exists():
        raise ConfigError(
            f"report folder {out_dir} is not empty and was not made by bbperf report: "
            "choose a new folder (bbperf never rewrites files it did not write)"
        )
    try:
        resolved.mkdir(parents=True, exist_ok=True)
        (resolved / REPORT_MARKER).write_text("written by bbperf report\n")
    except OSError as exc:
        raise ConfigError(f"cannot create report folder {out_dir}: {exc.strerror}") from None


def written_since(directory: Path, since: float) -> list[Path]:
    """Files under ``directory`` written at or after ``since`` (epoch seconds): this run's files."""
    return [p for p in directory.rglob("*") if p.is_file() and p.stat().st_mtime >= since - 1]


def kernel_environment(settings: Settings) -> dict[str, str]:
    """What kernels must see to work on the report's target: URL and schema, via the environment only."""
    env = {"BBPERF_HOME": str(settings.home), "BBPERF_SCHEMA": settings.schema}
    if settings.database_url:
        env[DATABASE_URL_ENV] = settings.database_url
    return env


def write_log(path: Path, runs: Sequence[NotebookRun]) -> Path:
    """One line per notebook (status, seconds, figures recorded, error), then one indented line per
    ``##`` section with the seconds its cells took: where the report's time goes."""
    lines = []
    for run in runs:
        figures = sum(len(r.get("figures", {})) for r in run.results)
        status = "ok" if run.ok else "FAILED"
        lines.append(
            f"{run.name}\t{status}\t{run.duration_s:.1f}s\t{figures} figures"
            f"{chr(9) + run.error if run.error else ''}"
        )
        lines.extend(f"  {s.seconds:7.1f}s\t{s.heading}" for s in run.sections)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
