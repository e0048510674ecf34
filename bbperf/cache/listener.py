"""The invalidation listener as a background process, for commands that outlive no thread
(``bbperf cache start --listen``): pid file in ``$BBPERF_HOME/cache``, stopped by ``cache stop``
(it then removes the triggers it needed; if PostgreSQL went away first they stay, harmless, until
the next ``--listen`` replaces them).

The target's URL reaches the child through its environment (``BBPERF_DATABASE_URL``), never its
command line, so no password shows in ``ps``. The child exits when PostgreSQL or the cache server
goes away, or on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from bbperf.cache.daemons import LISTENER_MODULE, CacheListener, stop_listener
from bbperf.cache.invalidation import (
    Listener,
    install_triggers,
    listener_connected,
    remove_triggers,
    wait_for,
)
from bbperf.cache.readthrough import open_cache
from bbperf.cache.server import CacheServer
from bbperf.cache.store import CachePolicy
from bbperf.config import load_settings
from bbperf.errors import CacheError
from bbperf.target import engine_for, schema_of


def start_listener(engine: Engine, home: Path, timeout_s: float = 15.0) -> int:
    """Install the triggers, then start (or reuse) the listener for ``engine``'s database and
    schema; returns its pid once it is connected and listening."""
    install_triggers(engine)
    listener = CacheListener(home)
    pid = listener.pid()
    if pid is not None and listener_connected(engine):
        return pid
    stop_listener(home)
    env = {
        **os.environ,
        "BBPERF_HOME": str(home),
        "BBPERF_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "BBPERF_SCHEMA": schema_of(engine),
    }
    log = listener.log_file.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", LISTENER_MODULE],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    listener.pid_file.write_text(f"{proc.pid}\n")
    if not wait_for(lambda: proc.poll() is not None or listener_connected(engine), timeout_s, 0.1):
        stop_listener(home)
        raise CacheError(f"the cache listener did not connect within {timeout_s:g} s")
    if proc.poll() is not None:
        raise CacheError(
            f"the cache listener exited at start (code {proc.returncode}): see {listener.log_file}"
        )
    return proc.pid


def main() -> int:
    """Run a listener in this process until SIGTERM or a lost connection."""
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
