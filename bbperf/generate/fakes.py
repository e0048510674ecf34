"""Pools of fake names, words and phone numbers: Faker is seeded once and called a few thousand
times; rows then sample the pools with numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bbperf.generate.binary import TextPool

POOL_SIZE = 1000
TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Phoenix",
)
SHOP_SUFFIXES = (
    "Barbers",
    "Barber Shop",
    "Cuts",
    "Grooming",
    "Barber Co.",
    "Fades",
    "Studio",
    "Salon",
)
NOTES = (
    "Prefers scissors over clippers",
    "Running 10 minutes late",
    "First visit, referred by a friend",
    "Sensitive skin: no alcohol products",
    "Wants the same as last time",
    "Bring reference photo",
    "Kid's cut",
    "Rescheduled from last week",
)


@dataclass(frozen=True)
class Pools:
    """Fake values every generator samples from (index with numpy, never call Faker per row)."""

    first_names: list[str]
    last_names: list[str]
    domains: list[str]
    phones: TextPool
    notes: TextPool
    timezones: TextPool


def build_pools(seed: int, size: int = POOL_SIZE) -> Pools:
    """Pools for ``seed``; the same seed and Faker version always give the same pools."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    first = [fake.first_name() for _ in range(size)]
    last = [fake.last_name() for _ in range(size)]
    domains = [fake.free_email_domain() for _ in range(20)]
    rng = np.random.Generator(np.random.PCG64(seed))
    area = rng.integers(201, 990, size=size)
    line = rng.integers(0, 10_000, size=size)
    phones = [f"+1-{a}-555-{n:04d}" for a, n in zip(area.tolist(), line.tolist(), strict=True)]
    return Pools(
        first, last, domains, TextPool.of(phones), TextPool.of(NOTES), TextPool.of(TIMEZONES)
    )
