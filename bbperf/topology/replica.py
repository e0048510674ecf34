"""A streaming hot standby of the embedded server: ``pg_basebackup -R`` from the wheel, its own data
directory (``$BBPERF_HOME/replica``), socket and port; or a replica the user names by URL.

bbperf creates a replica only of its own embedded server. For any other primary the user names an
existing replica (``BBPERF_REPLICA_URL`` / ``--replica-url``) and everything that reads a replica
works with it; bbperf never starts, stops or rebuilds that one.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from bbperf.embedded import EmbeddedServer, Postmaster, PostmasterFile, read_postmaster_file
from bbperf.errors import ConfigError, ServerError
from bbperf.processes import (
    chown_for_server,
    own_for_server,
    run_as_server,
    socket_dir_for,
)
from bbperf.urls import socket_url

if TYPE_CHECKING:
    pass

REPLICA_URL_ENV = "BBPERF_REPLICA_URL"
DEFAULT_PORT = 5433
APPLICATION_NAME = "bbperf_replica"
# Files pg_basebackup copies from the primary's data directory that belong to the primary alone.
_PRIMARY_ONLY = ("log", "bbperf_initialized", ".handle_pids.json", "postmaster.opts")


class EmbeddedReplica(Postmaster):
    """A hot standby of ``EmbeddedServer(home)`` kept in ``home/replica`` (``directory`` to move it).

    ``hot_standby_feedback`` (default on) stops the primary's VACUUM from removing rows a replica
    query still reads, so long analytics are not cancelled, at the price of bloat on the primary.
    """

    what = "replica"

    def __init__(
        self,
        home: Path,
        *,
        directory: Path | None = None,
        port: int = DEFAULT_PORT,
        hot_standby_feedback: bool = True,
        database: str = "bbperf",
    ) -> None:
        self.home = Path(home)
        self.primary = EmbeddedServer(self.home, database=database)
        super().__init__(
            Path(directory) if directory else self.home / "replica",
            lock_file=self.home / "replica.lock",
        )
        self.port = port
        self.hot_standby_feedback = hot_standby_feedback
        self.database = database

    # -- state ----------------------------------------------------------------------------------
    @property
    def created(self) -> bool:
        return (self.pgdata / "standby.signal").exists()

    def process(self) -> PostmasterFile | None:
        """The running postmaster (``ready``: it accepts read-only connections), or None."""
        return self.postmaster()

    def url(self, database: str | None = None) -> str:
        """URL of the running replica (trust over its Unix socket, no password)."""
        proc = self.process()
        if proc is None or not proc.ready or proc.socket_dir is None:
            raise ServerError(
                f"the replica in {self.pgdata} is not running: run `bbperf replica start`"
            )
        return socket_url(database or self.database, proc.socket_dir, proc.port or self.port)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        """Start the replica, creating it from the running primary on first use; return its URL."""
        with self.lock():
            proc = self.process()
            if proc is None:
                self.primary.start()
                made_here = not self.created
                if made_here:
                    self._check_port()
                    self._check_directory()
                    self._create()
                else:
                    self._check_same_primary()
                try:
                    self._start_postmaster()
                except ServerError:
                    # A directory this run made and could not start would block every later
                    # start (it keeps the port it was made with): remove it.
                    if made_here and self.process() is None:
                        shutil.rmtree(self.pgdata, ignore_errors=True)
                    raise
            elif not proc.ready and not self.wait_ready(60.0, poll_s=0.1):
                raise ServerError(f"the replica in {self.pgdata} did not become ready in 60 s")
        return self.url()

    def stop(self, remove: bool = False) -> bool:
        """Stop the replica (fast shutdown); ``remove`` also deletes its data directory.
        Returns False when it was not running."""
        with self.lock():
            running = super().stop()
            if remove and self.pgdata.exists():
                shutil.rmtree(self.pgdata)
        return running

    def _check_port(self) -> None:
        """Refuse, before anything is made, the primary's port and a port something listens on."""
        info = read_postmaster_file(self.primary.pgdata)
        if info is not None and info.port == self.port:
            raise ConfigError(
                f"--port {self.port} is the primary's port: choose another (default {DEFAULT_PORT})"
            )
        if port_in_use(self.port):
            raise ConfigError(
                f"--port {self.port} is in use on this machine: choose another (default {DEFAULT_PORT})"
            )

    def _check_directory(self) -> None:
        """Refuse a data directory that holds files but is no replica: bbperf never removes it."""
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise ConfigError(
                f"{self.pgdata} exists and is not a replica (no standby.signal): bbperf will not "
                "replace files it did not make; move it away or choose another directory"
            )

    def _check_same_primary(self) -> None:
        """Refuse a replica directory made from another cluster (another system identifier)."""
        ours, theirs = self._system_id(self.primary.pgdata), self._system_id(self.pgdata)
        if ours and theirs and ours != theirs:
            raise ConfigError(
                f"{self.pgdata} is a replica of another server (system identifier {theirs}, "
                f"the primary's is {ours}): `bbperf replica stop --remove` removes it"
            )

    def _system_id(self, pgdata: Path) -> str | None:
        result = run_as_server([str(self.bin_dir() / "pg_controldata"), str(pgdata)])
        for line in result.stdout.splitlines():
            if line.startswith("Database system identifier:"):
                return line.split(":", 1)[1].strip()
        return None

    def _create(self) -> None:
        status = self.primary.status()
        info = read_postmaster_file(self.primary.pgdata)
        port = info.port if info is not None and info.port else 5432
        if self.pgdata.exists():
            self.pgdata.rmdir()  # empty: _check_directory refused anything else
        own_for_server(self.pgdata)
        conninfo = f"host={status.socket_dir} port={port} user=postgres"
        # -N: a bench replica need not survive a power cut, and fsyncing the copy doubles its time.
        result = run_as_server(
            [
                str(self.bin_dir() / "pg_basebackup"),
                "-D",
                str(self.pgdata),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-N",
                "--no-manifest",
                "-d",
                conninfo,
            ],
            timeout_s=600,
        )
        if result.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise ServerError(
                f"pg_basebackup from the embedded server failed: {_first(result.stderr)}"
            )
        for name in _PRIMARY_ONLY:
            (self.pgdata / name).unlink(missing_ok=True)
        socket_dir = socket_dir_for(self.pgdata, self.port)
        feedback = "on" if self.hot_standby_feedback else "off"
        with open(self.pgdata / "postgresql.auto.conf", "a") as conf:
            conf.write(
                "# bbperf replica: its own socket and port, no TCP\n"
                f"port = {self.port}\nlisten_addresses = ''\n"
                f"unix_socket_directories = '{socket_dir}'\n"
                f"cluster_name = '{APPLICATION_NAME}'\nhot_standby_feedback = {feedback}\n"
            )
        chown_for_server(self.pgdata / "postgresql.auto.conf")

    def _start_postmaster(self) -> None:
        log = self.log_file
        result = self.pg_ctl_start()
        if result.returncode != 0 or self.process() is None:
            tail = self.last_log_line() if log.exists() else ""
            raise ServerError(
                f"the replica in {self.pgdata} did not start: {_first(result.stderr)} "
                f"{tail}; if the primary no longer has the WAL it needs, rebuild it "
                "with `bbperf replica stop --remove` then `bbperf replica start`"
            )


def port_in_use(port: int) -> bool:
    """Whether something listens on ``port`` (TCP on loopback): a replica there would be
    confused with it by anyone connecting by port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _first(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
