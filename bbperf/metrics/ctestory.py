"""What notebook 02 tells the report: its verdict line and the seed summary's CTE claims, computed
from the speed table (one index state), the drift summary and the ladder at the notebook's scale
(pure: no database)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bbperf.experiment import register
from bbperf.humanize import format_ci, format_value
from bbperf.metrics.ladder_timing import best_non_cached

# The original summary: "the metrics query takes about 0.5 ms"; "about" read as within ×2.
CLAIMED_MS = 0.5
RAW_METRICS = ("average_ticket", "visits_365d")

EXPERIMENT = register(
    "02_cte_rewrite", "CTE rewrite", ["cte.one_round_trip", "cte.half_ms", "cte.same_figures"]
)


def _row(table: pd.DataFrame, barber: str, variant: str) -> pd.Series | None:
    rows = table[(table["barber"] == barber) & (table["variant"] == variant)]
    return None if rows.empty else rows.iloc[0]


def _drifting(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in summary if d["metric"] in RAW_METRICS and d["barbers_drifting"]]


def verdict(
    speed: pd.DataFrame,
    summary: list[dict[str, Any]],
    checked: int,
    ladder: pd.DataFrame,
    equivalence: pd.DataFrame,
) -> str:
    """One line: after's end-to-end speedup and server time against the claim, what it changed,
    and the best variant that keeps before's figures (the cure), with their CIs."""
    parts = []
    busiest = _row(speed, "busiest", "after")
    if busiest is not None:
        parts.append(
            f"one statement instead of four runs {format_value(busiest['speedup'], 'x')} faster end "
            f"to end for the busiest barber (95 % CI "
            f"{format_ci(busiest['ci_low'], busiest['ci_high'], 'x')}) but takes "
            f"{format_value(busiest['server_exec_ms'], 'ms')} on the server, not "
            f"{CLAIMED_MS:g} ms"
        )
    drifting = _drifting(summary)
    if drifting:
        parts.append(
            "it changes "
            + " and ".join(f"{d['metric']} for {d['barbers_drifting']}" for d in drifting)
            + f" of {checked} barbers checked"
        )
    else:
        parts.append(f"it returns before's figures for all {checked} barbers checked")
    best = best_non_cached(ladder)
    cure = _row(ladder, "median", best)
    same = equivalence[equivalence["variant"] == best]
    keeps = (
        "before's figures" if not same.empty and int(same.iloc[0]["differing_figures"]) == 0 else
        "figures that differ from before's"
    )  # fmt: skip
    if cure is not None:
        parts.append(
            f"the cure: {best} answers the median barber in {format_value(cure['server_ms'], 'ms')} "
            f"(95 % CI {format_ci(cure['server_ci_low'], cure['server_ci_high'], 'ms')}) with {keeps}"
        )
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def claims(
    speed: pd.DataFrame,
    summary: list[dict[str, Any]],
    checked: int,
    ladder: pd.DataFrame,
    equivalence: pd.DataFrame,
) -> list[dict[str, Any]]:
    """The seed summary's CTE claims (ids in bbperf/report/claims.toml), checked on this run."""
    rows: list[dict[str, Any]] = []
    busiest = _row(speed, "busiest", "after")
    median = _row(speed, "median", "after")
    if busiest is not None:
        faster = bool(busiest["significant"]) and busiest["speedup"] > 1
        rows.append({
            "claim": "cte.one_round_trip",
            "measured": f"1 statement instead of 4; end to end {format_value(busiest['speedup'], 'x')} "
            f"(95 % CI {format_ci(busiest['ci_low'], busiest['ci_high'], 'x')}) for the busiest barber",
            "verdict": "confirmed" if faster else "partly",
            "figure": "after_speedup_busiest",
        })  # fmt: skip
    if busiest is not None and median is not None:
        worst = max(busiest["server_exec_ms"], median["server_exec_ms"])
        best = best_non_cached(ladder)
        cure = _row(ladder, "median", best)
        within = worst <= 2 * CLAIMED_MS
        rows.append({
            "claim": "cte.half_ms",
            "measured": f"after: {format_value(median['server_exec_ms'], 'ms')} (median barber), "
            f"{format_value(busiest['server_exec_ms'], 'ms')} (busiest) on the server"
            + (f"; {best}: {format_value(cure['server_ms'], 'ms')}" if cure is not None else ""),
            "verdict": "confirmed" if within else (
                "partly" if cure is not None and cure["server_ms"] <= 2 * CLAIMED_MS else "refuted"
            ),
            "figure": "after_server_ms_median",
        })  # fmt: skip
    drifting = _drifting(summary)
    equivalent = equivalence[equivalence["variant"] == "after_equivalent"]
    rows.append({
        "claim": "cte.same_figures",
        "measured": (
            "; ".join(f"{d['metric']} differs for {d['barbers_drifting']} of {checked} barbers"
                      for d in drifting)
            or f"the same figures for all {checked} barbers checked"
        ) + (
            f"; after_equivalent differs in {int(equivalent.iloc[0]['differing_figures'])} figures"
            if not equivalent.empty else ""
        ),
        "verdict": "refuted" if drifting else "confirmed",
        "figure": "drifting_raw_metrics",
    })  # fmt: skip
    return rows
