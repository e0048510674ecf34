"""Who can reach bbperf's server and what a fault leaves behind (issue 25): a private socket whatever
the home's length, ownership proven by the server, disk-space safety, no process outliving a load."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import Engine

from bbperf.embedded import SERVER_ID_FILE, SOCKET_DIR_FILE, EmbeddedServer
from bbperf.ownership import owns
from bbperf.processes import EMBEDDED_USER
from bbperf.target import is_embedded
from tests import pg15

HOME_CHARS = 127  # the home of the report: too long for a socket path under pgdata


def _bbperf(home: Path, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BBPERF_HOME": str(home)}
    env.pop("BBPERF_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "bbperf", *args],
        capture_output=True, text=True, env=env, timeout=timeout_s, check=False,
    )  # fmt: skip


def _home_of_length(parent: Path, length: int) -> Path:
    stem = str(parent / "h")
    assert len(stem) < length
    return Path(stem + "x" * (length - len(stem)))


@pytest.fixture
def long_home(tmp_path: Path) -> Iterator[Path]:
    """A 127-character BBPERF_HOME with a started server, stopped and its socket directory removed
    afterwards."""
    home = _home_of_length(tmp_path, HOME_CHARS)
    started = _bbperf(home, "db", "start")
    assert started.returncode == 0, started.stderr
    yield home
    _bbperf(home, "db", "stop")
    record = home / SOCKET_DIR_FILE
    if record.is_file():
        shutil.rmtree(record.read_text().strip(), ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another OS user needs root")
def test_a_long_home_has_a_private_socket_other_users_cannot_use(long_home: Path) -> None:
    server = EmbeddedServer(long_home)
    socket_dir = Path(str(server.status().socket_dir))
    socket_path = socket_dir / ".s.PGSQL.5432"
    psql = [str(server.bin_dir() / "psql"), f"host={socket_dir} user=postgres dbname=postgres"]
    query = ["-Atc", "SELECT current_setting('unix_socket_permissions')"]
    mine = subprocess.run([*psql, *query], capture_output=True, text=True, timeout=30)
    assert mine.returncode == 0, mine.stderr  # the socket works, for its owner
    other = subprocess.run(
        ["runuser", "-u", "nobody", "--", *psql, *query], capture_output=True, text=True, timeout=30
    )
    assert other.returncode != 0 and "Permission denied" in other.stderr, other.stdout
    dir_stat, socket_stat = os.lstat(socket_dir), os.lstat(socket_path)
    assert stat.S_ISDIR(dir_stat.st_mode) and stat.S_IMODE(dir_stat.st_mode) == 0o700
    assert dir_stat.st_uid == pwd.getpwnam(EMBEDDED_USER).pw_uid
    assert stat.S_ISSOCK(socket_stat.st_mode) and stat.S_IMODE(socket_stat.st_mode) == 0o700
    assert mine.stdout.strip() == "0700"


def test_ownership_is_asked_of_the_server_not_read_from_the_url(
    server: EmbeddedServer,
    pg_url: str,
    pg15_cluster: pg15.Cluster,
    make_test_engine: Callable[..., Engine],
) -> None:
    # A URL naming bbperf's pgdata as its socket host, but hostaddr/port reach PostgreSQL 15.
    spoof = (
        f"postgresql://{pg15.USER}:{pg15.PASSWORD}@/bbperf?host={server.pgdata.resolve()}"
        f"&hostaddr=127.0.0.1&port={pg15_cluster.port}"
    )
    engines = {
        "spoof": make_test_engine(spoof),
        "pg15 superuser": make_test_engine(pg15_cluster.admin_url("bbperf")),
        "embedded": make_test_engine(pg_url),
    }
    with engines["spoof"].connect() as conn:  # it really is the other server
        assert conn.exec_driver_sql("SHOW server_version_num").scalar_one().startswith("15")
    answers = {name: is_embedded(engine) for name, engine in engines.items()}
    assert answers == {"spoof": False, "pg15 superuser": False, "embedded": True}
    marker = server.home / SERVER_ID_FILE  # what the server must match, for no one else to read
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    with engines["embedded"].connect() as conn:
        assert is_embedded(conn) and owns(conn)  # a Connection gets its engine's answer


def test_ownership_costs_one_query_per_engine(
    pg_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine: Engine = make_test_engine(pg_url)
    statements: list[str] = []
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert owns(engine) and owns(engine) and is_embedded(engine)
    assert sum("pg_control_system" in s for s in statements) == 1


def test_a_killed_parallel_load_leaves_no_process_running(
    bbperf_home: Path, fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.schema import create_schema
    from bbperf.topology.running import LOAD_WORKER, processes_of

    engine = make_test_engine(fresh_url)
    create_schema(engine)
    engine.dispose()  # no session of this test's on the database while the load runs
    env = {**os.environ, "BBPERF_HOME": str(bbperf_home), "BBPERF_DATABASE_URL": fresh_url}
    load = subprocess.Popen(
        [sys.executable, "-m", "bbperf", "generate", "--scale", "1", "--resumable", "--jobs", "2",
         "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    coordinator = psutil.Process(load.pid)
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while len(marked := processes_of(bbperf_home, names=(LOAD_WORKER,))) < 2:
            assert load.poll() is None and time.monotonic() < deadline, "no load workers started"
            time.sleep(0.2)
        time.sleep(1.0)  # mid-load: the workers are generating and copying
        descendants = coordinator.children(recursive=True)
        assert load.poll() is None, "the load ended before it could be killed midway"
        load.kill()
        load.wait(timeout=10)
        _, alive = psutil.wait_procs(descendants, timeout=5)
        assert not alive, f"survived their killed coordinator: {[p.cmdline() for p in alive]}"
        assert len(marked) == 2 and {p.pid for p in marked} < {p.pid for p in descendants}
    finally:
        for proc in [coordinator, *descendants]:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def test_a_killed_load_worker_fails_the_load_in_one_line_instead_of_hanging(
    bbperf_home: Path, fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    """A worker the kernel kills (SIGBUS, the OOM killer) or a user does says nothing on its way out;
    the coordinator sees its exit code and stops, keeping what was committed."""
    from bbperf.schema import create_schema
    from bbperf.topology.running import LOAD_WORKER, processes_of

    engine = make_test_engine(fresh_url)
    create_schema(engine)
    engine.dispose()
    env = {**os.environ, "BBPERF_HOME": str(bbperf_home), "BBPERF_DATABASE_URL": fresh_url}
    load = subprocess.Popen(
        [sys.executable, "-m", "bbperf", "generate", "--scale", "1", "--resumable", "--jobs", "2",
         "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(workers := processes_of(bbperf_home, names=(LOAD_WORKER,))) < 2:
            assert load.poll() is None and time.monotonic() < deadline, "no load workers started"
            time.sleep(0.2)
        time.sleep(1.0)  # mid-load
        assert load.poll() is None, "the load ended before a worker could be killed midway"
        workers[0].kill()
        _, err = load.communicate(timeout=60)
    finally:
        load.kill()
    assert load.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()], err
    assert "a load worker was killed by SIGKILL" in err and "rerun the same command" in err, err


def test_a_full_volume_refuses_the_client_tally_in_one_line(small_volume: Path) -> None:
    from bbperf.errors import DataError
    from bbperf.generate.tally import ClientTally

    ballast = _fill(small_volume)
    try:
        with pytest.raises(DataError, match="No space left on device") as refused:
            ClientTally(1_000_000, small_volume)  # 32 MB
        assert str(small_volume) in str(refused.value)
        with pytest.raises(DataError, match="No space left on device"):
            ClientTally.scratch_file(1_000_000, small_volume)
        assert [p.name for p in small_volume.iterdir()] == ["ballast"]  # no file left behind
    finally:
        ballast.unlink()
    tally = ClientTally(1_000, small_volume)  # room again
    tally.close()


def test_db_stop_ends_a_load_worker_that_outlived_its_coordinator(tmp_path: Path) -> None:
    from bbperf.topology.running import LOAD_HOME_ENV

    home = tmp_path / "home"
    home.mkdir()
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, LOAD_HOME_ENV: str(home.resolve())},
    )
    try:
        stopped = _bbperf(home, "db", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopped load worker {orphan.pid}" in stopped.stdout
        assert orphan.wait(timeout=5) == -9
    finally:
        orphan.kill()


def _one_number(conn: Any, sql: str) -> int:
    with conn.cursor() as cur:
        cur.execute(sql)
        return int(cur.fetchone()[0])


def _stderr_or_stacks(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """``proc``'s stderr once it ends; if it does not end in time, every thread's stack of it and its
    children (started with PYTHONFAULTHANDLER=1: SIGABRT dumps them) in the failure."""
    try:
        return proc.communicate(timeout=timeout_s)[1]
    except subprocess.TimeoutExpired:
        family = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
        for member in family:
            with contextlib.suppress(psutil.Error):
                member.send_signal(signal.SIGABRT)
        _, stacks = proc.communicate(timeout=30)
        names = [
            m.info
            for m in psutil.process_iter(["pid", "ppid", "status", "cmdline"])
            if any("bbperf" in part or "postgres" in part for part in m.info["cmdline"] or ())
        ]
        pytest.fail(f"still running after {timeout_s:g} s:\n{stacks}\nprocesses: {names}")


def _fill(volume: Path) -> Path:
    """A file that takes every free byte of ``volume`` (called again, it takes what was freed since)."""
    ballast = volume / "ballast"
    block = bytes(1 << 20)
    with open(ballast, "ab", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(block)
    return ballast


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 150 MB tmpfs, unmounted afterwards (with the server of any home on it stopped)."""
    volume = tmp_path / "vol"
    volume.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=150m", "tmpfs", str(volume)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield volume
    finally:
        _bbperf(volume / "home", "db", "stop")
        subprocess.run(["umount", "-l", str(volume)], check=False)


