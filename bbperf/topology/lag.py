"""Replication lag: LSN arithmetic (pure), one reading of primary + replica, and a background sampler.

Lag in bytes is the primary's current WAL position minus the replica's replay position
(``pg_wal_lsn_diff``). Lag in seconds is the primary's own measurement (``pg_stat_replication.replay_lag``)
when it is readable, else the time since the last transaction the replica replayed — an upper
bound, and only while bytes are outstanding (an idle, caught-up replica has lag 0, not "minutes
since the last commit").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg2
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.errors import ConfigError, first_line
from bbperf.urls import mask_text

_DRIVER_ERRORS = (DBAPIError, psycopg2.Error)

_PRIMARY_SQL = text(
    "SELECT pg_current_wal_lsn()::text AS lsn, "
    "(SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication "
    " WHERE application_name = :app ORDER BY backend_start DESC LIMIT 1) AS replay_lag_s"
)
_REPLICA_SQL = text(
    "SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_receive_lsn()::text AS receive_lsn, "
    "pg_last_wal_replay_lsn()::text AS replay_lsn, pg_last_xact_replay_timestamp() AS replayed_at, "
    "now() AS now, (SELECT status FROM pg_stat_wal_receiver) AS receiver"
)


def lsn_to_int(lsn: str) -> int:
    """A WAL position such as ``0/6028068`` as a byte offset."""
    try:
        high, low = lsn.split("/")
        return (int(high, 16) << 32) + int(low, 16)
    except (AttributeError, ValueError):
        raise ConfigError(f"{lsn!r} is not a WAL position such as 0/6028068") from None


def lag_bytes(primary_lsn: str, replay_lsn: str) -> int:
    """Bytes of WAL the primary has written that the replica has not replayed (never negative)."""
    return max(0, lsn_to_int(primary_lsn) - lsn_to_int(replay_lsn))


def lag_seconds(
    behind_bytes: int,
    replay_lag_s: float | None,
    replica_now: datetime | None,
    replayed_at: datetime | None,
) -> float | None:
    """Seconds behind: 0 when caught up; the primary's replay_lag when known; else the age of the
    last replayed transaction (None when the replica has replayed none)."""
    if behind_bytes == 0:
        return 0.0
    if replay_lag_s is not None:
        return float(replay_lag_s)
    if replica_now is None or replayed_at is None:
        return None
    return max(0.0, (replica_now - replayed_at).total_seconds())


@dataclass(frozen=True)
class Lag:
    """One reading. ``error`` is set (and the figures None) when the replica could not be read."""

    at: float  # time.monotonic() of the reading
    lag_bytes: int | None
    lag_s: float | None
    receiver: str | None = None
    in_recovery: bool | None = None
    error: str | None = None

    def beyond(self, max_lag_s: float | None = None, max_lag_bytes: int | None = None) -> bool:
        """True when this reading breaks either threshold (an unreadable replica does too)."""
        if self.error is not None:
            return True
        if max_lag_s is not None and self.lag_s is not None and self.lag_s > max_lag_s:
            return True
        return bool(
            max_lag_bytes is not None
            and self.lag_bytes is not None
            and self.lag_bytes > max_lag_bytes
        )


def read_lag(primary: Engine, replica: Engine, application_name: str = "bbperf_replica") -> Lag:
    """Read the lag once (two round trips). A replica that is down gives ``Lag(error=...)``;
    a primary that is down raises, as any query on it would."""
    with primary.connect() as conn:
        row = conn.execute(_PRIMARY_SQL, {"app": application_name}).one()
        conn.rollback()
    try:
        with replica.connect() as conn:
            rep = conn.execute(_REPLICA_SQL).one()
            conn.rollback()
    except _DRIVER_ERRORS as exc:
        return Lag(time.monotonic(), None, None, error=mask_text(first_line(exc)))
    if not rep.in_recovery:
        return Lag(
            time.monotonic(),
            None,
            None,
            in_recovery=False,
            error="the replica URL reaches a server that is not in recovery (not a standby)",
        )
    replay = rep.replay_lsn or rep.receive_lsn
    if replay is None:
        return Lag(
            time.monotonic(), None, None, rep.receiver, True, "the replica has replayed no WAL yet"
        )
    behind = lag_bytes(row.lsn, replay)
    seconds = lag_seconds(behind, row.replay_lag_s, rep.now, rep.replayed_at)
    return Lag(time.monotonic(), behind, seconds, rep.receiver, True)


class LagSampler:
    """Reads the lag every ``every_s`` seconds on a background thread until stopped.

    Use as a context manager; ``readings`` holds every ``Lag`` in order.
    """

    def __init__(self, primary: Engine, replica: Engine, every_s: float = 0.1) -> None:
        self.primary = primary
        self.replica = replica
        self.every_s = every_s
        self.readings: list[Lag] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bbperf-lag")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.readings.append(read_lag(self.primary, self.replica))
            except _DRIVER_ERRORS as exc:
                self.readings.append(Lag(time.monotonic(), None, None, error=first_line(exc)))
            self._stop.wait(self.every_s)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
