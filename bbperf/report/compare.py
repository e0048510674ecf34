"""Regression gate: compare two reports' results.json figure by figure, with significance when possible."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from bbperf.errors import ConfigError
from bbperf.explain.timingstats import compare
from bbperf.files import loads_json, read_input

if TYPE_CHECKING:
    import pandas as pd

Verdict = Literal["regression", "noise", "improvement", "unchanged", "changed", "new", "removed"]
_MIN_SAMPLES = 3


@dataclass(frozen=True)
class FigureChange:
    """One figure in both (or one) of two reports, and what its change means."""

    notebook: str
    figure: str
    unit: str
    better: str | None
    old: Any
    new: Any
    change_pct: float | None
    significant: bool | None
    method: str
    verdict: Verdict


@dataclass
class ReportComparison:
    """Every figure's change, the provenance warnings, and the threshold used."""

    changes: list[FigureChange]
    warnings: list[str]
    threshold: float

    @property
    def regressions(self) -> list[FigureChange]:
        return [c for c in self.changes if c.verdict == "regression"]

    def rows(self) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.changes]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows())


def parse_threshold(value: str | float) -> float:
    """``"10%"`` → 0.10, ``"0.1"`` → 0.10, ``"10"`` → 0.10 (a bare number above 1 is a percentage)."""
    text = str(value).strip()
    try:
        number = float(text.removesuffix("%"))
    except ValueError:
        raise ConfigError(f"threshold {value!r} is not a number: use e.g. 10% or 0.1") from None
    if text.endswith("%") or number > 1:
        number /= 100
    if not math.isfinite(number) or number < 0:
        raise ConfigError(
            f"threshold {value!r} must be a finite, non-negative fraction or percentage"
        )
    return number


def load_results(path: str | Path) -> dict[str, Any]:
    """A report's results.json (or the report directory holding it)."""
    file = Path(path)
    if file.is_dir():
        file = file / "results.json"
    if not file.exists():
        raise ConfigError(f"no results file at {file}: pass a report's results.json")
    text = read_input(file, limit_bytes=MAX_RESULTS_BYTES, kind="a results.json")
    document = loads_json(text, kind=str(file))
    figures = document.get("figures") if isinstance(document, dict) else None
    if not isinstance(figures, list) or not all(isinstance(f, dict) for f in figures):
        raise ConfigError(
            f"{file} is not a bbperf results.json ('figures' is not a list of figures)"
        )
    for figure in figures:
        value = figure.get("value")
        if value is not None and not _is_number(value):
            raise ConfigError(
                f"{file}: figure {figure.get('name')!r} has value {value!r}, not a number"
            )
    return document


MAX_RESULTS_BYTES = 50_000_000


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def relative_change(old: float, new: float) -> float:
    """(new - old) / |old|; ±inf when old is 0 and new is not."""
    if old == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return (new - old) / abs(old)


def significance(old_samples: Sequence[float], new_samples: Sequence[float]) -> tuple[bool, str]:
    """Whether the samples differ significantly (bbperf.explain.timingstats.compare), and how it was decided."""
    result = compare(list(old_samples), list(new_samples))
    p = getattr(result, "p_value", None)
    detail = f"stats.compare p={p:.3g}" if isinstance(p, float) else "stats.compare"
    return bool(result.significant), detail


