"""Machine-readable figures a notebook produces: ``Results.add`` them, ``save`` writes one JSON file.

``bbperf report`` collects these files into ``results.json`` with provenance and builds its index page
from them: each notebook's ``verdict`` line, the seed ``claims`` it confirms or refutes, and its headline
figures (value, unit, 95 % CI, significance). ``bbperf compare`` reads the same files. A figure with
``samples`` (raw timings) can be tested for significance, not only compared. Values keep full precision
here; rounding for people happens when a page is rendered. The contract is documented in docs/reports.md.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any, Literal, Protocol

from bbperf.humanize import format_ci, format_value

Better = Literal["lower", "higher"] | None
ClaimVerdict = Literal["confirmed", "refuted", "partly", "not measured"]
CLAIM_VERDICTS: tuple[str, ...] = ("confirmed", "refuted", "partly", "not measured")
RESULTS_DIR_ENV = "BBPERF_RESULTS_DIR"


class ComparisonLike(Protocol):
    """What ``add_comparison`` reads (``bbperf.explain.timingstats.Comparison`` has all of it)."""

    speedup: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass
class Figure:
    """One number with its unit, which direction is better, and optionally its samples and CI.

    ``ci_low``/``ci_high`` bound the value at 95 % confidence, ``p_value`` and ``significant`` come from
    the test that compared two states, ``n`` is the number of samples behind it. ``side_effect`` marks a
    figure the run itself causes (e.g. "unused indexes" right after building them): the index page leaves
    it out of the headlines.
    """

    name: str
    value: float | int | str | None
    unit: str = ""
    better: Better = None
    description: str = ""
    samples: list[float] | None = None
    headline: bool = False
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    significant: bool | None = None
    n: int | None = None
    side_effect: bool = False


@dataclass
class Claim:
    """A sentence of the seed's summary (``claim`` is its id in bbperf/report/claims.toml), checked."""

    claim: str
    measured: str
    verdict: ClaimVerdict
    figure: str | None = None


@dataclass(repr=False)
class Results:
    """The figures of one notebook run, with the parameters it ran with, its verdict and its claims."""

    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    verdict: str | None = None
    claims: list[Claim] = field(default_factory=list)
    dataset: dict[str, Any] | None = None

    def add(
        self,
        name: str,
        value: float | int | str | None,
        unit: str = "",
        *,
        better: Better = None,
        description: str = "",
        samples: list[float] | None = None,
        headline: bool = False,
        ci_low: float | None = None,
        ci_high: float | None = None,
        p_value: float | None = None,
        significant: bool | None = None,
        n: int | None = None,
        side_effect: bool = False,
    ) -> Figure:
        """Record a figure (a later ``add`` of the same name replaces it). Returns it.

        ``n`` defaults to the number of ``samples``. Non-finite numbers are stored as None.
        """
        item = getattr(value, "item", None)
        if callable(item) and not isinstance(value, str):  # numpy scalars
            value = item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        kept = [float(s) for s in samples] if samples is not None else None
        fig = Figure(
            name=name,
            value=value,
            unit=unit,
            better=better,
            description=description,
            samples=kept,
            headline=headline,
            ci_low=_finite(ci_low),
            ci_high=_finite(ci_high),
            p_value=_finite(p_value),
            significant=None if significant is None else bool(significant),
            n=n if n is not None else (len(kept) if kept is not None else None),
            side_effect=side_effect,
        )
        self.figures[name] = fig
        return fig

    def add_comparison(
        self,
        name: str,
        comparison: ComparisonLike,
        *,
        n: int | None = None,
        description: str = "",
        headline: bool = False,
    ) -> Figure:
        """Record a speedup (×, higher is better) with its CI, p-value and significance.

        ``comparison`` is a ``bbperf.explain.timingstats.Comparison`` (or anything with the same fields);
        ``n`` is the number of samples on each side.
        """
        return self.add(
            name,
            comparison.speedup,
            "x",
            better="higher",
            description=description,
            headline=headline,
            ci_low=comparison.ci_low,
            ci_high=comparison.ci_high,
            p_value=comparison.p_value,
            significant=comparison.significant,
            n=n,
        )

    def set_verdict(self, text: str) -> str:
        """The notebook's one-line verdict for the report's index page, computed from its figures."""
        self.verdict = " ".join(text.split())
        return self.verdict

    def claim(
        self, claim: str, measured: str, verdict: ClaimVerdict, *, figure: str | None = None
    ) -> Claim:
        """Confirm or refute one of the seed's claims (ids in bbperf/report/claims.toml)."""
        if verdict not in CLAIM_VERDICTS:
            raise ValueError(f"claim verdict {verdict!r} is not one of {', '.join(CLAIM_VERDICTS)}")
        entry = Claim(claim, measured, verdict, figure)
        self.claims = [c for c in self.claims if c.claim != claim] + [entry]
        return entry

    def use_dataset(self, dataset: Any) -> None:
        """Record the dataset the figures came from (a ``DatasetInfo`` or its dict)."""
        to_dict = getattr(dataset, "to_dict", None)
        self.dataset = dict(to_dict() if callable(to_dict) else dataset)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "parameters": self.parameters,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "verdict": self.verdict,
            "claims": [asdict(c) for c in self.claims],
            "dataset": self.dataset,
            "figures": {k: asdict(v) for k, v in self.figures.items()},
        }

    def save(self, directory: str | Path | None = None) -> Path | None:
        """Write ``<directory>/<notebook>.json``; directory defaults to ``$BBPERF_RESULTS_DIR``.

        Returns None (and writes nothing) when neither is set: an interactive run leaves no files.
        """
        target = directory or os.environ.get(RESULTS_DIR_ENV)
        if not target:
            return None
        path = Path(target) / f"{self.notebook}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return path

    def __repr__(self) -> str:
        lines = [f"{self.notebook}: {len(self.figures)} figures"]
        if self.verdict:
            lines.append(f"verdict: {self.verdict}")
        for f in self.figures.values():
            ci = format_ci(f.ci_low, f.ci_high, f.unit)
            lines.append(
                f"  {f.name}: {format_value(f.value, f.unit)}{f' (95 % CI {ci})' if ci else ''}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{escape(f.name)}</td><td>{escape(format_value(f.value, f.unit))}</td>"
            f"<td>{escape(format_ci(f.ci_low, f.ci_high, f.unit))}</td>"
            f"<td>{escape(f.description)}</td></tr>"
            for f in self.figures.values()
        )
        verdict = f"<p><b>Verdict:</b> {escape(self.verdict)}</p>" if self.verdict else ""
        return (
            f"{verdict}<table><thead><tr><th>figure</th><th>value</th><th>95 % CI</th>"
            f"<th>what</th></tr></thead><tbody>{rows}</tbody></table>"
        )
