"""The streaming replica: LSN arithmetic, lifecycle of the embedded replica, lag (real, by pausing
replay), the read-replica mixes with the replica stopped mid-run, and no process left behind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import Engine

from bbperf.cli import main
from bbperf.errors import ConfigError
from bbperf.topology.lag import Lag, lag_bytes, lag_seconds, lsn_to_int, read_lag
from bbperf.topology.replica import EmbeddedReplica
from bbperf.topology.replicatarget import replica_engine, replica_status
from bbperf.topology.running import processes_of
from bbperf.urls import parse_url

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_lsn_arithmetic() -> None:
    assert lsn_to_int("0/6028068") == 0x6028068
    assert lsn_to_int("1/0") == 1 << 32
    assert lag_bytes("0/6028068", "0/6000000") == 0x28068
    assert lag_bytes("0/6000000", "0/6028068") == 0  # a replica ahead of a stale reading
    with pytest.raises(ConfigError, match="not a WAL position"):
        lsn_to_int("6028068")


def test_lag_seconds_prefers_the_primary_and_is_zero_when_caught_up() -> None:
    later = T0.replace(second=30)
    assert lag_seconds(0, 2.5, later, T0) == 0.0  # caught up: not "30 s since the last commit"
    assert lag_seconds(100, 2.5, later, T0) == 2.5
    assert lag_seconds(100, None, later, T0) == 30.0
    assert lag_seconds(100, None, later, None) is None


@pytest.mark.parametrize(
    ("lag", "max_s", "max_bytes", "beyond"),
    [
        (Lag(0, 10, 0.5), 1.0, None, False),
        (Lag(0, 10, 1.5), 1.0, None, True),
        (Lag(0, 10_000, 0.1), 1.0, 4096, True),
        (Lag(0, None, None, error="down"), 1.0, None, True),
        (Lag(0, 10, None), 1.0, None, False),
    ],
)
def test_lag_threshold(lag: Lag, max_s: float, max_bytes: int | None, beyond: bool) -> None:
    assert lag.beyond(max_s, max_bytes) is beyond


@pytest.fixture(scope="module")
def replica(bbperf_home: Path) -> Iterator[EmbeddedReplica]:
    """A replica of the session's server in its own directory; removed afterwards, and no
    postgres of that directory may survive."""
    handle = EmbeddedReplica(bbperf_home, directory=bbperf_home / "replica-t", port=5439)
    handle.start()
    yield handle
    handle.stop(remove=True)
    left = [p for p in processes_of(bbperf_home) if str(handle.pgdata) in " ".join(p.cmdline())]
    for proc in left:
        proc.kill()
    assert not left, f"replica postmaster survived: {[p.pid for p in left]}"


def _one(url: str, sql: str) -> object:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0] if cur.description else None
    finally:
        conn.close()


def _wait_for(url: str, timeout_s: float = 60.0) -> None:
    """Wait until the replica has replayed the CREATE DATABASE the primary just ran (lag is real:
    on a loaded machine a fresh database reaches the replica some time after it exists)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg2.connect(url).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_replica_streams_from_the_embedded_server(replica: EmbeddedReplica, pg_url: str) -> None:
    url = replica.url()
    assert "replica-t" in url and "port=5439" in url
    assert _one(url, "SELECT pg_is_in_recovery()") is True
    assert _one(url, "SELECT status FROM pg_stat_wal_receiver") == "streaming"
    assert _one(url, "SHOW hot_standby_feedback") == "on"
    with pytest.raises(psycopg2.Error, match="read-only"):
        _one(url, "CREATE TABLE nope (x int)")
    assert replica.start() == url  # a second start reuses it


def test_lag_is_real_when_replay_is_paused(replica: EmbeddedReplica, pg_url: str) -> None:
    url = replica.url("bbperf")
    primary, standby = replica_engine(pg_url), replica_engine(url)
    _one(url, "SELECT pg_wal_replay_pause()")
    try:
        _one(pg_url, "CREATE TEMP TABLE bbperf_lag_probe AS SELECT generate_series(1, 1000) AS x")
        lag = read_lag(primary, standby)
        assert lag.error is None and lag.lag_bytes is not None and lag.lag_bytes > 0
        assert lag.beyond(max_lag_s=None, max_lag_bytes=0)
        status = replica_status(pg_url, replica.home, url, max_lag_s=0.0, max_lag_bytes=0)
        assert status.kind == "external" and status.lagging
        assert any("beyond the threshold" in w for w in status.warnings)
    finally:
        _one(url, "SELECT pg_wal_replay_resume()")
        primary.dispose()
        standby.dispose()


def test_a_primary_is_not_accepted_as_a_replica(
    pg_url: str, bbperf_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replica", "status", "--replica-url", pg_url, "--format", "json"]) == 1
    out = capsys.readouterr().out
    assert '"lagging": true' in out and "not in recovery" in out


def test_no_replica_of_an_external_primary(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://u:topsecret@127.0.0.1:1/db"
    assert main(["--database-url", url, "replica", "start"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "only of its embedded server" in err[0] and "BBPERF_REPLICA_URL" in err[0]
    )
    assert "topsecret" not in err[0]


@pytest.mark.parametrize("args", [["replica", "start", "--port", "80"]])
def test_bad_input_is_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_replica_stopped_mid_run_falls_back_or_fails_but_never_hangs(
    replica: EmbeddedReplica, tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.generate import dataset_as_of
    from bbperf.topology.mix import read_shape, remove_probe_rows
    from bbperf.topology.readsplit import run_placement

    database = parse_url(tiny_copy_url).database
    _wait_for(replica.url(database))
    primary = make_test_engine(tiny_copy_url)
    standby = replica_engine(replica.url(database))
    shape = read_shape(primary, dataset_as_of(primary))
    common = {"duration_s": 0.6, "oltp_concurrency": 1, "write_rate_per_s": 20.0}
    try:
        healthy = run_placement(primary, standby, shape, "replica", probe_staleness=True, **common)
        assert healthy.analytics.on_replica > 0 and healthy.analytics.errors == 0
        assert healthy.staleness_ms and healthy.staleness_timeouts == 0
        assert healthy.lag and all(x.error is None for x in healthy.lag)

        fallback = run_placement(
            primary, standby, shape, "replica", fallback=True,
            interrupt=(0.2, replica.stop), **common,
        )  # fmt: skip
        replica.start()
        no_fallback = run_placement(
            primary, standby, shape, "replica", fallback=False,
            interrupt=(0.2, replica.stop), **common,
        )  # fmt: skip
    finally:
        replica.start()
        standby.dispose()
        removed = remove_probe_rows(primary)
        primary.dispose()
    assert removed > 0
    for run in (fallback, no_fallback):
        assert any("replica stop asked" in e for e in run.events)
        assert any(x.error for x in run.lag)  # the sampler saw the replica go
        assert run.summary()["lag_unreadable"] > 0
        assert run.duration_s < 30  # a hang guard, not a timing target
        assert run.oltp.latencies_ms  # OLTP on the primary went on
    assert fallback.analytics.errors == 0 and fallback.fell_back > 0
    assert any("fell back to the primary" in e for e in fallback.events)
    assert no_fallback.analytics.errors > 0 and no_fallback.fell_back == 0
    assert any("fallback off" in e for e in no_fallback.events)
