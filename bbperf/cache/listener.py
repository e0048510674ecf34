"""The invalidation listener as a background process, for commands that outlive no thread
(``bbperf cache start --listen``): pid file in ``$BBPERF_HOME/cache``, stopped by ``cache stop``
(it then removes the triggers it needed; if PostgreSQL went away first they stay, harmless, until
the next ``--listen`` replaces them).

The target's URL reaches the child through its environment (``BBPERF_DATABASE_URL``), never its
command line, so no password shows in ``ps``. The child exits when PostgreSQL or the cache server
goes away, or on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
from sqlalchemy import Engine

from bbperf.cache.invalidation import (
    Listener,
    install_triggers,
    listener_connected,
    remove_triggers,
    wait_for,
)
from bbperf.cache.server import CacheServer, _wait_gone
from bbperf.errors import CacheError

_MODULE = "bbperf.cache.listener"


def _pid_file(home: Path) -> Path:
    return CacheServer(home).directory / "listener.pid"


def listener_pid(home: Path) -> int | None:
    """The listener's pid when its pid file names a live listener process, else None."""
    try:
        pid = int(_pid_file(home).read_text().strip())
        proc = psutil.Process(pid)
        alive = proc.status() != psutil.STATUS_ZOMBIE and _MODULE in " ".join(proc.cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if alive else None


def start_listener(engine: Engine, home: Path, timeout_s: float = 15.0) -> int:
    """Install the triggers, then start (or reuse) the listener for ``engine``'s database and
    schema; returns its pid once it is connected and listening."""
    from bbperf.target import schema_of

    install_triggers(engine)
    pid = listener_pid(home)
    if pid is not None and listener_connected(engine):
        return pid
    stop_listener(home)
    server = CacheServer(home)
    env = {
        **os.environ,
        "BBPERF_HOME": str(home),
        "BBPERF_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "BBPERF_SCHEMA": schema_of(engine),
    }
    log = (server.directory / "listener.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", _MODULE],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    _pid_file(home).write_text(f"{proc.pid}\n")
    if not wait_for(lambda: proc.poll() is not None or listener_connected(engine), timeout_s, 0.1):
        stop_listener(home)
        raise CacheError(f"the cache listener did not connect within {timeout_s:g} s")
    if proc.poll() is not None:
        raise CacheError(
            f"the cache listener exited at start (code {proc.returncode}): see "
            f"{server.directory / 'listener.log'}"
        )
    return proc.pid


def stop_listener(home: Path, timeout_s: float = 5.0) -> bool:
    """SIGTERM the listener (SIGKILL if it lingers); False when none was running."""
    pid = listener_pid(home)
    _pid_file(home).unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).terminate()
    if not _wait_gone(pid, timeout_s):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
        _wait_gone(pid, timeout_s)
    return True


def stop_cache(home: Path) -> bool:
    """Stop the listener, then the cache server; True when the server was running."""
    stop_listener(home)
    return CacheServer(home).stop()


def main() -> int:
    """Run a listener in this process until SIGTERM or a lost connection."""
    from bbperf.cache.readthrough import open_cache
    from bbperf.cache.store import CachePolicy
    from bbperf.config import load_settings
    from bbperf.target import engine_for

    settings = load_settings()
    engine = engine_for(settings, echo_pool=False, pool_size=2)
    server = CacheServer(settings.home)
    cache = open_cache(engine, server, CachePolicy.of("invalidate"))
    listener = Listener(engine, cache)
    signal.signal(signal.SIGTERM, lambda *_: listener.stop(timeout_s=0))
    listener.start_and_wait()
    while listener.is_alive():
        listener.join(1.0)
        if not server.running:
            listener.stop()
    if listener.error is not None:
        print(f"bbperf cache listener: {listener.error}", file=sys.stderr)
        return 1
    # Stopped on purpose: nobody listens any more, so the triggers would only cost writes.
    remove_triggers(engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
