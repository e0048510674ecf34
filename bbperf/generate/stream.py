"""The load's chunks, generated, encoded and fingerprinted ahead of the COPY: in a background thread
(``jobs=1``) or in worker processes (``jobs>1``, ``bbperf.generate.workers``, which hands them out),
delivered in the same order with the same bytes.

Bookings come in (week, barber block) pairs of appointments and payments, each pair from its own
random stream. Their ids depend on how many rows came before, so a worker generates a pair with ids
from 1, reports its counts, and shifts the ids once the coordinator has summed the counts of the
pairs before it. Each worker tallies client visits in its own scratch file; the tallies are merged
before the clients (one random stream, generated in order) are made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from bbperf.generate import binary as b
from bbperf.generate.bookings import (
    BARBER_BLOCK,
    block_count,
    bookings,
    clients,
    week_count,
)
from bbperf.generate.cast import Cast, Chunk, build_cast, n_barbers
from bbperf.generate.fakes import Pools, build_pools
from bbperf.generate.fingerprint import FINGERPRINT_COLUMNS
from bbperf.generate.profile import Profile
from bbperf.generate.rowhash import checksum
from bbperf.generate.tally import ClientTally

# Random streams: one per purpose, and one per (week, barber block) of bookings.
_CAST, _CLIENTS, _BOOKINGS = 1, 2, 3
SMALL_TABLES = ("organizations", "users", "user_organizations", "services")
AHEAD_PER_WORKER = 2  # pairs a worker may be given ahead of the one the COPY takes
PAYLOAD_ROWS = 16_384  # rows per COPY payload
# A chunk's number within its table: (pair or clients part) << PART_BITS | payload within it.
PART_BITS = 8


@dataclass(frozen=True)
class Sink:
    """Where a resumable load's chunks go: a libpq connection string (it may hold a password: never
    printed), bbperf's schema and the load key."""

    dsn: str
    schema: str
    key: str