def figure_change(
    notebook: str, old: dict[str, Any] | None, new: dict[str, Any] | None, threshold: float
) -> FigureChange:
    """Classify one figure: regression only when worse beyond ``threshold`` and significant."""
    ref = new or old or {}
    base = {
        "notebook": notebook,
        "figure": ref.get("name", ""),
        "unit": ref.get("unit") or "",
        "better": ref.get("better"),
        "old": (old or {}).get("value"),
        "new": (new or {}).get("value"),
    }
    if old is None or new is None:
        return FigureChange(
            **base,
            change_pct=None,
            significant=None,
            method="",
            verdict="new" if old is None else "removed",
        )
    a, b = old.get("value"), new.get("value")
    if not (_is_number(a) and _is_number(b)):
        return FigureChange(
            **base,
            change_pct=None,
            significant=None,
            method="equality",
            verdict="unchanged" if a == b else "changed",
        )
    rel = relative_change(float(a), float(b))
    better = new.get("better") or old.get("better")
    beyond = abs(rel) > threshold
    if better not in ("lower", "higher"):
        return FigureChange(
            **base,
            change_pct=rel * 100,
            significant=None,
            method="threshold",
            verdict="changed" if beyond else "unchanged",
        )
    worse = rel > 0 if better == "lower" else rel < 0
    old_s, new_s = old.get("samples") or [], new.get("samples") or []
    significant: bool | None = None
    method = "threshold only (no samples)"
    if len(old_s) >= _MIN_SAMPLES and len(new_s) >= _MIN_SAMPLES:
        significant, method = significance(old_s, new_s)
    verdict: Verdict
    if not beyond:
        verdict = "unchanged"
    elif significant is False:
        verdict = "noise"
    else:
        verdict = "regression" if worse else "improvement"
    return FigureChange(
        **base, change_pct=rel * 100, significant=significant, method=method, verdict=verdict
    )


def _figures_by_key(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f.get("notebook", ""), f.get("name", "")): f for f in document.get("figures", [])}


def _get(document: dict[str, Any], *path: str) -> Any:
    node: Any = document.get("provenance") or {}
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


_PROVENANCE_CHECKS = (
    ("PostgreSQL version", ("postgresql", "server_version_num")),
    ("machine", ("machine", "node")),
    ("platform", ("machine", "platform")),
    ("CPU count", ("machine", "cpu_count")),
    ("memory", ("machine", "memory_bytes")),
    ("dataset profile", ("dataset", "profile")),
    ("dataset scale", ("dataset", "scale")),
    ("dataset seed", ("dataset", "seed")),
    ("report parameters", ("parameters",)),
)


def provenance_warnings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per provenance item that differs between two reports (server, machine, data)."""
    warnings = []
    for label, path in _PROVENANCE_CHECKS:
        a, b = _get(old, *path), _get(new, *path)
        if a != b:
            warnings.append(
                f"{label} differs: {a} (old) vs {b} (new); figures may not be comparable"
            )
    settings_a = _get(old, "postgresql", "settings") or {}
    settings_b = _get(new, "postgresql", "settings") or {}
    for name in sorted(set(settings_a) | set(settings_b)):
        if settings_a.get(name) != settings_b.get(name):
            warnings.append(
                f"server setting {name} differs: {settings_a.get(name)} (old) vs "
                f"{settings_b.get(name)} (new)"
            )
    for name in sorted(set(_run_parameters(old)) & set(_run_parameters(new))):
        a, b = _run_parameters(old)[name], _run_parameters(new)[name]
        if a != b:
            warnings.append(f"{name} ran with different parameters: {a} (old) vs {b} (new)")
    return warnings


def _run_parameters(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each notebook's recorded parameters (what its Results were saved with)."""
    return {
        name: {k: v for r in nb.get("results", []) for k, v in (r.get("parameters") or {}).items()}
        for name, nb in (document.get("notebooks") or {}).items()
    }


def compare_results(
    old: dict[str, Any] | str | Path, new: dict[str, Any] | str | Path, threshold: float = 0.10
) -> ReportComparison:
    """Compare two results.json documents (or paths); ``threshold`` is a fraction (0.10 = 10 %).

    A figure regresses when it moved in its worse direction by more than ``threshold`` and the move is
    significant (``bbperf.explain.timingstats.compare`` on its samples). Figures without samples in both
    reports are judged on the threshold alone; their ``method`` says so.
    """
    old_doc = old if isinstance(old, dict) else load_results(old)
    new_doc = new if isinstance(new, dict) else load_results(new)
    old_figs, new_figs = _figures_by_key(old_doc), _figures_by_key(new_doc)
    keys = list(old_figs) + [k for k in new_figs if k not in old_figs]
    changes = [figure_change(k[0], old_figs.get(k), new_figs.get(k), threshold) for k in keys]
    warnings = provenance_warnings(old_doc, new_doc)
    if any(
        c.method.startswith("threshold only") and c.verdict in ("regression", "improvement")
        for c in changes
    ):
        warnings.append("some figures have no samples: their verdict rests on the threshold alone")
    return ReportComparison(changes, warnings, threshold)
