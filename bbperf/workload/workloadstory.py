"""What notebook 09 tells the report: the verdict line and the road map's index-usage claim, from
the workload advice and its verification (pure: no database)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bbperf.experiment import ci_verdict, register, times, times_ci
from bbperf.explain.timingstats import median_speedup_across

HELPED_MIN_PREDICTED = 1.1  # a statement the advice is predicted to speed up by more than 10 %

EXPERIMENT = register("09_workload", "Workload advice", ["roadmap.index_usage_analysis"])


@dataclass(frozen=True)
class Measured:
    """The verified statements the advice was predicted to help: their median measured p50 speedup
    with a bootstrap 95 % CI, how many there were and how many were significantly faster."""

    speedup: float
    ci_low: float
    ci_high: float
    statements: int
    significant: int
    predicted: float


def measured_speedup(
    table: pd.DataFrame, samples: Mapping[str, tuple[Sequence[float], Sequence[float]]]
) -> Measured | None:
    """From ``WorkloadVerification.table()`` and each statement's (before, after) client times in
    ms; None when no statement was predicted to gain more than 10 %."""
    if not len(table):
        return None
    helped = table[table["predicted_speedup"].fillna(0) > HELPED_MIN_PREDICTED]
    pairs = [samples[s] for s in helped["statement"] if s in samples]
    pairs = [p for p in pairs if len(p[0]) >= 2 and len(p[1]) >= 2]
    if not pairs:
        return None
    point, low, high = median_speedup_across(pairs)
    return Measured(
        point,
        low,
        high,
        len(pairs),
        int((helped["significant"] & (helped["measured_speedup"] > 1)).sum()),
        float(helped["predicted_speedup"].median()),
    )


def verdict(
    statements: int,
    replayed: int,
    chosen: int,
    saved_pct: float | None,
    measured: Measured | None,
    skipped: str | None = None,
    verified: bool = False,
) -> str:
    """Notebook 09's line: how many indexes the advice keeps for the top ``statements`` (of which
    ``replayed`` had values to replay), the planner cost they save, and the measured speedup (95 %
    CI) beside the predicted one; "skipped: …" when no advice could be costed (``saved_pct`` None).
    ``verified``: the advice was built and replayed, whether or not it gave a measurement."""
    top = f"top {statements} statements" + (
        f" ({replayed} replayed)" if replayed < statements else ""
    )
    if saved_pct is None:
        return f"skipped: {skipped or 'the advice could not be costed'}."
    if not chosen:
        return f"No index saves enough planner cost across the workload's {top}: the advice keeps none."
    text = (
        f"The advice keeps {chosen} index{'es' if chosen > 1 else ''} for the workload's {top}, "
        f"predicted to save {saved_pct:.0f} % of its planner cost"
    )
    if measured is None and verified:
        return text + (
            "; built and replayed, but no statement predicted to gain ran twice both before and "
            "after: nothing to measure (a longer duration_s would)."
        )
    if measured is None:
        return text + "; not verified (verification builds indexes: embedded server only)."
    return text + (
        f"; built and replayed, the {measured.statements} statements predicted to gain ran "
        f"{times(measured.speedup)} faster at p50 (95 % CI {times(measured.ci_low)} – "
        f"{times(measured.ci_high)}; predicted {times(measured.predicted)}), {measured.significant} "
        "significantly."
    )


def claims(chosen: int, saved_pct: float | None, measured: Measured | None) -> list[dict[str, Any]]:
    """The road map's "index-usage analysis" claim: did the workload's advice find indexes that
    paid off when built? Not measured when the advice was skipped."""
    if saved_pct is None:
        return []
    if measured is not None:
        verdict_word = ci_verdict(measured.ci_low, measured.ci_high)
        measured_text = (
            f"{chosen} indexes save {saved_pct:.0f} % of planner cost; measured "
            f"{times_ci(measured.speedup, measured.ci_low, measured.ci_high)} on the "
            f"{measured.statements} statements predicted to gain"
        )
    elif chosen:
        verdict_word = "partly"
        measured_text = (
            f"{chosen} indexes save {saved_pct:.0f} % of planner cost (predicted; not built here)"
        )
    else:  # nothing to build: the run says nothing about whether advice pays off
        verdict_word = "not measured"
        measured_text = (
            "the advice kept no index (none saved enough planner cost on the statements replayed)"
        )
    return [
        {
            "claim": "roadmap.index_usage_analysis",
            "measured": measured_text,
            "verdict": verdict_word,
            "figure": "advised_cost_saved",
        }
    ]
