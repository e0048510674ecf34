"""Sharding over postgres_fdw on real shard servers (bbperf.shard): the tiny dataset sharded over 2
and 3 embedded shards keeps its fingerprints after apply and drop, a one-barber query reaches one
shard, a killed shard is named in one line, and nothing bbperf started outlives ``db stop``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import Engine, text

from bbperf.catalog import foreign_keys, secondary_indexes
from bbperf.cli import main
from bbperf.errors import ConfigError, DataError
from bbperf.experiment import EXPERIMENTS
from bbperf.explain.timingstats import Comparison
from bbperf.generate import dataset_info, generate
from bbperf.generate.fingerprint import verify
from bbperf.indexes import SEED
from bbperf.indexes import apply as apply_index_set
from bbperf.roles import ROLES
from bbperf.schema import create_schema
from bbperf.shard import effects, fdw, layout, shardstory
from bbperf.shard.servers import ShardServer, start_shards, stop_shards
from bbperf.target import make_engine
from bbperf.topology.running import processes_of
from tests import pg15


@pytest.fixture(scope="module")
def shard_servers(bbperf_home: Path) -> Iterator[list[ShardServer]]:
    """Three shard servers of the test home, removed after the module."""
    start_shards(bbperf_home, 3)
    yield [ShardServer(bbperf_home, index) for index in range(3)]
    stop_shards(bbperf_home, remove=True)


@pytest.fixture
def shard_urls(shard_servers: list[ShardServer]) -> Iterator[list[str]]:
    """A fresh database on each of the three shards (dropped afterwards), as shard URLs."""
    name = f"t_shard_{uuid.uuid4().hex[:10]}"
    for shard in shard_servers:
        shard.start()  # a test that killed one leaves it for the next to restart
    yield [shard.ensure_database(name) for shard in shard_servers]
    for shard in shard_servers:
        shard.start()
        conn = psycopg2.connect(shard.url("postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def _plan(engine: Engine, sql: str) -> list[dict]:
    with engine.connect() as conn:
        return conn.execute(text(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}")).scalar_one()


def _foreign_scans(node: dict) -> list[str]:
    own = (
        [node["Relation Name"]]
        if node["Node Type"] == "Foreign Scan" and "Relation Name" in node
        else []
    )
    if node["Node Type"] == "Foreign Scan" and "Relations" in node and not own:
        own = [node["Relations"]]
    return own + [name for child in node.get("Plans", []) for name in _foreign_scans(child)]


def _fdw_objects(engine: Engine) -> tuple[list[str], int, list[str]]:
    with engine.connect() as conn:
        servers = list(conn.execute(text("SELECT srvname FROM pg_foreign_server")).scalars())
        mappings = conn.execute(text("SELECT count(*) FROM pg_user_mappings")).scalar_one()
        exts = list(
            conn.execute(
                text("SELECT extname FROM pg_extension WHERE extname = 'postgres_fdw'")
            ).scalars()
        )
    return servers, mappings, exts


def _shard_schemas(url: str) -> list[str]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                "AND nspname NOT IN ('information_schema', 'public')"
            )
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


@pytest.mark.parametrize(("shards", "by"), [(2, "barber"), (3, "barber"), (2, "organization")])
def test_apply_and_drop_keep_fingerprints_and_a_barber_query_reaches_one_shard(
    tiny_copy: Engine, shard_urls: list[str], shards: int, by: str
) -> None:
    before = dataset_info(tiny_copy)
    urls = shard_urls[:shards]
    change = layout.apply(tiny_copy, urls, by)
    assert change.rows == {t: before["fingerprints"][t]["rows"] for t in layout.SHARDED_TABLES}
    assert all(row["ok"] for row in verify(tiny_copy))
    assert dataset_info(tiny_copy)["as_of"] == before["as_of"]
    status = layout.layout_status(tiny_copy)
    assert status.by == by and len(status.shards) == shards and not status.unreachable
    assert (
        sum(s["appointments_rows"] for s in status.shards)
        == before["fingerprints"]["appointments"]["rows"]
    )
    # Only bbperf-named servers on the coordinator, only bbperf's schema on the shards.
    servers, mappings, _ = _fdw_objects(tiny_copy)
    assert sorted(servers) == [fdw.server_name("bbperf", k) for k in range(shards)]
    with tiny_copy.connect() as conn:
        mapped = conn.execute(text("SELECT DISTINCT usename FROM pg_user_mappings")).scalars()
        assert set(mapped) <= {"postgres", *ROLES}  # bbperf's own login roles read the shards too
    assert mappings % shards == 0
    assert all(_shard_schemas(url) == ["bbperf"] for url in urls)

    key = layout.SHARD_KEYS[by]["appointments"]
    with tiny_copy.connect() as conn:
        value = conn.execute(
            text(f"SELECT {key} FROM bbperf.appointments_unsharded LIMIT 1")
        ).scalar_one()
    one = _foreign_scans(
        _plan(tiny_copy, f"SELECT count(*) FROM bbperf.appointments WHERE {key} = {int(value)}")[0][
            "Plan"
        ]
    )
    every = _foreign_scans(_plan(tiny_copy, "SELECT count(*) FROM bbperf.appointments")[0]["Plan"])
    assert len(one) == 1, one
    assert len(every) == shards, every

    dropped = layout.drop(tiny_copy)
    assert dropped.rows == change.rows
    assert all(row["ok"] for row in verify(tiny_copy))
    assert dataset_info(tiny_copy)["as_of"] == before["as_of"]
    assert _fdw_objects(tiny_copy) == ([], 0, [])
    assert all(_shard_schemas(url) == [] for url in urls)
    with tiny_copy.connect() as conn:
        kind = conn.execute(
            text("SELECT relkind FROM pg_class WHERE oid = 'bbperf.appointments'::regclass")
        ).scalar()
    assert kind == "r"


def test_writes_made_while_sharded_come_back_with_drop(
    tiny_copy: Engine, shard_urls: list[str]
) -> None:
    layout.apply(tiny_copy, shard_urls[:2], "barber")
    with tiny_copy.begin() as conn:
        new_id = conn.execute(
            text(
                "INSERT INTO bbperf.appointments (user_id, barber_id, status, start_time, price) "
                "SELECT user_id, barber_id, 'pending', now(), 10 FROM bbperf.appointments LIMIT 1 "
                "RETURNING id"
            )
        ).scalar_one()
    layout.drop(tiny_copy)
    with tiny_copy.connect() as conn:
        found = conn.execute(
            text("SELECT count(*) FROM bbperf.appointments WHERE id = :i"), {"i": new_id}
        ).scalar_one()
    assert found == 1
    assert not next(r for r in verify(tiny_copy) if r["table"] == "appointments")["ok"]


def test_a_shard_that_holds_bbperfs_schema_is_refused_and_nothing_changes(
    tiny_copy: Engine, shard_urls: list[str]
) -> None:
    layout.apply(tiny_copy, shard_urls[:1], "barber")
    with pytest.raises(DataError, match="sharded already"):
        layout.apply(tiny_copy, shard_urls[:1], "barber")
    layout.drop(tiny_copy)
    engine = layout.shard_engine(shard_urls[1], "bbperf")
    create_schema(engine)
    engine.dispose()
    with pytest.raises(DataError, match="shard 1 .* already has schema"):
        layout.apply(tiny_copy, shard_urls[:2], "barber")
    assert _fdw_objects(tiny_copy) == ([], 0, [])
    assert _shard_schemas(shard_urls[0]) == []  # the shard it prepared was put back
    assert all(row["ok"] for row in verify(tiny_copy))


def test_a_killed_shard_is_named_in_one_line(
    tiny_copy: Engine,
    tiny_copy_url: str,
    shard_urls: list[str],
    shard_servers: list[ShardServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    layout.apply(tiny_copy, shard_urls[:2], "barber")
    # explain logs in as bbperf's query role: it reads the shards through its own user mapping.
    sql = "SELECT count(*) FROM appointments WHERE barber_id = 1"
    assert main(["--database-url", tiny_copy_url, "explain", sql]) == 0
    assert "Foreign Scan" in capsys.readouterr().out
    tiny_copy.dispose()  # no cached FDW connection survives into the checks below
    assert shard_servers[1].kill()
    capsys.readouterr()
    assert main(["--database-url", tiny_copy_url, "data", "verify"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shard 1" in err[0] and "Traceback" not in err[0], err
    assert main(["--database-url", tiny_copy_url, "shard", "status", "--format", "json"]) == 1
    status = json.loads(capsys.readouterr().out)
    assert "shard1" in status["down"] and "shard0" not in status["down"]
    assert [s["reachable"] for s in status["layout"]["shards"]] == [True, False]
    assert main(["--database-url", tiny_copy_url, "explain", sql.split(" WHERE")[0]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bbperf_bbperf_shard_1" in err[0], err
    assert main(["--database-url", tiny_copy_url, "shard", "drop"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shard 1" in err[0], err
    shard_servers[1].start()
    layout.drop(tiny_copy)
    assert all(row["ok"] for row in verify(tiny_copy))


@pytest.mark.parametrize(
    "argv",
    [
        ["shard", "start", "--shards", "0"],
        ["shard", "start", "--shards", "999"],
        ["shard", "start", "--shards", "two"],
        ["shard", "apply", "--by", "city"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bbperf: error:"), err


def test_apply_without_shards_says_how_to_get_them(tiny_copy: Engine) -> None:
    with pytest.raises(ConfigError, match="bbperf shard start"):
        layout.apply(tiny_copy, [], "barber")


def test_fdw_options_keep_the_password_for_the_mapping_only() -> None:
    server, mapping = fdw.fdw_options(
        "postgresql://ann:s3cret-pw@db.example:6432/app?sslmode=require"
    )
    assert server == {"dbname": "app", "host": "db.example", "port": "6432", "sslmode": "require"}
    assert mapping == {"user": "ann", "password": "s3cret-pw"}
    socket, _ = fdw.fdw_options("postgresql://postgres@/bbperf?host=%2Ftmp%2Fs&port=5999")
    assert socket == {"dbname": "bbperf", "host": "/tmp/s", "port": "5999"}


def test_shard_error_names_the_shard_and_ignores_other_failures() -> None:
    error = fdw.shard_error(
        Exception('could not connect to server "bbperf_bbperf_shard_2"\nDETAIL: x')
    )
    assert error is not None and "shard 2" in str(error) and "DETAIL" not in str(error)
    assert fdw.shard_error(Exception('relation "x" does not exist')) is None


def test_db_stop_leaves_no_shard_running(tmp_path: Path) -> None:
    """A home of its own: `bbperf db stop` there stops its coordinator and its shard."""
    home = tmp_path / "home"
    env = {**os.environ, "BBPERF_HOME": str(home)}
    env.pop("BBPERF_DATABASE_URL", None)
    bbperf = [sys.executable, "-m", "bbperf"]
    started = subprocess.run(
        [*bbperf, "shard", "start", "--shards", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert started.returncode == 0, started.stderr
    assert len(processes_of(home, ("postgres",))) >= 2
    stopped = subprocess.run(
        [*bbperf, "db", "stop"], env=env, capture_output=True, text=True, timeout=300
    )
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped shard0" in stopped.stdout
    assert processes_of(home) == []


def _comparison(speedup: float, low: float, high: float) -> Comparison:
    return Comparison(
        before_median=speedup,
        after_median=1.0,
        speedup=speedup,
        ci_low=low,
        ci_high=high,
        confidence=0.95,
        p_value=0.01,
        alpha=0.05,
        significant=low > 1 or high < 1,
    )


@pytest.mark.parametrize(
    ("routed_vs_local", "routed_vs_fanout", "verdict"),
    [
        ((0.1, 0.05, 0.8), (4.0, 1.7, 15.0), "partly"),  # routing helps, the hop costs
        ((1.1, 1.02, 1.3), (4.0, 1.7, 15.0), "confirmed"),
        ((1.0, 0.8, 1.2), (4.0, 1.7, 15.0), "confirmed"),  # no slower than one server
        ((0.1, 0.05, 0.8), (1.1, 0.9, 1.4), "partly"),  # routing's gain not significant
        ((0.1, 0.05, 0.8), (0.5, 0.3, 0.8), "refuted"),
    ],
)
def test_the_sharding_claim_follows_the_cis(
    routed_vs_local: tuple[float, float, float],
    routed_vs_fanout: tuple[float, float, float],
    verdict: str,
) -> None:
    assert (
        shardstory.claim_verdict(_comparison(*routed_vs_local), _comparison(*routed_vs_fanout))
        == verdict
    )


def test_the_verdict_line_says_slower_faster_and_torn() -> None:
    line = shardstory.verdict(
        2,
        _comparison(0.1, 0.05, 0.8),
        _comparison(1.0, 0.7, 1.3),
        _comparison(4.0, 1.7, 15.0),
        True,
    )
    assert "×10.00 slower" in line and "no measurable difference" in line and "one half" in line
    [claim] = shardstory.claims(
        2, _comparison(0.1, 0.05, 0.8), _comparison(1.0, 0.7, 1.3), _comparison(4.0, 1.7, 15.0)
    )
    assert claim["claim"] == "roadmap.shard_by_organization" and claim["verdict"] == "partly"
    assert EXPERIMENTS.owner(claim["claim"]).notebook == "10_sharding"


def test_plan_readers_find_foreign_scans_and_local_work() -> None:
    plan = {
        "Node Type": "Aggregate",
        "Plans": [
            {
                "Node Type": "Append",
                "Plans": [
                    {
                        "Node Type": "Foreign Scan",
                        "Relation Name": "appointments_shard_0",
                        "Remote SQL": "SELECT a",
                    },
                    {
                        "Node Type": "Foreign Scan",
                        "Relation Name": "appointments_shard_1",
                        "Remote SQL": "SELECT b",
                    },
                ],
            }
        ],
    }
    assert [s["relation"] for s in effects.foreign_scans(plan)] == [
        "appointments_shard_0",
        "appointments_shard_1",
    ]
    assert effects.pushdown_row("q", plan) == {
        "query": "q",
        "shards_reached": 2,
        "coordinator_does": "Aggregate",
        "remote_sql": "SELECT a",
    }
    pushed = {
        "Node Type": "Foreign Scan",
        "Relations": "Aggregate on (appointments_shard_0)",
        "Remote SQL": "SELECT count(*)",
    }
    assert effects.pushdown_row("p", pushed)["coordinator_does"] == "nothing: all pushed down"


def test_an_external_coordinator_shards_over_the_urls_it_is_given(
    pg15_cluster: pg15.Cluster, pg15_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL 15 over TCP with a password, as a user who is no superuser: the coordinator and
    two shards are databases of that cluster. The extension is the administrator's (created beside
    the grant a non-superuser needs), so bbperf neither creates nor drops it."""
    names = [f"t_ext_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin = psycopg2.connect(pg15_cluster.admin_url())
    admin.autocommit = True
    coordinator_db = pg15_url.rsplit("/", 1)[1].split("?")[0]
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f'CREATE DATABASE "{name}" OWNER {pg15.USER}')
    fdw = psycopg2.connect(pg15_cluster.admin_url(coordinator_db))
    fdw.autocommit = True
    with fdw.cursor() as cur:
        cur.execute("CREATE EXTENSION postgres_fdw")
        cur.execute(f"GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {pg15.USER}")
    fdw.close()
    shard_urls = [pg15_url.rsplit("/", 1)[0] + f"/{name}" for name in names]
    engine = make_engine(pg15_url, echo_pool=False)
    try:
        create_schema(engine)
        generate(engine, "tiny", 1.0, 42, "2026-11-01", progress=False)
        layout.apply(engine, shard_urls, "barber")
        assert all(row["ok"] for row in verify(engine))
        capsys.readouterr()
        args = ["--database-url", pg15_url, "shard", "status", "--format", "json"]
        assert main([*args, "--shard-url", shard_urls[0], "--shard-url", shard_urls[1]]) == 0
        out = capsys.readouterr().out
        assert pg15.PASSWORD not in out and '"down": []' in out
        with pytest.raises(ConfigError, match="--shard-url"):
            layout.drop(engine)  # the recorded URLs are masked: the password is not kept
        layout.drop(engine, shard_urls)
        assert all(row["ok"] for row in verify(engine))
        servers, mappings, exts = _fdw_objects(engine)
        assert (servers, mappings, exts) == ([], 0, ["postgres_fdw"])
        assert all(_shard_schemas(url) == [] for url in shard_urls)
    finally:
        engine.dispose()
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_each_shard_carries_the_coordinators_indexes(
    tiny_copy: Engine, shard_urls: list[str]
) -> None:
    """A shard is the same table design, only smaller: the index set applied on the single server is
    built on every shard, so a routed query is compared with the single server like for like."""
    apply_index_set(tiny_copy, SEED)
    with tiny_copy.connect() as conn:
        wanted = {n for n, _ in secondary_indexes(conn, "bbperf", layout.SHARDED_TABLES)}
    assert "idx_appointments_barber_status_start" in wanted
    layout.apply(tiny_copy, shard_urls[:2], "barber")
    try:
        for url in shard_urls[:2]:
            shard = make_engine(url, schema="bbperf")
            try:
                with shard.connect() as conn:
                    have = {n for n, _ in secondary_indexes(conn, "bbperf", layout.SHARDED_TABLES)}
                    analyzed = conn.execute(
                        text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                             "WHERE relid = 'bbperf.appointments'::regclass")
                    ).scalar_one()  # fmt: skip
            finally:
                shard.dispose()
            assert have == wanted and analyzed
    finally:
        layout.drop(tiny_copy)


