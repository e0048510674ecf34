"""The pure six-figure derivation, on exact values (no server)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bbperf.metrics.model import RawMetrics, derive

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
BASE = RawMetrics(
    user_id=7,
    as_of=AS_OF,
    revenue_30d=Decimal("5000.00"),
    payments_30d=100,
    unique_clients_30d=60,
    average_ticket=Decimal("50"),
    completed_appointments_30d=100,
    booked_minutes_30d=6000,
    clients_365d=80,
    visits_365d=200,
)


def test_derive_exact_values() -> None:
    m = derive(BASE)
    assert m.target_annual == Decimal("100000")
    assert m.annual_projection == Decimal("60000.00")
    assert m.booked_hours == Decimal("100.00")
    assert m.utilization_pct == Decimal("56.8")  # 100 h of 176 h
    assert m.average_visits_per_client == Decimal("2.50")
    assert m.monthly_target == Decimal("8333.33")
    assert m.revenue_gap == Decimal("3333.33")
    assert m.clients_needed_per_month == Decimal("166.7")
    assert m.current_clients_per_month == Decimal("100.0")
    assert m.additional_clients_needed == Decimal("66.7")
    assert m.recommended_price_increase_pct == Decimal("30.0")  # 66.7 % capped
    assert m.recommended_average_ticket == Decimal("65.00")
    assert m.daily_revenue_target == Decimal("378.79")
    assert m.daily_clients_target == Decimal("7.6")
    assert m.on_track is False
    assert [a.category for a in m.action_items] == ["marketing"]


def test_uncapped_increase_and_on_track() -> None:
    m = derive(replace(BASE, revenue_30d=Decimal("7000.00")))
    assert m.recommended_price_increase_pct == Decimal("19.0")
    assert m.recommended_average_ticket == Decimal("59.52")
    assert m.on_track is True


@pytest.mark.parametrize(
    ("revenue", "on_track"),
    [("8000.00", True), ("7999.99", False), ("10000.00", True)],
)
def test_on_track_at_80_percent(revenue: str, on_track: bool) -> None:
    m = derive(replace(BASE, revenue_30d=Decimal(revenue)), target_annual=120000)
    assert m.monthly_target == Decimal("10000.00")
    assert m.on_track is on_track


def test_above_target_needs_nothing() -> None:
    m = derive(replace(BASE, revenue_30d=Decimal("10000.00")))
    assert m.revenue_gap == Decimal("-1666.67")
    assert m.recommended_price_increase_pct == Decimal("0.0")
    assert m.recommended_average_ticket == Decimal("50.00")
    assert m.additional_clients_needed == Decimal("0.0")


def test_no_data_gives_zeros_and_every_low_rule() -> None:
    empty = RawMetrics(7, AS_OF, Decimal(0), 0, 0, Decimal(0), 0, 0, 0, 0)
    m = derive(empty)
    assert m.average_visits_per_client == 0
    assert m.clients_needed_per_month == 0
    assert m.recommended_price_increase_pct == 0
    assert [a.category for a in m.action_items] == [
        "pricing",
        "marketing",
        "upselling",
        "retention",
    ]
    assert [a.priority for a in m.action_items] == ["high", "high", "high", "medium"]


@pytest.mark.parametrize(
    ("minutes", "ticket", "clients", "visits", "expected"),
    [
        (10032, "50", 80, 200, ["efficiency"]),  # 167.2 h = 95 % > 90 %
        (9504, "39.99", 80, 119, ["upselling", "retention"]),  # exactly 90 %: no rule
        (6336, "40", 80, 120, []),  # 60 %, $40, 1.5 visits: each threshold is strict
    ],
)
def test_action_item_thresholds(
    minutes: int, ticket: str, clients: int, visits: int, expected: list[str]
) -> None:
    raw = replace(
        BASE,
        booked_minutes_30d=minutes,
        average_ticket=Decimal(ticket),
        clients_365d=clients,
        visits_365d=visits,
    )
    assert [a.category for a in derive(raw).action_items] == expected


def test_to_dict_is_json_with_exact_money() -> None:
    m = derive(replace(BASE, average_ticket=Decimal("45.3333333333333333")))
    data = json.loads(json.dumps(m.to_dict(), default=str))
    assert data["current_performance"]["average_ticket"] == "45.33"
    assert data["current_performance"]["revenue_30d"] == "5000.00"
    assert data["targets"]["on_track"] is False
    assert data["as_of"] == "2026-11-01T00:00:00+00:00"
    assert data["action_items"][0]["category"] == "marketing"


def test_values_and_derived_name_every_figure() -> None:
    m = derive(BASE)
    assert set(BASE.values()) == {
        "revenue_30d",
        "payments_30d",
        "unique_clients_30d",
        "average_ticket",
        "completed_appointments_30d",
        "booked_minutes_30d",
        "clients_365d",
        "visits_365d",
    }
    assert m.derived()["action_items"] == ("marketing",)
    assert "raw" not in m.derived()
