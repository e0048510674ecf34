"""Ctrl-C that reaches a running statement: psycopg2's process-wide wait callback, and the one the CLI
installs so an interrupt cancels the statement on the server. psycopg2 only, no SQLAlchemy, so a
command that runs no query does not pay for it."""

from __future__ import annotations

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

    interrupted = False
    while True:
        try:
            state = conn.poll()
            if state == ext.POLL_OK:
                break
            if state == ext.POLL_READ:
                select.select([conn.fileno()], [], [])
            elif state == ext.POLL_WRITE:
                select.select([], [conn.fileno()], [])
            else:
                raise psycopg2.OperationalError(f"bad state from poll: {state}")
        except KeyboardInterrupt:
            conn.cancel()
            interrupted = True
        except psycopg2.Error:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
    if interrupted:
        raise KeyboardInterrupt
