"""The big tables, generated a week at a time: appointments with their payments, then clients with
visit totals tallied from the appointments (so client rows are consistent with the bookings)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from bbperf.generate import binary as b
from bbperf.generate.cast import DAY_US, Cast, Chunk
from bbperf.generate.fakes import Pools
from bbperf.generate.profile import Profile
from bbperf.generate.tally import ClientTally
from bbperf.schema import APPOINTMENT_STATUSES, CUSTOMER_TYPES, PAYMENT_STATUSES

WEEK_DAYS = 7
BARBER_BLOCK = 1024
CLIENT_CHUNK_ROWS = 100_000  # rows per draw from the clients' random stream (fixes the data)
CLIENT_PART_ROWS = 16_384  # rows per yielded part
STRIPE_ROWS = 8192  # payments whose Stripe ids are drawn at once
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
    BARBER_BLOCK barbers: chunks stay the same size however large the scale.

    Each draw is kept only as long as it is needed and in the narrowest type that holds it (the
    random stream, and so every value, is unchanged): what a pair holds grows with the block."""
    barber, past, start = _slots(profile, cast, week, block, rng, as_of_us, as_of_weekday)
    n = len(barber)
    services = profile.services
    which = rng.choice(len(services), size=n, p=[s.weight for s in services])
    duration = np.array([s.duration_minutes for s in services], dtype=np.int32)[which]
    price = cast.price_cents[barber, which]
    service = (barber * len(services) + which + 1).astype(np.int32)
    del which
    client = _clients(profile, rng, barber, n)
    walk_in = rng.random(n) < profile.clients["walk_in_share"]
    status = _status(profile, rng, past, n)
    shop = cast.barber_shop[barber].astype(np.int32)
    user = _booked_by(profile, rng, cast, barber, shop, n)
    created = _created(profile.calendar, rng, start, as_of_us, n)
    has_note = rng.random(n) < profile.booking["notes_share"]

    completed = past & (status == APPOINTMENT_STATUSES.index("completed"))
    del past
    visit = completed & ~walk_in
    tally.add(client[visit], price[visit], start[visit])
    del visit
    ids = first_appointment_id + np.arange(n, dtype=np.int32)
    appointments: dict[str, b.Fixed | b.Var] = {
        "id": b.int4(ids),
        "user_id": b.int4(user),
        "barber_id": b.int4(barber + 1),
        "service_id": b.int4(service),
        "organization_id": b.int4(shop + 1),
        "start_time": b.timestamptz(start),
        "duration_minutes": b.int4(duration),
        "price": b.numeric(price, 2),
        "created_at": b.timestamptz(created),
        "client_id": b.nullable(b.int4(client + 1), walk_in),
        "status": b.pooled(_STATUS, status),
        "notes": b.pooled(
            pools.notes, rng.integers(0, len(pools.notes), size=n).astype(np.int16), ~has_note
        ),
    }
    del service, client, walk_in, status, created, has_note
    paid = np.flatnonzero(completed & (rng.random(n) < profile.payments["completed_share"]))
    del completed
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
            cast.owner_user[cast.barber_shop[barber[paid]]],
        ),
        len(paid),
    )


