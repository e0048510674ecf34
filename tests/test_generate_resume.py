"""Resumable loads (``generate --resumable``): the same rows and fingerprints as the one-transaction
load for any --jobs, per-chunk resume after a worker's connection is terminated, refusal when the swap
would lose objects bbperf did not create, and a resumable load over TCP to PostgreSQL 15."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy import Engine, text

from bbperf.errors import QueryError, SchemaError
from bbperf.generate import dataset_info, generate, verify
from tests import pg15

AS_OF = "2026-11-01"


def _catalog(engine: Engine) -> dict[str, Any]:
    """What a swap must reproduce: constraints, indexes, sequences and the schema's tables."""
    queries = {
        "constraints": "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE connamespace = 'bbperf'::regnamespace AND contype <> 'n' ORDER BY 1, 2",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'bbperf' ORDER BY 1",
        "sequences": "SELECT sequencename, last_value FROM pg_sequences "
        "WHERE schemaname = 'bbperf' ORDER BY 1",
        "tables": "SELECT relname FROM pg_class WHERE relnamespace = 'bbperf'::regnamespace "
        "AND relkind = 'r' ORDER BY 1",
    }
    with engine.connect() as conn:
        return {k: [tuple(r) for r in conn.execute(text(q))] for k, q in queries.items()}


def test_resumable_gives_the_plain_loads_rows_for_jobs_1_and_3(
    tiny_copy_url: str, tiny_engine: Engine, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(tiny_copy_url)
    with engine.begin() as conn:  # an applied index set must come back under its own names
        conn.execute(text("CREATE INDEX ix_appt_barber ON bbperf.appointments (barber_id, status)"))
        conn.execute(text("CREATE UNIQUE INDEX ix_pay_intent ON bbperf.payments (id, status)"))
    before = _catalog(engine)
    plain = dataset_info(tiny_engine)
    assert plain is not None
    for jobs in (1, 3):
        info = generate(engine, "tiny", 1.0, 42, AS_OF, jobs=jobs, progress=False, resumable=True)
        assert info.fingerprints == plain["fingerprints"]
        assert info.resumable and info.chunks["sent"] == info.chunks["total"] > 10
        assert all(row["ok"] for row in verify(engine))
        assert _catalog(engine) == before  # same keys, indexes, sequence positions; no _load_* left
    with engine.connect() as conn:
        invalid = conn.execute(
            text(
                "SELECT count(*) FROM pg_constraint WHERE connamespace = 'bbperf'::regnamespace "
                "AND NOT convalidated"
            )
        ).scalar_one()
    assert invalid == 0


def test_staging_left_by_another_load_is_dropped_and_the_load_starts_over(
    tiny_copy_url: str, tiny_engine: Engine, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.generate.staging import prepare

    engine = make_test_engine(tiny_copy_url)
    with engine.begin() as conn:  # what an interrupted load of another seed leaves behind
        prepare(conn, "bbperf", "another-load")
        conn.execute(
            text(
                "INSERT INTO bbperf._load_progress (load_key, table_name, chunk, rows, checksum) "
                "VALUES ('another-load', 'appointments', 0, 5, 123)"
            )
        )
        conn.execute(text("INSERT INTO bbperf._load_users SELECT * FROM bbperf.users"))
    info = generate(engine, "tiny", 1.0, 42, AS_OF, progress=False, resumable=True)
    assert info.chunks["skipped"] == 0
    assert info.fingerprints == dataset_info(tiny_engine)["fingerprints"]
    assert all(row["ok"] for row in verify(engine))


def test_terminated_worker_fails_in_one_line_and_the_rerun_resumes_per_chunk(
    tiny_copy_url: str, capsys: pytest.CaptureFixture[str], make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.cli import main

    engine = make_test_engine(tiny_copy_url)
    scale = 4.0
    before = generate(engine, "tiny", scale, 42, AS_OF, progress=False).to_dict()
    failure: list[BaseException] = []

    def load() -> None:
        try:
            generate(engine, "tiny", scale, 42, AS_OF, jobs=2, progress=False, resumable=True)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            failure.append(exc)

    loader = threading.Thread(target=load)
    loader.start()
    watcher = psycopg2.connect(tiny_copy_url)
    watcher.autocommit = True
    killed, reads = False, 0
    deadline = time.monotonic() + 60
    with watcher.cursor() as cur:
        while not killed and time.monotonic() < deadline and loader.is_alive():
            cur.execute("SELECT to_regclass('bbperf._load_progress') IS NOT NULL")
            if not cur.fetchone()[0]:
                continue
            cur.execute("SELECT count(*) FROM bbperf.appointments")  # readers see the old dataset
            reads += cur.fetchone()[0] == before["fingerprints"]["appointments"]["rows"]
            cur.execute(
                "SELECT count(*) FROM bbperf._load_progress WHERE table_name = 'appointments'"
            )
            if cur.fetchone()[0] < 3:
                continue
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE 'bbperf-load-worker-%%' AND datname = %s LIMIT 1",
                (watcher.info.dbname,),
            )
            killed = bool(cur.fetchall())
        loader.join()
        cur.execute("SELECT count(*) FROM bbperf._load_progress")
        committed = cur.fetchone()[0]
    watcher.close()
    assert killed, f"the load ended before a worker could be terminated: {failure}"
    assert failure and isinstance(failure[0], QueryError), failure
    message = str(failure[0])
    assert "\n" not in message and "rerun the same command to resume" in message, message
    assert reads > 0
    engine.dispose()  # its pooled connections may be the terminated ones
    assert dataset_info(engine) == before  # the old dataset, untouched
    assert all(row["ok"] for row in verify(engine))
    args = ["--database-url", tiny_copy_url, "generate", "--profile", "tiny", "--as-of", AS_OF]
    # Chunks are numbered the same for any --jobs: the run that resumes may use another value.
    assert main([*args, "--scale", str(scale), "--jobs", "1", "--resumable", "--no-progress"]) == 0
    assert "resumed:" in capsys.readouterr().out
    after = dataset_info(engine)
    assert after is not None and after["loaded_at"] >= before["loaded_at"]
    assert after["chunks"]["skipped"] == committed > 0
    assert after["chunks"]["sent"] < after["chunks"]["total"]
    assert after["fingerprints"] == before["fingerprints"]
    assert all(row["ok"] for row in verify(engine))
    with engine.connect() as conn:
        leftovers = conn.execute(
            text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'bbperf' AND tablename LIKE '\\_load\\_%'"
            )
        ).scalar_one()
    assert leftovers == 0


BLOCKERS = {
    "view": (["CREATE VIEW public.v_appts AS SELECT id FROM bbperf.appointments"], "v_appts"),
    "trigger": (
        [
            "CREATE FUNCTION public.noop() RETURNS trigger LANGUAGE plpgsql "
            "AS 'BEGIN RETURN NEW; END'",
            "CREATE TRIGGER t_noop BEFORE INSERT ON bbperf.payments "
            "FOR EACH ROW EXECUTE FUNCTION public.noop()",
        ],
        "t_noop",
    ),
    "grant": (["GRANT SELECT ON bbperf.clients TO PUBLIC"], "grants on"),
    "foreign key from outside": (
        ["CREATE TABLE public.notes (appointment_id int REFERENCES bbperf.appointments (id))"],
        "notes",
    ),
    "policy": (["CREATE POLICY p_all ON bbperf.users USING (true)"], "p_all"),
}


@pytest.mark.parametrize("kind", list(BLOCKERS))
def test_resumable_refuses_what_the_swap_would_lose_and_touches_nothing(
    kind: str,
    tiny_copy_url: str,
    capsys: pytest.CaptureFixture[str],
    make_test_engine: Callable[..., Engine],
) -> None:
    from bbperf.cli import main

    ddl, named = BLOCKERS[kind]
    engine = make_test_engine(tiny_copy_url)
    with engine.begin() as conn:
        for statement in ddl:
            conn.execute(text(statement))
    before = dataset_info(engine)
    with pytest.raises(SchemaError, match="load without --resumable") as refused:
        generate(engine, "tiny", 1.0, 43, AS_OF, progress=False, resumable=True)
    assert named in str(refused.value) and "\n" not in str(refused.value)
    args = ["--database-url", tiny_copy_url, "generate", "--profile", "tiny", "--resumable"]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bbperf: error: refusing a resumable load") and "\n" not in err
    assert dataset_info(engine) == before
    with engine.connect() as conn:
        staged = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_load\\_%'")
        ).scalar_one()
        assert staged == 0
        if kind == "view":
            assert conn.execute(text("SELECT count(*) FROM public.v_appts")).scalar_one() > 0


