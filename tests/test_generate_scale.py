"""Loading at scale: streamed fingerprints equal the server's, any --jobs gives the same chunks,
phase timings are recorded, ``data verify`` catches a changed row, a load over TCP to PostgreSQL 15."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

import numpy as np
import pytest
from sqlalchemy import Engine, text

from bbperf.generate import binary as b
from bbperf.generate.cast import n_barbers
from bbperf.generate.dataset import dataset_info
from bbperf.generate.profile import load_profile
from bbperf.generate.rowhash import row_text
from bbperf.generate.stream import Encoded, GenerationPlan, _Generator, in_order
from bbperf.generate.tally import LATEST_US, ClientTally
from bbperf.generate.workers import _Dispatch, chunks

AS_OF = "2026-11-01"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("", '""'),
        ("two words", '"two words"'),
        ('say "hi"', '"say ""hi"""'),
        ("back\\slash", '"back\\\\slash"'),
        ("a,b", '"a,b"'),
        ("(x)", '"(x)"'),
        ("tab\there", '"tab\there"'),
        ("O'Brien", "O'Brien"),
    ],
)
def test_record_quote_follows_record_out(value: str, expected: str) -> None:
    assert b.record_quote(value) == expected


def test_row_text_renders_each_type_as_postgresql_prints_it() -> None:
    us = np.array([1_793_491_200_000_000, 1_793_491_200_500_000, 1_793_491_201_000_123])
    pool = b.TextPool.of(["a b", "x"])
    columns: b.Columns = {
        "id": b.int4(np.array([1, 22, 1234567])),
        "at": b.timestamptz(us),
        "price": b.numeric(np.array([4500, 5, 123456]), 2),
        "rate": b.numeric(np.array([2000, 0, 2000]), 4),
        "ok": b.boolean(np.array([1, 0, 1], dtype=np.uint8)),
        "note": b.pooled(pool, np.array([0, 1, 0]), np.array([False, False, True])),
        "last": b.nullable(b.timestamptz(us), np.array([True, False, False])),
    }
    names = ("id", "at", "price", "rate", "ok", "note", "last")
    flat, ends = row_text(columns, names, 3)
    rows = flat.decode().splitlines()
    assert ends.tolist() == [len("\n".join(rows[: i + 1])) for i in range(3)]
    assert rows == [
        '(1,"2026-11-01 00:00:00+00",45.00,0.2000,t,"a b",)',
        '(22,"2026-11-01 00:00:00.5+00",0.05,0.0000,f,x,"2026-11-01 00:00:00.5+00")',
        '(1234567,"2026-11-01 00:00:01.000123+00",1234.56,0.2000,t,,"2026-11-01 00:00:01.000123+00")',
    ]


def test_client_tally_adds_merges_and_reads_back() -> None:
    one, two = ClientTally(10), ClientTally(10)
    one.add(np.array([3, 3, 5]), np.array([1000, 2500, 700]), np.array([30, 10, 20]))
    two.add(np.array([3, 9]), np.array([100, 200]), np.array([5, 50]))
    one.merge(two)
    visits, spent, first, last = one.rows(0, 10)
    assert visits.tolist() == [0, 0, 0, 3, 0, 1, 0, 0, 0, 1]
    assert spent[[3, 5, 9]].tolist() == [3600, 700, 200]
    assert first[[3, 5, 9]].tolist() == [5, 20, 50] and first[0] == LATEST_US
    assert last[[3, 5, 9]].tolist() == [30, 20, 50] and last[0] == -1
    one.close()
    two.close()


def test_client_tally_adds_the_same_a_few_clients_at_a_time() -> None:
    rng = np.random.default_rng(7)
    client = rng.integers(5, 95, size=500)
    price, start = rng.integers(1000, 9000, size=500), rng.integers(0, 10**12, size=500)
    whole, stepped = ClientTally(100), ClientTally(100)
    whole.add(client, price, start)
    stepped.add(client, price, start, step=7)
    for mine, theirs in zip(whole.rows(0, 100), stepped.rows(0, 100), strict=True):
        assert mine.tolist() == theirs.tolist()
    assert whole.rows(0, 100)[0].sum() == 500
    whole.close()
    stepped.close()


def _summary(jobs: int) -> list[tuple[str, str, int, int, bytes]]:
    plan = GenerationPlan(load_profile("tiny"), 1.0, 42, date.fromisoformat(AS_OF))
    return [(c.table, c.columns, c.rows, c.checksum, c.payload) for c in chunks(plan, jobs)]


def test_any_number_of_jobs_gives_the_same_chunks_in_the_same_order() -> None:
    one = _summary(1)
    assert _summary(3) == one
    assert {t for t, *_ in one} == {
        "organizations",
        "users",
        "user_organizations",
        "services",
        "appointments",
        "payments",
        "clients",
    }


