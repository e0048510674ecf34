"""What the one-transaction load and the resumable load share: phase timing, the provenance they
store in ``bbperf_meta``, the foreign keys they set aside and re-add, and the connections the server's
phases get."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text

from bbperf import __version__
from bbperf.generate.dataset import DATASET_KEY, DatasetInfo
from bbperf.generate.stream import Plan, peak_rss_mb
from bbperf.schema import META_TABLE, TABLE_ORDER
from bbperf.sqlnames import qualified


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
    plan: Plan,
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
    sql = text(
        f"INSERT INTO {qualified(schema, META_TABLE)} (key, value) VALUES (:k, CAST(:v AS jsonb)) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
    )
    params = {"k": DATASET_KEY, "v": json.dumps(info.to_dict())}
    if isinstance(target, Connection):
        target.execute(sql, params)
        return
    with target.begin() as conn:
        conn.execute(sql, params)


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


def library_versions() -> dict[str, str]:
    import faker

    return {"numpy": np.__version__, "faker": faker.VERSION}
