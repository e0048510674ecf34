"""Ctrl-C that reaches a running statement: psycopg2's process-wide wait callback, and the one the CLI
installs so an interrupt cancels the statement on the server. psycopg2 only, no SQLAlchemy, so a
command that runs no query does not pay for it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any


@contextmanager
def wait_callback(callback: Callable[[Any], None] | None) -> Iterator[None]:
    """psycopg2's process-wide wait callback set to ``callback`` (None: libpq waits in C) for the
    block, then put back. The CLI installs one so Ctrl-C cancels a running statement; psycopg2
    refuses COPY under any, so loads lift it for their COPY stream."""
    import psycopg2.extensions

    previous = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(callback)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(previous)


def interruptible_queries() -> AbstractContextManager[None]:
    """Ctrl-C during a running statement cancels it on the server and ends the command (exit 130).

    libpq blocks in C while a statement runs, so Python cannot see the signal until the statement
    ends; with psycopg2's wait callback the wait happens in Python, the statement is cancelled and
    KeyboardInterrupt is raised once the server has stopped it.
    """
    return wait_callback(_wait_interruptibly)


def _wait_interruptibly(conn: Any) -> None:
    import select

    import psycopg2
    import psycopg2.extensions as ext

    # libpq honours connect_timeout only when it waits itself: here the wait is ours, so is the
    # timeout (a server that accepts the socket and never answers would hold the command forever).
    deadline = _connect_deadline(conn)
    interrupted = False
    while True:
        try:
            state = conn.poll()
            if state == ext.POLL_OK:
                break
            if state not in (ext.POLL_READ, ext.POLL_WRITE):
                raise psycopg2.OperationalError(f"bad state from poll: {state}")
            fd = [conn.fileno()]
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            ready = select.select(*((fd, [], []) if state == ext.POLL_READ else ([], fd, [])), left)
            if deadline is not None and not any(ready):
                raise psycopg2.OperationalError("timeout expired")
        except KeyboardInterrupt:
            conn.cancel()
            interrupted = True
        except psycopg2.Error:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
    if interrupted:
        raise KeyboardInterrupt


def _connect_deadline(conn: Any) -> float | None:
    """When a connection still being set up must give up: its ``connect_timeout`` (libpq's rule: at
    least 2 s; 0 or none waits forever); None once it is connected."""
    import psycopg2.extensions as ext

    if conn.status != ext.STATUS_SETUP:
        return None
    raw = ext.parse_dsn(conn.dsn).get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT")
    try:
        seconds = int(raw) if raw else 0
    except ValueError:
        return None
    return time.monotonic() + max(seconds, 2) if seconds > 0 else None
