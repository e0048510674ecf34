"""The workload the seed's indexes serve: the built-in catalogue (``bookedbarber.toml``), with values
drawn from the data.

Parameters come from the loaded dataset (a busy or a quiet barber, that barber's most loyal client,
most-booked service, latest payment ...) and time windows are relative to the dataset's ``as_of``,
never the wall clock, so the same dataset always gives the same queries and answers.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, text

from bbperf.asof import as_of_datetime
from bbperf.errors import DataError
from bbperf.generate.dataset import dataset_as_of
from bbperf.workload.file import load_workload
from bbperf.workload.query import WorkloadQuery

_PARAM = re.compile(r"(?<!:):(\w+)")

Barber = Literal["busy", "quiet"]


def _builtin_queries() -> dict[str, tuple[str, str]]:
    return {s.name: (s.description, s.bind_sql()) for s in load_workload("catalogue").statements}


# name → (description, SQL with ``:name`` parameters), read from the built-in workload file
# ``bookedbarber.toml``. Parameters: see ``draw_parameters``.
QUERIES: dict[str, tuple[str, str]] = _builtin_queries()
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
