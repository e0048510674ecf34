"""PgBouncer in front of the embedded server (trust, Unix socket) and of PostgreSQL 15 (password,
TCP): the generated config, lifecycle, the session-state trap, and no process left behind."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import Engine

from bbperf.cli import main
from bbperf.errors import ConfigError
from bbperf.secrets import forms
from bbperf.topology.pgbouncer import (
    BouncerConfig,
    PgBouncer,
    PgBouncerMissing,
    find_binary,
    parse_version,
    render_config,
    session_warnings,
)
from bbperf.topology.running import processes_of
from bbperf.topology.scram import scram_secret
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
        "secret": None,
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


def test_password_config_uses_scram_on_loopback_with_a_secret_not_the_password() -> None:
    secret = scram_secret('p"w0rd', b"0123456789abcdef", 4096)
    ini, userlist = render_config(
        _config(server_host="127.0.0.1", secret=secret, listen_port=7000, version=(1, 21, 0))
    )
    assert "listen_addr = 127.0.0.1" in ini and "listen_port = 7000" in ini
    assert "auth_type = scram-sha-256" in ini and "max_prepared_statements = 100" in ini
    assert userlist == f'"postgres" "{secret}"\n'
    assert secret.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert not find_leaks_in_text(ini + userlist, 'p"w0rd')
    with pytest.raises(ConfigError, match="never a password"):
        render_config(_config(server_host="127.0.0.1", secret='p"w0rd'))


def find_leaks_in_text(text: str, password: str) -> list[str]:
    """The forms of ``password`` (bbperf.secrets knows them all) that occur in ``text``."""
    return [form for form in forms(password) if form in text]


def test_stored_secrets_are_masked_like_passwords() -> None:
    from bbperf.secrets import redact

    secret = scram_secret("pencil", b"0123456789abcdef")
    md5 = "md5" + "0123456789abcdef" * 2
    assert redact(f'"bbperf_user" "{secret}" and {md5}.') == '"bbperf_user" "***" and ***.'


def test_scram_secret_matches_rfc_7677() -> None:
    # RFC 7677 section 3: user "user", password "pencil", this salt and 4096 iterations; the
    # exchange's ServerSignature is HMAC(ServerKey, AuthMessage), so the ServerKey is right when
    # it reproduces the RFC's v= value.
    import base64
    import hashlib
    import hmac

    secret = scram_secret("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
    server_key = base64.b64decode(secret.rsplit(":", 1)[1])
    auth_message = (
        "n=user,r=rOprNGfwEbeRWgbNEkqO,"
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    signature = hmac.new(server_key, auth_message.encode(), hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


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


def _role_secret(cluster: pg15.Cluster) -> str:
    conn = psycopg2.connect(cluster.admin_url())
    with conn.cursor() as cur:
        cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (pg15.USER,))
        (secret,) = cur.fetchone()
    conn.close()
    return str(secret)


@needs_pgbouncer
@pytest.mark.pg15
@pytest.mark.parametrize("source", ["userinfo", "query", "PGPASSWORD", "pgpass"])
def test_password_server_through_pgbouncer(
    home: Path,
    pg15_cluster: pg15.Cluster,
    source: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bare = f"postgresql://{pg15.USER}@127.0.0.1:{pg15_cluster.port}/bbperf"
    target = {
        "userinfo": pg15_cluster.url,
        "query": f"{bare}?password={pg15.PASSWORD}",
        "PGPASSWORD": bare,
        "pgpass": bare,
    }[source]
    if source == "PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", pg15.PASSWORD)
    if source == "pgpass":
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"127.0.0.1:{pg15_cluster.port}:*:{pg15.USER}:{pg15.PASSWORD}\n")
        pgpass.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))
    bouncer = PgBouncer(home, directory=home / "pgbouncer-pg15")
    url = bouncer.start(target)
    try:
        assert "127.0.0.1" in url and str(pg15_cluster.port) not in url
        files = [bouncer.directory / "pgbouncer.ini", bouncer.directory / "userlist.txt"]
        text = "".join(path.read_text() for path in files)
        assert not find_leaks_in_text(text, pg15.PASSWORD)
        # The server's own secret, read from the salt it offers: SCRAM pass-through needs it.
        assert f'"{pg15.USER}" "{_role_secret(pg15_cluster)}"' in text
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, current_setting('server_version_num')::int")
            assert cur.fetchone() == (pg15.USER, pytest.approx(150000, abs=9999))
        conn.commit()  # a client that leaves mid-transaction takes its server connection along
        conn.close()
        with pytest.raises(psycopg2.OperationalError, match="authentication failed"):
            psycopg2.connect(url.replace(pg15.PASSWORD, "wrong-Pa55"))
        assert bouncer.server_connections(target) >= 1
    finally:
        assert bouncer.stop() is True
    assert not (bouncer.directory / "userlist.txt").exists()


@needs_pgbouncer
@pytest.mark.pg15
def test_pool_load_through_pgbouncer_on_the_password_server(
    home: Path, pg15_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.topology.bouncerload import pool_load_via

    engine = make_test_engine(pg15_url)
    frame = pool_load_via(
        engine,
        environments=["development"],
        concurrency=[3],
        duration_s=0.3,
        workload="select1",
        via="pgbouncer",
        home=home,
    )
    row = frame.iloc[0]
    assert row.requests > 0 and row.errors == 0 and row.server_refusals == 0
    assert not processes_of(home, names=("pgbouncer",))


@pytest.mark.pg15
def test_a_url_without_any_password_is_refused_in_one_line(
    pg15_cluster: pg15.Cluster, home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    bare = f"postgresql://{pg15.USER}@127.0.0.1:{pg15_cluster.port}/bbperf"
    with pytest.raises(ConfigError, match="gives no password .nor does PGPASSWORD or .pgpass."):
        PgBouncer(home, directory=home / "pgbouncer-none").start(bare)


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
    from bbperf.topology.bouncerload import pool_load_via

    with pytest.raises(ConfigError, match="choose direct or pgbouncer"):
        pool_load_via(tiny_engine, environments=["development"], via="carrier-pigeon")


@needs_pgbouncer
def test_pool_load_and_fanout_through_pgbouncer(home: Path, tiny_engine, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    from bbperf.topology.bouncerload import pool_load_via
    from bbperf.topology.fanout import direct_server_connections, fanout

    frame = pool_load_via(
        tiny_engine,
        environments=["development"],
        concurrency=[6],
        duration_s=0.3,
        workload="point_lookup",
        via="pgbouncer",
        home=home,
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
