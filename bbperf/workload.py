"""The workload the seed's indexes serve: named, parameterized queries with values drawn from the data.

Parameters come from the loaded dataset (a busy or a quiet barber, that barber's most loyal client,
most-booked service, latest payment ...) and time windows are relative to the dataset's ``as_of``,
never the wall clock, so the same dataset always gives the same queries and answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Connection, Engine, text

from bbperf.errors import DataError

_PARAM = re.compile(r"(?<!:):(\w+)")

Barber = Literal["busy", "quiet"]


@dataclass(frozen=True)
class WorkloadQuery:
    """One named query: what it does, its SQL (``:name`` parameters) and the values to run it with."""

    name: str
    description: str
    sql: str
    params: dict[str, Any] = field(default_factory=dict)

    def run(self, engine_or_conn: Engine | Connection) -> pd.DataFrame:
        """Execute the query alone and return its rows."""
        if isinstance(engine_or_conn, Engine):
            with engine_or_conn.connect() as conn:
                return self.run(conn)
        result = engine_or_conn.execute(text(self.sql), self.params)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


# name → (description, SQL). Parameters: see ``draw_parameters``.
QUERIES: dict[str, tuple[str, str]] = {
    "barber_schedule": (
        "a barber's confirmed appointments in the week after as_of",
        "SELECT id, start_time, duration_minutes, client_id, service_id FROM appointments "
        "WHERE barber_id = :barber_id AND status = 'confirmed' "
        "AND start_time >= :week_start AND start_time < :week_end ORDER BY start_time",
    ),
    "user_appointments": (
        "an account's completed appointments in the 30 days before as_of",
        "SELECT id, start_time, barber_id, price FROM appointments "
        "WHERE user_id = :user_id AND status = 'completed' "
        "AND start_time >= :month_start AND start_time < :as_of ORDER BY start_time DESC",
    ),
    "client_history": (
        "a client's completed visits, newest first",
        "SELECT id, start_time, service_id, price FROM appointments "
        "WHERE client_id = :client_id AND status = 'completed' ORDER BY start_time DESC",
    ),
    "payment_history": (
        "an account's completed payments in the 90 days before as_of",
        "SELECT id, amount, created_at FROM payments "
        "WHERE user_id = :user_id AND status = 'completed' "
        "AND created_at >= :quarter_start AND created_at < :as_of ORDER BY created_at DESC",
    ),
    "payment_by_intent": (
        "a payment looked up by its Stripe payment intent id (webhook)",
        "SELECT id, amount, status FROM payments WHERE stripe_payment_intent_id = :intent_id",
    ),
    "appointments_in_range": (
        "all appointments on the day before as_of (the calendar view)",
        "SELECT count(*) AS appointments, sum(price) AS booked FROM appointments "
        "WHERE start_time >= :day_start AND start_time < :as_of",
    ),
    "service_analytics": (
        "bookings and revenue of one service by status",
        "SELECT status, count(*) AS appointments, sum(price) AS revenue FROM appointments "
        "WHERE service_id = :service_id GROUP BY status ORDER BY status",
    ),
    "revenue_join": (
        "a barber's 30-day revenue: completed appointments joined to completed payments",
        "SELECT count(*) AS paid, sum(p.amount) AS revenue FROM appointments a "
        "JOIN payments p ON p.appointment_id = a.id AND p.status = 'completed' "
        "WHERE a.barber_id = :barber_id AND a.status = 'completed' "
        "AND a.start_time >= :month_start AND a.start_time < :as_of",
    ),
    "payment_appointment_join": (
        "the payment of one of an account's appointments, with the appointment",
        "SELECT p.id, p.amount, p.status, a.start_time FROM payments p "
        "JOIN appointments a ON a.id = p.appointment_id "
        "WHERE p.user_id = :user_id AND p.appointment_id = :appointment_id",
    ),
    "payments_in_range": (
        "payments taken on the day before as_of, by status",
        "SELECT status, count(*) AS payments, sum(amount) AS amount FROM payments "
        "WHERE created_at >= :day_start AND created_at < :as_of GROUP BY status ORDER BY status",
    ),
    "user_client_lookup": (
        "an account's appointments with one client",
        "SELECT id, start_time, status FROM appointments "
        "WHERE user_id = :user_id AND client_id = :client_id ORDER BY start_time",
    ),
    "barber_client_lookup": (
        "a barber's appointments with one client",
        "SELECT id, start_time, status FROM appointments "
        "WHERE barber_id = :barber_id AND client_id = :client_id ORDER BY start_time",
    ),
    "user_by_email": (
        "an account looked up by email (login)",
        "SELECT id, name, role FROM users WHERE email = :email",
    ),
    "active_barbers": (
        "active barber accounts",
        "SELECT id, name FROM users WHERE role = 'barber' AND is_active ORDER BY id",
    ),
    "user_primary_org": (
        "an account's primary organization",
        "SELECT organization_id FROM user_organizations WHERE user_id = :user_id AND is_primary",
    ),
}
QUERY_NAMES: tuple[str, ...] = tuple(QUERIES)

# One row per barber with appointment counts; busy = most, quiet = fewest (ties: lowest id).
_BARBERS_SQL = (
    "SELECT barber_id, count(*) AS n FROM appointments WHERE barber_id IS NOT NULL "
    "GROUP BY barber_id ORDER BY n {order}, barber_id LIMIT 1"
)
_DRAWS: dict[str, str] = {
    # The account that books most of the barber's appointments (usually the barber's own).
    "user_id": "SELECT user_id FROM appointments WHERE barber_id = :barber_id "
    "GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1",
    "client_id": "SELECT client_id FROM appointments WHERE barber_id = :barber_id "
    "AND client_id IS NOT NULL GROUP BY client_id ORDER BY count(*) DESC, client_id LIMIT 1",
    "service_id": "SELECT service_id FROM appointments WHERE barber_id = :barber_id "
    "AND service_id IS NOT NULL GROUP BY service_id ORDER BY count(*) DESC, service_id LIMIT 1",
    "appointment_id": "SELECT p.appointment_id FROM payments p WHERE p.user_id = :user_id "
    "AND p.appointment_id IS NOT NULL AND p.created_at < :as_of "
    "ORDER BY p.created_at DESC, p.id LIMIT 1",
    "intent_id": "SELECT stripe_payment_intent_id FROM payments WHERE user_id = :user_id "
    "AND stripe_payment_intent_id IS NOT NULL AND created_at < :as_of "
    "ORDER BY created_at DESC, id LIMIT 1",
    "email": "SELECT email FROM users WHERE id = :user_id",
}


def as_of_datetime(as_of: date | datetime | str) -> datetime:
    """``as_of`` as a UTC datetime at midnight (strings in ISO format)."""
    if isinstance(as_of, str):
        as_of = datetime.fromisoformat(as_of)
    if not isinstance(as_of, datetime):
        as_of = datetime(as_of.year, as_of.month, as_of.day)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    return as_of.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def windows(as_of: date | datetime | str) -> dict[str, datetime]:
    """The time-window parameters relative to ``as_of`` (UTC midnight)."""
    start = as_of_datetime(as_of)
    return {
        "as_of": start,
        "day_start": start - timedelta(days=1),
        "month_start": start - timedelta(days=30),
        "quarter_start": start - timedelta(days=90),
        "week_start": start,
        "week_end": start + timedelta(days=7),
    }


def dataset_as_of(engine: Engine) -> datetime:
    """The loaded dataset's as_of, from its provenance (``bbperf.generate.dataset_info``)."""
    from bbperf.generate import dataset_info

    info = dataset_info(engine)
    if not info or not info.get("as_of"):
        raise DataError("no dataset is loaded: run `bbperf generate` first")
    return as_of_datetime(info["as_of"])


