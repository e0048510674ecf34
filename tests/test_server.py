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
