"""Shard servers: N extra embedded PostgreSQL clusters under ``$BBPERF_HOME/shards/shardK``, each
with its own data directory, private Unix socket and port, on the one process base
(``bbperf.embedded.Postmaster``); stopped by ``bbperf shard stop`` and by ``bbperf db stop``.

A shard is initialised once with the wheel's ``initdb`` (trust over its socket, no TCP) and started
with ``pg_ctl``; its port and socket directory are written into its own ``postgresql.auto.conf``
at creation, so a later bbperf process finds the same shard on the same socket. The embedded server
is started first: it is the coordinator the shards serve, and its start gives the wheel's binaries
the permissions the server user needs.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil
import psycopg2

from bbperf.embedded import EmbeddedServer, Postmaster, PostmasterFile
from bbperf.errors import ConfigError, ServerError
from bbperf.processes import (
    ProcessStatus,
    chown_for_server,
    free_port,
    own_for_server,
    run_as_server,
    socket_dir_for,
    wait_gone,
)
from bbperf.sqlnames import quote
from bbperf.urls import socket_url

SHARDS_DIR = "shards"
MAX_SHARDS = 8  # each shard is a postmaster with its own shared buffers: a bench, not a cluster
SHARD_SETTINGS: dict[str, str] = {
    "listen_addresses": "''",
    "shared_buffers": "'32MB'",
    "max_connections": "40",
    "unix_socket_permissions": "0700",
}
_CREATED_MARKER = "bbperf_shard"  # written into a shard's data directory once it is set up


def check_shard_count(count: int) -> int:
    """``count`` when it is a shard count bbperf starts (1 to ``MAX_SHARDS``), else ConfigError."""
    if not 1 <= count <= MAX_SHARDS:
        raise ConfigError(f"--shards must be between 1 and {MAX_SHARDS}, got {count}")
    return count


class ShardServer(Postmaster):
    """Shard ``index`` of ``home``: an embedded cluster in ``home/shards/shard<index>``."""

    what = "shard"

    def __init__(self, home: Path, index: int) -> None:
        self.home = Path(home)
        self.index = index
        shards = self.home / SHARDS_DIR
        super().__init__(shards / f"shard{index}", lock_file=shards / f"shard{index}.lock")

    @property
    def name(self) -> str:
        return f"shard{self.index}"

    @property
    def created(self) -> bool:
        return (self.pgdata / _CREATED_MARKER).exists()

    def ready_postmaster(self) -> PostmasterFile | None:
        """The running postmaster once it accepts connections, else None."""
        info = self.postmaster() if self.pgdata.exists() else None
        return info if info is not None and info.ready else None

    def url(self, database: str = "bbperf") -> str:
        """URL of ``database`` on the running shard (trust over its private socket, no password)."""
        info = self.ready_postmaster()
        if info is None or info.socket_dir is None or info.port is None:
            raise ServerError(
                f"{self.name} ({self.pgdata}) is not running: run `bbperf shard start`"
            )
        return socket_url(database, info.socket_dir, info.port)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        """Start the shard, creating its cluster on first use; return its ``postgres`` URL."""
        with self.lock():
            if self.ready_postmaster() is None:
                if not self.created:
                    self._create()
                self.clear_stale_pid_file()
                self._start_postmaster()
        return self.url("postgres")

    def stop(self, remove: bool = False) -> bool:
        """Fast shutdown; ``remove`` also deletes the data directory. False when it was not running."""
        with self.lock():
            running = super().stop()
            if remove and self.pgdata.exists():
                shutil.rmtree(self.pgdata)
        return running

    def kill(self) -> bool:
        """SIGKILL the postmaster and its backends, as a crash of the machine would; False when it
        was not running. The next ``start`` recovers it (crash recovery from the WAL). The pid file
        and its socket's lock file are removed: a killed postmaster may linger as a zombie until
        PID 1 reaps it, and PostgreSQL would take that zombie for a postmaster still running."""
        info = self.postmaster()
        if info is None:
            return False
        # Process objects, not numbers: psutil refuses to signal a number since given to another
        # process (a backend that exits by itself frees its number while the others are killed).
        try:
            postmaster = psutil.Process(info.pid)
            family = [postmaster, *postmaster.children(recursive=True)]
        except psutil.Error:
            family = []
        for proc in family:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        for proc in family:
            wait_gone(proc.pid, 10.0)  # a zombie counts as gone: PID 1 may reap it late
        if info.socket_dir and info.port:
            (Path(info.socket_dir) / f".s.PGSQL.{info.port}.lock").unlink(missing_ok=True)
        if self.recorded_pid() == info.pid:
            self.pid_file.unlink(missing_ok=True)
        return True

    def ensure_database(self, database: str) -> str:
        """Create ``database`` on the running shard when it is missing; return its URL."""
        conn = psycopg2.connect(self.url("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone() is None:
                    cur.execute(f"CREATE DATABASE {quote(database)}")
        finally:
            conn.close()
        return self.url(database)

    def _create(self) -> None:
        """initdb, then the shard's own port, socket and small memory settings."""
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise ConfigError(
                f"{self.pgdata} holds files but is no bbperf shard: bbperf will not replace "
                "files it did not make; move it away"
            )
        own_for_server(self.pgdata)
        result = run_as_server(
            [
                str(self.bin_dir() / "initdb"),
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
            ],
            timeout_s=300,
        )
        if result.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise ServerError(f"initdb of {self.name} failed: {_last(result.stderr)}")
        port = free_port()
        settings = {
            **SHARD_SETTINGS,
            "port": str(port),
            "unix_socket_directories": f"'{socket_dir_for(self.pgdata, port)}'",
            "cluster_name": f"'bbperf_{self.name}'",
        }
        with open(self.pgdata / "postgresql.auto.conf", "a") as conf:
            conf.write("# bbperf shard: its own socket and port, no TCP\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        chown_for_server(self.pgdata / "postgresql.auto.conf")
        (self.pgdata / _CREATED_MARKER).write_text(f"{self.name}\n")

    def _start_postmaster(self) -> None:
        result = self.pg_ctl_start()
        if result.returncode != 0 or not self.wait_ready(30.0, poll_s=0.1):
            raise ServerError(
                f"{self.name} in {self.pgdata} did not start: {_last(result.stderr)}; "
                f"its log says: {self.last_log_line()}"
            )


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def shards_of(home: Path) -> list[ShardServer]:
    """Every shard created under ``home``, by index."""
    root = Path(home) / SHARDS_DIR
    if not root.is_dir():
        return []
    found = [
        int(match.group(1))
        for path in root.iterdir()
        if path.is_dir() and (match := re.fullmatch(r"shard(\d+)", path.name))
    ]
    return [ShardServer(home, index) for index in sorted(found)]


def start_shards(home: Path, count: int, database: str = "bbperf") -> list[str]:
    """Start shards 0 .. ``count``-1 of ``home`` (the embedded coordinator first) and make sure each
    has ``database``; return their URLs of it. Shards beyond ``count`` are left as they are."""
    check_shard_count(count)
    EmbeddedServer(home, database=database).start()
    urls = []
    for index in range(count):
        shard = ShardServer(home, index)
        shard.start()
        urls.append(shard.ensure_database(database))
    return urls


def running_shard_urls(home: Path, database: str = "bbperf") -> list[str]:
    """URLs of ``database`` on every shard of ``home`` that runs (created when missing)."""
    return [s.ensure_database(database) for s in shards_of(home) if s.ready_postmaster()]


def stop_shards(home: Path, *, remove: bool = False) -> list[str]:
    """Stop every shard of ``home`` (``remove``: delete their data directories); return the names
    of those that were running."""
    return [shard.name for shard in shards_of(home) if shard.stop(remove=remove)]


@dataclass(kw_only=True)
class ShardStatus(ProcessStatus):
    """One shard as ``bbperf shard status`` shows it."""

    SHOWN_FIRST: ClassVar[tuple[str, ...]] = ("shard",)

    shard: str
    data_dir: str
    socket_dir: str | None = None
    port: int | None = None


def shard_statuses(home: Path) -> list[ShardStatus]:
    """Whether each shard of ``home`` runs, and where."""
    statuses = []
    for shard in shards_of(home):
        info = shard.ready_postmaster()
        statuses.append(
            ShardStatus(
                shard=shard.name,
                running=info is not None,
                pid=info.pid if info else None,
                data_dir=str(shard.pgdata),
                socket_dir=info.socket_dir if info else None,
                port=info.port if info else None,
            )
        )
    return statuses
