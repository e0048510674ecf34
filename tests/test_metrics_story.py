"""Notebook 02's verdict line and CTE claims, computed from hand-made tables (no database)."""

from __future__ import annotations

import pandas as pd

from bbperf.metrics import ctestory


def _speed(after_ms: float, speedup: float, significant: bool = True) -> pd.DataFrame:
    rows = []
    for barber in ("busiest", "median"):
        rows.append({"barber": barber, "variant": "before", "server_exec_ms": after_ms * 3})
        rows.append({
            "barber": barber, "variant": "after", "server_exec_ms": after_ms, "speedup": speedup,
            "ci_low": speedup * 0.9, "ci_high": speedup * 1.1, "significant": significant,
        })  # fmt: skip
    return pd.DataFrame(rows)


def _ladder(best_ms: float) -> pd.DataFrame:
    rows = []
    for barber in ("busiest", "median"):
        for variant, ms in (("after", 40.0), ("denormalized", best_ms), ("barber_driven", 30.0),
                            ("rollup", 0.1), ("view", 0.05)):  # fmt: skip
            rows.append({"barber": barber, "variant": variant, "server_ms": ms,
                         "server_ci_low": ms * 0.95, "server_ci_high": ms * 1.05,
                         "client_ms": ms + 1})  # fmt: skip
    return pd.DataFrame(rows)


EQUIVALENT = pd.DataFrame(
    [{"variant": "after_equivalent", "differing_figures": 0},
     {"variant": "denormalized", "differing_figures": 0}]
)  # fmt: skip
DRIFT = [
    {"metric": "average_ticket", "barbers_drifting": 38, "explained": 38},
    {"metric": "visits_365d", "barbers_drifting": 12, "explained": 12},
]


def _claims(**kwargs: object) -> dict[str, dict[str, object]]:
    args = {"speed": _speed(14.0, 2.5), "summary": DRIFT, "checked": 40,
            "ladder": _ladder(1.6), "equivalence": EQUIVALENT, **kwargs}  # fmt: skip
    return {c["claim"]: c for c in ctestory.claims(**args)}  # type: ignore[arg-type]


def test_verdict_names_speedup_server_time_drift_and_the_cure() -> None:
    line = ctestory.verdict(_speed(14.0, 2.5), DRIFT, 40, _ladder(1.6), EQUIVALENT)
    assert line.startswith("One statement instead of four runs ×2.50 faster")
    assert "14.0 ms on the server, not 0.5 ms" in line
    assert "average_ticket for 38 and visits_365d for 12 of 40 barbers checked" in line
    assert "the cure: denormalized answers the median barber in 1.60 ms" in line
    assert "with before's figures" in line


def test_verdict_without_drift_says_the_figures_match() -> None:
    line = ctestory.verdict(_speed(0.4, 2.0), [], 40, _ladder(0.3), EQUIVALENT)
    assert "returns before's figures for all 40 barbers checked" in line


def test_half_ms_claim_refuted_partly_or_confirmed_by_the_numbers() -> None:
    assert _claims()["cte.half_ms"]["verdict"] == "refuted"
    assert _claims(ladder=_ladder(0.8))["cte.half_ms"]["verdict"] == "partly"
    assert _claims(speed=_speed(0.6, 2.0))["cte.half_ms"]["verdict"] == "confirmed"


def test_same_figures_and_round_trip_claims_follow_the_evidence() -> None:
    assert _claims()["cte.same_figures"]["verdict"] == "refuted"
    assert _claims(summary=[])["cte.same_figures"]["verdict"] == "confirmed"
    assert _claims()["cte.one_round_trip"]["verdict"] == "confirmed"
    assert _claims(speed=_speed(14.0, 1.01, False))["cte.one_round_trip"]["verdict"] == "partly"
