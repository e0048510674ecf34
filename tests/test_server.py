"""The embedded server: initialised with the bench settings, reused, stopped and restarted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bbperf.embedded import EmbeddedServer
from bbperf.errors import ServerError
from tests.dbutil import scalar


def test_server_has_bench_settings_and_extensions(pg_url: str) -> None:
    assert scalar(pg_url, "show shared_preload_libraries") == "pg_stat_statements, auto_explain"
    assert scalar(pg_url, "show track_io_timing") == "on"
    assert int(scalar(pg_url, "show server_version_num")) >= 180000
    installed = scalar(pg_url, "select array_agg(extname order by extname) from pg_extension")
    assert {"pg_stat_statements", "pgstattuple", "pg_buffercache"} <= set(installed)
    assert scalar(pg_url, "select count(*) >= 0 from pg_stat_statements") is True


def test_url_has_no_password_and_uses_socket(pg_url: str) -> None:
    assert pg_url.startswith("postgresql://postgres@/bbperf?host=")


def test_second_start_from_another_process_reuses_server(bbperf_home: Path, server) -> None:  # type: ignore[no-untyped-def]
    pid = server.status().pid
    out = subprocess.run(
        [sys.executable, "-m", "bbperf", "db", "start"],
        capture_output=True,
        text=True,
        check=True,
        env={"BBPERF_HOME": str(bbperf_home), "PATH": "/usr/bin:/bin"},
    )
    assert "postgresql://postgres@/bbperf" in out.stdout
    assert server.status().pid == pid  # the same postmaster: attached, not initialised again


def test_lifecycle_in_own_home(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "home")
    assert server.status().running is False
    with pytest.raises(ServerError, match="not running"):
        server.url()
    url = server.start()
    assert server.status().running and server.status().initialized
    assert scalar(url, "select 1") == 1
    assert server.stop() is True
    assert server.status().running is False
    assert server.stop() is False
    # A restart keeps the initialised cluster and its settings.
    url = server.start()
    assert scalar(url, "show track_io_timing") == "on"
    server.stop()


def _status_line(pgdata: Path, status: str) -> None:
    """Rewrite the status line (the 8th) of ``pgdata``'s postmaster.pid."""
    pid_file = pgdata / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    lines[7] = status.ljust(len(lines[7]))
    pid_file.write_text("\n".join(lines) + "\n")


def test_start_waits_for_a_recovering_postmaster_and_ignores_a_stale_pid_file(
    tmp_path: Path, server: EmbeddedServer
) -> None:
    """Faults converge: a postmaster of the data directory that is not ready yet (crash recovery)
    is waited for, not raced by a second one that would only find its lock file; a pid file whose
    number now belongs to another server's postgres is stale, not a reason to refuse."""
    import threading

    own = EmbeddedServer(tmp_path / "home")
    own.start()
    pid = own.status().pid
    _status_line(own.pgdata, "starting")  # what a postmaster in crash recovery writes
    assert own.status().running is False and own.settled(timeout_s=0.5) is False
    ready_later = threading.Timer(1.5, _status_line, (own.pgdata, "ready"))
    ready_later.start()
    try:
        own.start()  # waits, then attaches to the same postmaster
    finally:
        ready_later.join()
    assert own.status().pid == pid

    assert own.stop() is True
    other = server.status().pid  # a live postgres, of another data directory
    assert other is not None and other != pid
    (own.pgdata / "postmaster.pid").write_text(f"{other}\n{own.pgdata}\n0\n5432\n\n\n0 0\nready\n")
    try:
        assert own.status().running is False
        own.start()
        assert own.status().running and own.status().pid not in (pid, other)
        assert server.status().pid == other  # the other server is untouched
    finally:
        own.stop()
