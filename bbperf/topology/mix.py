"""The traffic of the read-replica experiment: an OLTP mix (point reads + bookings with payments at
a fixed rate) on the primary, and an analytics mix (six-figure metrics, service analytics) sent to
the primary or the replica through ``AnalyticsRouter``.

Every write is a completed appointment with its payment, cloned from an existing appointment and
marked (``notes = 'bbperf:replica-probe'``), so ``remove_probe_rows`` restores the dataset's counts.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg2
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.errors import BbperfError, DataError, first_line
from bbperf.metrics.queries import fetch_raw
from bbperf.urls import mask_text

PROBE_MARK = "bbperf:replica-probe"
# A server that dies mid-request can surface as SQLAlchemy's wrapper or, while a connection is
# being returned to its pool, as the driver's own error.
DRIVER_ERRORS = (DBAPIError, psycopg2.Error)
_POINT_READS = (
    "SELECT id, barber_id, status, start_time, price FROM appointments WHERE id = :appointment_id",
    "SELECT id, amount, status FROM payments WHERE appointment_id = :appointment_id",
    "SELECT id, start_time, client_id FROM appointments WHERE barber_id = :barber_id "
    "AND start_time >= :day AND start_time < :day + interval '1 day' ORDER BY start_time",
)
_SERVICE_ANALYTICS = (
    "SELECT status, count(*) AS appointments, sum(price) AS revenue FROM appointments "
    "WHERE service_id = :service_id GROUP BY status ORDER BY status"
)
_BOOK = text(
    "WITH a AS (INSERT INTO appointments (user_id, barber_id, client_id, service_id, "
    "organization_id, status, start_time, duration_minutes, price, notes) "
    "SELECT user_id, barber_id, client_id, service_id, organization_id, 'completed', :start, "
    "duration_minutes, price, :mark FROM appointments WHERE id = :template "
    "RETURNING id, user_id, barber_id, price) "
    "INSERT INTO payments (user_id, appointment_id, barber_id, amount, status, "
    "stripe_payment_intent_id, created_at) "
    "SELECT user_id, id, barber_id, price, 'completed', :intent, :paid FROM a RETURNING user_id"
)


class ReplicaUnavailable(BbperfError):
    """The replica could not answer and falling back to the primary was not allowed."""


@dataclass(frozen=True)
class DatasetShape:
    """Id ranges and picks the mixes draw from (read once from the primary)."""

    as_of: datetime
    appointment_ids: tuple[int, int]
    barbers: tuple[int, ...]
    services: tuple[int, ...]
    templates: dict[int, tuple[int, ...]]  # barber user_id → completed appointments to clone


def read_shape(engine: Engine, as_of: datetime, templates_per_barber: int = 5) -> DatasetShape:
    """What the mixes need from the loaded dataset; DataError when it has no bookings."""
    with engine.connect() as conn:
        low, high = conn.execute(text("SELECT min(id), max(id) FROM appointments")).one()
        barbers = [
            int(r[0])
            for r in conn.execute(text("SELECT id FROM users WHERE role = 'barber' ORDER BY id"))
        ]
        services = [int(r[0]) for r in conn.execute(text("SELECT id FROM services ORDER BY id"))]
        rows = conn.execute(
            text(
                "SELECT user_id, id FROM (SELECT user_id, id, row_number() OVER "
                "(PARTITION BY user_id ORDER BY id) AS n FROM appointments "
                "WHERE status = 'completed' AND user_id = barber_id) t WHERE n <= :k"
            ),
            {"k": templates_per_barber},
        ).all()
    templates: dict[int, list[int]] = {}
    for user_id, appointment_id in rows:
        templates.setdefault(int(user_id), []).append(int(appointment_id))
    if low is None or not templates or not services:
        raise DataError("the read-replica mixes need a dataset: run `bbperf data generate` first")
    return DatasetShape(
        as_of,
        (int(low), int(high)),
        tuple(b for b in barbers if b in templates),
        tuple(services),
        {k: tuple(v) for k, v in templates.items()},
    )


def point_read(shape: DatasetShape, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """One OLTP read: an appointment, its payment, or a barber's day."""
    sql = rng.choice(_POINT_READS)
    day = shape.as_of - timedelta(days=rng.randint(1, 60))
    return sql, {
        "appointment_id": rng.randint(*shape.appointment_ids),
        "barber_id": rng.choice(shape.barbers),
        "day": day,
    }


