"""The one definition of a dataset's anchor, ``as_of``: a calendar date, meaning 00:00 UTC that day.

Generation, the workload's time windows, the six-figure metrics and pool load all read it from here,
so "the last 30 days" means the same thing everywhere and on any day the same seed is run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from bbperf.errors import ConfigError

EARLIEST_YEAR, LATEST_YEAR = 1900, 2200


def as_of_date(value: Any) -> date:
    """``value`` (a date, a datetime, or an ISO ``YYYY-MM-DD`` text, read whole) as a date, refusing
    years outside 1900–2200; None means today (UTC)."""
    if value is None:
        return datetime.now(UTC).date()
    if isinstance(value, datetime):
        day = value.astimezone(UTC).date() if value.tzinfo else value.date()
    elif isinstance(value, date):
        day = value
    elif isinstance(value, str):
        day = _parse(value)
    else:
        raise ConfigError(f"as_of {value!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-01")
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise ConfigError(
            f"as_of {day.isoformat()} is outside the years {EARLIEST_YEAR}–{LATEST_YEAR} "
            "bbperf generates data for"
        )
    return day


def as_of_datetime(value: Any) -> datetime:
    """``as_of_date(value)`` at 00:00 UTC, as an aware datetime."""
    return datetime.combine(as_of_date(value), time(0), tzinfo=UTC)


def _parse(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"as_of {text!r} is not an ISO date: use YYYY-MM-DD, e.g. 2026-11-01"
        ) from None
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
