"""The read-only proof on PostgreSQL 15: capture, sample, replay and advise (HypoPG) as a role with
only CONNECT, SELECT (and USAGE on the schema) and pg_read_all_stats leave the target unchanged — no
new relation, no row inserted, updated or deleted in the database's counters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest

from bbperf.errors import SchemaError
from bbperf.pool.config import make_engine
from bbperf.workload import catalogue, load_workload
from bbperf.workload.advise import advise_workload
from bbperf.workload.capture import capture
from bbperf.workload.replay import replay
from bbperf.workload.sample import sample
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


def test_capture_sample_replay_advise_as_a_read_only_role_change_nothing(target: Target) -> None:
    # Leave autovacuum nothing to do during the test: its ANALYZE of the catalogs the dataset load
    # changed would write pg_statistic rows into the same counters.
    db = psycopg2.connect(target.admin_dsn)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    db.close()
    before = _state(target.admin_dsn, target.name)
    reader = make_engine(target.reader_url, echo_pool=False, schema="bbperf")
    try:
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
    finally:
        reader.dispose()
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
) -> None:
    db = psycopg2.connect(target.admin_dsn)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("DROP EXTENSION IF EXISTS hypopg")
    db.close()
    workload = load_workload("catalogue")
    owner = make_engine(target.owner_url, echo_pool=False, schema="bbperf")
    try:
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
    finally:
        owner.dispose()


@pytest.mark.skipif(not pg15.has_hypopg(), reason="postgresql-15-hypopg is not installed")
def test_the_single_statement_advisor_sees_hypothetical_indexes(target: Target) -> None:
    """`bbperf advise` costs with HypoPG too: its EXPLAIN must not name ANALYZE at all."""
    from bbperf.explain.advisor import advise

    db = psycopg2.connect(target.admin_dsn)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    db.close()
    reader = make_engine(target.reader_url, echo_pool=False, schema="bbperf")
    try:
        advice = advise(
            reader,
            "SELECT id FROM payments WHERE stripe_payment_intent_id = :intent",
            {"intent": "pi_none"},
        )
    finally:
        reader.dispose()
    assert advice.method == "hypopg"
    assert advice.best is not None
    assert advice.best.candidate.columns == ("stripe_payment_intent_id",)