def test_pairs_made_by_workers_alone_or_by_the_coordinator_alone_are_the_in_order_ones() -> None:
    """The coordinator makes a pair no worker has asked for (while they start, or fall behind):
    every pair made by the workers, and every pair made by the coordinator, give the same chunks as
    one thread does."""
    plan = GenerationPlan(load_profile("tiny"), 1.0, 42, date.fromisoformat(AS_OF))

    def summary(produced: list[Encoded]) -> list[tuple[str, str, int, int, bytes]]:
        return [(c.table, c.columns, c.rows, c.checksum, c.payload) for c in produced]

    n = n_barbers(plan.profile, plan.scale) * plan.profile.clients["per_barber"]
    one_thread = summary(list(in_order(plan, ClientTally(n))))
    pairs = [c for c in one_thread if c[0] in ("appointments", "payments")]
    assert len({c[3] for c in pairs}) > 10  # many pairs, not one
    assert summary(list(chunks(plan, 2, make_here=False))) == one_thread
    # No worker ever asks: the coordinator makes every pair, ids continuing from the pair before.
    state = _Dispatch(plan.pairs(), 1, [], [], [])
    here = _Generator(plan, ClientTally(n))
    assert summary([c for k in range(plan.pairs()) for c in state.take(k, here)]) == pairs


def test_timings_are_printed_and_stored(
    tiny_copy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bbperf.cli import main

    args = ["--database-url", tiny_copy_url, "generate", "--profile", "tiny", "--as-of", AS_OF]
    assert main([*args, "--jobs", "1", "--no-progress", "--timings"]) == 0
    out = capsys.readouterr().out
    for phase in ("prepare", "copy", "indexes", "constraints", "validate+analyze", "fingerprint"):
        assert phase in out
    assert main(["--database-url", tiny_copy_url, "data", "status", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["phases"]) >= {"prepare", "copy", "waiting", "constraints", "validate+analyze"}
    # Phases are rounded to the millisecond, so their sum may pass the total by rounding alone.
    assert sum(info["phases"].values()) <= info["load_seconds"] + 0.001 * len(info["phases"])
    assert set(info["client_seconds"]) == {"generate", "encode", "fingerprint"}


def test_the_load_vacuums_each_table_so_autovacuum_does_not_move_its_row_counts(
    tiny_copy_url: str,
) -> None:
    """The load ends with VACUUM (ANALYZE), not ANALYZE alone: autovacuum would otherwise come a
    minute later (mid-measurement) and replace ANALYZE's row count with its own estimate."""
    from sqlalchemy import create_engine

    from bbperf.cli import main

    args = ["--database-url", tiny_copy_url, "generate", "--profile", "tiny", "--as-of", AS_OF]
    assert main([*args, "--seed", "7", "--no-progress"]) == 0
    engine = create_engine(tiny_copy_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT s.relname, s.vacuum_count, c.reltuples, "
                    "(SELECT count(*) FROM bbperf.appointments) AS appointments "
                    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                    "WHERE s.schemaname = 'bbperf' AND s.relname <> 'bbperf_meta'"
                )
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == 7
    assert all(r.vacuum_count >= 1 for r in rows), rows
    appointments = next(r for r in rows if r.relname == "appointments")
    assert appointments.reltuples == appointments.appointments > 0


def test_verify_agrees_after_a_load_and_catches_a_changed_row(
    tiny_copy_url: str, capsys: pytest.CaptureFixture[str], make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.cli import main

    assert main(["--database-url", tiny_copy_url, "data", "verify"]) == 0
    assert "NO" not in capsys.readouterr().out
    engine = make_test_engine(tiny_copy_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE bbperf.payments SET amount = amount + 1 WHERE id = 7"))
    assert main(["--database-url", tiny_copy_url, "data", "verify", "--format", "json"]) == 1
    rows = {r["table"]: r for r in json.loads(capsys.readouterr().out)}
    assert not rows["payments"]["ok"] and rows["appointments"]["ok"]


@pytest.mark.parametrize(
    ("jobs", "message"),
    [("0", "jobs must be between 1 and 64"), ("two", "jobs 'two' is not an integer")],
)
def test_bad_jobs_is_one_line_exit_2(
    fresh_url: str, jobs: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bbperf.cli import main

    assert main(["--database-url", fresh_url, "generate", "--jobs", jobs]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_parallel_load_over_tcp_to_postgresql_15_verifies(
    pg15_url: str,
    tiny_engine: Engine,
    capsys: pytest.CaptureFixture[str],
    make_test_engine: Callable[..., Engine],
) -> None:
    """The PostgreSQL 15 cluster on loopback (password, TCP) stands in for a remote server."""
    from bbperf.cli import main
    from bbperf.schema import create_schema

    engine = make_test_engine(pg15_url)
    create_schema(engine)
    url = pg15_url
    args = ["--database-url", url, "generate", "--profile", "tiny", "--as-of", AS_OF]
    assert main([*args, "--jobs", "2", "--no-progress"]) == 0
    assert main(["--database-url", url, "data", "verify"]) == 0
    loaded = dataset_info(engine)
    assert loaded is not None and loaded["jobs"] == 2
    assert loaded["fingerprints"] == dataset_info(tiny_engine)["fingerprints"]  # type: ignore[index]
    assert "pg15-Secr3t-pw" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("profile", "scale", "rows"),
    [("tiny", 1.0, 4_355), ("default", 1.0, 1_928_799)],  # counted by loads (README: SF 1 rows)
)
def test_progress_total_estimate_is_close_to_the_real_count(
    profile: str, scale: float, rows: int
) -> None:
    from bbperf.generate.progress import estimated_rows

    assert abs(estimated_rows(load_profile(profile), scale) / rows - 1) < 0.05
