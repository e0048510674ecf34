"""Generation on real PostgreSQL: determinism, provenance, atomic loads, fingerprints on 15 and 18."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import Engine, text

from bbperf.generate import dataset_info, ensure_dataset, generate
from bbperf.schema import TABLE_ORDER


def test_tiny_fixture_holds_the_tiny_dataset(tiny_engine: Engine) -> None:
    info = dataset_info(tiny_engine)
    assert info is not None
    assert (info["profile"], info["scale"], info["seed"], info["as_of"]) == (
        "tiny",
        1.0,
        42,
        "2026-11-01",
    )
    assert set(info["fingerprints"]) == set(TABLE_ORDER)
    assert 1000 < info["fingerprints"]["appointments"]["rows"] < 10_000


def test_tiny_copy_is_writable_and_separate(tiny_copy_url: str, tiny_engine: Engine) -> None:
    with psycopg2.connect(tiny_copy_url) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM bbperf.payments")
    with tiny_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bbperf.payments")).scalar_one() > 0


def test_same_seed_gives_same_fingerprints_and_another_seed_differs(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(tiny_copy_url)
    before = dataset_info(engine)
    again = generate(engine, "tiny", 1.0, 42, "2026-11-01", progress=False)
    assert before is not None and again.fingerprints == before["fingerprints"]
    other = generate(engine, "tiny", 1.0, 43, "2026-11-01", progress=False)
    assert other.fingerprints["appointments"] != again.fingerprints["appointments"]


def test_reload_rebuilds_applied_indexes_and_keeps_the_data_identical(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(tiny_copy_url)
    before = dataset_info(engine)
    with engine.begin() as conn:
        conn.execute(
            text("CREATE INDEX ix_appt_barber ON bbperf.appointments (barber_id, start_time)")
        )
        conn.execute(
            text("CREATE INDEX ix_pay_user ON bbperf.payments (user_id) WHERE status = 'completed'")
        )
    definitions = (
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'bbperf' ORDER BY 1"
    )
    with engine.connect() as conn:
        expected = conn.execute(text(definitions)).all()
    again = generate(engine, "tiny", 1.0, 42, "2026-11-01", progress=False)
    with engine.connect() as conn:
        assert conn.execute(text(definitions)).all() == expected
        valid = conn.execute(
            text(
                "SELECT bool_and(indisvalid) FROM pg_index WHERE indexrelid IN ('bbperf.ix_appt_barber'::regclass, 'bbperf.ix_pay_user'::regclass)"
            )
        ).scalar()
    assert valid is True
    assert before is not None and again.fingerprints == before["fingerprints"]


def test_reload_rebuilds_primary_keys_and_keeps_one_a_view_relies_on(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    """The big tables' keys are dropped for the COPY and rebuilt (valid, same definitions); a key a
    view outside the dataset relies on (grouping by it) cannot be dropped, so it stays and the load
    still works."""
    engine = make_test_engine(tiny_copy_url)
    keys = (
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated "
        "FROM pg_constraint WHERE connamespace = 'bbperf'::regnamespace AND contype IN ('p', 'u') "
        "ORDER BY 1, 2"
    )
    with engine.begin() as conn:
        expected = conn.execute(text(keys)).all()
        conn.execute(
            text(
                "CREATE VIEW public.visits_by_id AS SELECT a.id, a.barber_id, count(p.id) AS paid "
                "FROM bbperf.appointments a LEFT JOIN bbperf.payments p ON p.appointment_id = a.id "
                "GROUP BY a.id"
            )
        )
    try:
        first = generate(engine, "tiny", 1.0, 43, "2026-11-01", progress=False)
        with engine.connect() as conn:
            assert conn.execute(text(keys)).all() == expected
            assert conn.execute(text("SELECT count(*) FROM public.visits_by_id")).scalar_one() > 0
            conn.execute(text("DROP VIEW public.visits_by_id"))
            conn.commit()
        again = generate(engine, "tiny", 1.0, 43, "2026-11-01", progress=False)
        with engine.connect() as conn:
            assert conn.execute(text(keys)).all() == expected
            duplicate = conn.execute(
                text("SELECT count(*) - count(DISTINCT id) FROM bbperf.appointments")
            ).scalar_one()
        assert duplicate == 0 and again.fingerprints == first.fingerprints
        assert again.phases["indexes"] > 0
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP VIEW IF EXISTS public.visits_by_id"))


def test_ensure_dataset_reuses_matching_data(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(tiny_copy_url)
    loaded_at = dataset_info(engine)["loaded_at"]  # type: ignore[index]
    info = ensure_dataset(engine, "tiny", 1, 42, "2026-11-01")
    assert info.loaded_at == loaded_at


def _stored_vs_recomputed(engine: Engine) -> tuple[dict, dict]:  # type: ignore[type-arg]
    from bbperf.generate.fingerprint import fingerprints

    with engine.begin() as conn:
        return dataset_info(engine)["fingerprints"], fingerprints(conn, "bbperf")  # type: ignore[index]


def test_fingerprints_equal_on_postgresql_15_and_18(
    any_server_url: str, tiny_engine: Engine, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.schema import create_schema

    engine = make_test_engine(any_server_url)
    create_schema(engine)
    info = generate(engine, "tiny", 1.0, 42, "2026-11-01", progress=False)
    assert info.fingerprints == dataset_info(tiny_engine)["fingerprints"]  # type: ignore[index]


def test_cli_in_another_process_reproduces_the_fingerprints(
    tiny_copy_url: str, tiny_engine: Engine, make_test_engine: Callable[..., Engine]
) -> None:
    import subprocess
    import sys

    engine = make_test_engine(tiny_copy_url)
    generate(engine, "tiny", 1.0, 7, "2026-11-01", progress=False)
    args = [
        "generate",
        "--profile",
        "tiny",
        "--seed",
        "42",
        "--as-of",
        "2026-11-01",
        "--no-progress",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "bbperf", "--database-url", tiny_copy_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert dataset_info(engine)["fingerprints"] == dataset_info(tiny_engine)["fingerprints"]  # type: ignore[index]


def test_interrupted_load_leaves_tables_unchanged_and_rerun_converges(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    import threading
    import time

    from bbperf.errors import QueryError

    engine = make_test_engine(tiny_copy_url)
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
    engine.dispose()  # its pooled connections may be the terminated ones
    assert dataset_info(engine) == before
    stored, recomputed = _stored_vs_recomputed(engine)
    assert stored == recomputed
    with engine.connect() as conn:
        fks = conn.execute(
            text(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                "AND connamespace = 'bbperf'::regnamespace"
            )
        ).scalar_one()
    assert fks == 12
    rerun = generate(engine, "tiny", 1.0, 42, "2026-11-01", progress=False)
    assert rerun.fingerprints == before["fingerprints"]  # type: ignore[index]


def test_schema_missing_is_one_line_and_writes_nothing(fresh_engine: Engine) -> None:
    from bbperf.errors import SchemaError

    with pytest.raises(SchemaError, match="does not exist: run `bbperf schema create`"):
        generate(fresh_engine, "tiny", progress=False)
    assert dataset_info(fresh_engine) is None


def test_default_profile_has_the_specified_shape(schema_engine: Engine) -> None:
    info = generate(schema_engine, "default", 0.05, 42, "2026-11-01", progress=False)
    assert info.rows["users"] > 16 and info.rows["appointments"] > 40_000
    with schema_engine.connect() as conn:
        q = lambda sql: conn.execute(text(sql)).one()  # noqa: E731
        past = q(
            "SELECT avg((status = 'completed')::int) AS completed, avg((status IN ('cancelled', 'no_show'))::int) AS lost,"
            " bool_and(status IN ('completed', 'cancelled', 'no_show')) AS past_only"
            " FROM bbperf.appointments WHERE start_time < '2026-11-01'"
        )
        assert 0.90 < past.completed < 0.96 and 0.04 < past.lost < 0.10 and past.past_only
        assert q(
            "SELECT bool_and(status IN ('pending', 'confirmed')) FROM bbperf.appointments "
            "WHERE start_time >= '2026-11-01'"
        )[0]
        day = q(
            "SELECT avg(n) AS per_day, min(n) AS lo, max(n) AS hi FROM (SELECT count(*) AS n FROM bbperf.appointments"
            " GROUP BY barber_id, (start_time AT TIME ZONE 'UTC')::date) d"
        )
        assert 10 < day.per_day < 12 and day.lo >= 8 and day.hi <= 14
        days = q(
            "SELECT count(DISTINCT (barber_id, (start_time AT TIME ZONE 'UTC')::date))::float"
            " / count(DISTINCT barber_id) / (395 / 30.44) FROM bbperf.appointments"
        )[0]
        assert 20 < days < 24
        loyalty = q(
            "SELECT sum(v) FILTER (WHERE r < 0.1) / sum(v)::float FROM (SELECT total_visits AS v,"
            " percent_rank() OVER (PARTITION BY barber_id ORDER BY total_visits DESC) AS r FROM bbperf.clients) c"
        )[0]
        assert loyalty > 0.5  # the top tenth of each barber's clients make most visits (Zipf)
        staff = q("SELECT avg((user_id <> barber_id)::int) FROM bbperf.appointments")[0]
        assert 0.10 < staff < 0.20
        paid = q(
            "SELECT avg((p.id IS NOT NULL)::int) AS share, bool_and(p.stripe_payment_intent_id ~ '^pi_[A-Za-z0-9]{24}$')"
            " AS ids, bool_and(p.created_at > a.start_time) AS after FROM bbperf.appointments a"
            " LEFT JOIN bbperf.payments p ON p.appointment_id = a.id WHERE a.status = 'completed'"
        )
        assert 0.88 < paid.share < 0.96 and paid.ids and paid.after
        assert (
            q("SELECT count(*) FROM bbperf.payments WHERE amount <> platform_fee + barber_amount")[
                0
            ]
            == 0
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "0"], "scale must be a positive finite number"),
        (["--scale", "nan"], "scale must be a positive finite number"),
        (["--seed", "4.2"], "seed '4.2' is not an integer"),
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--as-of", "yesterday"], "is not an ISO date"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(
    tiny_copy_url: str,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    make_test_engine: Callable[..., Engine],
) -> None:
    from bbperf.cli import main

    engine = make_test_engine(tiny_copy_url)
    before = dataset_info(engine)
    assert main(["--database-url", tiny_copy_url, "generate", "--profile", "tiny", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bbperf: error: ") and message in err
    assert dataset_info(engine) == before


def test_cli_malformed_profile_and_missing_schema(
    fresh_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bbperf.cli import main

    bad = tmp_path / "mine.toml"
    bad.write_text("description = 3\n")
    assert main(["--database-url", fresh_url, "generate", "--profile", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert (
        main(["--database-url", fresh_url, "generate", "--profile", "tiny", "--no-progress"]) == 2
    )
    assert "run `bbperf schema create`" in capsys.readouterr().err


def test_cli_data_status(tiny_url: str, fresh_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from bbperf.cli import main

    assert main(["--database-url", tiny_url, "data", "status", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["fingerprints"]["appointments"]["rows"] > 1000
    assert main(["--database-url", tiny_url, "data", "status"]) == 0
    out = capsys.readouterr().out
    assert (
        out.startswith("profile tiny, scale 1, seed 42, as of 2026-11-01") and "appointments" in out
    )
    assert main(["--database-url", fresh_url, "data", "status"]) == 1
    assert "no dataset loaded" in capsys.readouterr().out