def _slots(
    profile: Profile,
    cast: Cast,
    week: int,
    block: int,
    rng: np.random.Generator,
    as_of_us: int,
    as_of_weekday: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The week's bookings of the block's barbers in start order: (barber index, in the past,
    start in Unix microseconds)."""
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
    del hours
    order = np.lexsort((barber, start))
    return barber[order], day[order] < 0, start[order]


def _clients(profile: Profile, rng: np.random.Generator, barber: np.ndarray, n: int) -> np.ndarray:
    """Each booking's client index: a Zipf-like pick among its barber's own clients."""
    per_barber = profile.clients["per_barber"]
    ranks = np.arange(1, per_barber + 1, dtype=np.float64) ** -profile.clients["zipf_exponent"]
    cdf = np.cumsum(ranks) / ranks.sum()
    local = np.minimum(np.searchsorted(cdf, rng.random(n)), per_barber - 1)
    return barber * per_barber + local


def _status(profile: Profile, rng: np.random.Generator, past: np.ndarray, n: int) -> np.ndarray:
    """Status codes: drawn from the past shares and from the future shares, picked by ``past``."""
    past_codes, past_p = _codes(APPOINTMENT_STATUSES, profile.past_status)
    future_codes, future_p = _codes(APPOINTMENT_STATUSES, profile.future_status)
    status = rng.choice(past_codes, size=n, p=past_p).astype(np.int8)
    future = rng.choice(future_codes, size=n, p=future_p).astype(np.int8)
    np.copyto(status, future, where=~past)
    return status


def _booked_by(
    profile: Profile,
    rng: np.random.Generator,
    cast: Cast,
    barber: np.ndarray,
    shop: np.ndarray,
    n: int,
) -> np.ndarray:
    """The user who booked: the shop's desk (its receptionist half the time when it has one, else
    its owner) for the staff-booked share, the barber for the rest."""
    staff = rng.random(n) < profile.booking["staff_booked_share"]
    receptionist = cast.receptionist_user[shop]
    desk = np.where((receptionist > 0) & (rng.random(n) < 0.5), receptionist, cast.owner_user[shop])
    return np.where(staff, desk, barber + 1).astype(np.int32)


def _created(
    cal: dict[str, Any], rng: np.random.Generator, start: np.ndarray, as_of_us: int, n: int
) -> np.ndarray:
    """When each booking was made: a lead time before its start, and never after the as-of day."""
    lead = (rng.exponential(cal["lead_time_days_mean"], size=n) * DAY_US).astype(
        np.int64
    ) + 60 * MINUTE_US
    return np.minimum(start - lead, as_of_us - rng.integers(1, 24 * 60, size=n) * MINUTE_US)


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
    """The payments of the ``paid`` bookings; ``owner`` is the owner of each one's shop."""
    m = len(paid)
    codes, p = _codes(PAYMENT_STATUSES, profile.payment_status)
    amount = price[paid]
    fee = np.rint(amount * profile.payments["platform_fee_rate"]).astype(np.int64)
    delay = (rng.exponential(profile.payments["delay_minutes_mean"], size=m) * MINUTE_US).astype(
        np.int64
    )
    created = np.minimum(
        start[paid] + duration[paid].astype(np.int64) * MINUTE_US + delay, as_of_us - 1
    )
    stripe = np.empty((m, 27), dtype=np.uint8)
    stripe[:, :3] = np.frombuffer(b"pi_", np.uint8)
    # Drawn STRIPE_ROWS rows at a time: 8 bytes a character are then alive for a slice, not for every
    # payment of the pair. The values are the same as one draw: below 2^32 each comes from PCG64's
    # 32-bit outputs, whose leftover half-word the generator keeps between calls.
    for lo in range(0, m, STRIPE_ROWS):
        rows = slice(lo, min(lo + STRIPE_ROWS, m))
        size = (rows.stop - rows.start, 24)
        stripe[rows, 3:] = _STRIPE_ALPHABET[rng.integers(0, len(_STRIPE_ALPHABET), size=size)]
    payer = user[paid]
    foreign = profile.payments["foreign_payer_share"]
    if foreign > 0:  # drawn only when asked for, so other profiles keep their random stream
        moved = rng.random(m) < foreign
        own = payer == barber[paid] + 1
        payer = np.where(moved, np.where(own, owner, barber[paid] + 1), payer)
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
    """Client rows in id order, in parts of at most CLIENT_PART_ROWS; visit totals come from
    ``tally``."""
    total = tally.n
    history_us = profile.calendar["past_days"] * DAY_US
    for lo in range(0, total, CLIENT_CHUNK_ROWS):
        idx = np.arange(lo, min(lo + CLIENT_CHUNK_ROWS, total))
        n = len(idx)
        visits, spent, first_visit, last = tally.rows(lo, lo + n)
        never = visits == 0
        joined = np.where(never, as_of_us - rng.integers(0, history_us, size=n), first_visit)
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
        phone = rng.integers(0, len(pools.phones), size=n)
        first_pool, last_pool = b.TextPool.of(pools.first_names), b.TextPool.of(pools.last_names)
        # Rows go out CLIENT_PART_ROWS at a time: the e-mail strings are the one per-row Python
        # object, and 100,000 of them at once (with their encoded and quoted copies) cost ~60 MB.
        for a in range(0, n, CLIENT_PART_ROWS):
            part = slice(a, min(a + CLIENT_PART_ROWS, n))
            ids = idx[part]
            emails = [
                f"{pools.first_names[f]}.{pools.last_names[s]}.{i + 1}@{pools.domains[d]}".lower()
                for f, s, d, i in zip(
                    first[part].tolist(),
                    surname[part].tolist(),
                    domain[part].tolist(),
                    ids.tolist(),
                    strict=True,
                )
            ]
            yield (
                {
                    "id": b.int4(ids + 1),
                    "barber_id": b.int4(ids // profile.clients["per_barber"] + 1),
                    "total_visits": b.int4(visits[part]),
                    "total_spent": b.numeric(spent[part], 2),
                    "created_at": b.timestamptz(joined[part]),
                    "first_name": b.pooled(first_pool, first[part]),
                    "last_name": b.pooled(last_pool, surname[part]),
                    "email": b.pooled(b.TextPool.of(emails), np.arange(len(ids)), no_email[part]),
                    "phone": b.pooled(pools.phones, phone[part]),
                    "customer_type": b.pooled(_CUSTOMER_TYPE, kind[part]),
                    "last_visit_date": b.nullable(b.timestamptz(last[part]), never[part]),
                },
                len(ids),
            )
