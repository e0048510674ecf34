"""bbperf against a server it does not own: PostgreSQL 15 with a password over TCP and no SSL.

The whole report runs there (profile tiny, small rounds): every notebook ends ok, or says it skipped
and why; the production pool config (sslmode=require) is skipped with its reason instead of crashing
notebook 03; PgBouncer (06) works whichever way the password arrives; no stray kernel line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bbperf.pool.reach import pool_reach
from bbperf.report.runner import discover_notebooks
from bbperf.secrets import find_leaks
from bbperf.shard.effects import NOT_EMBEDDED
from bbperf.topology.running import processes_of
from tests import pg15

pytestmark = [pytest.mark.pg15, pytest.mark.notebook]

ROOT = Path(__file__).resolve().parent.parent
# Few rounds and short steps: the shapes, not the figures, are under test.
SMALL = [
    *("-p", "rounds=5", "-p", "warmup=1", "-p", "concurrency=[1, 4]", "-p", "duration_s=0.25"),
    *("-p", "check_barbers=2", "-p", "partition_counts=[3]", "-p", "write_rounds=10"),
]
NO_SSL = "sslmode=require but the server has no SSL"


@pytest.fixture
def bench_url(pg15_cluster: pg15.Cluster, pg15_url: str) -> str:
    """A fresh database on PostgreSQL 15 set up as a DBA would for bbperf: the statistics
    extensions (and HypoPG when installed) created by a superuser; bbperf itself has no superuser."""
    import psycopg2

    conn = psycopg2.connect(pg15_cluster.admin_url(pg15_url.rsplit("/", 1)[1]))
    conn.autocommit = True
    with conn.cursor() as cur:
        for extension in ("pg_stat_statements", "pgstattuple", "pg_buffercache"):
            cur.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
        if pg15.has_hypopg():
            cur.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    conn.close()
    return pg15_url


def _report(url: str, out: Path, home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``bbperf report`` as a user runs it, in its own process: the kernels' stderr is ours too."""
    command = [sys.executable, "-m", "bbperf", "--database-url", url, "report", "--profile",
               "tiny", "--no-progress", "--out", str(out), *extra]  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**environ, "BBPERF_HOME": str(home)},
        timeout=900,
    )


def _without_password(url: str) -> tuple[str, str, str]:
    """``url`` with its password removed, its user, and its ``host:port``."""
    userinfo, rest = url.removeprefix("postgresql://").split("@", 1)
    user = userinfo.split(":")[0]
    return f"postgresql://{user}@{rest}", user, rest.split("/", 1)[0]


def _notebooks(out: Path) -> dict[str, dict[str, object]]:
    document = json.loads((out / "results.json").read_text())
    return {
        name: {"status": nb["status"], "error": nb["error"], "verdict": nb["results"][0]["verdict"]}
        if nb["results"]
        else {"status": nb["status"], "error": nb["error"], "verdict": None}
        for name, nb in document["notebooks"].items()
    }


def test_pool_configs_that_cannot_connect_are_skipped_with_the_reason(
    pg15_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(pg15_url)
    reach = pool_reach(engine, ["development", "staging", "production"])
    assert reach.usable == ["development", "staging"]
    assert reach.skipped == {"production": NO_SSL}
    assert reach.lines() == [
        "development: connects",
        "staging: connects",
        f"production: skipped: {NO_SSL}",
    ]


def test_the_full_report_on_a_password_server_without_ssl(bench_url: str, tmp_path: Path) -> None:
    # The password as a query parameter: the form notebook 06 used to fail on.
    url = f"{_without_password(bench_url)[0]}?password={pg15.PASSWORD}"
    out, home = tmp_path / "report", tmp_path / "home"
    done = _report(url, out, home, *SMALL)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "IPKernelApp" not in output and "KeyboardInterrupt" not in output, output
    count = len(discover_notebooks(ROOT / "notebooks"))
    assert done.stdout.strip().startswith(f"{count}/{count} notebooks ok"), output
    notebooks = _notebooks(out)
    assert all(nb["status"] == "ok" for nb in notebooks.values()), notebooks
    assert str(notebooks["03_connection_pool"]["verdict"]).endswith(
        f"production skipped: {NO_SSL}."
    )
    assert str(notebooks["05_read_replica"]["verdict"]).startswith("skipped: no replica")
    assert notebooks["10_sharding"]["verdict"] == f"skipped: {NOT_EMBEDDED}"
    skipped = [n for n, nb in notebooks.items() if str(nb["verdict"]).startswith("skipped")]
    for name in skipped:  # a skip always says why
        assert len(str(notebooks[name]["verdict"])) > len("skipped: ") + 10, notebooks[name]
    assert not find_leaks(out.rglob("*"), [pg15.PASSWORD])
    assert not processes_of(home)


@pytest.mark.parametrize("source", ["PGPASSWORD", "pgpass", "none"])
def test_pgbouncer_experiment_with_the_password_outside_the_url(
    bench_url: str,
    tmp_path: Path,
    source: str,
    monkeypatch: pytest.MonkeyPatch,
    make_test_engine: Callable[..., Engine],
) -> None:
    """Notebook 06's experiment whichever way the password arrives; with none, one line: skipped."""
    from bbperf.topology.pgbouncer import PgBouncerMissing, find_binary
    from bbperf.topology.topologyrun import pgbouncer_experiment

    url, user, host_port = _without_password(bench_url)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    if source == "PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", pg15.PASSWORD)
    if source == "pgpass":
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"{host_port}:*:{user}:{pg15.PASSWORD}\n")
        pgpass.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))
    home = tmp_path / "home"
    engine = make_test_engine(url)
    out = pgbouncer_experiment(engine, clients=[4], duration_s=0.25, home=home)
    try:
        find_binary()
    except PgBouncerMissing as missing:
        assert out.skipped is not None and "apt-get install pgbouncer" in out.skipped
        pytest.skip(str(missing))
    assert not processes_of(home)
    if source == "none":
        assert out.skipped is not None and "gives no password" in out.skipped
        assert len(out.skipped.splitlines()) == 1
        return
    assert out.skipped is None and out.steps is not None and out.trap is not None
    through = out.steps.set_index("via").loc["pgbouncer"]
    assert through.connected == 4 and through.errors == 0
    assert out.trap.leaked.all()
