"""Range partitions for appointments and payments — one public face.

Modules: ``layout`` (apply, drop and status of the partitioned layout, in one transaction each),
``effects`` (what partitioning costs and buys, measured: before/after, pruning, planning time,
retention), ``partitionstory`` (what notebook 07 concludes). Names are imported on first use so that
``bbperf partition`` does not load pandas.
"""

from __future__ import annotations

from bbperf.lazy import lazy_exports

_EXPORTS = {
    "GRANULARITIES": ".layout",
    "MAX_PARTITIONS": ".layout",
    "Conversion": ".layout",
    "TableChange": ".layout",
    "PartitionStatus": ".layout",
    "apply": ".layout",
    "drop": ".layout",
    "undo_interrupted": ".layout",
    "status": ".layout",
    "bounds": ".layout",
    "equal_bounds": ".layout",
    "partition_name": ".layout",
    "empty_layout": ".layout",
    "secondary_indexes": ".layout",
    "time_span": ".layout",
    "Pruning": ".effects",
    "StateRun": ".effects",
    "before_after": ".effects",
    "conclusion": ".effects",
    "live_fingerprints": ".effects",
    "partition_parents": ".effects",
    "planning_by_partition_count": ".effects",
    "planning_times": ".effects",
    "point_lookup": ".effects",
    "pruning": ".effects",
    "retention": ".effects",
    "run_state": ".effects",
    "touches_partitioned": ".effects",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