def _contents(engine: Engine, table: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM bbperf.{table} t")
        ).scalar_one()


def test_drop_writes_back_exactly_what_changed_and_leaves_the_rest_in_place(
    tiny_copy: Engine, shard_urls: list[str]
) -> None:
    """After an update, an insert and a delete through the coordinator, drop leaves the plain
    tables holding what the shards held, row for row; a row nobody touched keeps its place on disk
    (ctid): only the difference is written back, not every row through every index."""
    with tiny_copy.connect() as conn:
        untouched, place = conn.execute(
            text("SELECT id, ctid::text FROM bbperf.appointments ORDER BY id DESC LIMIT 1")
        ).one()
    layout.apply(tiny_copy, shard_urls[:2], "barber")
    with tiny_copy.begin() as conn:
        changed = conn.execute(
            text(
                "UPDATE bbperf.appointments SET status = 'cancelled', price = price + 1 "
                "WHERE id = (SELECT min(id) FROM bbperf.appointments) RETURNING id"
            )
        ).scalar_one()
        gone = conn.execute(
            text(
                "DELETE FROM bbperf.payments WHERE id = (SELECT min(id) FROM bbperf.payments) "
                "RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO bbperf.appointments (user_id, barber_id, status, start_time, price) "
                "SELECT user_id, barber_id, 'pending', now(), 10 FROM bbperf.appointments LIMIT 1"
            )
        )
    sharded = {t: _contents(tiny_copy, t) for t in layout.SHARDED_TABLES}
    change = layout.drop(tiny_copy)
    assert {t: _contents(tiny_copy, t) for t in layout.SHARDED_TABLES} == sharded
    with tiny_copy.connect() as conn:
        counts = {
            t: conn.execute(text(f"SELECT count(*) FROM bbperf.{t}")).scalar_one()
            for t in layout.SHARDED_TABLES
        }
        assert (
            conn.execute(
                text("SELECT ctid::text FROM bbperf.appointments WHERE id = :i"), {"i": untouched}
            ).scalar_one()
            == place
        )
        assert (
            conn.execute(
                text("SELECT status FROM bbperf.appointments WHERE id = :i"), {"i": changed}
            ).scalar_one()
            == "cancelled"
        )
        assert (
            conn.execute(
                text("SELECT count(*) FROM bbperf.payments WHERE id = :i"), {"i": gone}
            ).scalar_one()
            == 0
        )
        leftovers = conn.execute(
            text("SELECT count(*) FROM pg_class WHERE relname LIKE '%from_shards'")
        ).scalar_one()
    assert change.rows == counts and leftovers == 0


