"""Rows from one server to another by the servers' own COPY, streamed through a pipe.

``COPY … TO STDOUT`` on the source and ``COPY … FROM STDIN`` on the target run at once, the first
in a thread writing into an OS pipe the second reads: the client holds one pipe's worth of rows at a
time, however big the table. psycopg2 lets go of the GIL while libpq waits, so the two overlap. It
refuses COPY under a wait callback, so the CLI's is lifted meanwhile (Ctrl-C then waits for the
copy to end).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from bbperf.interrupt import wait_callback

CHUNK_BYTES = 1 << 20


def stream_copy(source: Any, copy_out: str, target: Any, copy_in: str) -> None:
    """Run ``copy_out`` (a ``COPY … TO STDOUT``) on the DBAPI connection ``source`` into
    ``copy_in`` (a ``COPY … FROM STDIN``) on ``target``. Commits nothing: the caller decides. Raises
    the source's error when it failed, even if the target took the rows it had sent; a failed
    target stops the source with a broken pipe."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb", buffering=CHUNK_BYTES)
    writer = os.fdopen(write_fd, "wb", buffering=CHUNK_BYTES)
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with writer, source.cursor() as cursor:
                cursor.copy_expert(copy_out, writer, size=CHUNK_BYTES)
        except BaseException as exc:  # handed to the caller's thread below
            failed.append(exc)

    with wait_callback(None):
        producer = threading.Thread(target=produce, name="bbperf-copy-out", daemon=True)
        producer.start()
        try:
            with reader, target.cursor() as cursor:
                cursor.copy_expert(copy_in, reader, size=CHUNK_BYTES)
        finally:
            producer.join()
    if failed:
        raise failed[0]
