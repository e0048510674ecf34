"""The big tables, generated a week at a time: appointments with their payments, then clients with
visit totals tallied from the appointments (so client rows are consistent with the bookings)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bbperf.generate import binary as b
from bbperf.generate.cast import DAY_US, Cast, Chunk
from bbperf.generate.fakes import Pools
from bbperf.generate.profile import Profile
from bbperf.schema import APPOINTMENT_STATUSES, CUSTOMER_TYPES, PAYMENT_STATUSES

WEEK_DAYS = 7
BARBER_BLOCK = 1024
CLIENT_CHUNK_ROWS = 100_000
MINUTE_US = 60 * 1_000_000
DAYS_PER_MONTH = 30.44
VIP_VISITS = 12
AT_RISK_DAYS = 90
_STRIPE_ALPHABET = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8
)
_STATUS = b.TextPool.of(APPOINTMENT_STATUSES)
_PAYMENT_STATUS = b.TextPool.of(PAYMENT_STATUSES)
_CUSTOMER_TYPE = b.TextPool.of(CUSTOMER_TYPES)


def _codes(names: tuple[str, ...], shares: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Status codes (indexes into ``names``) and their probabilities, for ``rng.choice``."""
    keys = list(shares)
    return np.array([names.index(k) for k in keys]), np.array([shares[k] for k in keys])


@dataclass
class ClientTally:
    """Per-client totals of completed past visits, filled while appointments are generated."""

    visits: np.ndarray
    spent_cents: np.ndarray
    first_us: np.ndarray
    last_us: np.ndarray

    @classmethod
    def empty(cls, n: int) -> ClientTally:
        big = np.iinfo(np.int64).max
        return cls(
            np.zeros(n, np.int64), np.zeros(n, np.int64), np.full(n, big), np.full(n, -1, np.int64)
        )

    def add(self, client_index: np.ndarray, price_cents: np.ndarray, start_us: np.ndarray) -> None:
        n = len(self.visits)
        self.visits += np.bincount(client_index, minlength=n)
        self.spent_cents += np.bincount(client_index, weights=price_cents, minlength=n).astype(
            np.int64
        )
        np.minimum.at(self.first_us, client_index, start_us)
        np.maximum.at(self.last_us, client_index, start_us)


def n_clients(profile: Profile, cast: Cast) -> int:
    return cast.n_barbers * profile.clients["per_barber"]