def book(engine: Engine, shape: DatasetShape, user_id: int, rng: random.Random) -> None:
    """Commit one completed booking with its payment for ``user_id``, inside the 30-day window."""
    paid = shape.as_of - timedelta(hours=rng.randint(2, 24 * 20))
    with engine.begin() as conn:
        conn.execute(
            _BOOK,
            {
                "template": rng.choice(shape.templates[user_id]),
                "start": paid - timedelta(hours=1),
                "paid": paid,
                "mark": PROBE_MARK,
                "intent": f"bbperf_probe_{rng.getrandbits(48):012x}",
            },
        )


def probe_rows(engine: Engine) -> int:
    """How many bookings the mixes wrote are still there (an interrupted run leaves them)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM appointments WHERE notes = :mark"), {"mark": PROBE_MARK}
            ).scalar_one()
        )


def remove_probe_rows(engine: Engine) -> int:
    """Delete every booking and payment the mixes wrote; returns the bookings removed."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM payments WHERE appointment_id IN "
                "(SELECT id FROM appointments WHERE notes = :mark)"
            ),
            {"mark": PROBE_MARK},
        )
        removed = conn.execute(
            text("DELETE FROM appointments WHERE notes = :mark"), {"mark": PROBE_MARK}
        ).rowcount
    return int(removed or 0)


class AnalyticsRouter:
    """Runs analytics reads on the replica when there is one; on failure, retries on the primary
    when ``fallback`` (counting it), else raises ``ReplicaUnavailable``. Never waits on a dead
    replica: replica engines connect with a 2 s timeout and a dead socket fails at once."""

    def __init__(self, primary: Engine, replica: Engine | None, *, fallback: bool = False) -> None:
        self.primary = primary
        self.replica = replica
        self.fallback = fallback
        self.fell_back = 0
        self.first_failure: str | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[Engine], object]) -> str:
        """Run ``work(engine)``; return where it ran (``replica`` or ``primary``)."""
        if self.replica is None:
            work(self.primary)
            return "primary"
        try:
            work(self.replica)
            return "replica"
        except (*DRIVER_ERRORS, BbperfError) as exc:
            with self._lock:
                self.first_failure = self.first_failure or mask_text(first_line(exc))
                if not self.fallback:
                    raise ReplicaUnavailable(
                        f"the replica failed ({self.first_failure}) and fallback is off"
                    ) from None
                self.fell_back += 1
        work(self.primary)
        return "primary"


def analytics_request(shape: DatasetShape, rng: random.Random) -> Callable[[Engine], object]:
    """One analytics read: six-figure metrics of a random barber (3 in 4) or a service's figures."""
    if rng.random() < 0.75:
        user_id = rng.choice(shape.barbers)
        return lambda engine: fetch_raw(engine, user_id, shape.as_of, "after_equivalent")
    params = {"service_id": rng.choice(shape.services)}

    def service(engine: Engine) -> object:
        with engine.connect() as conn:
            return conn.execute(text(_SERVICE_ANALYTICS), params).all()

    return service


@dataclass
class Tally:
    """Latencies (ms) and outcomes of one kind of request during a run."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    on_replica: int = 0
    first_error: str | None = None

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        self.first_error = self.first_error or mask_text(first_line(exc))


def drive(
    duration_s: float,
    workers: list[Callable[[float], None]],
) -> float:
    """Run each ``worker(deadline)`` on its own thread until the deadline; return the seconds the
    run really took (every thread joined: nothing is left running)."""
    start = time.perf_counter()
    deadline = start + duration_s
    threads = [threading.Thread(target=w, args=(deadline,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start
