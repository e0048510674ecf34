"""The six-figure metrics queries: ``before`` (four statements), ``after`` and ``after_equivalent`` (CTEs).

``before`` reproduces the original service: four statements on one pooled session, the per-client
visit rows pulled into Python and counted there. ``after`` is the original's CTE rewrite, including
the two meanings it silently changed (30-day average ticket; yearly visits that count appointments
without a client). ``after_equivalent`` is a CTE query with ``before``'s meaning exactly, and so are
``barber_driven`` and ``denormalized`` (``shapes.py``; the ladder in ``ladder.py``). Windows end
at ``as_of`` (exclusive) — the dataset's as_of by default, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bbperf.asof import as_of_datetime
from bbperf.errors import ConfigError, DataError
from bbperf.generate.dataset import dataset_as_of
from bbperf.metrics.model import DEFAULT_TARGET, RawMetrics, SixFigureMetrics, derive
from bbperf.metrics.shapes import BARBER_DRIVEN_SQL, DENORMALIZED_SQL
from bbperf.target import query_error

VARIANTS = ("before", "after", "after_equivalent", "barber_driven", "denormalized")
BARBER_ROLES = ("barber", "admin")

BEFORE_STATEMENTS: dict[str, str] = {
    "revenue_30d": """
SELECT COALESCE(SUM(p.amount), 0) AS revenue, COUNT(p.id) AS payments,
       COUNT(DISTINCT a.client_id) AS unique_clients
FROM payments p JOIN appointments a ON p.appointment_id = a.id
WHERE a.user_id = :user_id AND p.status = 'completed'
  AND p.created_at >= :since_30d AND p.created_at < :as_of""",
    "average_ticket": """
SELECT AVG(p.amount) AS avg_ticket
FROM payments p JOIN appointments a ON p.appointment_id = a.id
WHERE a.user_id = :user_id AND p.status = 'completed' AND p.created_at < :as_of""",
    "client_visits_365d": """
SELECT c.id, COUNT(a.id) AS visit_count
FROM clients c JOIN appointments a ON c.id = a.client_id
WHERE a.user_id = :user_id AND a.status = 'completed'
  AND a.start_time >= :since_365d AND a.start_time < :as_of
GROUP BY c.id""",
    "booked_minutes_30d": """
SELECT COALESCE(SUM(duration_minutes), 0) AS total_minutes, COUNT(*) AS completed
FROM appointments
WHERE user_id = :user_id AND status = 'completed'
  AND start_time >= :since_30d AND start_time < :as_of""",
}

_CTE_TAIL = """
SELECT pm.total_revenue, pm.avg_ticket, pm.payment_count, pm.unique_clients,
       am.total_minutes, am.completed_appointments,
       cf.total_clients AS year_clients, cf.total_visits AS year_visits
