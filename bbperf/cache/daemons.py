"""The cache's two background processes under ``$BBPERF_HOME/cache``: the Valkey server
(``bbperf.cache.server``) and the invalidation listener (``python -m bbperf.cache.listener``) — which
runs, and stopping them. Apart from the listener's own module so that ``bbperf db stop`` and ``db
status`` reach them without SQLAlchemy or the metrics."""

from __future__ import annotations

from pathlib import Path

import psutil

from bbperf.cache.server import CacheServer
from bbperf.processes import ManagedProcess, terminate

LISTENER_MODULE = "bbperf.cache.listener"


class CacheListener(ManagedProcess):
    """The listener process of ``home``: ``python -m bbperf.cache.listener``, its pid file and log
    beside the cache server's."""

    names = ("",)  # whatever the interpreter is called: its command line identifies it
    what = "cache listener"

    def __init__(self, home: Path) -> None:
        directory = CacheServer(home).directory
        super().__init__(
            directory / "listener.pid",
            lock_file=directory / "listener.lock",
            log_file=directory / "listener.log",
        )

    def identifies(self, proc: psutil.Process) -> bool:
        return LISTENER_MODULE in " ".join(proc.cmdline())


def listener_pid(home: Path) -> int | None:
    """The listener's pid when its pid file names a live listener process, else None."""
    return CacheListener(home).pid()


def stop_listener(home: Path, timeout_s: float = 5.0) -> bool:
    """SIGTERM the listener (SIGKILL if it lingers); False when none was running."""
    listener = CacheListener(home)
    pid = listener.pid()
    listener.pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    terminate(pid, timeout_s)
    return True


def stop_cache(home: Path) -> bool:
    """Stop the listener, then the cache server; True when the server was running."""
    stop_listener(home)
    return CacheServer(home).stop()