def test_a_load_that_cannot_fit_is_refused_and_a_full_disk_converges(small_volume: Path) -> None:
    import psycopg2

    home = small_volume / "home"
    assert _bbperf(home, "db", "start").returncode == 0
    assert _bbperf(home, "schema", "create").returncode == 0
    load = ("generate", "--scale", "0.1", "--resumable", "--no-progress")
    refused = _bbperf(home, *load)  # ~105 MB free: 63 MB of load + 64 MB kept free do not fit
    assert refused.returncode == 2 and "free" in refused.stderr, refused.stdout
    assert len(refused.stderr.strip().splitlines()) == 1
    in_one_transaction = _bbperf(home, *load[:3], "--no-progress")  # the plain load is checked too
    assert in_one_transaction.returncode == 2 and "free" in in_one_transaction.stderr

    subprocess.run(["mount", "-o", "remount,size=200m", str(small_volume)], check=True)
    server = EmbeddedServer(home)
    env = {**os.environ, "BBPERF_HOME": str(home), "PYTHONFAULTHANDLER": "1"}
    interrupted = subprocess.Popen(
        [sys.executable, "-m", "bbperf", *load], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    committed = 0
    while committed < 5:  # mid-load, then the disk fills up under it
        assert interrupted.poll() is None and time.monotonic() < deadline, interrupted.stderr
        time.sleep(0.3)
        with contextlib.suppress(psycopg2.Error), psycopg2.connect(server.url()) as conn:
            committed = _one_number(conn, "SELECT count(*) FROM bbperf._load_progress")
    ballast = _fill(small_volume)
    err = _stderr_or_stacks(interrupted, timeout_s=60)
    # One line either way: the COPY's "No space left on device", or a lost connection when a WAL
    # write PANICked the server first.
    assert interrupted.returncode == 2 and "free space on the server's volume" in err, err
    assert len(err.strip().splitlines()) == 1
    _fill(small_volume)  # what the load freed on its way out (its tally files) is taken again
    # WAL that cannot be written PANICs the server, and its recovery fails while the disk is full.
    for n in range(20):
        if server.pid() is None:  # no postmaster at all, not one still recovering
            break
        with contextlib.suppress(psycopg2.Error), psycopg2.connect(server.url()) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_switch_wal()")
                cur.execute(f"CREATE TABLE public.junk_{n} (x int)")
        time.sleep(0.5)
    assert server.pid() is None
    still_full = _bbperf(home, "db", "start")
    assert still_full.returncode == 2 and "No space left on device" in still_full.stderr

    ballast.unlink()
    started = _bbperf(home, "db", "start")
    assert started.returncode == 0, started.stderr
    resumed = _bbperf(home, *load, "--timings")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed:" in resumed.stdout and "were committed by an earlier run" in resumed.stdout


def test_the_replica_is_made_only_of_a_primary_that_proves_it_is_the_embedded_one(
    bbperf_home: Path, server: EmbeddedServer, pg_url: str, pg15_cluster: pg15.Cluster
) -> None:
    from bbperf.topology.replicatarget import is_embedded_primary

    socket_dir = server.status().socket_dir
    spoof = (
        f"postgresql://{pg15.USER}:{pg15.PASSWORD}@/bbperf?host={socket_dir}"
        f"&hostaddr=127.0.0.1&port={pg15_cluster.port}"
    )
    assert not is_embedded_primary(spoof, bbperf_home)
    assert is_embedded_primary(pg_url, bbperf_home)


def test_a_long_replica_socket_dir_is_fresh_and_follows_no_planted_symlink(tmp_path: Path) -> None:
    import hashlib

    from bbperf.processes import socket_dir_for

    pgdata = _home_of_length(tmp_path, 120) / "replica" / "pgdata"
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    # The name bbperf 0b8ab43 derived from the path: anyone could plant it before bbperf ran.
    digest = hashlib.sha256(str(pgdata.resolve()).encode()).hexdigest()[:12]
    planted = Path("/tmp") / f"bbperf-{digest}"
    planted.symlink_to(victim)
    made: list[Path] = []
    try:
        made = [socket_dir_for(pgdata, 5433), socket_dir_for(pgdata, 5433)]
        assert stat.S_IMODE(victim.stat().st_mode) == 0o755 and victim.stat().st_uid == os.getuid()
        for directory in made:
            st = os.lstat(directory)
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
            assert directory != planted
        assert made[0] != made[1]
    finally:
        planted.unlink()
        for directory in made:
            if not directory.is_symlink():
                shutil.rmtree(directory, ignore_errors=True)