def test_resumable_over_tcp_to_postgresql_15(
    pg15_url: str,
    tiny_engine: Engine,
    capsys: pytest.CaptureFixture[str],
    make_test_engine: Callable[..., Engine],
) -> None:
    from bbperf.cli import main
    from bbperf.schema import create_schema

    engine = make_test_engine(pg15_url)
    create_schema(engine)
    args = ["--database-url", pg15_url, "generate", "--profile", "tiny", "--as-of", AS_OF]
    assert main([*args, "--jobs", "2", "--resumable", "--no-progress"]) == 0
    assert main(["--database-url", pg15_url, "data", "verify"]) == 0
    loaded = dataset_info(engine)
    assert loaded is not None and loaded["resumable"] and loaded["jobs"] == 2
    assert loaded["fingerprints"] == dataset_info(tiny_engine)["fingerprints"]
    assert pg15.PASSWORD not in capsys.readouterr().out


def test_a_worker_killed_before_it_reads_the_pools_fails_the_load_and_lets_it_exit(
    bbperf_home: Path, fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    """The coordinator sends each worker its pools and cast (more than a pipe holds) when it starts:
    a worker killed at once never reads them, and the load must still end in one line, not wait on
    its way out for a queue that no one reads."""
    from bbperf.schema import create_schema
    from bbperf.topology.running import LOAD_WORKER, processes_of

    engine = make_test_engine(fresh_url)
    create_schema(engine)
    engine.dispose()
    env = {**os.environ, "BBPERF_HOME": str(bbperf_home), "BBPERF_DATABASE_URL": fresh_url}
    load = subprocess.Popen(
        [sys.executable, "-m", "bbperf", "generate", "--scale", "0.3", "--resumable", "--jobs", "2",
         "--no-progress", "--as-of", AS_OF],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (workers := processes_of(bbperf_home, names=(LOAD_WORKER,))):
            assert load.poll() is None and time.monotonic() < deadline, "no load worker started"
            time.sleep(0.01)
        workers[0].kill()  # still importing: it has not read its inbox
        _, err = load.communicate(timeout=60)
    finally:
        load.kill()
    assert load.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()], err
    assert "a load worker was killed by SIGKILL" in err, err
