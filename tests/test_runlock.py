"""One run at a time on a schema: a load or report started beside a running one is refused in one
line, with nothing changed; the lock dies with its holder; a run's own children are not refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from bbperf.generate import dataset_info
from bbperf.runlock import RUN_LOCK_ENV, exclusive_run
from bbperf.schema import create_schema
from tests.dbutil import scalar

NOTEBOOKS = Path(__file__).resolve().parent / "data" / "notebooks"
LOAD = ("generate", "--profile", "tiny", "--seed", "3", "--no-progress")


def _bbperf(url: str, home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != RUN_LOCK_ENV}
    env |= {"BBPERF_DATABASE_URL": url, "BBPERF_HOME": str(home), **extra}
    return subprocess.run(
        [sys.executable, "-m", "bbperf", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_load_beside_a_running_report_is_refused_and_changes_nothing(
    fresh_url: str, bbperf_home: Path, make_test_engine: Callable[..., Engine]
) -> None:
    engine = make_test_engine(fresh_url)
    create_schema(engine)
    assert _bbperf(fresh_url, bbperf_home, *LOAD).returncode == 0
    users = scalar(fresh_url, "SELECT count(*) FROM bbperf.users")
    with exclusive_run(engine, "report"):
        token = os.environ[RUN_LOCK_ENV]
        refused = _bbperf(fresh_url, bbperf_home, *LOAD[:3], "--seed", "4", "--no-progress")
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count("\n") == 1 and "bbperf report (server pid" in refused.stderr
        assert "wait for it to end" in refused.stderr
        assert scalar(fresh_url, "SELECT count(*) FROM bbperf.users") == users
        assert (dataset_info(engine) or {}).get("seed") == 3

        second = _bbperf(
            fresh_url, bbperf_home, "report", "--notebooks-dir", str(NOTEBOOKS), "--no-progress",
            "--out", str(bbperf_home / "never-made"),
        )  # fmt: skip
        assert second.returncode == 2 and "is running on schema 'bbperf'" in second.stderr
        assert not (bbperf_home / "never-made").exists()

        # A process the run started itself (a notebook kernel) carries the token: not refused.
        child = _bbperf(fresh_url, bbperf_home, *LOAD, **{RUN_LOCK_ENV: token})
        assert child.returncode == 0, child.stderr
    assert RUN_LOCK_ENV not in os.environ
    again = _bbperf(fresh_url, bbperf_home, *LOAD)  # released with the block
    assert again.returncode == 0, again.stderr


def test_the_lock_dies_with_its_holder(
    fresh_url: str, bbperf_home: Path, make_test_engine: Callable[..., Engine]
) -> None:
    create_schema(make_test_engine(fresh_url))
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from bbperf.runlock import exclusive_run
            from bbperf.target import make_engine
            with exclusive_run(make_engine({fresh_url!r}), "report"):
                print("held", flush=True)
                time.sleep(120)
        """)],
        stdout=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != RUN_LOCK_ENV},
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert _bbperf(fresh_url, bbperf_home, *LOAD).returncode == 2
    finally:
        holder.kill()
        holder.wait(timeout=10)
    loaded = _bbperf(
        fresh_url, bbperf_home, *LOAD
    )  # no file, no row to clean up: the server let go
    assert loaded.returncode == 0, loaded.stderr
