"""The ladder's verdicts, computed from speed tables (pure: no server)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bbperf.explain.timingstats import median_ci
from bbperf.metrics.ladder_timing import (
    SERVER_GOAL_MS,
    best_non_cached,
    ladder_chart,
    verdicts,
)


def _table(server: dict[str, float], client_ms: float = 1.5) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "barber": b,
                "variant": v,
                "server_ms": ms * (2 if b == "busiest" else 1),
                "client_ms": client_ms,
            }
            for b in ("busiest", "median")
            for v, ms in server.items()
        ]  # fmt: skip
    )


def test_best_non_cached_ignores_the_cached_variants() -> None:
    table = _table({"after_equivalent": 5.0, "barber_driven": 3.0, "denormalized": 0.4,
                    "prepared": 4.0, "rollup": 0.1, "view": 0.01})  # fmt: skip
    assert best_non_cached(table) == "denormalized"


def test_verdicts_say_by_how_much_a_target_is_missed() -> None:
    big = _table({"denormalized": 0.6, "barber_driven": 3.0, "rollup": 0.15})
    small = _table({"denormalized": 0.3, "barber_driven": 1.0, "rollup": 0.1})
    lines = verdicts(big, small, 1.0, 0.1)
    assert lines[0].endswith(": denormalized")
    assert "denormalized server, busiest barber: MISSED by 0.200 ms (1.200 ms, x1.20" in lines[1]
    assert lines[2] == (
        "denormalized server, busiest barber, issue 23 goal: MISSED by 0.700 ms "
        "(1.200 ms, x2.40 the 0.5 ms target)"
    )
    assert lines[3] == "denormalized end to end, busiest barber: HOLDS — 1.500 ms <= 2 ms"
    assert "SF 1 / SF 0.1 server, busiest barber: MISSED by 0.500 x (2.000 x" in lines[4]
    assert "rollup server, busiest barber: MISSED by 0.100 ms" in lines[5]
    assert lines[6] == "denormalized server, median barber: HOLDS — 0.600 ms <= 1 ms"
    assert lines[7] == (
        "denormalized server, median barber, issue 23 goal: MISSED by 0.100 ms "
        "(0.600 ms, x1.20 the 0.5 ms target)"
    )
    assert lines[10] == "rollup server, median barber: HOLDS — 0.150 ms <= 0.2 ms"


def test_the_goal_verdict_holds_at_the_goal() -> None:
    lines = verdicts(_table({"denormalized": 0.25, "rollup": 0.05}), None, 1.0, None)
    assert "denormalized server, median barber, issue 23 goal: HOLDS — 0.250 ms <= 0.5 ms" in lines
    assert "denormalized server, busiest barber, issue 23 goal: HOLDS — 0.500 ms <= 0.5 ms" in lines


def test_median_ci_brackets_the_median() -> None:
    low, high = median_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    assert 1.0 <= low <= 4.0 <= high <= 7.0
    assert median_ci([2.0] * 5) == (2.0, 2.0)


def _chart_table() -> pd.DataFrame:
    return _table({"denormalized": 1.6, "rollup": 0.07}).assign(
        scale=1.0, server_ci_low=lambda d: d["server_ms"], server_ci_high=lambda d: d["server_ms"]
    )


def _target_lines(ax: Any, label: str) -> list[Any]:
    return [line for line in ax.get_lines() if line.get_label() == label]


def test_ladder_chart_draws_the_goal_unless_given_another_target() -> None:
    import matplotlib

    matplotlib.use("Agg")
    (goal,) = _target_lines(ladder_chart(_chart_table(), "median"), "0.5 ms target")
    assert list(goal.get_xdata()) == [SERVER_GOAL_MS, SERVER_GOAL_MS] == [0.5, 0.5]
    (other,) = _target_lines(ladder_chart(_chart_table(), "median", target_ms=1.0), "1 ms target")
    assert list(other.get_xdata()) == [1.0, 1.0]
