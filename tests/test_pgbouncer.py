"""PgBouncer in front of the embedded server (trust, Unix socket) and of PostgreSQL 15 (password,
TCP): the generated config, lifecycle, the session-state trap, and no process left behind."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from bbperf.cli import main
from bbperf.errors import ConfigError
from bbperf.topology.pgbouncer import (
    BouncerConfig,
    PgBouncer,
    PgBouncerMissing,
    find_binary,
    parse_version,
    render_config,
    session_warnings,
)
from bbperf.topology.processes import processes_of
from tests import pg15

try:
    find_binary()
    MISSING = None
except PgBouncerMissing as exc:
    MISSING = str(exc)
needs_pgbouncer = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def home(bbperf_home: Path) -> Iterator[Path]:
    """The session's home; afterwards no pgbouncer of this home may still run."""
    yield bbperf_home
    left = processes_of(bbperf_home, names=("pgbouncer",))
    for proc in left:
        proc.kill()
    assert not left, f"pgbouncer processes survived: {[p.pid for p in left]}"


def _config(**changes: object) -> BouncerConfig:
    base = {
        "directory": Path("/h/pgbouncer"),
        "server_host": "/h/pgdata",
        "server_port": 5432,
        "user": "postgres",
        "password": None,
    }
    return BouncerConfig(**{**base, **changes})  # type: ignore[arg-type]


def test_trust_config_listens_on_a_private_socket_only() -> None:
    ini, userlist = render_config(_config())
    assert "listen_addr = \n" in ini and "unix_socket_mode = 0700" in ini
    assert "auth_type = trust" in ini and "pool_mode = transaction" in ini
    assert (
        "* = host=/h/pgdata port=5432 connect_query='SET search_path = bbperf, pg_catalog'" in ini
    )
    assert "max_prepared_statements" not in ini  # 1.18 does not know it
    assert userlist == '"postgres" ""\n'


