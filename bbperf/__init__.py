"""bbperf: a PostgreSQL performance workbench for the BookedBarber schema.

The public API is re-exported here and imported on first use, so ``import bbperf`` (and every CLI
command) stays fast: pandas, numpy and scipy load only when an analysis needs them. ``generate`` and
``explain`` are subpackages (``from bbperf.explain import explain``), so they are not re-exported as
functions: a submodule import would shadow them.
"""

from __future__ import annotations

from bbperf.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # foundation
    "BbperfError": "bbperf.errors",
    "Settings": "bbperf.config",
    "load_settings": "bbperf.config",
    "EmbeddedServer": "bbperf.embedded",
    "PoolConfig": "bbperf.pool",
    "make_engine": "bbperf.pool",
    "pool_config": "bbperf.pool",
    "connect": "bbperf.target",
    "resolve_url": "bbperf.target",
    "build_metadata": "bbperf.schema",
    "create_schema": "bbperf.schema",
    "drop_schema": "bbperf.schema",
    "schema_status": "bbperf.schema",
    "Results": "bbperf.results",
    # data
    "ensure_dataset": "bbperf.generate",
    "dataset_info": "bbperf.generate",
    "DatasetInfo": "bbperf.generate",
    "load_profile": "bbperf.generate",
    # EXPLAIN and statistics
    "measure": "bbperf.explain",
    "compare": "bbperf.explain",
    "diff": "bbperf.explain",
    "advise": "bbperf.explain",
    "verify": "bbperf.explain",
    "slow_queries": "bbperf.explain",
    "missing_index_hints": "bbperf.explain",
    "measure_query_time": "bbperf.explain",
    "load_ipython_extension": "bbperf.explain.magics",
    # indexes and workloads
    "IndexSet": "bbperf.indexes",
    "IndexDef": "bbperf.indexes",
    "load_set": "bbperf.indexes",
    # the CTE rewrite
    "six_figure_metrics": "bbperf.metrics",
    "derive": "bbperf.metrics",
    "RawMetrics": "bbperf.metrics",
    "SixFigureMetrics": "bbperf.metrics",
    "drift": "bbperf.metrics.drift",
    # pools under load and health
    "PoolMonitor": "bbperf.pool",
    "Thresholds": "bbperf.pool",
    "health_detailed": "bbperf.pool",
    "make_server": "bbperf.pool",
    "pool_load": "bbperf.pool",
    "pool_costs": "bbperf.pool",
    "recommend_pool_size": "bbperf.pool",
    # a read replica and PgBouncer
    "EmbeddedReplica": "bbperf.topology.replica",
    "PgBouncer": "bbperf.topology.pgbouncer",
    "read_replica_experiment": "bbperf.topology.experiments",
    "pgbouncer_experiment": "bbperf.topology.experiments",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