FROM payment_metrics pm
CROSS JOIN appointment_metrics am
CROSS JOIN client_frequency cf"""

_APPOINTMENT_METRICS = """
appointment_metrics AS (
    SELECT COALESCE(SUM(duration_minutes), 0) AS total_minutes, COUNT(*) AS completed_appointments
    FROM appointments
    WHERE user_id = :user_id AND status = 'completed'
      AND start_time >= :since_30d AND start_time < :as_of
)"""

AFTER_SQL = f"""
WITH payment_metrics AS (
    SELECT COUNT(DISTINCT p.id) AS payment_count, COALESCE(SUM(p.amount), 0) AS total_revenue,
           COALESCE(AVG(p.amount), 0) AS avg_ticket, COUNT(DISTINCT a.client_id) AS unique_clients
    FROM payments p JOIN appointments a ON p.appointment_id = a.id
    WHERE a.user_id = :user_id AND p.status = 'completed'
      AND p.created_at >= :since_30d AND p.created_at < :as_of
),{_APPOINTMENT_METRICS},
client_frequency AS (
    SELECT COUNT(DISTINCT client_id) AS total_clients, COUNT(*) AS total_visits
    FROM appointments
    WHERE user_id = :user_id AND status = 'completed'
      AND start_time >= :since_365d AND start_time < :as_of
){_CTE_TAIL}"""

# before's meaning: the average ticket over every completed payment up to as_of, and yearly visits
# only where a client exists (the inner join to clients); the 30-day sums filter the same scan.
AFTER_EQUIVALENT_SQL = f"""
WITH payment_metrics AS (
    SELECT COUNT(p.id) FILTER (WHERE p.created_at >= :since_30d) AS payment_count,
           COALESCE(SUM(p.amount) FILTER (WHERE p.created_at >= :since_30d), 0) AS total_revenue,
           COALESCE(AVG(p.amount), 0) AS avg_ticket,
           COUNT(DISTINCT a.client_id) FILTER (WHERE p.created_at >= :since_30d) AS unique_clients
    FROM payments p JOIN appointments a ON p.appointment_id = a.id
    WHERE a.user_id = :user_id AND p.status = 'completed' AND p.created_at < :as_of
),{_APPOINTMENT_METRICS},
client_frequency AS (
    SELECT COUNT(DISTINCT client_id) AS total_clients, COUNT(client_id) AS total_visits
    FROM appointments
    WHERE user_id = :user_id AND status = 'completed'
      AND start_time >= :since_365d AND start_time < :as_of
){_CTE_TAIL}"""

CTE_SQL = {
    "after": AFTER_SQL,
    "after_equivalent": AFTER_EQUIVALENT_SQL,
    "barber_driven": BARBER_DRIVEN_SQL,
    "denormalized": DENORMALIZED_SQL,
}


def resolve_as_of(engine: Engine, as_of: str | date | datetime | None = None) -> datetime:
    """``as_of`` when given, else the loaded dataset's as_of (DataError when there is none)."""
    return as_of_datetime(as_of) if as_of is not None else dataset_as_of(engine)


def window_params(user_id: int, as_of: datetime) -> dict[str, Any]:
    """Bind parameters shared by every variant: [as_of − 30 d, as_of) and [as_of − 365 d, as_of)."""
    return {
        "user_id": user_id,
        "as_of": as_of,
        "since_30d": as_of - timedelta(days=30),
        "since_365d": as_of - timedelta(days=365),
    }


def statements(variant: str) -> list[str]:
    """The SQL a variant sends per call, in order (four for ``before``, one for the CTE variants)."""
    check_variant(variant)
    return list(BEFORE_STATEMENTS.values()) if variant == "before" else [CTE_SQL[variant]]


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    return variant


def fetch_before(session: Session, params: dict[str, Any]) -> RawMetrics:
    """Four round trips; the per-client rows of the third are counted in Python, as the original did."""
    revenue = session.execute(text(BEFORE_STATEMENTS["revenue_30d"]), params).one()
    ticket = session.execute(text(BEFORE_STATEMENTS["average_ticket"]), params).scalar()
    clients = session.execute(text(BEFORE_STATEMENTS["client_visits_365d"]), params).all()
    booked = session.execute(text(BEFORE_STATEMENTS["booked_minutes_30d"]), params).one()
    return RawMetrics(
        user_id=params["user_id"],
        as_of=params["as_of"],
        revenue_30d=revenue.revenue,
        payments_30d=revenue.payments,
        unique_clients_30d=revenue.unique_clients,
        average_ticket=ticket if ticket is not None else Decimal(0),
        completed_appointments_30d=booked.completed,
        booked_minutes_30d=int(booked.total_minutes),
        clients_365d=len(clients),
        visits_365d=sum(row.visit_count for row in clients),
    )


def raw_from_cte_row(row: Any, params: dict[str, Any]) -> RawMetrics:
    """A RawMetrics from the CTE queries' one row (shared by the prepared and view variants)."""
    return RawMetrics(
        user_id=params["user_id"],
        as_of=params["as_of"],
        revenue_30d=row.total_revenue,
        payments_30d=row.payment_count,
        unique_clients_30d=row.unique_clients,
        average_ticket=row.avg_ticket,
        completed_appointments_30d=row.completed_appointments,
        booked_minutes_30d=int(row.total_minutes),
        clients_365d=row.year_clients,
        visits_365d=row.year_visits,
    )


