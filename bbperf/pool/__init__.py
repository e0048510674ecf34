"""Connection pools, their monitor and health checks, and pools under load — one public face.

Modules: ``describe`` (``bbperf pool show``'s description of a PoolConfig), ``snapshot`` (pure
thresholds and verdicts), ``monitor`` (PoolMonitor: live counters), ``health`` (the BookedBarber
health document), ``http`` (the HTTP server for it), ``reach`` (which configs can connect to a
server), ``loadtest`` (threads through a pool; through PgBouncer: ``bbperf.topology.bouncerload``), ``costs``
(pre-ping and connection set-up priced; pool_size from a curve), ``poolstory`` (what notebook 03 concludes).
The per-environment settings (``PoolConfig``) are core (``bbperf.poolconfig``), and so is making an
engine from them (``bbperf.target.make_engine``): the pool package configures, it does not build.
Names are imported on first use, so importing the package stays light.
"""

from __future__ import annotations

from bbperf.lazy import lazy_exports

_EXPORTS = {
    "ENVIRONMENTS": "bbperf.poolconfig",
    "PoolConfig": "bbperf.poolconfig",
    "pool_config": "bbperf.poolconfig",
    "make_engine": "bbperf.target",
    "describe": ".describe",
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
    "WORKLOADS": ".loadtest",
    "pool_load": ".loadtest",
    "PoolReach": ".reach",
    "pool_reach": ".reach",
    "pool_costs": ".costs",
    "recommend_pool_size": ".costs",
    "PoolRecommendation": ".costs",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
