"""Machine-readable figures a notebook produces: ``Results.add`` them, ``save`` writes one JSON file.

``bbperf report`` collects these files into ``results.json`` with provenance; ``bbperf compare`` reads
them. A figure with ``samples`` (raw timings) can be tested for significance, not only compared.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Better = Literal["lower", "higher"] | None
RESULTS_DIR_ENV = "BBPERF_RESULTS_DIR"


@dataclass
class Figure:
    """One number with its unit, which direction is better, and optionally the raw samples."""

    name: str
    value: float | int | str | None
    unit: str = ""
    better: Better = None
    description: str = ""
    samples: list[float] | None = None
    headline: bool = False


@dataclass
class Results:
    """The figures of one notebook run, with the parameters it ran with."""

    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)

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
    ) -> Figure:
        """Record a figure (a later ``add`` of the same name replaces it). Returns it."""
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        fig = Figure(
            name,
            value,
            unit,
            better,
            description,
            [float(s) for s in samples] if samples is not None else None,
            headline,
        )
        self.figures[name] = fig
        return fig

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "parameters": self.parameters,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
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