def block_count(cast: Cast) -> int:
    return -(-cast.n_barbers // BARBER_BLOCK)


def week_count(profile: Profile) -> int:
    days = profile.calendar["past_days"] + profile.calendar["future_days"]
    return -(-days // WEEK_DAYS)


def bookings(
    profile: Profile,
    cast: Cast,
    week: int,
    block: int,
    rng: np.random.Generator,
    as_of_us: int,
    as_of_weekday: int,
    first_appointment_id: int,
    first_payment_id: int,
    tally: ClientTally,
    pools: Pools,
) -> tuple[Chunk, Chunk]:
    """Appointments and payments of one week (counted from the start of the history) for one block of
    BARBER_BLOCK barbers: chunks stay the same size however large the scale."""
    cal = profile.calendar
    first_barber = block * BARBER_BLOCK
    nb = min(BARBER_BLOCK, cast.n_barbers - first_barber)
    first_day = -cal["past_days"] + week * WEEK_DAYS
    days = np.arange(first_day, min(first_day + WEEK_DAYS, cal["future_days"]))
    weekday = (as_of_weekday + days) % 7
    per_week = cal["working_days_per_month"] * 7 / DAYS_PER_MONTH
    p_work = np.minimum(1.0, per_week * np.array(cal["weekday_weights"]))[weekday]
    works = rng.random((nb, len(days))) < p_work[None, :]
    lo, hi = cal["appointments_per_day"]
    per_day = np.rint(
        rng.integers(lo, hi + 1, size=(nb, len(days)))
        * cast.barber_activity[first_barber : first_barber + nb, None]
    )
    per_day = (per_day * works).astype(np.int64).ravel()
    barber = np.repeat(np.repeat(np.arange(first_barber, first_barber + nb), len(days)), per_day)
    day = np.repeat(np.tile(days, nb), per_day)
    n = len(barber)

    hours = cal["opening_hour"] + rng.choice(
        len(cal["hour_weights"]), size=n, p=cal["hour_weights"]
    )
    start = as_of_us + day * DAY_US + (hours * 60 + rng.integers(0, 4, size=n) * 15) * MINUTE_US
    order = np.lexsort((barber, start))
    barber, day, start = barber[order], day[order], start[order]

    services = profile.services
    which = rng.choice(len(services), size=n, p=[s.weight for s in services])
    duration = np.array([s.duration_minutes for s in services])[which]
    price = cast.price_cents[barber, which]
    per_barber = profile.clients["per_barber"]
    ranks = np.arange(1, per_barber + 1, dtype=np.float64) ** -profile.clients["zipf_exponent"]
    cdf = np.cumsum(ranks) / ranks.sum()
    local = np.minimum(np.searchsorted(cdf, rng.random(n)), per_barber - 1)
    client = barber * per_barber + local
    walk_in = rng.random(n) < profile.clients["walk_in_share"]

    past = day < 0
    past_codes, past_p = _codes(APPOINTMENT_STATUSES, profile.past_status)
    future_codes, future_p = _codes(APPOINTMENT_STATUSES, profile.future_status)
    status = np.where(
        past, rng.choice(past_codes, size=n, p=past_p), rng.choice(future_codes, size=n, p=future_p)
    )

    shop = cast.barber_shop[barber]
    staff = rng.random(n) < profile.booking["staff_booked_share"]
    receptionist = cast.receptionist_user[shop]
    desk = np.where((receptionist > 0) & (rng.random(n) < 0.5), receptionist, cast.owner_user[shop])
    user = np.where(staff, desk, barber + 1)
    lead = (rng.exponential(cal["lead_time_days_mean"], size=n) * DAY_US).astype(
        np.int64
    ) + 60 * MINUTE_US
    created = np.minimum(start - lead, as_of_us - rng.integers(1, 24 * 60, size=n) * MINUTE_US)
    has_note = rng.random(n) < profile.booking["notes_share"]

    completed = past & (status == APPOINTMENT_STATUSES.index("completed"))
    visit = completed & ~walk_in
    tally.add(client[visit], price[visit], start[visit])
    ids = first_appointment_id + np.arange(n)
    appointments: dict[str, b.Fixed | b.Var] = {
        "id": b.int4(ids),
        "user_id": b.int4(user),
        "barber_id": b.int4(barber + 1),
        "service_id": b.int4(barber * len(services) + which + 1),
        "organization_id": b.int4(shop + 1),
        "start_time": b.timestamptz(start),
        "duration_minutes": b.int4(duration),
        "price": b.numeric(price, 2),
        "created_at": b.timestamptz(created),
        "client_id": b.nullable(b.int4(client + 1), walk_in),
        "status": b.pooled(_STATUS, status),
        "notes": b.pooled(pools.notes, rng.integers(0, len(pools.notes), size=n), ~has_note),
    }
    paid = np.flatnonzero(completed & (rng.random(n) < profile.payments["completed_share"]))
    return (appointments, n), (
        _payments(
            profile,
            rng,
            paid,
            ids,
            user,
            barber,
            price,
            start,
            duration,
            as_of_us,
            first_payment_id,
            cast.owner_user[shop],
        ),
        len(paid),
    )


def _payments(
    profile: Profile,
    rng: np.random.Generator,
    paid: np.ndarray,
    ids: np.ndarray,
    user: np.ndarray,
    barber: np.ndarray,
    price: np.ndarray,
    start: np.ndarray,
    duration: np.ndarray,
    as_of_us: int,
    first_id: int,
    owner: np.ndarray,
) -> dict[str, b.Fixed | b.Var]:
    m = len(paid)
    codes, p = _codes(PAYMENT_STATUSES, profile.payment_status)
    amount = price[paid]
    fee = np.rint(amount * profile.payments["platform_fee_rate"]).astype(np.int64)
    delay = (rng.exponential(profile.payments["delay_minutes_mean"], size=m) * MINUTE_US).astype(
        np.int64
    )
    created = np.minimum(start[paid] + duration[paid] * MINUTE_US + delay, as_of_us - 1)
    stripe = np.empty((m, 27), dtype=np.uint8)
    stripe[:, :3] = np.frombuffer(b"pi_", np.uint8)
    stripe[:, 3:] = _STRIPE_ALPHABET[rng.integers(0, len(_STRIPE_ALPHABET), size=(m, 24))]
    payer = user[paid]
    foreign = profile.payments["foreign_payer_share"]
    if foreign > 0:  # drawn only when asked for, so other profiles keep their random stream
        moved = rng.random(m) < foreign
        own = payer == barber[paid] + 1
        payer = np.where(moved, np.where(own, owner[paid], barber[paid] + 1), payer)
    return {
        "id": b.int4(first_id + np.arange(m)),
        "user_id": b.int4(payer),
        "appointment_id": b.int4(ids[paid]),
        "barber_id": b.int4(barber[paid] + 1),
        "amount": b.numeric(amount, 2),
        "platform_fee": b.numeric(fee, 2),
        "barber_amount": b.numeric(amount - fee, 2),
        "created_at": b.timestamptz(created),
        "stripe_payment_intent_id": b.fixed_text(stripe.view("S27").ravel()),
        "status": b.pooled(_PAYMENT_STATUS, rng.choice(codes, size=m, p=p)),
    }


def clients(
    profile: Profile,
    cast: Cast,
    tally: ClientTally,
    rng: np.random.Generator,
    pools: Pools,
    as_of_us: int,
) -> Iterator[Chunk]:
    """Client rows in id order, in chunks of CLIENT_CHUNK_ROWS; visit totals come from ``tally``."""
    total = len(tally.visits)
    history_us = profile.calendar["past_days"] * DAY_US
    for lo in range(0, total, CLIENT_CHUNK_ROWS):
        idx = np.arange(lo, min(lo + CLIENT_CHUNK_ROWS, total))
        n = len(idx)
        visits, last = tally.visits[idx], tally.last_us[idx]
        never = visits == 0
        joined = np.where(
            never, as_of_us - rng.integers(0, history_us, size=n), tally.first_us[idx]
        )
        joined = joined - (rng.exponential(30, size=n) * DAY_US).astype(np.int64)
        kind = np.select(
            [visits <= 1, last < as_of_us - AT_RISK_DAYS * DAY_US, visits >= VIP_VISITS],
            [0, 3, 2],
            1,
        )
        first = rng.integers(0, len(pools.first_names), size=n)
        surname = rng.integers(0, len(pools.last_names), size=n)
        domain = rng.integers(0, len(pools.domains), size=n)
        no_email = rng.random(n) >= profile.clients["email_share"]
        emails = [
            f"{pools.first_names[f]}.{pools.last_names[s]}.{i + 1}@{pools.domains[d]}".lower()
            for f, s, d, i in zip(
                first.tolist(), surname.tolist(), domain.tolist(), idx.tolist(), strict=True
            )
        ]
        first_pool, last_pool = b.TextPool.of(pools.first_names), b.TextPool.of(pools.last_names)
        yield (
            {
                "id": b.int4(idx + 1),
                "barber_id": b.int4(idx // profile.clients["per_barber"] + 1),
                "total_visits": b.int4(visits),
                "total_spent": b.numeric(tally.spent_cents[idx], 2),
                "created_at": b.timestamptz(joined),
                "first_name": b.pooled(first_pool, first),
                "last_name": b.pooled(last_pool, surname),
                "email": b.pooled(b.TextPool.of(emails), np.arange(n), no_email),
                "phone": b.pooled(pools.phones, rng.integers(0, len(pools.phones), size=n)),
                "customer_type": b.pooled(_CUSTOMER_TYPE, kind),
                "last_visit_date": b.nullable(b.timestamptz(last), never),
            },
            n,
        )
