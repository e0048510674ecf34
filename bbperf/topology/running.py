"""Which processes of a given ``BBPERF_HOME`` still run (servers, pgbouncers, load workers), and the
limits and URLs the processes bbperf starts beside the embedded server need. Starting, stopping and
proving a process ours is ``bbperf.processes``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from bbperf.config import LOAD_HOME_ENV
from bbperf.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

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
