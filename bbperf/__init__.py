"""bbperf: a PostgreSQL performance workbench for the BookedBarber schema.

The front door: what an analyst calls from a notebook, ``from bbperf import connect, ensure_dataset,
Results, show_table, ...``, grouped by the notebook's feature. Each name is imported on first use,
so ``import bbperf`` (and every CLI command) stays fast: pandas, numpy and scipy load only when an
analysis needs them. A few names say which feature they belong to (``index_conclusion``,
``capture_workload``, ``apply_set``) where the defining module's own name would be ambiguous here.
Subpackages (``bbperf.partition``, ``bbperf.maintenance``) import as modules, so no export takes
a subpackage's name. ``ensure_dataset`` registers every load guard first (``bbperf.leftovers``):
a notebook's load refuses under an experiment's objects as the CLI's and the report's do.
"""

from __future__ import annotations

from bbperf.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # a target, a dataset, results
    "connect": "bbperf.target",
    "is_embedded": "bbperf.target",
    "schema_of": "bbperf.target",
    "load_settings": "bbperf.config",
    "EmbeddedServer": "bbperf.embedded",
    "SchemaError": "bbperf.errors",
    "as_of_datetime": "bbperf.asof",
    "ensure_dataset": "bbperf.generate",
    "Results": "bbperf.results",
    "show_table": "bbperf.report.pages",
    "flatten": "bbperf.report.pages",
    "format_value": "bbperf.humanize",
    # EXPLAIN, statistics and advice; ``%load_ext bbperf`` finds the magics here
    "explain_overhead": "bbperf.explain",
    "advise": "bbperf.explain",
    "slow_queries": "bbperf.explain",
    "missing_index_hints": "bbperf.explain",
    "load_ipython_extension": "bbperf.explain.magics",
    # index sets and their benchmark (notebook 01)
    "load_set": "bbperf.indexes",
    "apply_set": "bbperf.indexes:apply",
    "drop_set": "bbperf.indexes:drop",
    "validate_set": "bbperf.indexes:validate",
    "run_benchmark": "bbperf.indexes.index_set_timing",
    "composite_results": "bbperf.indexes.index_set_timing",
    "median_speedup_ci": "bbperf.indexes.index_set_timing",
    "advisor_is_cheap": "bbperf.indexes.index_set_timing",
    "index_conclusion": "bbperf.indexes.index_set_timing:conclusion",
    "indexstory": "bbperf.indexes",
    "build_costs": "bbperf.writecost",
    "insert_cost": "bbperf.writecost",
    "catalogue": "bbperf.workload",
    # the six-figure metrics and the CTE rewrite (notebook 02)
    "variant_timing": "bbperf.metrics",
    "ladder_timing": "bbperf.metrics",
    "index_set_advice": "bbperf.metrics",
    "ctestory": "bbperf.metrics",
    "drift_rows": "bbperf.metrics.drift",
    "drift_summary": "bbperf.metrics.drift",
    "CTE_SQL": "bbperf.metrics.queries",
    "barber_ids": "bbperf.metrics.queries",
    "barber_sample": "bbperf.metrics.queries",
    "window_params": "bbperf.metrics.queries",
    "drop_rollup": "bbperf.metrics.rollup",
    "drop_metrics_view": "bbperf.metrics.variants",
    "set_indexes": "bbperf.metrics.variant_timing",
    # connection pools (notebook 03) and health (notebook 04)
    "WORKLOADS": "bbperf.pool",
    "pool_load": "bbperf.pool",
    "pool_costs": "bbperf.pool",
    "pool_reach": "bbperf.pool",
    "recommend_pool_size": "bbperf.pool",
    "pool_config": "bbperf.pool.describe",
    "read_database_metrics": "bbperf.pool.monitor",
    "health_detailed": "bbperf.pool.health",
    "poolstory": "bbperf.pool",
    "alert_timeline": "bbperf.watch",
    # a read replica (notebook 05) and PgBouncer (notebook 06)
    "read_replica_experiment": "bbperf.topology",
    "replica_figures": "bbperf.topology",
    "replica_conclusion": "bbperf.topology",
    "pgbouncer_experiment": "bbperf.topology",
    "pgbouncer_figures": "bbperf.topology",
    "pgbouncer_conclusion": "bbperf.topology",
    "pool_fit": "bbperf.topology",
    "topologystory": "bbperf.topology",
    # partitioning (notebook 07)
    "before_after": "bbperf.partition",
    "live_fingerprints": "bbperf.partition",
    "partition_parents": "bbperf.partition",
    "planning_by_partition_count": "bbperf.partition",
    "point_lookup": "bbperf.partition",
    "retention": "bbperf.partition",
    "run_state": "bbperf.partition",
    "touches_partitioned": "bbperf.partition",
    "partition_conclusion": "bbperf.partition:conclusion",
    "partitionstory": "bbperf.partition",
    # a result cache (notebook 08)
    "server_available": "bbperf.cache",
    "running_server": "bbperf.cache",
    "find_server_binary": "bbperf.cache",
    "CacheExperimentConfig": "bbperf.cache.cacherun:ExperimentConfig",
    "run_cache_experiment": "bbperf.cache.cacherun:run_experiment",
    "trigger_write_cost": "bbperf.cache.cacherun",
    "latency_frame": "bbperf.cache.analysis",
    "write_cost_summary": "bbperf.cache.analysis",
    "cache_conclusion": "bbperf.cache.analysis:conclusion",
    "cachestory": "bbperf.cache",
    # a captured workload (notebook 09)
    "load_workload": "bbperf.workload",
    "capture_workload": "bbperf.workload.capture:capture",
    "statement_counters": "bbperf.workload.capture:counters",
    "sample_workload": "bbperf.workload.sample:sample",
    "replay_workload": "bbperf.workload.replay:replay",
    "advise_workload": "bbperf.workload.workload_advice",
    "verify_workload": "bbperf.workload.verify",
    "workloadstory": "bbperf.workload",
    # sharding over postgres_fdw (notebook 10)
    "shard_effects": "bbperf.shard:effects",
    "shard_layout": "bbperf.shard:layout",
    "shardstory": "bbperf.shard",
    "compare": "bbperf.explain.timingstats",
    "verify_dataset": "bbperf.generate:verify",
}
# Importing bbperf.leftovers registers its load guard with bbperf.loadguards (the data layer cannot
# import the features that know what a load must not run under).
_IMPORTED_FIRST = {"ensure_dataset": ("bbperf.leftovers",)}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), _IMPORTED_FIRST)
