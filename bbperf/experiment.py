"""One interface for what a notebook concludes, one registry the report reads it from, and the few
helpers every notebook's story shares (ratio and CI wording, a verdict word from a CI).

A feature's story module (``bbperf.indexes.indexstory``, ``bbperf.pool.poolstory``, …) computes its
notebook's verdict line and claims from the notebook's own objects, and registers an ``Experiment``
here: the notebook's id (its file stem), a title and the ids of the claims (bbperf/report/claims.toml)
it checks. The report reads each notebook's saved results (``bbperf.results.Results.to_dict``)
through ``EXPERIMENTS.get(notebook)``: its verdict line, its claims, its headline figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bbperf.humanize import format_value

Saved = Mapping[str, Any]  # one saved results document of a notebook (``Results.to_dict()``)


@dataclass(frozen=True)
class Experiment:
    """One notebook's experiment as the report sees it.

    ``notebook`` is the notebook's file stem (``07_partitioning``), ``claim_ids`` the claims of
    bbperf/report/claims.toml its story checks. The methods read the notebook's saved results.
    """

    notebook: str
    title: str
    claim_ids: tuple[str, ...] = ()

    def verdict(self, saved: Sequence[Saved]) -> str | None:
        """The notebook's verdict line: each saved document's verdict, in order, joined."""
        return " ".join(s["verdict"] for s in saved if s.get("verdict")) or None

    def claims(self, saved: Sequence[Saved]) -> list[dict[str, Any]]:
        """The claims the notebook checked (``bbperf.results.Claim`` as dicts), in saved order."""
        return [dict(claim) for s in saved for claim in s.get("claims") or []]

    def headline(self, figure: Saved) -> bool:
        """Whether one of the notebook's figures is a headline: marked so, and not a side effect of
        the run itself (``Figure.side_effect``)."""
        return bool(figure.get("headline")) and not figure.get("side_effect")


class Experiments:
    """The registry: each feature registers its notebook's ``Experiment``; the report looks it up."""

    def __init__(self) -> None:
        self._by_notebook: dict[str, Experiment] = {}

    def register(self, experiment: Experiment) -> Experiment:
        """Add ``experiment``; registering the same one again is a no-op, another under a taken
        notebook id or a claim id another experiment owns is a ValueError. Returns it."""
        known = self._by_notebook.get(experiment.notebook)
        if known is not None and known != experiment:
            raise ValueError(f"notebook {experiment.notebook} is registered twice")
        for other in self._by_notebook.values():
            taken = set(other.claim_ids) & set(experiment.claim_ids)
            if other.notebook != experiment.notebook and taken:
                raise ValueError(
                    f"claim(s) {', '.join(sorted(taken))} already belong to {other.notebook}"
                )
        self._by_notebook[experiment.notebook] = experiment
        return experiment

    def get(self, notebook: str) -> Experiment:
        """The registered experiment of ``notebook``, else a plain one (same reading of its results)."""
        return self._by_notebook.get(notebook) or Experiment(notebook, notebook)

    def owner(self, claim_id: str) -> Experiment | None:
        """The experiment whose story checks ``claim_id``, or None."""
        return next((e for e in self if claim_id in e.claim_ids), None)

    def __contains__(self, notebook: object) -> bool:
        return notebook in self._by_notebook

    def __iter__(self) -> Iterator[Experiment]:
        return iter(sorted(self._by_notebook.values(), key=lambda e: e.notebook))

    def __len__(self) -> int:
        return len(self._by_notebook)


EXPERIMENTS = Experiments()


def register(notebook: str, title: str, claim_ids: Sequence[str] = ()) -> Experiment:
    """Register the experiment of ``notebook`` in ``EXPERIMENTS`` (what a story module does once)."""
    return EXPERIMENTS.register(Experiment(notebook, title, tuple(claim_ids)))


def times(value: float | None) -> str:
    """A ratio as ×1.23; "n/a" when it is missing or not finite."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return format_value(value, "x")


def times_ci(point: float | None, low: float | None, high: float | None) -> str:
    """ "×1.23 (95 % CI ×1.10 – ×1.40)"."""
    return f"{times(point)} (95 % CI {times(low)} – {times(high)})"


def ci_verdict(low: float, high: float) -> str:
    """A speedup's claim verdict from its 95 % CI: confirmed above 1, refuted below, else partly."""
    return "confirmed" if low > 1 else "refuted" if high < 1 else "partly"
