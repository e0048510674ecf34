"""The small tables, built whole: shops, their people (barbers, owners, receptionists) and services."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from bbperf.generate import binary as b
from bbperf.generate.fakes import SHOP_SUFFIXES, Pools
from bbperf.generate.profile import Profile

DAY_US = 86_400 * 1_000_000
Chunk = tuple[dict[str, b.Fixed | b.Var], int]


@dataclass
class Cast:
    """Who exists: array index i is barber i (user id i + 1), shop j has id j + 1."""

    barber_shop: np.ndarray
    barber_activity: np.ndarray
    owner_user: np.ndarray
    receptionist_user: np.ndarray
    price_cents: np.ndarray
    tables: dict[str, Chunk] = field(default_factory=dict)

    @property
    def n_barbers(self) -> int:
        return len(self.barber_shop)


def n_barbers(profile: Profile, scale: float) -> int:
    return max(1, round(profile.shops["barbers_per_scale"] * scale))


def _shop_sizes(rng: np.random.Generator, total: int, mean: float) -> np.ndarray:
    sizes = 1 + rng.poisson(max(mean - 1, 0), size=total)
    ends = np.cumsum(sizes)
    count = int(np.searchsorted(ends, total)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(ends[count - 1]) - total
    return sizes


def _text(values: list[str]) -> b.Var:
    return b.pooled(b.TextPool.of(values), np.arange(len(values)))


def build_cast(
    profile: Profile, scale: float, rng: np.random.Generator, pools: Pools, as_of_us: int
) -> Cast:
    """Shops, users, memberships and services for ``scale``; rows are in id order."""
    nb = n_barbers(profile, scale)
    shops = profile.shops
    sizes = _shop_sizes(rng, nb, shops["barbers_per_shop_mean"])
    n_shops = len(sizes)
    barber_shop = np.repeat(np.arange(n_shops), sizes)
    busy = rng.random(nb) < profile.activity["busy_barber_share"]
    activity = np.where(busy, profile.activity["busy_barber_multiplier"], 1.0)
    has_receptionist = (rng.random(n_shops) < shops["receptionist_share"]) & (sizes >= 2)
    owner_user = nb + 1 + np.arange(n_shops)
    receptionist_user = np.full(n_shops, -1)
    receptionist_user[has_receptionist] = nb + n_shops + 1 + np.arange(int(has_receptionist.sum()))
    lo, hi = shops["price_multiplier"]
    multiplier = rng.uniform(lo, hi, size=nb)
    base = np.array([s.price for s in profile.services])
    price_cents = (np.rint(base[None, :] * multiplier[:, None]) * 100).astype(np.int64)
    cast = Cast(barber_shop, activity, owner_user, receptionist_user, price_cents)
    history_start = as_of_us - profile.calendar["past_days"] * DAY_US
    cast.tables["organizations"] = _organizations(rng, pools, sizes, history_start)
    cast.tables["users"] = _users(rng, pools, cast, sizes, history_start)
    cast.tables["user_organizations"] = _memberships(
        rng, cast, n_shops, shops["second_shop_share"], history_start
    )
    cast.tables["services"] = _services(profile, cast)
    return cast


def _organizations(
    rng: np.random.Generator, pools: Pools, sizes: np.ndarray, before_us: int
) -> Chunk:
    n = len(sizes)
    last = rng.integers(0, len(pools.last_names), size=n)
    suffix = rng.integers(0, len(SHOP_SUFFIXES), size=n)
    names = [
        f"{pools.last_names[i]} {SHOP_SUFFIXES[j]}"
        for i, j in zip(last.tolist(), suffix.tolist(), strict=True)
    ]
    slugs = [
        f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}-{k + 1}"
        for k, name in enumerate(names)
    ]
    plan = np.select([sizes == 1, sizes <= 4, sizes <= 9], [0, 1, 2], 3)
    return {
        "id": b.int4(np.arange(1, n + 1)),
        "chairs_count": b.int4(sizes + rng.integers(0, 3, size=n)),
        "is_active": b.boolean(np.ones(n, dtype=np.uint8)),
        "created_at": b.timestamptz(before_us - rng.integers(30, 1500, size=n) * DAY_US),
        "name": _text(names),
        "slug": _text(slugs),
        "timezone": b.pooled(pools.timezones, rng.integers(0, len(pools.timezones), size=n)),
        "billing_plan": b.pooled(
            b.TextPool.of(("individual", "studio", "salon", "enterprise")), plan
        ),
    }, n


def _users(
    rng: np.random.Generator, pools: Pools, cast: Cast, sizes: np.ndarray, before_us: int
) -> Chunk:
    nb, n_shops = cast.n_barbers, len(sizes)
    n_rec = int((cast.receptionist_user > 0).sum())
    n = nb + n_shops + n_rec
    kind = np.concatenate([np.zeros(nb, int), np.ones(n_shops, int), np.full(n_rec, 2)])
    solo = np.concatenate([sizes[cast.barber_shop] == 1, np.zeros(n_shops + n_rec, bool)])
    first = rng.integers(0, len(pools.first_names), size=n)
    last = rng.integers(0, len(pools.last_names), size=n)
    domain = rng.integers(0, len(pools.domains), size=n)
    names, emails = [], []
    for k, (f, ln, d) in enumerate(
        zip(first.tolist(), last.tolist(), domain.tolist(), strict=True)
    ):
        fn, lnn = pools.first_names[f], pools.last_names[ln]
        names.append(f"{fn} {lnn}")
        emails.append(f"{fn}.{lnn}{k + 1}@{pools.domains[d]}".lower())
    roles = b.TextPool.of(("barber", "admin", "user"))
    unified = b.TextPool.of(("barber", "shop_owner", "receptionist", "individual_barber"))
    return {
        "id": b.int4(np.arange(1, n + 1)),
        "is_active": b.boolean((rng.random(n) < 0.98).astype(np.uint8)),
        "commission_rate": b.numeric(np.where(kind == 0, 2000, 0), 4),
        "created_at": b.timestamptz(before_us - rng.integers(1, 1000, size=n) * DAY_US),
        "email": _text(emails),
        "name": _text(names),
        "phone": b.pooled(pools.phones, rng.integers(0, len(pools.phones), size=n)),
        "role": b.pooled(roles, kind),
        "unified_role": b.pooled(unified, np.where(solo, 3, kind)),
    }, n


def _memberships(
    rng: np.random.Generator, cast: Cast, n_shops: int, second_share: float, before_us: int
) -> Chunk:
    nb = cast.n_barbers
    has_rec = cast.receptionist_user > 0
    user = np.concatenate([np.arange(1, nb + 1), cast.owner_user, cast.receptionist_user[has_rec]])
    shop = np.concatenate([cast.barber_shop, np.arange(n_shops), np.flatnonzero(has_rec)])
    role = np.concatenate([np.full(nb, 2), np.zeros(n_shops, int), np.full(int(has_rec.sum()), 3)])
    primary = np.ones(len(user), dtype=np.uint8)
    second = np.flatnonzero(rng.random(nb) < second_share) if n_shops > 1 else np.array([], int)
    # any shop but the primary one
    other = (
        cast.barber_shop[second] + rng.integers(1, max(n_shops, 2), size=len(second))
    ) % n_shops
    user = np.concatenate([user, second + 1])
    shop = np.concatenate([shop, other])
    role = np.concatenate([role, np.full(len(second), 2)])
    primary = np.concatenate([primary, np.zeros(len(second), dtype=np.uint8)])
    order = np.lexsort((shop, user))
    n = len(user)
    return {
        "id": b.int4(np.arange(1, n + 1)),
        "user_id": b.int4(user[order]),
        "organization_id": b.int4(shop[order] + 1),
        "is_primary": b.boolean(primary[order]),
        "created_at": b.timestamptz(before_us - rng.integers(1, 700, size=n) * DAY_US),
        "role": b.pooled(
            b.TextPool.of(("owner", "manager", "barber", "receptionist", "viewer")), role[order]
        ),
    }, n


def _services(profile: Profile, cast: Cast) -> Chunk:
    ns, nb = len(profile.services), cast.n_barbers
    n = ns * nb
    names = b.TextPool.of([s.name for s in profile.services])
    categories = b.TextPool.of([s.category for s in profile.services])
    which = np.tile(np.arange(ns), nb)
    return {
        "id": b.int4(np.arange(1, n + 1)),
        "base_price": b.numeric(cast.price_cents.ravel(), 2),
        "duration_minutes": b.int4(np.array([s.duration_minutes for s in profile.services])[which]),
        "is_active": b.boolean(np.ones(n, dtype=np.uint8)),
        "barber_id": b.int4(np.repeat(np.arange(1, nb + 1), ns)),
        "name": b.pooled(names, which),
        "category": b.pooled(categories, which),
    }, n
