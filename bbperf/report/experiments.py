"""The feature packages' story modules, imported so that each registers its notebook's experiment in
``bbperf.experiment.EXPERIMENTS`` before the report reads it (the report sits above the features)."""

from __future__ import annotations

from types import ModuleType

from bbperf import maintenance
from bbperf.cache import cachestory
from bbperf.indexes import indexstory
from bbperf.metrics import ctestory
from bbperf.partition import partitionstory
from bbperf.pool import poolstory
from bbperf.shard import shardstory
from bbperf.topology import topologystory
from bbperf.workload import workloadstory

FEATURE_STORIES: tuple[ModuleType, ...] = (
    indexstory,
    ctestory,
    poolstory,
    maintenance,
    topologystory,
    partitionstory,
    cachestory,
    workloadstory,
    shardstory,
)
