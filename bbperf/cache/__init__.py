"""A result cache for the six-figure metrics on a Valkey server: lifecycle, read-through, invalidation.

Modules: ``server`` (the Valkey server's lifecycle), ``daemons`` (which of the cache's processes
run, stopping them), ``store`` (policies and the cache itself), ``readthrough``, ``invalidation``
(triggers and the LISTEN thread), ``listener`` (that thread as a background process), ``cacherun``
(notebook 08's experiment), ``analysis`` (pure figures), ``cachestory`` (its verdict). Names are
imported on first use, so importing the package stays light.
"""

from bbperf.lazy import lazy_exports

_EXPORTS = {
    "cached_metrics": ".readthrough",
    "open_cache": ".readthrough",
    "read_through": ".readthrough",
    "CacheServer": ".server",
    "CacheStatus": ".server",
    "find_server_binary": ".server",
    "running_server": ".server",
    "server_available": ".server",
    "stop_cache": ".daemons",
    "POLICIES": ".store",
    "CachePolicy": ".store",
    "MetricsCache": ".store",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
