"""A result cache for the six-figure metrics on a Valkey server: lifecycle, read-through, invalidation."""

from bbperf.cache.readthrough import cached_metrics, open_cache, read_through
from bbperf.cache.server import (
    CacheServer,
    CacheStatus,
    find_server_binary,
    running_server,
    server_available,
)
from bbperf.cache.store import POLICIES, CachePolicy, MetricsCache

__all__ = [
    "POLICIES",
    "CachePolicy",
    "CacheServer",
    "CacheStatus",
    "MetricsCache",
    "cached_metrics",
    "find_server_binary",
    "open_cache",
    "read_through",
    "running_server",
    "server_available",
]
