"""Health checks: the pure status logic, and real HTTP requests while the database goes and comes back."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
from sqlalchemy import Engine, make_url

from bbperf.errors import ConfigError
from bbperf.pool.health import combine, health_detailed, http_status, pool_check, system_check
from bbperf.pool.http import HealthServer, make_server, serve_in_thread
from bbperf.pool.httpload import hammer, poll
from bbperf.pool.snapshot import (
    HealthCheck,
    PoolSnapshot,
    Snapshot,
    SystemMetrics,
    Thresholds,
)

SYSTEM = SystemMetrics(
    cpu_percent=10.0, memory_percent=20.0, open_files=1, threads=1, pid=1, rss_bytes=1
)
POOL = PoolSnapshot("QueuePool", "postgresql", 20, 40, 20, 0, 0, 20, 0, [])


@pytest.mark.parametrize(
    ("statuses", "overall", "code"),
    [
        (["healthy", "healthy"], "healthy", 200),
        (["healthy", "warning"], "warning", 200),
        (["warning", "unhealthy", "healthy"], "unhealthy", 503),
    ],
)
def test_overall_status_is_the_worst_check(statuses: list[str], overall: str, code: int) -> None:
    checks = {f"c{i}": {"status": s} for i, s in enumerate(statuses)}
    assert combine(checks) == overall
    assert http_status({"status": overall}) == code


def test_system_check_thresholds() -> None:
    assert system_check(SYSTEM)["status"] == "healthy"
    hot = SystemMetrics(90.0, 20.0, 1, 1, 1, 1)
    assert system_check(hot)["status"] == "warning"
    assert system_check(hot, Thresholds(cpu_percent=95))["status"] == "healthy"


def test_pool_check_shape_and_database_error() -> None:
    snap = Snapshot(taken_at="t", pool=POOL, system=SYSTEM, database_error="cannot reach it")
    check = pool_check(snap, HealthCheck("healthy", [], []))
    assert check["status"] == "unhealthy"
    assert (check["pool_size"], check["checked_out"], check["overflow"]) == (20, 0, 0)
    assert check["warnings"] == ["database metrics unavailable: cannot reach it"]
    assert len(check["recommendations"]) == 1
    assert set(check["database_metrics"]) == {
        "total_connections",
        "active_connections",
        "idle_connections",
        "cache_hit_ratio",
    }


def test_health_detailed_makes_a_real_round_trip(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(fresh_url, "staging")
    report = health_detailed(engine, cpu_interval_s=None)
    assert set(report) == {"status", "timestamp", "checks"}
    assert set(report["checks"]) == {"database", "system", "process", "connection_pool"}
    database = report["checks"]["database"]
    assert database["status"] == "healthy"
    assert database["server_version"].startswith("18")
    assert database["round_trip_ms"] > 0
    pool = report["checks"]["connection_pool"]
    assert pool["pool_size"] == 20
    assert pool["database_metrics"]["total_connections"] >= 1
    assert report["checks"]["process"]["pid"] > 0


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def served(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> Iterator[tuple[HealthServer, Engine]]:
    engine = make_test_engine(fresh_url, connect_timeout_s=3)
    server = make_server(engine, port=0, probe_max_age_s=0)
    serve_in_thread(server)
    yield server, engine
    server.shutdown()
    server.server_close()


def _admin_execute(fresh_url: str, sql: str) -> None:
    conn = psycopg2.connect(str(make_url(fresh_url).set(database="postgres")))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def test_http_database_goes_away_and_comes_back(
    served: tuple[HealthServer, Engine], fresh_url: str
) -> None:
    server, _ = served
    name = make_url(fresh_url).database
    assert server.server_address[0] == "127.0.0.1"
    code, body = get(server.url + "/api/v1/health/detailed")
    assert code == 200 and body["checks"]["database"]["status"] == "healthy"

    _admin_execute(fresh_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    _admin_execute(
        fresh_url,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    )
    try:
        for path in ("/api/v1/health/detailed", "/api/v1/health"):
            code, body = get(server.url + path)
            assert code == 503, body
            assert body["status"] == "unhealthy"
        assert "not currently accepting connections" in body["database"]["error"]
    finally:
        _admin_execute(fresh_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    code, body = get(server.url + "/api/v1/health/detailed")
    assert code == 200, body
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["connection_pool"]["database_metrics"]["total_connections"] >= 1
    code, body = get(server.url + "/api/v1/health")
    assert (code, body["status"]) == (200, "healthy")


def test_http_unknown_path_is_404(served: tuple[HealthServer, Engine]) -> None:
    code, body = get(served[0].url + "/api/v2/nothing")
    assert code == 404
    assert "/api/v1/health" in body["routes"]


def test_http_unreachable_server_is_503_and_keeps_serving(
    make_test_engine: Callable[..., Engine],
) -> None:
    engine = make_test_engine("postgresql://u:hunter2@127.0.0.1:1/x")
    server = make_server(engine, port=0)
    serve_in_thread(server)
    try:
        for _ in range(2):
            code, body = get(server.url + "/api/v1/health/detailed")
            assert code == 503
            assert body["status"] == "unhealthy"
            assert "hunter2" not in json.dumps(body)
    finally:
        server.shutdown()
        server.server_close()


def test_cli_health_exit_codes(fresh_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bbperf.cli import main

    assert main(["--database-url", fresh_url, "health", "--basic"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "healthy"
    assert main(["--database-url", "postgresql://u:hunter2@127.0.0.1:1/x", "health"]) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["status"] == "unhealthy"
    assert "hunter2" not in out


def test_a_stale_answer_is_served_while_one_request_probes(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    """Past the max age the first request probes; the others get the previous answer meanwhile
    instead of queueing behind the probe (within twice the max age)."""
    engine = make_test_engine(fresh_url)
    server = make_server(engine, port=0, probe_max_age_s=1.0)
    probes: list[int] = []
    release = threading.Event()

    def probe() -> dict[str, object]:
        probes.append(len(probes) + 1)
        if len(probes) == 2:
            release.wait(30)  # the second probe hangs until the test has asked meanwhile
        return {"status": "healthy", "probe": len(probes)}

    server.routes["/api/v1/health"] = probe
    serve_in_thread(server)
    url = server.url + "/api/v1/health"
    try:
        assert get(url) == (200, {"status": "healthy", "probe": 1})
        time.sleep(1.1)  # stale, still usable
        prober = threading.Thread(target=get, args=(url,))
        prober.start()
        while len(probes) < 2:
            time.sleep(0.01)
        assert get(url) == (200, {"status": "healthy", "probe": 1})  # not queued behind probe 2
        release.set()
        prober.join(30)
        assert get(url)[1]["probe"] == 2 and len(probes) == 2  # probe 2's answer, shared
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        engine.dispose()


def test_load_goes_to_loopback_only_and_is_bounded(served: tuple[HealthServer, Engine]) -> None:
    url = served[0].url + "/api/v1/health"
    for bad in ("http://10.0.0.1:8000/", "http://example.com/", "https://127.0.0.1/", "file:///x"):
        with pytest.raises(ConfigError, match="loopback"):
            poll(bad)
    with pytest.raises(ConfigError, match="clients"):
        hammer(url, clients=100_000)
    with pytest.raises(ConfigError, match="duration"):
        poll(url, duration_s=1e9)
    load = poll(url, clients=4, rate_hz=20, duration_s=0.5)
    assert load.not_200 == 0 and load.requests == 4 * 10  # on schedule: 20 Hz × 0.5 s each
    assert hammer(url, clients=2, requests=5).to_dict()["requests"] == 10
