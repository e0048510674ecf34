"""Reading the six-figure metrics through the cache: a hit costs one Valkey round trip, a miss the
source variant's SQL (``before``, the figures the other variants are judged against) plus the fill."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from bbperf.cache.invalidation import listener_connected, triggers_installed
from bbperf.cache.server import CacheServer
from bbperf.cache.store import CachePolicy, MetricsCache, namespace
from bbperf.errors import CacheError
from bbperf.metrics.model import DEFAULT_TARGET, RawMetrics, SixFigureMetrics, derive
from bbperf.metrics.queries import check_barber, check_variant, fetch_raw, resolve_as_of

DEFAULT_SOURCE = "before"


def open_cache(engine: Engine, server: CacheServer, policy: CachePolicy) -> MetricsCache:
    """The metrics cache of ``engine``'s database and schema on a running ``server``."""
    if not server.running:
        raise CacheError(
            f"the cache server in {server.directory} is not running: run `bbperf cache start`"
        )
    return MetricsCache(server.client(), namespace(engine), policy)


def read_through(
    engine: Engine,
    cache: MetricsCache,
    user_id: int,
    as_of: datetime,
    source: str = DEFAULT_SOURCE,
) -> tuple[RawMetrics, bool]:
    """(figures, hit): the cached entry, or ``source``'s figures, filled unless invalidated meanwhile."""
    found = cache.lookup(user_id, as_of)
    if found.raw is not None:
        return found.raw, True
    raw = fetch_raw(engine, user_id, as_of, check_variant(source))
    cache.fill(user_id, as_of, raw, found.token)
    return raw, False


def cached_metrics(
    engine: Engine,
    home: Path,
    user_id: int,
    policy: str = "ttl",
    target_annual: Decimal | int | str = DEFAULT_TARGET,
    as_of: str | date | datetime | None = None,
    ttl_s: float | None = None,
) -> tuple[SixFigureMetrics, bool]:
    """One barber's metrics through the cache server under ``home`` — (metrics, hit).

    ``policy`` is ``ttl`` (entries expire ``ttl_s`` seconds after the fill, default 30) or
    ``invalidate`` (entries live until the database says the barber changed; needs the triggers
    and a listener: ``bbperf cache start --listen``).
    """
    chosen = CachePolicy.of(policy, ttl_s)
    check_barber(engine, user_id)
    if chosen.name == "invalidate" and not (
        triggers_installed(engine) and listener_connected(engine)
    ):
        raise CacheError(
            "the invalidate policy needs the triggers and a running listener on this database: "
            "run `bbperf cache start --listen`"
        )
    when = resolve_as_of(engine, as_of)
    cache = open_cache(engine, CacheServer(home), chosen)
    try:
        raw, hit = read_through(engine, cache, user_id, when)
    finally:
        cache.client.close()
    return derive(raw, target_annual), hit
