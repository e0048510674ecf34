"""Generation on real PostgreSQL: determinism, provenance, atomic loads, fingerprints on 15 and 18."""

from __future__ import annotations

import psycopg2
import pytest
from sqlalchemy import Engine, text

from bbperf.generate import dataset_info, ensure_dataset, generate
from bbperf.pools import make_engine
from bbperf.schema import TABLE_ORDER


def test_tiny_fixture_holds_the_tiny_dataset(tiny_engine: Engine) -> None:
    info = dataset_info(tiny_engine)
    assert info is not None
    assert (info["profile"], info["scale"], info["seed"], info["as_of"]) == ("tiny", 1.0, 42, "2026-11-01")
    assert set(info["fingerprints"]) == set(TABLE_ORDER)
    assert 1000 < info["fingerprints"]["appointments"]["rows"] < 10_000


def test_tiny_copy_is_writable_and_separate(tiny_copy_url: str, tiny_engine: Engine) -> None:
    with psycopg2.connect(tiny_copy_url) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM bbperf.payments")
    with tiny_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bbperf.payments")).scalar_one() > 0


def test_same_seed_gives_same_fingerprints_and_another_seed_differs(tiny_copy_url: str) -> None:
    engine = make_engine(tiny_copy_url, echo_pool=False)
    before = dataset_info(engine)
    again = generate(engine, "tiny", 1.0, 42, "2026-11-01", progress=False)
    assert before is not None and again.fingerprints == before["fingerprints"]
    other = generate(engine, "tiny", 1.0, 43, "2026-11-01", progress=False)
    assert other.fingerprints["appointments"] != again.fingerprints["appointments"]
    engine.dispose()


def test_ensure_dataset_reuses_matching_data(tiny_copy_url: str) -> None:
    engine = make_engine(tiny_copy_url, echo_pool=False)
    loaded_at = dataset_info(engine)["loaded_at"]  # type: ignore[index]
    info = ensure_dataset(engine, "tiny", 1, 42, "2026-11-01")
    assert info.loaded_at == loaded_at
    engine.dispose()


def _stored_vs_recomputed(engine: Engine) -> tuple[dict, dict]:  # type: ignore[type-arg]
    from bbperf.generate.fingerprint import fingerprints

    with engine.begin() as conn:
        return dataset_info(engine)["fingerprints"], fingerprints(conn, "bbperf")  # type: ignore[index]


def test_fingerprints_equal_on_postgresql_15_and_18(any_server_url: str, tiny_engine: Engine) -> None:
    from bbperf.schema import create_schema

    engine = make_engine(any_server_url, echo_pool=False)
    create_schema(engine)
    info = generate(engine, "tiny", 1.0, 42, "2026-11-01", progress=False)
    assert info.fingerprints == dataset_info(tiny_engine)["fingerprints"]  # type: ignore[index]
    engine.dispose()


def test_cli_in_another_process_reproduces_the_fingerprints(tiny_copy_url: str, tiny_engine: Engine) -> None:
    import subprocess
    import sys

    engine = make_engine(tiny_copy_url, echo_pool=False)
    generate(engine, "tiny", 1.0, 7, "2026-11-01", progress=False)
    args = ["generate", "--profile", "tiny", "--seed", "42", "--as-of", "2026-11-01", "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-m", "bbperf", "--database-url", tiny_copy_url, *args],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert dataset_info(engine)["fingerprints"] == dataset_info(tiny_engine)["fingerprints"]  # type: ignore[index]
    engine.dispose()


def test_interrupted_load_leaves_tables_unchanged_and_rerun_converges(tiny_copy_url: str) -> None:
    import threading
    import time

    from bbperf.errors import QueryError

    engine = make_engine(tiny_copy_url, echo_pool=False)
    before = dataset_info(engine)
    failure: list[BaseException] = []

    def load() -> None:
        try:
            generate(engine, "tiny", 40.0, 42, "2026-11-01", progress=False)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            failure.append(exc)

    loader = threading.Thread(target=load)
    loader.start()
    watcher = psycopg2.connect(tiny_copy_url)
    watcher.autocommit = True  # a fresh statistics snapshot for every poll
    killed = False
    deadline = time.monotonic() + 30
    with watcher.cursor() as cur:
        while not killed and time.monotonic() < deadline and loader.is_alive():
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_progress_copy "
                "WHERE datname = %s AND tuples_processed > 0",
                (watcher.info.dbname,),
            )
            killed = bool(cur.fetchall())
    watcher.close()
    loader.join()
    assert killed, f"the load ended before a COPY could be interrupted: {failure}"
    assert failure and isinstance(failure[0], QueryError), failure
    engine.dispose()
    assert dataset_info(engine) == before
    stored, recomputed = _stored_vs_recomputed(engine)
    assert stored == recomputed
    with engine.connect() as conn:
        fks = conn.execute(text("SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                                "AND connamespace = 'bbperf'::regnamespace")).scalar_one()
    assert fks == 12
    rerun = generate(engine, "tiny", 1.0, 42, "2026-11-01", progress=False)
    assert rerun.fingerprints == before["fingerprints"]  # type: ignore[index]
    engine.dispose()


def test_schema_missing_is_one_line_and_writes_nothing(fresh_engine: Engine) -> None:
    from bbperf.errors import SchemaError

    with pytest.raises(SchemaError, match="does not exist: run `bbperf schema create`"):
        generate(fresh_engine, "tiny", progress=False)
    assert dataset_info(fresh_engine) is None
