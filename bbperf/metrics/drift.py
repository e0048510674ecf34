"""Drift: every metric whose value differs between two variants for a barber, with the reason.

The CTE rewrite changed two raw meanings; every derived figure that differs must follow from one of
them. A difference is *explained* only when the evidence matches: the after average equals the
30-day average, and the extra yearly visits equal the completed appointments without a client.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from bbperf.metrics.model import DEFAULT_TARGET, SixFigureMetrics, derive
from bbperf.metrics.queries import check_variant, fetch_raw, resolve_as_of, window_params
from bbperf.progress import bar

RAW_REASONS = {
    "average_ticket": "after averages completed payments of the last 30 days only; before "
    "averaged every completed payment up to as_of",
    "visits_365d": "after counts completed appointments without a client (client_id IS NULL); "
    "before joined appointments to clients, so counted only visits with a client",
}

# Which raw figures each derived figure is computed from (see model.derive).
DERIVED_INPUTS: dict[str, frozenset[str]] = {
    "annual_projection": frozenset({"revenue_30d"}),
    "booked_hours": frozenset({"booked_minutes_30d"}),
    "utilization_pct": frozenset({"booked_minutes_30d"}),
    "average_visits_per_client": frozenset({"visits_365d", "clients_365d"}),
    "monthly_target": frozenset(),
    "revenue_gap": frozenset({"revenue_30d"}),
    "clients_needed_per_month": frozenset({"average_ticket"}),
    "current_clients_per_month": frozenset({"revenue_30d", "average_ticket"}),
    "additional_clients_needed": frozenset({"revenue_30d", "average_ticket"}),
    "recommended_price_increase_pct": frozenset({"revenue_30d"}),
    "recommended_average_ticket": frozenset({"revenue_30d", "average_ticket"}),
    "daily_revenue_target": frozenset(),
    "daily_clients_target": frozenset({"average_ticket"}),
    "on_track": frozenset({"revenue_30d"}),
    "action_items": frozenset(
        {"revenue_30d", "average_ticket", "booked_minutes_30d", "visits_365d", "clients_365d"}
    ),
}

CLIENTLESS_VISITS_SQL = """
SELECT COUNT(*) FROM appointments
WHERE user_id = :user_id AND status = 'completed' AND client_id IS NULL
  AND start_time >= :since_365d AND start_time < :as_of"""

_TOLERANCE = Decimal("1e-9")


@dataclass(frozen=True)
class Drift:
    """One metric that differs: both values, why, and whether the evidence confirms the why."""

    user_id: int
    metric: str
    before: Any
    after: Any
    reason: str
    explained: bool
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _explain_raw(
    metric: str, before: SixFigureMetrics, after: SixFigureMetrics, clientless_visits: int
) -> tuple[str, bool, str]:
    a = after.raw
    if metric == "average_ticket":
        thirty_day = a.revenue_30d / a.payments_30d if a.payments_30d else Decimal(0)
        evidence = f"30-day average {thirty_day:.2f} over {a.payments_30d} payments"
        return RAW_REASONS[metric], abs(a.average_ticket - thirty_day) < _TOLERANCE, evidence
    if metric == "visits_365d":
        extra = a.visits_365d - before.raw.visits_365d
        evidence = (
            f"{extra} extra visits; {clientless_visits} completed appointments without a client"
        )
        return RAW_REASONS[metric], extra == clientless_visits, evidence
    return "unexplained: before and after should agree on this figure", False, ""


def compare_metrics(
    before: SixFigureMetrics, after: SixFigureMetrics, clientless_visits: int
) -> list[Drift]:
    """Pure: the differing raw then derived figures of one barber, each with reason and verdict.

    ``clientless_visits`` is the number of completed appointments without a client in the yearly
    window — the evidence that explains a visits difference.
    """
    user = before.raw.user_id
    out: list[Drift] = []
    drifted: set[str] = set()
    b_raw, a_raw = before.raw.values(), after.raw.values()
    for metric, b_value in b_raw.items():
        if b_value != a_raw[metric]:
            reason, explained, evidence = _explain_raw(metric, before, after, clientless_visits)
            if explained:
                drifted.add(metric)
            out.append(Drift(user, metric, b_value, a_raw[metric], reason, explained, evidence))
    b_derived, a_derived = before.derived(), after.derived()
    for metric, b_value in b_derived.items():
        if b_value == a_derived[metric]:
            continue
        causes = sorted(DERIVED_INPUTS[metric] & drifted)
        reason = (
            f"follows from {', '.join(causes)}"
            if causes
            else "unexplained: none of its inputs drifted"
        )
        out.append(Drift(user, metric, b_value, a_derived[metric], reason, bool(causes)))
    return out


def drift(
    engine: Engine,
    user_id: int,
    as_of: str | date | datetime | None = None,
    target_annual: Decimal | int | str = DEFAULT_TARGET,
    baseline: str = "before",
    candidate: str = "after",
) -> list[Drift]:
    """Every metric that differs between ``baseline`` and ``candidate`` for one barber (empty when
    they agree); ``as_of`` defaults to the dataset's."""
    check_variant(baseline)
    check_variant(candidate)
    when = resolve_as_of(engine, as_of)
    before = derive(fetch_raw(engine, user_id, when, baseline), target_annual)
    after = derive(fetch_raw(engine, user_id, when, candidate), target_annual)
    with engine.connect() as conn:
        clientless = int(
            conn.execute(text(CLIENTLESS_VISITS_SQL), window_params(user_id, when)).scalar_one()
        )
    return compare_metrics(before, after, clientless)


def drift_rows(
    engine: Engine,
    user_ids: Iterable[int],
    as_of: str | date | datetime | None = None,
    target_annual: Decimal | int | str = DEFAULT_TARGET,
    baseline: str = "before",
    candidate: str = "after",
) -> list[dict[str, Any]]:
    """``drift`` for several barbers, flattened to rows (one per differing metric) for a table."""
    when = resolve_as_of(engine, as_of)
    users = list(user_ids)
    return [
        d.to_dict()
        for user in bar(users, desc=f"{candidate} vs {baseline}", unit="barber")
        for d in drift(engine, user, when, target_annual, baseline, candidate)
    ]


def drift_summary(rows: list[dict[str, Any]], barbers: int) -> list[dict[str, Any]]:
    """Per metric: how many of ``barbers`` drift, how many of those are explained, and why."""
    by_metric: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_metric.setdefault(
            row["metric"],
            {
                "metric": row["metric"],
                "barbers_drifting": 0,
                "explained": 0,
                "barbers_sampled": barbers,
                "reasons": set(),
            },
        )
        entry["reasons"].add(row["reason"])
        entry["barbers_drifting"] += 1
        entry["explained"] += int(row["explained"])
    return [{**e, "reasons": "; ".join(sorted(e["reasons"]))} for e in by_metric.values()]
