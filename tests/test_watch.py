"""Slow-query alerts: window arithmetic and log parsing on exact inputs, then the real server's
pg_stat_statements and auto_explain log."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import Engine, text

from bbperf.cli import main
from bbperf.embedded import CONFIGURED_SETTINGS
from bbperf.watch import StatementTotals, Watcher, alerts, parse_log, window


def totals(calls: int, times_ms: list[float], qid: int = 7) -> StatementTotals:
    return StatementTotals(
        qid, "SELECT $1", calls, sum(times_ms), sum(t * t for t in times_ms), calls * 10,
        max(times_ms, default=0.0),
    )  # fmt: skip


def test_a_window_covers_only_the_calls_made_in_it() -> None:
    before = {7: totals(2, [500.0, 500.0])}  # slow long ago
    after = {7: totals(5, [500.0, 500.0, 10.0, 20.0, 30.0])}
    (stats,) = window(before, after)
    assert (stats.calls, stats.mean_ms, stats.rows) == (3, 20.0, 30)
    # window variance (100+400+900)/3 - 400 = 66.67; p95 ≈ 20 + 1.6449 × 8.165, capped at max 500
    assert stats.p95_estimate_ms == pytest.approx(20 + 1.6449 * (200 / 3) ** 0.5)
    assert alerts([stats], 50.0, "t") == []
    (fired,) = alerts([stats], 25.0, "t")
    assert fired.reason == "p95 estimate over 25 ms" and fired.fingerprint == "0000000000000007"


def test_unchanged_statements_are_silent_and_a_reset_counts_from_zero() -> None:
    same = {7: totals(3, [60.0, 60.0, 60.0])}
    assert window(same, same) == []
    reset = {7: totals(1, [80.0])}
    (stats,) = window(same, reset)
    assert (stats.calls, stats.mean_ms, stats.p95_estimate_ms) == (1, 80.0, 80.0)
    assert alerts([stats], 50.0, "t")[0].reason == "mean over 50 ms"
    assert window({}, {-5: totals(1, [1.0], qid=-5)})[0].queryid == -5


LOG = """2026-11-30 03:55:26.100 UTC [20574] LOG:  checkpoint starting: time
2026-11-30 03:55:26.734 UTC [20574] LOG:  duration: 61.176 ms  plan:
\t{
\t  "Query Text": "select pg_sleep(0.06)",
\t  "Plan": {"Node Type": "Result", "Actual Rows": 1.00},
\t  "Query Identifier": -42
\t}
2026-11-30 03:55:27.000 UTC [20575] LOG:  duration: 70.000 ms  plan:
\tQuery Text: select 1
\tResult  (cost=0.00..0.01 rows=1 width=4)
2026-11-30 03:55:28.000 UTC [20575] LOG:  statement: select 2
"""


def test_parse_log_reads_json_plans_and_skips_everything_else() -> None:
    (plan,) = parse_log(LOG.splitlines(keepends=True))
    assert (plan.duration_ms, plan.queryid) == (61.176, -42)
    assert plan.plan["Plan"]["Node Type"] == "Result"


def test_the_embedded_server_configures_auto_explain(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bbperf.embedded import EmbeddedServer

    server = EmbeddedServer(
        tmp_path / "home"
    )  # its own home: the session's server is never restarted

    def shown() -> dict[str, str]:
        conn = psycopg2.connect(server.url())
        with conn.cursor() as cur:
            cur.execute(
                "SELECT name, setting, unit FROM pg_settings WHERE name LIKE 'auto_explain.%'"
            )
            values = {n: s + (u or "") for n, s, u in cur.fetchall()}
        conn.close()
        return values

    try:
        server.start()
        assert shown()["auto_explain.log_format"] == "json"
        assert shown()["auto_explain.log_min_duration"] == "50ms"
        # A home initialised before auto_explain was configured gets it on its next start.
        marker = server.pgdata / "bbperf_initialized"
        marker.write_text(
            marker.read_text().replace("auto_explain and lock table configured\n", "")
        )
        admin = psycopg2.connect(server.url("postgres"))
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET auto_explain.log_format")
            cur.execute("SELECT pg_reload_conf()")
        admin.close()
        time.sleep(0.2)
        assert shown()["auto_explain.log_format"] == "text"
        server.start()
        time.sleep(0.2)
        assert shown()["auto_explain.log_format"] == CONFIGURED_SETTINGS["auto_explain.log_format"]
        assert "auto_explain and lock table configured" in marker.read_text()
    finally:
        server.stop()


def test_a_slow_statement_alerts_with_its_logged_plan(server, schema_engine: Engine) -> None:  # type: ignore[no-untyped-def]
    watcher = Watcher(schema_engine, threshold_ms=50.0, log_path=server.log_path)
    with schema_engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(0.07), 'slow'")).all()
        for _ in range(3):
            conn.execute(text("SELECT 'fast'")).all()
    (alert,) = watcher.poll()
    assert "pg_sleep" in alert.query and alert.calls == 1 and alert.mean_ms > 50
    assert alert.plan is not None and alert.plan["Query Identifier"] == alert.queryid
    assert alert.plan_duration_ms is not None and alert.plan_duration_ms > 50
    assert json.loads(json.dumps(alert.to_dict()))["fingerprint"] == alert.fingerprint
    assert "plan: Result" in alert.line()
    assert watcher.poll() == []  # the next window has no slow calls
    assert [w["alerts"] for w in watcher.windows] == [1, 0]


def test_a_bounded_cli_run_exits_1_when_an_alert_fired(
    schema_engine: Engine, fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    done = threading.Event()

    def slow() -> None:  # slow calls throughout the run, whenever its first snapshot is taken
        with schema_engine.connect() as conn:
            while not done.is_set():
                conn.execute(text("SELECT pg_sleep(0.06), 'cli'")).all()

    worker = threading.Thread(target=slow)
    worker.start()
    try:
        code = main(["--database-url", fresh_url, "watch", "--interval", "1", "--duration", "1",
                     "--format", "json"])  # fmt: skip
    finally:
        done.set()
        worker.join()
    assert code == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("pg_sleep" in json.loads(line)["query"] for line in lines)
    quiet = ["--database-url", fresh_url, "watch", "--threshold-ms", "1e9", "--interval", "0.2",
             "--duration", "0.2"]  # fmt: skip
    assert main(quiet) == 0


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--interval", "0"], "--interval must be a positive number of seconds"),
        (["--threshold-ms", "-5"], "--threshold-ms must be a positive number of milliseconds"),
        (["--duration", "nan"], "--duration must be a positive number of seconds"),
        (["--duration", "inf"], "--duration must be a positive number of seconds"),
        (["--duration", "1e308"], "--duration must be at most 604800 seconds (7 days), got 1e+308"),
        (["--interval", "1e9"], "--interval must be at most 604800 seconds (7 days), got 1e+09"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    flags: list[str], fragment: str, capsys: pytest.CaptureFixture[str], bbperf_home: Path
) -> None:
    import signal

    def overran(signum: int, frame: object) -> None:
        raise TimeoutError(f"watch {' '.join(flags)} was accepted and kept watching")

    # An accepted absurd duration would watch (nearly) forever: fail instead of hanging.
    previous = signal.signal(signal.SIGALRM, overran)
    signal.alarm(20)
    try:
        assert main(["watch", *flags]) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bbperf: error: " + fragment)


def test_windowed_index_review_judges_only_what_the_window_saw() -> None:
    import pandas as pd

    from bbperf.maintenance import index_usage_window

    def snap(rows: list[tuple[str, int, bool]]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "table_name": "appointments",
                    "index_name": n,
                    "scans": s,
                    "tuples_read": s * 10,
                    "size_bytes": 8192,
                    "enforces_constraint": c,
                }
                for n, s, c in rows
            ]  # fmt: skip
        )

    before = snap(
        [("idx_busy", 100, False), ("idx_idle", 500, False), ("appointments_pkey", 3, True)]
    )
    after = snap([("idx_busy", 130, False), ("idx_idle", 500, False), ("appointments_pkey", 3, True),
                  ("idx_fresh", 0, False)])  # fmt: skip
    review = index_usage_window(before, after)
    assert review.set_index("index_name")["verdict"].to_dict() == {
        "idx_busy": "used",
        "appointments_pkey": "enforces a constraint",
        "idx_fresh": "new in window",
        "idx_idle": "unused in window",  # 500 scans since the server started, none in the window
    }
    assert review.iloc[0][["scans_gained", "tuples_read_gained"]].tolist() == [30, 300]
