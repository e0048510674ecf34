"""Workloads: the built-in BookedBarber catalogue and captured ones, in one TOML format; capture from
pg_stat_statements, sample parameter values, replay, and advise indexes over the whole workload."""

from bbperf.workload.builtin import (
    QUERIES,
    QUERY_NAMES,
    Barber,
    WorkloadQuery,
    catalogue,
    draw_parameters,
    windows,
)
from bbperf.workload.file import Placeholder, Statement, Workload, from_named_sql, load_workload
from bbperf.workload.tomlwrite import dumps, save_workload

__all__ = [
    "QUERIES",
    "QUERY_NAMES",
    "Barber",
    "Placeholder",
    "Statement",
    "Workload",
    "WorkloadQuery",
    "catalogue",
    "draw_parameters",
    "dumps",
    "from_named_sql",
    "load_workload",
    "save_workload",
    "windows",
]