def draw_parameters(
    engine: Engine, *, barber: Barber = "busy", as_of: date | datetime | str | None = None
) -> dict[str, Any]:
    """Parameter values for every query: the busiest (or quietest) barber and values around them."""
    if barber not in ("busy", "quiet"):
        raise DataError(f"barber must be 'busy' or 'quiet', not {barber!r}")
    params: dict[str, Any] = windows(as_of if as_of is not None else dataset_as_of(engine))
    with engine.connect() as conn:
        order = "DESC" if barber == "busy" else "ASC"
        row = conn.execute(text(_BARBERS_SQL.format(order=order))).first()
        if row is None:
            raise DataError("no appointments with a barber: generate a dataset first")
        params["barber_id"] = row.barber_id
        for name, sql in _DRAWS.items():
            params[name] = conn.execute(text(sql), params).scalar()
    return params


def catalogue(
    engine: Engine,
    *,
    names: list[str] | tuple[str, ...] | None = None,
    barber: Barber = "busy",
    as_of: date | datetime | str | None = None,
) -> list[WorkloadQuery]:
    """The workload queries (all, or ``names`` in that order) with parameters drawn from the data."""
    chosen = list(names) if names else list(QUERY_NAMES)
    unknown = [n for n in chosen if n not in QUERIES]
    if unknown:
        raise DataError(
            f"unknown workload query {unknown[0]!r}: choose from {', '.join(QUERY_NAMES)}"
        )
    params = draw_parameters(engine, barber=barber, as_of=as_of)
    queries = []
    for name in chosen:
        description, sql = QUERIES[name]
        used = {k: params[k] for k in dict.fromkeys(_PARAM.findall(sql))}
        queries.append(WorkloadQuery(name, description, sql, used))
    return queries
