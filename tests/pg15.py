"""A throwaway PostgreSQL 15 cluster from the system binaries, with TCP and password auth.

Started the way pytest-postgresql does it (initdb + pg_ctl), as OS user ``postgres`` when run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
# Debian's postgresql-15-hypopg: hypothetical indexes, created in the bench database when installed.
HYPOPG = PG15_BIN.parent / "lib" / "hypopg.so"
PASSWORD = "pg15-Secr3t-pw"
USER = "bbperf_user"


@dataclass
class Cluster:
    datadir: Path
    port: int
    bin_dir: Path

    @property
    def url(self) -> str:
        """URL of the password-protected bench database over TCP."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/bbperf"

    def url_with_password(self, password: str) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/bbperf"

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.datadir}&port={self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str]) -> None:
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def available() -> bool:
    return (PG15_BIN / "initdb").exists()


def has_hypopg() -> bool:
    return HYPOPG.exists()


def start() -> Cluster:
    datadir = Path(tempfile.mkdtemp(prefix="bbperf-pg15-"))
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
    _run(
        [
            str(PG15_BIN / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
        ]
    )
    port = _free_port()
    conf = (
        f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{datadir}'\n"
        "shared_preload_libraries = 'pg_stat_statements,auto_explain'\ntrack_io_timing = on\n"
        "fsync = off\nmax_connections = 100\n"
    )
    with open(datadir / "postgresql.conf", "a") as fh:
        fh.write(conf)
    _run([str(PG15_BIN / "pg_ctl"), "-D", str(datadir), "-w", "-l", str(datadir / "log"), "start"])
    cluster = Cluster(datadir=datadir, port=port, bin_dir=PG15_BIN)
    import psycopg2

    conn = psycopg2.connect(cluster.admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {USER} LOGIN PASSWORD %s", (PASSWORD,))
        cur.execute(f"CREATE DATABASE bbperf OWNER {USER}")
    conn.close()
    conn = psycopg2.connect(cluster.admin_url("bbperf"))
    conn.autocommit = True
    with conn.cursor() as cur:
        for ext in ("pg_stat_statements", "pgstattuple", "pg_buffercache"):
            cur.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
        if has_hypopg():
            cur.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        cur.execute(f"GRANT pg_read_all_stats, pg_stat_scan_tables TO {USER}")
    conn.close()
    return cluster


def stop(cluster: Cluster) -> None:
    try:
        _run(
            [
                str(cluster.bin_dir / "pg_ctl"),
                "-D",
                str(cluster.datadir),
                "-w",
                "-m",
                "immediate",
                "stop",
            ]
        )
    finally:
        shutil.rmtree(cluster.datadir, ignore_errors=True)
