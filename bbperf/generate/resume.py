"""The resumable load's steps (``generate(..., resumable=True)``): prepare the staging tables, stream
the chunks not yet committed (``jobs`` workers COPY on their own connections), build keys and indexes
on the staging tables in parallel, and swap them in with the provenance in one short transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import Engine, text

from bbperf.generate.dataset import DatasetInfo
from bbperf.generate.load import Phases
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
from bbperf.generate.stream import Plan, chunks, peak_rss_mb
from bbperf.schema import require_schema
from bbperf.target import schema_of


def check_swappable(engine: Engine) -> None:
    """SchemaError (one line, naming them) when the dataset's tables carry objects bbperf did not
    create that the swap would lose; SchemaError when bbperf's schema is missing."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        require_schema(conn, schema)
        refuse_blockers(conn, schema)


def committed_chunks(engine: Engine, plan: Plan) -> int:
    """Chunks an interrupted resumable load of ``plan`` has committed (0 when none is pending)."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        exists = conn.execute(
            text("SELECT to_regclass(:t)"), {"t": f'"{schema}".{PROGRESS_TABLE}'}
        ).scalar()
        return chunk_count(conn, schema, load_key(plan)) if exists else 0


def load_resumable(
    engine: Engine, plan: Plan, jobs: int, bar: Progress, phases: Phases
) -> tuple[DatasetInfo, list[tuple[str, str, str]]]:
    """Every step up to and including the swap; returns the provenance and the foreign keys to
    validate. Raises SchemaError before any work when the swap would lose objects bbperf did not
    create; a dropped connection leaves the committed chunks for the next run."""
    from bbperf.generate.load import _library_versions, _no_wait_callback, _store, foreign_keys

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
        with phases("stream"), _no_wait_callback():
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
        from bbperf import __version__

        conn.execute(text("SET LOCAL statement_timeout = 0"))
        fingerprints = recorded(conn, schema, key)
        fks = foreign_keys(conn, schema)
        swap(conn, schema, wanted, {t: fp["rows"] for t, fp in fingerprints.items()}, fks)
        info = DatasetInfo(
            profile=plan.profile.name,
            scale=plan.scale,
            seed=plan.seed,
            as_of=plan.as_of.isoformat(),
            fingerprints=fingerprints,
            bbperf_version=__version__,
            server_version=str(conn.execute(text("SHOW server_version")).scalar_one()),
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            copy_seconds={t: round(v, 3) for t, v in writer.copy_seconds.items()},
            versions=_library_versions(),
            client_seconds={k: round(v, 3) for k, v in client.items()},
            jobs=jobs,
            peak_rss_mb={
                "coordinator": round(peak_rss_mb(), 1),
                "worker": round(stats.get("worker_peak_rss_mb", 0.0), 1),
            },
            resumable=True,
            chunks=counts,
        )
        _store(conn, schema, info)
        conn.execute(text(f'DROP TABLE "{schema}".{PROGRESS_TABLE}'))
    return info, fks
