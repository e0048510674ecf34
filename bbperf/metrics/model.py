"""Six-figure barber metrics: the raw figures a query returns and the pure derivation from them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

WORKING_DAYS_PER_MONTH = 22
WORKING_HOURS_PER_DAY = 8
WORKING_HOURS_PER_MONTH = WORKING_DAYS_PER_MONTH * WORKING_HOURS_PER_DAY  # 176
DEFAULT_TARGET = Decimal("100000")
PRICE_INCREASE_CAP_PCT = Decimal("30")
ON_TRACK_SHARE = Decimal("0.8")

CENT = Decimal("0.01")
TENTH = Decimal("0.1")


@dataclass(frozen=True)
class RawMetrics:
    """What one barber's queries return, windows ending at ``as_of`` (exclusive).

    Money is exact Decimal (``average_ticket`` as PostgreSQL's ``avg(numeric)`` returns it).
    ``*_30d`` cover [as_of − 30 days, as_of), ``*_365d`` cover [as_of − 365 days, as_of).
    """

    user_id: int
    as_of: datetime
    revenue_30d: Decimal
    payments_30d: int
    unique_clients_30d: int
    average_ticket: Decimal
    completed_appointments_30d: int
    booked_minutes_30d: int
    clients_365d: int
    visits_365d: int

    def values(self) -> dict[str, Any]:
        """The compared figures (everything but identity and window)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("user_id", "as_of")
        }


@dataclass(frozen=True)
class ActionItem:
    """One prioritised recommendation, as the original service phrased it."""

    priority: str
    category: str
    action: str
    impact: str


@dataclass(frozen=True)
class SixFigureMetrics:
    """Raw figures plus everything derived from them for an annual income target."""

    raw: RawMetrics
    target_annual: Decimal
    annual_projection: Decimal
    booked_hours: Decimal
    utilization_pct: Decimal
    average_visits_per_client: Decimal
    monthly_target: Decimal
    revenue_gap: Decimal
    clients_needed_per_month: Decimal
    current_clients_per_month: Decimal
    additional_clients_needed: Decimal
    recommended_price_increase_pct: Decimal
    recommended_average_ticket: Decimal
    daily_revenue_target: Decimal
    daily_clients_target: Decimal
    on_track: bool
    action_items: tuple[ActionItem, ...]

    def derived(self) -> dict[str, Any]:
        """Derived figures by name (action items as their categories), for comparison."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("raw", "target_annual"):
                continue
            value = getattr(self, f.name)
            out[f.name] = tuple(a.category for a in value) if f.name == "action_items" else value
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (Decimals stay Decimals; ``print_json`` writes them as exact strings)."""
        raw = self.raw
        return {
            "user_id": raw.user_id,
            "as_of": raw.as_of.isoformat(),
            "current_performance": {
                "revenue_30d": raw.revenue_30d,
                "payments_30d": raw.payments_30d,
                "unique_clients_30d": raw.unique_clients_30d,
                "average_ticket": _money(raw.average_ticket),
                "completed_appointments_30d": raw.completed_appointments_30d,
                "booked_minutes_30d": raw.booked_minutes_30d,
                "booked_hours_30d": self.booked_hours,
                "utilization_pct": self.utilization_pct,
                "clients_365d": raw.clients_365d,
                "visits_365d": raw.visits_365d,
                "average_visits_per_client": self.average_visits_per_client,
                "annual_projection": self.annual_projection,
            },
            "targets": {
                "annual_income_target": self.target_annual,
                "monthly_revenue_target": self.monthly_target,
                "daily_revenue_target": self.daily_revenue_target,
                "daily_clients_target": self.daily_clients_target,
                "revenue_gap": self.revenue_gap,
                "on_track": self.on_track,
            },
            "recommendations": {
                "recommended_price_increase_pct": self.recommended_price_increase_pct,
                "recommended_average_ticket": self.recommended_average_ticket,
                "current_clients_per_month": self.current_clients_per_month,
                "clients_needed_per_month": self.clients_needed_per_month,
                "additional_clients_needed": self.additional_clients_needed,
            },
            "action_items": [a.__dict__ for a in self.action_items],
        }


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def _tenth(value: Decimal) -> Decimal:
    return value.quantize(TENTH, ROUND_HALF_UP)


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    return numerator / denominator if denominator else Decimal(0)


