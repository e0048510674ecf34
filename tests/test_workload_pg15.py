"""The read-only proof on PostgreSQL 15: capture, sample, replay and advise (HypoPG) as a role with
only CONNECT, SELECT (and USAGE on the schema) and pg_read_all_stats leave the target unchanged — no
new relation, no row inserted, updated or deleted in the database's counters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg2
import pytest
from sqlalchemy import Engine

from bbperf.errors import SchemaError
from bbperf.explain.timingstats import Timing
from bbperf.pool.describe import make_engine
from bbperf.workload import catalogue, load_workload
from bbperf.workload.capture import capture
from bbperf.workload.replay import replay
from bbperf.workload.sample import sample
from bbperf.workload.workload_advice import advise_workload
from tests import pg15

pytestmark = pytest.mark.pg15
READER, READER_PW = "bbperf_reader", "reader-Secr3t-pw"


@dataclass
class Target:
    admin_dsn: str
    owner_url: str
    reader_url: str
    name: str


@pytest.fixture(scope="module")
def target(pg15_cluster: pg15.Cluster) -> Iterator[Target]:
    """A PG15 database holding the tiny dataset, with the catalogue already run against it."""
    from bbperf.generate import generate
    from bbperf.schema import create_schema

    name = f"t_wl_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(pg15_cluster.admin_url())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" OWNER {pg15.USER}')
        cur.execute(f"DROP ROLE IF EXISTS {READER}")
        cur.execute(f"CREATE ROLE {READER} LOGIN PASSWORD %s", (READER_PW,))
    admin_dsn = pg15_cluster.admin_url(name)
    db = psycopg2.connect(admin_dsn)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("CREATE EXTENSION pg_stat_statements")
        if pg15.has_hypopg():
            cur.execute("CREATE EXTENSION hypopg")
        cur.execute(f'REVOKE TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
    owner_url = pg15_cluster.url.rsplit("/", 1)[0] + f"/{name}"
    owner = make_engine(owner_url, echo_pool=False, schema="bbperf")
    create_schema(owner)
    generate(owner, "tiny", 1.0, 42, "2026-11-01", progress=False)
    for barber in ("busy", "quiet"):  # the application's traffic, for pg_stat_statements
        for query in catalogue(owner, barber=barber):
            query.run(owner)
    owner.dispose()
    with db.cursor() as cur:
        for table in ("organizations", "users", "user_organizations", "clients", "services",
                      "appointments", "payments", "bbperf_meta"):  # fmt: skip
            cur.execute(f"ALTER TABLE bbperf.{table} SET (autovacuum_enabled = false)")
        cur.execute(f'GRANT CONNECT ON DATABASE "{name}" TO {READER}')
        cur.execute(f"GRANT USAGE ON SCHEMA bbperf TO {READER}")
        cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA bbperf TO {READER}")
        cur.execute(f"GRANT pg_read_all_stats TO {READER}")
    db.close()
    reader_url = f"postgresql://{READER}:{READER_PW}@127.0.0.1:{pg15_cluster.port}/{name}"
    yield Target(admin_dsn, owner_url, reader_url, name)
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f"DROP ROLE IF EXISTS {READER}")
    admin.close()


def _state(admin_dsn: str, name: str) -> tuple[frozenset[int], tuple[int, int, int]]:
    """Every relation's oid, and the database's inserted/updated/deleted row counters (settled)."""
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT oid FROM pg_class")
            oids = frozenset(r[0] for r in cur.fetchall())
            last = None
            for _ in range(30):  # other backends flush their counters at most once a second
                cur.execute("SELECT pg_stat_clear_snapshot()")
                cur.execute(
                    "SELECT tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                    "WHERE datname = %s",
                    (name,),
                )
                counters = tuple(cur.fetchone())
                if counters == last:
                    break
                last = counters
                time.sleep(0.5)
    finally:
        conn.close()
    return oids, counters  # type: ignore[return-value]


def test_capture_sample_replay_advise_as_a_read_only_role_change_nothing(
    target: Target, make_test_engine: Callable[..., Engine]
) -> None:
    # Leave autovacuum nothing to do during the test: its ANALYZE of the catalogs the dataset load
    # changed would write pg_statistic rows into the same counters.
    db = psycopg2.connect(target.admin_dsn)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    db.close()
    before = _state(target.admin_dsn, target.name)
    reader = make_test_engine(target.reader_url, schema="bbperf")
    captured = capture(reader, top=50)
    builtin = {s.fingerprint: s.name for s in load_workload("catalogue").statements}
    assert set(builtin) <= {s.fingerprint for s in captured.statements}
    sampled = sample(reader, captured, sets=5)
    assert not [u for u in sampled.unresolved if u[0] in builtin.values()]
    replayed = replay(reader, sampled.workload, duration_s=1.0, concurrency=2, progress=False)
    assert replayed.calls > 0 and not replayed.errors, replayed.first_error
    if pg15.has_hypopg():
        advice = advise_workload(reader, sampled.workload, max_candidates=12)
        assert advice.method == "hypopg" and advice.chosen
        assert all(c.saved > 0 for c in advice.chosen)
    reader.dispose()  # its sessions end, so what they did is counted below
    after = _state(target.admin_dsn, target.name)
    assert after[0] == before[0], "new relations appeared"
    assert after[1] == before[1], f"rows written: {before[1]} → {after[1]}"
    # The counters do see a write when there is one (so the check above can fail).
    db = psycopg2.connect(target.admin_dsn)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("UPDATE bbperf.bbperf_meta SET key = key")
    db.close()
    assert _state(target.admin_dsn, target.name)[1][1] > after[1][1]


def test_without_hypopg_a_foreign_target_stops_at_install_hypopg_unless_builds_are_allowed(
    target: Target,
    make_test_engine: Callable[..., Engine],
) -> None:
    db = psycopg2.connect(target.admin_dsn)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("DROP EXTENSION IF EXISTS hypopg")
    db.close()
    workload = load_workload("catalogue")
    owner = make_test_engine(target.owner_url, schema="bbperf")
    workload = sample(owner, workload, sets=2).workload
    with pytest.raises(SchemaError, match="CREATE EXTENSION hypopg"):
        advise_workload(owner, workload)
    built = advise_workload(owner, workload, allow_build=True, max_candidates=3)
    assert built.method == "build" and built.candidates_costed == 3
    with owner.connect() as conn:
        left = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'bbperf_whatif%%'"
        ).scalar()
    assert left == 0


@pytest.mark.skipif(not pg15.has_hypopg(), reason="postgresql-15-hypopg is not installed")
def test_the_single_statement_advisor_sees_hypothetical_indexes(
    target: Target, make_test_engine: Callable[..., Engine]
) -> None:
    """`bbperf advise` costs with HypoPG too: its EXPLAIN must not name ANALYZE at all."""
    from bbperf.explain.index_advice import advise

    db = psycopg2.connect(target.admin_dsn)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    db.close()
    reader = make_test_engine(target.reader_url, schema="bbperf")
    advice = advise(
        reader,
        "SELECT id FROM payments WHERE stripe_payment_intent_id = :intent",
        {"intent": "pi_none"},
    )
    assert advice.method == "hypopg"
    assert advice.best is not None
    assert advice.best.candidate.columns == ("stripe_payment_intent_id",)


COMPOSITE = (
    "SELECT * FROM appointments WHERE barber_id = %s AND status = 'confirmed' "
    "ORDER BY start_time LIMIT 20"
)


@pytest.fixture(scope="module")
def skewed(pg15_cluster: pg15.Cluster) -> Iterator[Target]:
    """A PG15 database with the skewed profile (13 barbers, ~50 k appointments), HypoPG, and the
    composite statement run for every barber so pg_stat_statements holds it."""
    from bbperf.generate import generate
    from bbperf.schema import create_schema

    name = f"t_adv_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(pg15_cluster.admin_url())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" OWNER {pg15.USER}')
    admin_dsn = pg15_cluster.admin_url(name)
    db = psycopg2.connect(admin_dsn)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("CREATE EXTENSION pg_stat_statements")
        cur.execute("CREATE EXTENSION hypopg")
    owner_url = pg15_cluster.url.rsplit("/", 1)[0] + f"/{name}"
    owner = make_engine(owner_url, echo_pool=False, schema="bbperf")
    create_schema(owner)
    generate(owner, "skewed", 0.05, 42, "2026-11-01", progress=False)
    owner.dispose()
    with db.cursor() as cur:
        cur.execute("ANALYZE")
        cur.execute("SELECT pg_stat_statements_reset()")
        cur.execute("SELECT DISTINCT barber_id FROM bbperf.appointments")
        barbers = [r[0] for r in cur.fetchall()]
        cur.execute("SET search_path = bbperf")
        for barber in barbers:
            cur.execute(COMPOSITE, (barber,))
    db.close()
    yield Target(admin_dsn, owner_url, owner_url, name)
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _timed_with(target: Target, ddl: str, sql: str, barber: int) -> Timing:
    """Server time of ``sql`` for ``barber`` with only ``ddl``'s index on appointments (built by
    the test as the database owner, dropped after)."""
    from bbperf.explain.measure import measure

    db = psycopg2.connect(target.admin_dsn)
    db.autocommit = True
    try:
        with db.cursor() as cur:
            cur.execute(ddl)
            cur.execute("ANALYZE bbperf.appointments")
        engine = make_engine(target.owner_url, echo_pool=False, schema="bbperf")
        try:
            return measure(engine, sql, {"b": barber}, rounds=25, warmup=5, server_time=True)
        finally:
            engine.dispose()
    finally:
        with db.cursor() as cur:
            cur.execute("DROP INDEX IF EXISTS bbperf.bbperf_test_advice_idx")
        db.close()


@pytest.mark.skipif(not pg15.has_hypopg(), reason="postgresql-15-hypopg is not installed")
def test_the_captured_composite_statement_is_advised_barber_first_and_measured_to_win(
    skewed: Target,
) -> None:
    """Issue 24's done-when: captured from pg_stat_statements, the advice leads with barber_id
    (not the (start_time) a single busy barber's plan favours), and the measured server time for a
    median barber confirms it beats (start_time)."""
    from bbperf.explain.timingstats import compare
    from bbperf.workload.file import Workload
    from bbperf.workload.statement_advice import advise_statement

    engine = make_engine(skewed.owner_url, echo_pool=False, schema="bbperf")
    try:
        captured = capture(engine, top=50)
        (statement,) = [
            s
            for s in captured.statements
            if "barber_id = $1" in s.sql and "ORDER BY start_time" in s.sql
        ]
        sampled = sample(engine, Workload("composite", [statement]), sets=10).workload
        advice = advise_workload(engine, sampled, max_candidates=12)
        single = advise_statement(engine, statement.sql)
        with engine.connect() as conn:
            median_barber = conn.exec_driver_sql(
                "SELECT barber_id FROM (SELECT barber_id, count(*) AS n FROM appointments "
                "GROUP BY barber_id) c ORDER BY n, barber_id "
                "OFFSET (SELECT count(DISTINCT barber_id) / 2 FROM appointments) LIMIT 1"
            ).scalar_one()
    finally:
        engine.dispose()
    assert advice.method == "hypopg"
    chosen = [c.candidate for c in advice.chosen]
    assert chosen and chosen[0].table == "appointments"
    assert chosen[0].columns[0] == "barber_id", advice.text()
    assert single.best is not None and single.best.candidate.columns[0] == "barber_id"
    assert len(single.value_sets) > 2, "scored over sampled, most common and rare values"
    by_index = {str(c.candidate): c for c in single.costs}
    start_time = by_index.get("bbperf.appointments (start_time)")
    assert start_time is None or start_time.cost_after > single.best.cost_after
    sql = COMPOSITE.replace("%s", ":b").replace("FROM appointments", "FROM bbperf.appointments")
    best = single.best.candidate
    on_start_time = _timed_with(
        skewed, "CREATE INDEX bbperf_test_advice_idx ON bbperf.appointments (start_time)", sql,
        median_barber,
    )  # fmt: skip
    on_advice = _timed_with(skewed, best.ddl("bbperf_test_advice_idx"), sql, median_barber)
    assert on_start_time.server_ms and on_advice.server_ms
    measured = compare(on_start_time.server_ms, on_advice.server_ms)
    assert measured.significant and measured.speedup > 1, str(measured)