def _cte_fetcher(variant: str) -> Callable[[Session, dict[str, Any]], RawMetrics]:
    sql = text(CTE_SQL[variant])

    def fetch(session: Session, params: dict[str, Any]) -> RawMetrics:
        return raw_from_cte_row(session.execute(sql, params).one(), params)

    fetch.__doc__ = f"One round trip: the {variant} CTE statement."
    return fetch


FETCHERS: dict[str, Callable[[Session, dict[str, Any]], RawMetrics]] = {
    "before": fetch_before,
    "after": _cte_fetcher("after"),
    "after_equivalent": _cte_fetcher("after_equivalent"),
    "barber_driven": _cte_fetcher("barber_driven"),
    "denormalized": _cte_fetcher("denormalized"),
}


def fetch_raw(engine: Engine, user_id: int, as_of: datetime, variant: str = "after") -> RawMetrics:
    """One call as the service makes it: a pooled session (checkout included), the variant's SQL."""
    fetch = FETCHERS[check_variant(variant)]
    params = window_params(user_id, as_of)
    try:
        with Session(engine) as session:
            return fetch(session, params)
    except DBAPIError as exc:
        raise query_error(exc, statements(variant)[0]) from None


def check_barber(engine: Engine, user_id: int) -> None:
    """DataError unless ``user_id`` is a user whose role is barber (or admin, as the original allowed)."""
    sql = "SELECT role FROM users WHERE id = :id"
    try:
        with engine.connect() as conn:
            role = conn.execute(text(sql), {"id": user_id}).scalar()
    except DBAPIError as exc:
        raise query_error(exc, sql) from None
    if role is None:
        raise DataError(f"user {user_id} does not exist: pick a barber's id from the users table")
    if role not in BARBER_ROLES:
        raise DataError(
            f"user {user_id} is not a barber (role {role!r}): the six-figure metrics "
            f"need a user whose role is {' or '.join(BARBER_ROLES)}"
        )


def barber_ids(engine: Engine) -> list[int]:
    """Every user the metrics accept (role barber or admin), by id."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id FROM users WHERE role = ANY(:roles) ORDER BY id"),
            {"roles": list(BARBER_ROLES)},
        )
        return [int(r[0]) for r in rows]


def barber_sample(engine: Engine, size: int, seed: int = 42) -> list[int]:
    """``size`` barbers drawn from ``barber_ids`` with ``seed`` (the same on any machine), in id
    order; all of them when ``size`` is 0 or at least their number. The busiest barber (most
    completed appointments overall) is always in the sample, so the heaviest case is checked."""
    import random

    users = barber_ids(engine)
    if size <= 0 or size >= len(users):
        return users
    with engine.connect() as conn:
        busiest = conn.execute(
            text(
                "SELECT user_id FROM appointments WHERE status = 'completed' AND user_id = ANY(:u) "
                "GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1"
            ),
            {"u": users},
        ).scalar()
    rest = [u for u in users if u != busiest]
    drawn = random.Random(seed).sample(rest, size - 1 if busiest is not None else size)
    return sorted(drawn + ([int(busiest)] if busiest is not None else []))


def six_figure_metrics(
    engine: Engine,
    user_id: int,
    variant: str = "after",
    target_annual: Decimal | int | str = DEFAULT_TARGET,
    as_of: str | date | datetime | None = None,
) -> SixFigureMetrics:
    """The metrics for one barber with ``variant``'s SQL; ``as_of`` defaults to the dataset's."""
    check_variant(variant)
    check_barber(engine, user_id)
    when = resolve_as_of(engine, as_of)
    return derive(fetch_raw(engine, user_id, when, variant), target_annual)
