"""Run notebooks through papermill with report parameters, collect their figures, render them to HTML."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bbperf.errors import ConfigError
from bbperf.progress import PROGRESS_ENV
from bbperf.results import RESULTS_DIR_ENV
from bbperf.urls import mask_text

CodeDisplay = Literal["show", "hide", "collapse"]
CHART_TAG = "report-chart"
DATABASE_URL_ENV = "BBPERF_DATABASE_URL"
# The database URL reaches notebooks through the environment only: a papermill parameter is written
# in clear text into the executed notebook.
_FORBIDDEN_PARAMETER_PARTS = ("url", "dsn", "password", "passwd", "secret")
_COLLAPSE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{% block input_group -%}
<details class="bbperf-code"><summary>code</summary>
{{ super() }}
</details>
{%- endblock input_group %}
"""


@dataclass(frozen=True)
class Section:
    """Where a notebook's time went: one ``##`` heading (or the cells before the first) and the
    seconds its code cells took, as papermill recorded them in the executed notebook."""

    heading: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"heading": self.heading, "seconds": round(self.seconds, 2)}


@dataclass
class NotebookRun:
    """The outcome of one notebook: where its outputs are, its figures, and its error if it failed."""

    name: str
    source: Path
    ipynb: Path
    html: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0
    results: list[dict[str, Any]] = field(default_factory=list)
    dataset: dict[str, Any] | None = None
    chart: Path | None = None
    sections: list[Section] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def discover_notebooks(directory: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """The ``*.ipynb`` files of ``directory`` in name order, or those matching ``names``.

    A name matches a notebook by file name, stem, or stem prefix (``01`` selects ``01_index_benchmark``).
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError(
            f"notebook directory {folder} does not exist: run from the repository root "
            "or pass --notebooks-dir"
        )
    found = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if not names:
        if not found:
            raise ConfigError(f"no notebooks (*.ipynb) in {folder}")
        return found
    chosen: list[Path] = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        matches = [p for p in found if p.stem == stem] or [
            p for p in found if p.stem.startswith(stem)
        ]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in found) or "none"
            what = "matches no" if not matches else "matches more than one"
            raise ConfigError(f"notebook {name!r} {what} notebook in {folder} (have: {known})")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def check_parameter_names(parameters: Mapping[str, Any]) -> None:
    """Refuse parameters that look like credentials: they would be stored in clear in the notebook."""
    for name in parameters:
        if any(part in name.lower() for part in _FORBIDDEN_PARAMETER_PARTS):
            raise ConfigError(
                f"parameter {name!r} looks like a connection setting: pass the database through "
                f"{DATABASE_URL_ENV} (or --database-url), never as a notebook parameter"
            )


def declared_parameters(path: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell (papermill's own inspection)."""
    import papermill

    return set(papermill.inspect_notebook(str(path)))


def applicable_parameters(path: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``parameters`` the notebook declares, skipping None (the notebook's default wins)."""
    declared = declared_parameters(path)
    return {k: v for k, v in parameters.items() if k in declared and v is not None}


@contextlib.contextmanager
def kernel_environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set environment variables for kernels started inside the block (they inherit os.environ)."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def describe_error(exc: BaseException) -> str:
    """One masked line naming a notebook's failure (papermill's ename/evalue when it has them)."""
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None)
    if evalue is None:
        evalue = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return mask_text(f"{ename}: {evalue}".strip().rstrip(":"))


def read_results(directory: Path) -> list[dict[str, Any]]:
    """Every ``Results.save()`` file a notebook wrote into its results directory."""
    if not directory.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def _quiet_shutdown_kernel_manager() -> type:
    """nbclient's kernel manager, minus the SIGINT jupyter_client sends before every shutdown.

    ``shutdown_kernel`` interrupts the kernel first so that a busy one stops its cell; a kernel
    that finished its notebook is idle, and the signal only lands in whatever message handler is
    running, which ipykernel logs as "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel".
    The shutdown request (control channel) and the kill after the wait still stop a busy kernel,
    and nbclient interrupts a cell that times out itself, so no real error goes unreported.
    """
    from jupyter_client.manager import AsyncKernelManager

    class QuietShutdownKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

    return QuietShutdownKernelManager


def execute_notebook(
    source: Path,
    out_dir: Path,
    parameters: Mapping[str, Any],
    *,
    environment: Mapping[str, str] | None = None,
    kernel_name: str = "python3",
    cell_timeout_s: float | None = 600,
) -> NotebookRun:
    """Execute one notebook into ``out_dir`` with papermill; a failure is recorded, not raised.

    ``environment`` (e.g. ``BBPERF_DATABASE_URL``) is set for the kernel only, never written anywhere.
    """
    import papermill

    params = applicable_parameters(source, parameters)
    run = NotebookRun(
        name=source.stem, source=source, ipynb=out_dir / source.name, parameters=params
    )
    results_dir = out_dir / "results" / source.stem
    kernel_env: dict[str, str | None] = {
        **(environment or {}),
        RESULTS_DIR_ENV: str(results_dir.resolve()),
        PROGRESS_ENV: "0",  # a rendered report carries no progress-bar widgets
    }
    start = time.perf_counter()
    try:
        with kernel_environment(kernel_env):
            papermill.execute_notebook(
                str(source),
                str(run.ipynb),
                parameters=params,
                kernel_name=kernel_name,
                progress_bar=False,
                cwd=str(source.parent),
                execution_timeout=cell_timeout_s,
                # The kernel warns on stderr that its local TCP transport is unencrypted: noise here.
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
                kernel_manager_class=_quiet_shutdown_kernel_manager(),
            )
    except Exception as exc:  # noqa: BLE001 - any failure of one notebook must not stop the others
        run.error = describe_error(exc)
    run.duration_s = round(time.perf_counter() - start, 2)
    run.results = read_results(results_dir)
    return run


SETUP_SECTION = "(before the first section)"


def _section_heading(source: str) -> str | None:
    """The text of a markdown cell's first ``##`` heading (not ``#`` nor ``###``), if it has one."""
    for line in source.splitlines():
        if line.startswith("## "):
            return line[3:].strip()
    return None


def section_times(ipynb: Path) -> list[Section]:
    """Seconds per ``##`` section of an executed notebook, in order: papermill writes each cell's
    ``duration`` into its metadata; a cell counts towards the last ``##`` heading above it. Cells
    that never ran (after a failure) count nothing; an unreadable notebook gives no sections."""
    import nbformat

    try:
        nb = nbformat.read(str(ipynb), as_version=4)
    except (OSError, ValueError):
        return []
    totals: dict[str, float] = {}
    heading = SETUP_SECTION
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = _section_heading(cell.source) or heading
            continue
        duration = cell.metadata.get("papermill", {}).get("duration")
        if duration is not None:
            totals[heading] = totals.get(heading, 0.0) + float(duration)
    return [Section(name, seconds) for name, seconds in totals.items()]


def render_html(ipynb: Path, html: Path, code: CodeDisplay = "show") -> Path:
    """Render an executed notebook to a standalone HTML page (code shown, hidden or collapsible)."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    if code == "collapse":
        exporter = HTMLExporter(
            extra_loaders=[jinja2.DictLoader({"bbperf_collapse.html.j2": _COLLAPSE_TEMPLATE})],
            template_file="bbperf_collapse.html.j2",
        )
    else:
        exporter = HTMLExporter(
            template_name="lab", exclude_input=code == "hide", exclude_input_prompt=code == "hide"
        )
    body, _ = exporter.from_notebook_node(nbformat.read(str(ipynb), as_version=4))
    html.write_text(body, encoding="utf-8")
    return html


def extract_chart(ipynb: Path, dest: Path) -> Path | None:
    """The notebook's chart for the index page: the first PNG of a cell tagged ``report-chart``, else
    the first PNG output at all; written to ``dest`` (None when the notebook drew nothing)."""
    import base64

    import nbformat

    nb = nbformat.read(str(ipynb), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in cells if CHART_TAG in c.metadata.get("tags", [])]
    for cell in [*tagged, *cells]:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(base64.b64decode(png))
                return dest
    return None


def run_notebooks(
    notebooks: Sequence[Path],
    out_dir: Path,
    parameters: Mapping[str, Any],
    *,
    environment: Mapping[str, str] | None = None,
    code: CodeDisplay = "show",
    progress: bool = True,
    kernel_name: str = "python3",
    cell_timeout_s: float | None = 600,
    after_each: Callable[[NotebookRun], None] | None = None,
) -> list[NotebookRun]:
    """Execute and render each notebook in turn under a progress bar; failures are marked, not raised.

    ``after_each(run)`` is called once a notebook has run (the report records the dataset it left).
    """
    from tqdm.auto import tqdm

    check_parameter_names(parameters)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: list[NotebookRun] = []
    bar = tqdm(notebooks, desc="notebooks", unit="nb", disable=not progress)
    for source in bar:
        bar.set_postfix_str(source.stem)
        run = execute_notebook(
            source,
            out_dir,
            parameters,
            environment=environment,
            kernel_name=kernel_name,
            cell_timeout_s=cell_timeout_s,
        )
        if run.ipynb.exists():
            run.sections = section_times(run.ipynb)
            try:
                run.html = render_html(run.ipynb, run.ipynb.with_suffix(".html"), code)
            except Exception as exc:  # noqa: BLE001 - a rendering failure marks this notebook only
                run.error = run.error or f"rendering failed: {describe_error(exc)}"
            run.chart = extract_chart(run.ipynb, out_dir / "charts" / f"{source.stem}.png")
        if after_each is not None:
            after_each(run)
        runs.append(run)
        bar.set_postfix_str(f"{source.stem}: {'ok' if run.ok else 'FAILED'}")
    return runs