def test_password_config_uses_scram_on_loopback_and_escapes_the_password() -> None:
    ini, userlist = render_config(
        _config(server_host="127.0.0.1", password='p"w', listen_port=7000, version=(1, 21, 0))
    )
    assert "listen_addr = 127.0.0.1" in ini and "listen_port = 7000" in ini
    assert "auth_type = scram-sha-256" in ini and "max_prepared_statements = 100" in ini
    assert 'p"w' not in ini
    assert userlist == '"postgres" "p""w"\n'


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"pool_mode": "sometimes"}, "pool mode 'sometimes'"),
        ({"default_pool_size": 0}, "default_pool_size 0"),
        ({"max_client_conn": True}, "max_client_conn True"),
        ({"schema": "x;drop"}, "not a plain identifier"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        render_config(_config(**changes))
    assert fragment in str(info.value)


def test_version_and_the_prepared_statement_warning() -> None:
    assert parse_version("PgBouncer 1.18.0\nlibevent 2.1.12-stable") == (1, 18, 0)
    old = " ".join(session_warnings((1, 18, 0), "transaction"))
    new = " ".join(session_warnings((1, 21, 0), "transaction"))
    assert "1.18.0 does not support protocol-level prepared statements (needs ≥ 1.21" in old
    assert "1.21.0 tracks protocol-level prepared statements" in new
    assert "advisory locks" in old and session_warnings((1, 18, 0), "session") == []


def test_missing_binary_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], bbperf_home: Path
) -> None:
    assert main(["pgbouncer", "start", "--binary", "/nonexistent/pgbouncer"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install pgbouncer" in err[0], err
    with pytest.raises(PgBouncerMissing):
        PgBouncer(bbperf_home, binary="/nonexistent/pgbouncer").start("postgresql://u@/db")


@needs_pgbouncer
def test_start_status_stop_in_front_of_the_embedded_server(
    home: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pgbouncer", "start", "--default-pool-size", "3"]) == 0
    url = capsys.readouterr().out.strip()
    assert "pgbouncer" in url and "port=6432" in url
    bouncer = PgBouncer(home)
    conn = psycopg2.connect(bouncer.url(pg_url))
    with conn.cursor() as cur:
        cur.execute("SHOW search_path")
        assert cur.fetchone()[0] == "bbperf, pg_catalog"  # connect_query, since options are ignored
    conn.close()
    assert main(["pgbouncer", "status"]) == 0
    out = capsys.readouterr().out
    assert "pool_mode          transaction" in out and "default_pool_size  3" in out
    assert "≥ 1.21" in out or "tracks protocol-level" in out
    assert main(["pgbouncer", "stop"]) == 0
    assert capsys.readouterr().out.strip() == "stopped"
    assert bouncer.pid() is None and not (bouncer.directory / "userlist.txt").exists()
    assert not processes_of(home, names=("pgbouncer",))


@needs_pgbouncer
@pytest.mark.pg15
def test_password_server_through_pgbouncer(home: Path, pg15_cluster: pg15.Cluster) -> None:
    bouncer = PgBouncer(home, directory=home / "pgbouncer-pg15")
    url = bouncer.start(pg15_cluster.url)
    try:
        assert "127.0.0.1" in url and str(pg15_cluster.port) not in url
        assert pg15.PASSWORD not in (bouncer.directory / "pgbouncer.ini").read_text()
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, current_setting('server_version_num')::int")
            assert cur.fetchone() == (pg15.USER, pytest.approx(150000, abs=9999))
        conn.commit()  # a client that leaves mid-transaction takes its server connection along
        conn.close()
        with pytest.raises(psycopg2.OperationalError, match="authentication failed"):
            psycopg2.connect(url.replace(pg15.PASSWORD, "wrong-Pa55"))
        assert bouncer.server_connections(pg15_cluster.url) >= 1
    finally:
        assert bouncer.stop() is True
    assert not (bouncer.directory / "userlist.txt").exists()


@needs_pgbouncer
def test_session_state_leaks_under_transaction_pooling(home: Path, pg_url: str) -> None:
    from bbperf.topology.sessiontrap import session_state_trap

    trap = session_state_trap(pg_url, home).set_index("state")
    # Directly, client B never sees client A's session state.
    assert trap.loc["SET", "direct"] == "4MB"
    assert trap.loc["advisory lock", "direct"] == "False"
    assert "does not exist" in trap.loc["temp table", "direct"]
    # Through PgBouncer, B runs on A's server process and inherits it.
    assert trap.loc["SET", "pgbouncer"] == "77MB"
    assert trap.loc["advisory lock", "pgbouncer"] == "True"
    assert trap.loc["temp table", "pgbouncer"] == "0"
    assert "already exists" in trap.loc["SQL PREPARE", "pgbouncer"]
    assert "already exists" in trap.loc["protocol-level prepared statement", "pgbouncer"]
    assert trap.same_server_process.all() and trap.leaked.all()
    assert not processes_of(home, names=("pgbouncer",))


def test_pgbouncer_on_path_is_found_when_installed() -> None:
    if shutil.which("pgbouncer") is None and MISSING is not None:
        pytest.skip(MISSING)
    assert find_binary().name == "pgbouncer"


def test_pool_fit_matches_the_seed_settings() -> None:
    from bbperf.topology.fanout import pool_fit

    fit = pool_fit(97, 1100, 20).set_index("environment")
    assert fit.loc["production", "capacity_per_process"] == 150
    assert fit.loc["production", "processes_direct"] == 0  # one full production pool overflows
    assert fit.loc["production", "processes_via_pgbouncer"] == 7
    assert fit.loc["development", "processes_direct"] == 3
    assert (fit.server_connections_via_pgbouncer == 20).all()


def test_pool_load_via_is_checked(tiny_engine) -> None:  # type: ignore[no-untyped-def]
    from bbperf.pool.load import pool_load

    with pytest.raises(ConfigError, match="choose direct or pgbouncer"):
        pool_load(tiny_engine, ["development"], [1], 0.1, via="carrier-pigeon")


@needs_pgbouncer
def test_pool_load_and_fanout_through_pgbouncer(home: Path, tiny_engine, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    from bbperf.pool.load import pool_load
    from bbperf.topology.fanout import direct_server_connections, fanout

    frame = pool_load(
        tiny_engine, ["development"], [6], 0.3, "point_lookup", via="pgbouncer", home=home
    )
    row = frame.iloc[0]
    assert row.via == "pgbouncer" and row.requests > 0 and row.errors == 0
    assert 1 <= row.server_connections_peak <= 20
    assert PgBouncer(home).pid() is None  # started for the run, stopped after it

    bouncer = PgBouncer(home, directory=home / "pgbouncer-fan")
    pooled = bouncer.start(pg_url, default_pool_size=2)
    direct = direct_server_connections(pg_url)
    try:
        steps = fanout(
            [
                ("direct", pg_url, direct),
                ("pgbouncer", pooled, lambda: bouncer.server_connections(pg_url)),
            ],
            [5],
            0.3,
        ).set_index("via")
    finally:
        direct.close()  # type: ignore[attr-defined]
        bouncer.stop()
    assert (steps.connected == 5).all() and (steps.requests > 0).all()
    assert steps.loc["direct", "server_connections_peak"] == 5
    assert (
        steps.loc["pgbouncer", "server_connections_peak"] <= 2
    )  # 5 clients on 2 server connections
    with pytest.raises(ConfigError):
        fanout([("direct", pg_url, None)], [1], 0.1, "DELETE FROM appointments")
