"""PgBouncer in front of bbperf's target: the system binary, a config bbperf generates under
``$BBPERF_HOME/pgbouncer``, transaction pooling by default.

Auth follows the target. The embedded server trusts its Unix socket, so PgBouncer listens on a Unix
socket only, in a directory only the server's OS user can enter (no TCP port nobody else could
reach before). A password server gets a TCP listener on loopback and a ``userlist.txt`` (mode 0600,
deleted by ``stop``) holding the target's user and the server's own SCRAM secret for it, never the
password (bbperf.topology.scram says how it is found and why the server must use SCRAM). The
password comes from wherever libpq would take it: the URL, ``?password=``, PGPASSWORD or .pgpass.

The engines bbperf makes send ``options=-c search_path=…``; PgBouncer 1.18 cannot forward startup
options, so it ignores them and sets bbperf's schema on every server connection (``connect_query``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import psutil

from bbperf.errors import BbperfError, ConfigError, ServerError
from bbperf.processes import (
    ManagedProcess,
    ProcessStatus,
    chown_for_server,
    free_port,
    own_for_server,
    run_as_server,
    server_user,
    socket_dir_for,
    terminate,
)
from bbperf.secrets import libpq_password
from bbperf.topology.bouncerconfig import (
    POOL_MODES,
    PREPARED_STATEMENTS_SINCE,
    SOCKET_PORT,
    BouncerConfig,
    parse_version,
    render_config,
    session_warnings,
    supports_prepared_statements,
)
from bbperf.topology.running import check_open_files
from bbperf.topology.scram import Endpoint, server_secret
from bbperf.urls import is_unix_socket, mask_url, parse_url, socket_url

__all__ = [
    "POOL_MODES",
    "PREPARED_STATEMENTS_SINCE",
    "BouncerConfig",
    "BouncerStatus",
    "PgBouncer",
    "PgBouncerMissing",
    "find_binary",
    "installed_version",
    "parse_version",
    "render_config",
    "session_warnings",
    "supports_prepared_statements",
]

_SEARCH = ("/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin")
INSTALL_HINT = "install it with `apt-get install pgbouncer` (Debian/Ubuntu)"


class PgBouncerMissing(BbperfError):
    """The pgbouncer program is not installed (or not where it was said to be)."""


def find_binary(binary: str | Path | None = None) -> Path:
    """The pgbouncer executable: ``binary`` when given, else PATH, else the usual sbin dirs."""
    if binary is not None:
        path = Path(binary)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise PgBouncerMissing(f"pgbouncer not found at {path}: {INSTALL_HINT}, or fix the path")
    found = shutil.which("pgbouncer") or next(
        (f"{d}/pgbouncer" for d in _SEARCH if os.access(f"{d}/pgbouncer", os.X_OK)), None
    )
    if found is None:
        raise PgBouncerMissing(
            f"pgbouncer is not installed (looked on PATH and in {', '.join(_SEARCH)}): {INSTALL_HINT}"
        )
    return Path(found)


def installed_version(binary: str | Path | None = None) -> tuple[int, ...]:
    """The version of the pgbouncer that would run."""
    result = subprocess.run(
        [str(find_binary(binary)), "--version"], capture_output=True, text=True, timeout=10
    )
    return parse_version(result.stdout + result.stderr)


@dataclass(kw_only=True)
class BouncerStatus(ProcessStatus):
    """What ``bbperf pgbouncer status`` reports."""

    SHOWN_FIRST: ClassVar[tuple[str, ...]] = ("running", "version", "pid")

    version: str | None = None
    pool_mode: str | None = None
    default_pool_size: int | None = None
    max_client_conn: int | None = None
    target: str | None = None
    url: str | None = None
    directory: str | None = None
    pools: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class PgBouncer(ManagedProcess):
    """The pgbouncer bbperf runs for ``home`` (files in ``home/pgbouncer``, or ``directory``)."""

    names = ("pgbouncer",)
    what = "pgbouncer"

    def __init__(
        self, home: Path, *, directory: Path | None = None, binary: str | Path | None = None
    ) -> None:
        self.home = Path(home)
        self.directory = Path(directory) if directory else self.home / "pgbouncer"
        super().__init__(
            self.directory / "pgbouncer.pid",
            lock_file=self.home / "pgbouncer.lock",
            log_file=self.directory / "pgbouncer.log",
        )
        self.binary = binary
        self._state_file = self.directory / "state.json"

    # -- state ----------------------------------------------------------------------------------
    def identifies(self, proc: psutil.Process) -> bool:
        """The pgbouncer running this directory's config: a pid file that another home's
        pgbouncer wrote into a reused directory, or a copy of it, names no process of ours."""
        ini = os.path.realpath(self.directory / "pgbouncer.ini")
        try:
            return any(os.path.realpath(part) == ini for part in proc.cmdline()[1:])
        except psutil.AccessDenied:
            return True  # the name matched and the pid file is in our directory

    def state(self) -> dict[str, Any]:
        """What ``start`` recorded (no password): target, listen port, pool settings."""
        try:
            return dict(json.loads(self._state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def url(self, target_url: str, database: str | None = None) -> str:
        """``target_url`` re-pointed at this pgbouncer (same user, password and database)."""
        state = self.state()
        if self.pid() is None or not state:
            raise ServerError("pgbouncer is not running: run `bbperf pgbouncer start`")
        parsed = parse_url(target_url)
        name = database or parsed.database or "postgres"
        user = quote(parsed.username or "postgres", safe="")
        if state["trust"]:
            return socket_url(name, self.socket_dir(), state["listen_port"], user=user)
        password = quote(libpq_password(parsed) or "", safe="")
        return f"postgresql://{user}:{password}@127.0.0.1:{state['listen_port']}/{name}"

    # -- lifecycle ------------------------------------------------------------------------------
    def start(
        self,
        target_url: str,
        *,
        schema: str = "bbperf",
        pool_mode: str = "transaction",
        default_pool_size: int = 20,
        max_client_conn: int = 1100,
    ) -> str:
        """Start pgbouncer in front of ``target_url`` (restarting it when the settings differ);
        return the URL clients use. ``max_client_conn`` needs as many open files (``ulimit -n``)."""
        binary = find_binary(self.binary)
        version = installed_version(binary)
        parsed = parse_url(target_url)
        password = libpq_password(parsed)
        trust = password is None and is_unix_socket(parsed)
        if password is None and not trust:
            raise ConfigError(
                f"{mask_url(parsed)} gives no password (nor does PGPASSWORD or .pgpass): pgbouncer "
                "in front of a TCP server needs the user's password (it logs in for its clients)"
            )
        host = parsed.query.get("host") or parsed.host
        host = str(host[0] if isinstance(host, tuple) else host or "/tmp")
        port = _port(parsed.port or parsed.query.get("port"))
        user = parsed.username or "postgres"
        secret = None
        if password is not None:
            sslmode = parsed.query.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer"
            sslmode = str(sslmode[0] if isinstance(sslmode, tuple) else sslmode)
            endpoint = Endpoint(host, port, user, parsed.database or user, sslmode)
            secret = server_secret(endpoint, password)
        wanted = {
            "target": mask_url(target_url),
            "trust": trust,
            "schema": schema,
            "pool_mode": pool_mode,
            "default_pool_size": default_pool_size,
            "max_client_conn": max_client_conn,
        }
        config = BouncerConfig(
            directory=self.directory,
            server_host=host,
            server_port=port,
            user=user,
            secret=secret,
            schema=schema,
            pool_mode=pool_mode,
            default_pool_size=default_pool_size,
            max_client_conn=max_client_conn,
            version=version,
        )
        config.check()
        check_open_files(max_client_conn + default_pool_size * 4 + 50, "max_client_conn")
        with self.lock():
            if self.pid() is not None:
                current = {k: v for k, v in self.state().items() if k != "listen_port"}
                if current == wanted:
                    return self.url(target_url)
                self._stop_process()
            listen_port = SOCKET_PORT if trust else free_port()
            socket_dir = socket_dir_for(self.directory, listen_port)
            config = replace(config, listen_port=listen_port, socket_dir=socket_dir)
            ini, userlist = render_config(config)
            own_for_server(self.directory)
            for name, content in (("pgbouncer.ini", ini), ("userlist.txt", userlist)):
                path = self.directory / name
                path.write_text(content)
                path.chmod(0o600)
                chown_for_server(path)
            self._state_file.write_text(
                json.dumps(
                    {**wanted, "listen_port": config.listen_port, "socket_dir": str(socket_dir)}
                )
            )
            result = run_as_server([str(binary), "-d", "-q", str(self.directory / "pgbouncer.ini")])
            if result.returncode != 0 or not self.wait_ready(30.0):
                reason = self._log_tail(result.stderr)
                self._stop_process()  # a daemon still starting must not outlive the refusal
                raise ServerError(f"pgbouncer did not start: {reason}")
        return self.url(target_url)

    def ready(self) -> bool:
        """It runs and its socket exists (it accepts connections)."""
        socket_file = self.socket_dir() / f".s.PGSQL.{self.state().get('listen_port')}"
        return self.pid() is not None and socket_file.exists()

    def _log_tail(self, stderr: str) -> str:
        lines = [line for line in stderr.splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()
        return self.last_log_line() if self.log_file.exists() else "no output; see its log"

    def stop(self) -> bool:
        """Stop pgbouncer and delete its userlist (the SCRAM secret); False when it was not running."""
        with self.lock():
            return self._stop_process()

    def socket_dir(self) -> Path:
        """The directory of pgbouncer's Unix socket (its own directory unless that path is too
        long for a socket)."""
        return Path(self.state().get("socket_dir") or self.directory)

    def _stop_process(self) -> bool:
        socket_dir = self.socket_dir()
        # SIGTERM is PgBouncer's immediate shutdown: clients are disconnected, nothing waits.
        stopped = self.stop_process(timeout_s=10.0)
        self._kill_strays()
        for name in ("userlist.txt", "pgbouncer.pid", "state.json"):
            (self.directory / name).unlink(missing_ok=True)
        if socket_dir != self.directory:  # the short private directory start made
            shutil.rmtree(socket_dir, ignore_errors=True)
        return stopped

    def _kill_strays(self) -> None:
        """Kill any pgbouncer running this directory's config that its pid file does not name (one
        still starting when ``start`` gave up, or one whose pid file is gone)."""
        ini = str(self.directory / "pgbouncer.ini")
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] == "pgbouncer" and ini in (proc.info["cmdline"] or []):
                terminate(proc.pid, 10.0, signal.SIGKILL)

    # -- inspection -----------------------------------------------------------------------------
    def admin(self, target_url: str, command: str) -> list[dict[str, Any]]:
        """Rows of an admin console command (``SHOW POOLS``, ``SHOW SERVERS`` …) as dicts."""
        import psycopg2

        conn = psycopg2.connect(self.url(target_url, "pgbouncer"), connect_timeout=5)
        conn.autocommit = True  # the admin console has no transactions
        try:
            with conn.cursor() as cur:
                cur.execute(command)
                names = [c.name for c in cur.description or []]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()

    def server_connections(self, target_url: str) -> int:
        """Server connections pgbouncer holds open right now (all pools)."""
        return len(self.admin(target_url, "SHOW SERVERS"))

    def status(self, target_url: str | None) -> BouncerStatus:
        """State, settings, pools and the session-state warnings for the installed version."""
        pid = self.pid()
        state = self.state() if pid is not None else {}
        status = BouncerStatus(running=pid is not None, pid=pid, directory=str(self.directory))
        try:
            version = installed_version(self.binary)
        except PgBouncerMissing as exc:
            status.warnings.append(str(exc))
            return status
        status.version = ".".join(map(str, version))
        mode = state.get("pool_mode", "transaction")
        status.warnings.extend(session_warnings(version, mode))
        if pid is None:
            return status
        status.pool_mode = mode
        status.default_pool_size = state.get("default_pool_size")
        status.max_client_conn = state.get("max_client_conn")
        status.target = state.get("target")
        if target_url is not None:
            status.url = mask_url(self.url(target_url))
            keep = (
                "database",
                "user",
                "cl_active",
                "cl_waiting",
                "sv_active",
                "sv_idle",
                "sv_used",
            )
            pools = self.admin(target_url, "SHOW POOLS")
            status.pools = [
                {k: p[k] for k in keep if k in p} for p in pools if p.get("database") != "pgbouncer"
            ]
        return status


def _port(value: object) -> int:
    if isinstance(value, tuple):
        value = value[0]
    return int(str(value)) if value else 5432


def running_user() -> str:
    """The OS user pgbouncer runs as (the embedded server's when bbperf runs as root)."""
    return server_user() or psutil.Process().username()
