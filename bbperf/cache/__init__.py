"""A result cache for the six-figure metrics on a Valkey server: lifecycle, read-through, invalidation."""

from bbperf.cache.server import CacheServer, CacheStatus, find_server_binary, server_available

__all__ = ["CacheServer", "CacheStatus", "find_server_binary", "server_available"]