def action_items(
    revenue_30d: Decimal,
    monthly_target: Decimal,
    average_ticket: Decimal,
    utilization_pct: Decimal,
    average_visits: Decimal,
) -> tuple[ActionItem, ...]:
    """The original's rules: revenue < 50 % of target, utilization < 60 % or > 90 %,
    average ticket < $40, fewer than 1.5 visits per client."""
    items: list[ActionItem] = []
    if revenue_30d < monthly_target * Decimal("0.5"):
        items.append(
            ActionItem(
                "high",
                "pricing",
                "Review and optimize service pricing",
                "Immediate revenue increase",
            )
        )
    if utilization_pct < 60:
        items.append(
            ActionItem(
                "high",
                "marketing",
                "Increase marketing efforts to attract new clients",
                "Fill empty appointment slots",
            )
        )
    if average_ticket < 40:
        items.append(
            ActionItem(
                "high",
                "upselling",
                "Implement service packages and add-ons",
                "Increase average transaction value",
            )
        )
    if average_visits < Decimal("1.5"):
        items.append(
            ActionItem(
                "medium", "retention", "Create client loyalty program", "Increase visit frequency"
            )
        )
    if utilization_pct > 90:
        items.append(
            ActionItem(
                "medium",
                "efficiency",
                "Optimize appointment scheduling",
                "Reduce downtime between clients",
            )
        )
    return tuple(items)


def derive(
    raw: RawMetrics, target_annual: Decimal | int | str = DEFAULT_TARGET
) -> SixFigureMetrics:
    """Everything the service derives from ``raw`` for an annual income target (dollars).

    Money, hours and visits per client are rounded to 0.01, percentages and client counts to 0.1
    (half up); thresholds (on_track at ≥ 80 % of the monthly target, action items) use
    unrounded values.
    """
    target = Decimal(target_annual)
    revenue = raw.revenue_30d
    ticket = raw.average_ticket
    monthly_target = target / 12
    gap = monthly_target - revenue
    booked_hours = Decimal(raw.booked_minutes_30d) / 60
    utilization = booked_hours / WORKING_HOURS_PER_MONTH * 100
    visits = _ratio(Decimal(raw.visits_365d), Decimal(raw.clients_365d))
    needed = _ratio(monthly_target, ticket)
    current = _ratio(revenue, ticket)
    increase = Decimal(0)
    if revenue > 0 and gap > 0:
        increase = min(gap / revenue * 100, PRICE_INCREASE_CAP_PCT)
    return SixFigureMetrics(
        raw=raw,
        target_annual=target,
        annual_projection=revenue * 12,
        booked_hours=_money(booked_hours),
        utilization_pct=_tenth(utilization),
        average_visits_per_client=_money(visits),
        monthly_target=_money(monthly_target),
        revenue_gap=_money(gap),
        clients_needed_per_month=_tenth(needed),
        current_clients_per_month=_tenth(current),
        additional_clients_needed=_tenth(max(Decimal(0), needed - current)),
        recommended_price_increase_pct=_tenth(increase),
        recommended_average_ticket=_money(ticket * (1 + increase / 100)),
        daily_revenue_target=_money(monthly_target / WORKING_DAYS_PER_MONTH),
        daily_clients_target=_tenth(needed / WORKING_DAYS_PER_MONTH),
        on_track=revenue >= monthly_target * ON_TRACK_SHARE,
        action_items=action_items(revenue, monthly_target, ticket, utilization, visits),
    )
