"""Connection pools, their monitor and health checks, and pools under load — one public face.

Modules: ``config`` (the per-environment PoolConfig and ``make_engine``), ``snapshot`` (pure
thresholds and verdicts), ``monitor`` (PoolMonitor: live counters), ``health`` (the BookedBarber
health document), ``http`` (the HTTP server for it), ``reach`` (which configs can connect to a
server), ``load`` (threads through a pool), ``costs``
(pre-ping and connection set-up priced; pool_size from a curve), ``story`` (what notebook 03 concludes).
Names are imported on first use so that ``bbperf.target`` (which needs only ``make_engine``) stays light.
"""

from __future__ import annotations

from bbperf.lazy import lazy_exports

_EXPORTS = {
    "ENVIRONMENTS": ".config",
    "PoolConfig": ".config",
    "pool_config": ".config",
    "make_engine": ".config",
    "describe": ".config",
    "Thresholds": ".snapshot",
    "DEFAULT_THRESHOLDS": ".snapshot",
    "Snapshot": ".snapshot",
    "evaluate": ".snapshot",
    "PoolMonitor": ".monitor",
    "health_basic": ".health",
    "health_detailed": ".health",
    "HealthServer": ".http",
    "make_server": ".http",
    "serve_in_thread": ".http",
    "WORKLOADS": ".load",
    "pool_load": ".load",
    "PoolReach": ".reach",
    "pool_reach": ".reach",
    "pool_costs": ".costs",
    "recommend_pool_size": ".costs",
    "PoolRecommendation": ".costs",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