def test_each_shard_gets_back_its_foreign_keys_but_the_cross_shard_one(
    tiny_copy: Engine, shard_urls: list[str]
) -> None:
    """The shards load their share without foreign keys and add them back afterwards, checked:
    every key of the coordinator's tables but payments → appointments (it may cross shards)."""
    with tiny_copy.connect() as conn:
        wanted = {
            (fk["table"], fk["name"]) for fk in foreign_keys(conn, "bbperf", layout.SHARDED_TABLES)
            if (fk["table"], fk["references"]) != ("payments", "appointments")
        }  # fmt: skip
    assert len(wanted) >= 5
    layout.apply(tiny_copy, shard_urls[:2], "barber")
    try:
        for url in shard_urls[:2]:
            shard = make_engine(url, schema="bbperf")
            try:
                with shard.connect() as conn:
                    have = {
                        (fk["table"], fk["name"])
                        for fk in foreign_keys(conn, "bbperf", layout.SHARDED_TABLES)
                    }
                    invalid = conn.execute(
                        text("SELECT count(*) FROM pg_constraint WHERE NOT convalidated")
                    ).scalar_one()
            finally:
                shard.dispose()
            assert have == wanted and invalid == 0
    finally:
        layout.drop(tiny_copy)


def test_the_fan_out_is_timed_at_most_fanout_rounds_and_the_figures_say_so(
    tiny_copy: Engine, shard_urls: list[str]
) -> None:
    layout.apply(tiny_copy, shard_urls[:2], "barber")
    try:
        tenant = effects.busiest_tenant(tiny_copy)
        routing = effects.routing(
            tiny_copy, tenant, "barber", rounds=effects.FANOUT_ROUNDS + 2, warmup=1
        )
    finally:
        layout.drop(tiny_copy)
    capped = effects.FANOUT_ROUNDS
    assert routing.sizes == (capped + 2, capped, capped)
    comparisons = (routing.routed_vs_local, routing.fanout_vs_local, routing.routed_vs_fanout)
    assert [f["n"] for f in shardstory.figures(*comparisons, n=routing.sizes)] == list(
        routing.sizes
    )
    assert [f["n"] for f in shardstory.figures(*comparisons, n=7)] == [7, 7, 7]


def test_undo_interrupted_brings_back_only_its_owners_sharding(
    tiny_copy: Engine, shard_urls: list[str]
) -> None:
    """A notebook killed while the tables were sharded: its next run brings them back first; a
    sharding made by anyone else is left alone."""
    assert layout.undo_interrupted(tiny_copy, "10_sharding") is None
    layout.apply(tiny_copy, shard_urls[:2], "barber")
    assert layout.undo_interrupted(tiny_copy, "10_sharding") is None
    assert layout.layout_status(tiny_copy).sharded
    layout.drop(tiny_copy)
    layout.apply(tiny_copy, shard_urls[:2], "barber", owner="10_sharding")
    assert layout.undo_interrupted(tiny_copy, "someone else") is None
    undone = layout.undo_interrupted(tiny_copy, "10_sharding")
    assert undone is not None and undone.action == "drop"
    assert not layout.layout_status(tiny_copy).sharded
    assert all(row["ok"] for row in verify(tiny_copy))
