"""The resumable load's steps (``generate(..., resumable=True)``): prepare the staging tables, stream
the chunks not yet committed (``jobs`` workers COPY on their own connections), build keys and indexes
on the staging tables in parallel, and swap them in with the provenance in one short transaction."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine, text

from bbperf.catalog import relation_exists
from bbperf.generate.dataset import DatasetInfo
from bbperf.generate.progress import Progress
from bbperf.generate.staging import (
    PROGRESS_TABLE,
    ChunkWriter,
    Sink,
    build_keys,
    chunk_count,
    dsn_of,
    keys_and_indexes,
    load_key,
    prepare,
    recorded,
    refuse_blockers,
    swap,
)
from bbperf.generate.steps import Phases, foreign_keys, loaded_info, store_info
from bbperf.generate.stream import GenerationPlan
from bbperf.generate.workers import chunks
from bbperf.interrupt import wait_callback
from bbperf.schema import require_schema
from bbperf.sqlnames import qualified
from bbperf.target import schema_of


def check_swappable(engine: Engine) -> None:
    """SchemaError (one line, naming them) when the dataset's tables carry objects bbperf did not
    create that the swap would lose; SchemaError when bbperf's schema is missing."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        require_schema(conn, schema)
        refuse_blockers(conn, schema)


def committed_chunks(engine: Engine, plan: GenerationPlan) -> int:
    """Chunks an interrupted resumable load of ``plan`` has committed (0 when none is pending)."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        exists = relation_exists(conn, schema, PROGRESS_TABLE)
        return chunk_count(conn, schema, load_key(plan)) if exists else 0


def committed_rows(engine: Engine, plan: GenerationPlan) -> int:
    """Rows an interrupted resumable load of ``plan`` has committed (0 when none is pending)."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        if not relation_exists(conn, schema, PROGRESS_TABLE):
            return 0
        return int(
            conn.execute(
                text(
                    f"SELECT coalesce(sum(rows), 0) FROM {qualified(schema, PROGRESS_TABLE)} "
                    "WHERE load_key = :k"
                ),
                {"k": load_key(plan)},
            ).scalar_one()
        )


def load_resumable(
    engine: Engine, plan: GenerationPlan, jobs: int, bar: Progress, phases: Phases
) -> tuple[DatasetInfo, list[tuple[str, str, str]]]:
    """Every step up to and including the swap; returns the provenance and the foreign keys to
    validate. Raises SchemaError before any work when the swap would lose objects bbperf did not
    create; a dropped connection leaves the committed chunks for the next run."""
    schema = schema_of(engine)
    key = load_key(plan)
    with phases("prepare"), engine.begin() as conn:
        require_schema(conn, schema)
        refuse_blockers(conn, schema)
        done = prepare(conn, schema, key)
    sink = Sink(dsn_of(engine), schema, key)
    plan = replace(plan, done=done, sink=sink)
    counts = {"total": 0, "sent": 0, "skipped": 0}
    client: dict[str, float] = {}
    stats: dict[str, float] = {}
    writer = ChunkWriter(sink, "bbperf-load")
    try:
        with phases("stream"), wait_callback(None):
            for chunk in chunks(plan, jobs, stats):
                if not chunk.skipped and not chunk.committed:
                    chunk = writer.write(chunk)
                counts["total"] += 1
                counts["skipped" if chunk.skipped else "sent"] += 1
                for activity, seconds in chunk.seconds.items():
                    client[activity] = client.get(activity, 0.0) + seconds
                bar.update(chunk.table, chunk.rows)
    finally:
        writer.close()
    with phases("keys"):
        with engine.connect() as conn:
            wanted = keys_and_indexes(conn, schema)
        build_keys(engine, schema, wanted, jobs)
    with phases("swap"), engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        fingerprints = recorded(conn, schema, key)
        fks = foreign_keys(conn, schema)
        swap(conn, schema, wanted, {t: fp["rows"] for t, fp in fingerprints.items()}, fks)
        info = loaded_info(
            conn, plan, fingerprints, writer.copy_seconds, client, jobs, stats,
            resumable=True, chunks=counts,
        )  # fmt: skip
        store_info(conn, schema, info)
        conn.execute(text(f"DROP TABLE {qualified(schema, PROGRESS_TABLE)}"))
    return info, fks
