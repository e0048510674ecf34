"""What the one-transaction load and the resumable load share: phase timing, the provenance they
store in ``bbperf_meta``, the foreign keys they set aside and re-add, and the connections the server's
phases get."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text

from bbperf import __version__, meta
from bbperf.generate.dataset import DATASET_KEY, DatasetInfo
from bbperf.generate.stream import GenerationPlan, peak_rss_mb
from bbperf.schema import TABLE_ORDER


class Phases:
    """Wall-clock seconds per named phase, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}


def loaded_info(
    conn: Connection,
    plan: GenerationPlan,
    fingerprints: dict[str, dict[str, Any]],
    copy_seconds: dict[str, float],
    client: dict[str, float],
    jobs: int,
    stats: dict[str, float],
    **extra: Any,
) -> DatasetInfo:
    """The provenance a load stores: what was loaded, with which versions, and what it cost."""
    return DatasetInfo(
        profile=plan.profile.name,
        scale=plan.scale,
        seed=plan.seed,
        as_of=plan.as_of.isoformat(),
        fingerprints=fingerprints,
        bbperf_version=__version__,
        server_version=str(conn.execute(text("SHOW server_version")).scalar_one()),
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        copy_seconds={t: round(v, 3) for t, v in copy_seconds.items()},
        versions=library_versions(),
        client_seconds={k: round(v, 3) for k, v in client.items()},
        jobs=jobs,
        peak_rss_mb={
            "coordinator": round(peak_rss_mb(), 1),
            "worker": round(stats.get("worker_peak_rss_mb", 0.0), 1),
        },
        **extra,
    )


def store_info(target: Engine | Connection, schema: str, info: DatasetInfo) -> None:
    if isinstance(target, Connection):
        meta.write(target, schema, DATASET_KEY, info.to_dict())
        return
    with target.begin() as conn:
        meta.write(conn, schema, DATASET_KEY, info.to_dict())


def server_connections(jobs: int) -> int:
    """Connections for the phases where only the server works (validation, ANALYZE, key builds):
    ``jobs``, but at least the client's cores — the generator is idle by then, so ``--jobs 1``
    need not serialise the server's work."""
    return max(1, jobs, os.cpu_count() or 1)


def foreign_keys(conn: Connection, schema: str) -> list[tuple[str, str, str]]:
    """(table, constraint name, definition) of the foreign keys on the dataset's tables."""
    rows = conn.execute(
        text(
            "SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def "
            "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = :s AND c.contype = 'f' AND c.conrelid::regclass::text = ANY(:t) "
            "ORDER BY c.conname"
        ),
        {"s": schema, "t": [f"{schema}.{t}" for t in TABLE_ORDER] + list(TABLE_ORDER)},
    )
    # A load interrupted before validation leaves NOT VALID constraints: re-add them as the schema has them.
    return [(str(r[0]), str(r[1]), str(r[2]).removesuffix(" NOT VALID")) for r in rows]


# Tables whose primary keys a load builds after the COPY (one sort) rather than row by row during it.
BULK_TABLES = ("appointments", "payments", "clients")


def primary_keys_to_rebuild(conn: Connection, schema: str) -> list[tuple[str, str, str]]:
    """(table, constraint name, definition) of the BULK_TABLES' primary keys that nothing depends
    on once the dataset's own foreign keys are dropped: a key that a foreign key from another table
    or a view relies on stays in place (and is maintained during the COPY)."""
    rows = conn.execute(
        text(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
            "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE n.nspname = :s AND t.relname = ANY(:t) AND c.contype = 'p' "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.deptype = 'n' AND ("
            "(d.refclassid = 'pg_constraint'::regclass AND d.refobjid = c.oid) OR "
            "(d.refclassid = 'pg_class'::regclass AND d.refobjid = c.conindid))) "
            "ORDER BY t.relname"
        ),
        {"s": schema, "t": list(BULK_TABLES)},
    )
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def library_versions() -> dict[str, str]:
    import faker

    return {"numpy": np.__version__, "faker": faker.VERSION}
