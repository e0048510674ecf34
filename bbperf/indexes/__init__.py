"""Index sets: definitions, validation against the live schema, apply/drop/status, DDL and Alembic export."""

from bbperf.indexes.apply import apply, drop, status
from bbperf.indexes.export import alembic, sql
from bbperf.indexes.indexdefs import IndexColumn, IndexDef, IndexSet, IndexSetError
from bbperf.indexes.sets import BUILTIN_SETS, NONE, SEED, load_set, load_toml
from bbperf.indexes.validate import validate

__all__ = [
    "BUILTIN_SETS",
    "NONE",
    "SEED",
    "IndexColumn",
    "IndexDef",
    "IndexSet",
    "IndexSetError",
    "alembic",
    "apply",
    "drop",
    "load_set",
    "load_toml",
    "sql",
    "status",
    "validate",
]
