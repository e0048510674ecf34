"""The session-state trap of transaction pooling, shown with real clients.

Two clients take turns, each committing after every step, as an application does: client A leaves
session state behind (a SET, a SQL PREPARE, an advisory lock, a temp table, a protocol-level
prepared statement), then client B looks for it. Connected directly, B never sees A's state.
Through PgBouncer in transaction pooling, B runs on the server connection A just released and
inherits it: settings and locks leak, names collide. The trap runs on a private PgBouncer with one
server connection, so the outcome does not depend on which idle connection the pool hands out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bbperf.errors import first_line
from bbperf.topology.pgbouncer import PgBouncer
from bbperf.urls import mask_text


@dataclass(frozen=True)
class Trap:
    """One kind of session state: what client A does, and what client B then checks."""

    state: str
    client_a: str
    client_b: str
    driver: str = "psycopg2"


TRAPS = (
    Trap("SET", "SET work_mem = '77MB'", "SHOW work_mem"),
    Trap("SQL PREPARE", "PREPARE bbperf_q AS SELECT 1", "PREPARE bbperf_q AS SELECT 2"),
    Trap("advisory lock", "SELECT pg_advisory_lock(4242)", "SELECT pg_try_advisory_lock(4242)"),
    Trap(
        "temp table",
        "CREATE TEMP TABLE bbperf_scratch (x int)",
        "SELECT count(*) FROM bbperf_scratch",
    ),
    Trap(
        "protocol-level prepared statement",
        "SELECT 1 AS one",
        "SELECT 1 AS one",
        driver="psycopg 3, prepare_threshold=0",
    ),
)


@dataclass(frozen=True)
class TrapOutcome:
    """What client B saw, connected directly and through PgBouncer."""

    state: str
    driver: str
    client_a: str
    client_b: str
    direct: str
    pgbouncer: str
    same_server_process: bool
    leaked: bool


class _Client:
    """One application connection: runs a statement, commits, stays connected."""

    def __init__(self, url: str, driver: str) -> None:
        self.psycopg3 = driver.startswith("psycopg 3")
        if self.psycopg3:
            import psycopg

            # prepare_threshold=0: prepare on first use, as a busy psycopg 3 app soon does.
            self.conn: Any = psycopg.connect(
                url.replace("postgresql+psycopg2", "postgresql"),
                connect_timeout=5,
                prepare_threshold=0,
            )
            self.error: type[Exception] = psycopg.Error
        else:
            import psycopg2

            self.conn = psycopg2.connect(
                url.replace("postgresql+psycopg2", "postgresql"), connect_timeout=5
            )
            self.error = psycopg2.Error
        # pg_backend_pid() runs on the server: through PgBouncer it names the server process too.
        self.server_pid = int(self.run("SELECT pg_backend_pid()", prepare=False))

    def run(self, sql: str, prepare: bool = True) -> str:
        cur = self.conn.cursor()
        try:
            if self.psycopg3:
                cur.execute(sql, prepare=prepare)
            else:
                cur.execute(sql)
            row = cur.fetchone() if cur.description else None
            self.conn.commit()
            return "ok" if row is None else str(row[0])
        except self.error as exc:
            self.conn.rollback()
            return f"error: {mask_text(first_line(exc))}"
        finally:
            cur.close()

    def close(self) -> None:
        self.conn.close()


def _pair(url: str, trap: Trap) -> tuple[str, bool]:
    """A acts and stays connected (idle between transactions); B checks. Returns what B saw and
    whether B ran on A's server process."""
    a = _Client(url, trap.driver)
    try:
        a.run(trap.client_a)
        b = _Client(url, trap.driver)
        try:
            return b.run(trap.client_b), b.server_pid == a.server_pid
        finally:
            b.close()
    finally:
        a.close()


def _leaked(direct: str, pooled: str) -> bool:
    return direct != pooled


def session_state_trap(
    target_url: str,
    home: Path,
    *,
    schema: str = "bbperf",
    binary: str | Path | None = None,
    traps: tuple[Trap, ...] = TRAPS,
) -> pd.DataFrame:
    """One row per kind of session state: B's view directly and through PgBouncer (transaction
    pooling, one server connection), and whether it leaked. Starts and stops its own PgBouncer
    in ``home/pgbouncer-trap``; needs the pgbouncer program (PgBouncerMissing otherwise).

    Protocol-level prepared statements (psycopg 3) break on PgBouncer < 1.21 ("already exists");
    from 1.21 on, with max_prepared_statements set, that row shows no leak.
    """
    bouncer = PgBouncer(home, directory=home / "pgbouncer-trap", binary=binary)
    pooled_url = bouncer.start(target_url, schema=schema, default_pool_size=1, max_client_conn=20)
    outcomes = []
    try:
        for trap in traps:
            direct, _ = _pair(target_url, trap)
            pooled, shared = _pair(pooled_url, trap)
            outcomes.append(
                TrapOutcome(
                    trap.state,
                    trap.driver,
                    trap.client_a,
                    trap.client_b,
                    direct,
                    pooled,
                    same_server_process=shared,
                    leaked=_leaked(direct, pooled),
                )
            )
    finally:
        bouncer.stop()
    return pd.DataFrame([asdict(o) for o in outcomes])