@dataclass(frozen=True)
class GenerationPlan:
    """What to generate; ``scratch`` is where the client tally's files go (None: the system's).

    A resumable load adds ``done``, the (table, chunk) pairs already committed (generated for their
    ids and tally, never encoded or sent), and ``sink``, where workers COPY their own chunks.
    ``home`` is the BBPERF_HOME whose server is loaded, when bbperf owns it: its worker processes
    carry it so that ``bbperf db stop`` finds any that outlive their coordinator."""

    profile: Profile
    scale: float
    seed: int
    as_of: date
    scratch: Path | None = None
    done: frozenset[tuple[str, int]] = frozenset()
    sink: Sink | None = None
    home: Path | None = None

    @property
    def as_of_us(self) -> int:
        midnight = datetime(self.as_of.year, self.as_of.month, self.as_of.day, tzinfo=UTC)
        return int(midnight.timestamp()) * 1_000_000

    def pairs(self) -> int:
        return week_count(self.profile) * self.blocks()

    def blocks(self) -> int:
        return -(-n_barbers(self.profile, self.scale) // BARBER_BLOCK)


@dataclass
class Encoded:
    """One chunk ready for COPY: its rows' binary payload and their part of the table's checksum.
    ``seconds`` is client time spent on it: generate, encode, fingerprint. ``chunk`` numbers it
    within its table, the same in every run; ``skipped`` (a resumed load had it already: no payload)
    and ``committed`` (a worker COPYed it on its own connection) are for resumable loads."""

    table: str
    columns: str
    payload: bytes
    rows: int
    checksum: int
    last: bool
    seconds: dict[str, float] = field(default_factory=dict)
    chunk: int = 0
    skipped: bool = False
    committed: bool = False


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _encoded(
    table: str,
    columns: b.Columns,
    n: int,
    last: bool,
    generate_s: float,
    base: int = 0,
    done: frozenset[tuple[str, int]] = frozenset(),
) -> Iterator[Encoded]:
    """The rows as COPY payloads of at most PAYLOAD_ROWS rows each, encoded and fingerprinted only
    when asked for: what waits in the queue stays small whatever the chunk's size. Chunks numbered
    from ``base``; those in ``done`` come out empty and ``skipped``."""
    for lo in range(0, max(n, 1), PAYLOAD_ROWS):
        rows = slice(lo, min(lo + PAYLOAD_ROWS, n))
        size, number = rows.stop - rows.start, base + lo // PAYLOAD_ROWS
        if lo // PAYLOAD_ROWS >= 1 << PART_BITS:  # a pair is ~56,000 rows at most: 4 payloads
            raise ValueError(f"{n:,} rows do not fit the chunk numbering of one {table} part")
        final = last and rows.stop >= n
        if (table, number) in done:
            gen_s = {"generate": generate_s if lo == 0 else 0.0}
            yield Encoded(table, "", b"", size, 0, final, gen_s, number, skipped=True)
            continue
        part = b.take(columns, rows)
        started = time.perf_counter()
        order, payload = b.encode(part, size)
        encoded = time.perf_counter()
        total = checksum(part, FINGERPRINT_COLUMNS[table], size)
        seconds = {
            "generate": generate_s if lo == 0 else 0.0,
            "encode": encoded - started,
            "fingerprint": time.perf_counter() - encoded,
        }
        yield Encoded(table, ", ".join(order), payload, size, total, final, seconds, number)


def _shift(columns: b.Columns, name: str, by: int) -> None:
    column = columns[name]
    assert isinstance(column, b.Fixed)
    columns[name] = b.int4(column.values + by)


class _Generator:
    """One process's generator: the cast and fake pools (rebuilt, identically, in every worker)."""

    def __init__(
        self, plan: GenerationPlan, tally: ClientTally, made: tuple[Pools, Cast] | None = None
    ) -> None:
        """``made``: the pools and cast another generator of the same plan built (a worker gets the
        coordinator's: no Faker to import, nothing to draw again)."""
        self.plan = plan
        if made is None:
            pools = build_pools(plan.seed)
            cast = build_cast(
                plan.profile, plan.scale, _rng(plan.seed, _CAST), pools, plan.as_of_us
            )
            made = pools, cast
        self.pools: Pools = made[0]
        self.cast: Cast = made[1]
        self.tally = tally
        self.weekday = plan.as_of.weekday()

    def small_tables(self) -> Iterator[Encoded]:
        for table in SMALL_TABLES:
            columns, n = self.cast.tables[table]
            yield from _encoded(table, columns, n, True, 0.0, 0, self.plan.done)

    def pair(self, k: int, first_appointment: int, first_payment: int) -> tuple[Chunk, Chunk]:
        week, block = divmod(k, block_count(self.cast))
        return bookings(
            self.plan.profile,
            self.cast,
            week,
            block,
            _rng(self.plan.seed, _BOOKINGS, week, block),
            self.plan.as_of_us,
            self.weekday,
            first_appointment,
            first_payment,
            self.tally,
            self.pools,
        )

    def clients(self) -> Iterator[Encoded]:
        plan = self.plan
        rows = clients(
            plan.profile,
            self.cast,
            self.tally,
            _rng(plan.seed, _CLIENTS),
            self.pools,
            plan.as_of_us,
        )
        done, index = 0, 0
        while True:
            started = time.perf_counter()
            part = next(rows, None)
            if part is None:
                return
            columns, n = part
            done += n
            spent = time.perf_counter() - started
            base = index << PART_BITS
            yield from _encoded("clients", columns, n, done >= self.tally.n, spent, base, plan.done)
            index += 1


def in_order(plan: GenerationPlan, tally: ClientTally) -> Iterator[Encoded]:
    """Every chunk, generated in this process."""
    gen = _Generator(plan, tally)
    yield from gen.small_tables()
    next_a, next_p, pairs = 1, 1, plan.pairs()
    for k in range(pairs):
        started = time.perf_counter()
        (appts, n_a), (pays, n_p) = gen.pair(k, next_a, next_p)
        spent = time.perf_counter() - started
        next_a, next_p = next_a + n_a, next_p + n_p
        last, base = k == pairs - 1, k << PART_BITS
        yield from _encoded("appointments", appts, n_a, last, spent, base, plan.done)
        del appts  # not alive while the payments are encoded or the next pair is generated
        yield from _encoded("payments", pays, n_p, last, 0.0, base, plan.done)
        del pays
    yield from gen.clients()


def peak_rss_mb() -> float:
    """This process's own peak resident memory (MB) since it started: ``VmHWM``. ``ru_maxrss``
    would be the fallback only, as Linux carries it across execve, so a worker spawned from the
    coordinator would report the coordinator's peak at that moment as its own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
