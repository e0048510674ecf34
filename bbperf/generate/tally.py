"""Per-client visit totals, tallied while appointments are generated, in a memory-mapped scratch file.

The tally is the one thing that grows with the scale (32 bytes a client: 410 MB at SF 100). It lives in
an unlinked temporary file mapped into memory; after each update the process hands its pages back
(``madvise(MADV_DONTNEED)``: the page cache keeps them), so resident memory stays one chunk's worth.
Zero means "nothing yet" in every field, so a new file needs no initialisation. Its blocks are
reserved when it is made (``posix_fallocate``): a sparse file on a volume that fills up later would
kill the process that writes a page of it with SIGBUS; a reserved one fails at once, in one line.
"""

from __future__ import annotations

import errno
import mmap
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bbperf.errors import DataError

_FIELDS = 4  # visits, spent cents, LATEST - first visit, last visit (Unix microseconds)
# Later than any generated time: the first visit is stored as LATEST - t, so max() keeps the earliest.
LATEST_US = 1 << 62
ADD_STEP = 1 << 16  # clients updated at once: 2 MB of the tally's pages


class ClientTally:
    """Totals of completed past visits per client index (0-based)."""

    def __init__(self, n: int, directory: Path | None = None, path: Path | None = None) -> None:
        """A new tally in an unlinked file under ``directory`` (the system's temporary directory when
        None), or the tally another process keeps in ``path`` (see ``scratch_file``)."""
        self.n = n
        size = max(n, 1) * _FIELDS * 8
        if path is None:
            self._file = tempfile.TemporaryFile(prefix="bbperf-tally-", dir=directory)  # noqa: SIM115
            try:
                _reserve(self._file, size, directory)
            except DataError:
                self._file.close()
                raise
        else:
            self._file = open(path, "r+b")  # noqa: SIM115 - closed by close()
        self._map = mmap.mmap(self._file.fileno(), size)
        self._data = np.frombuffer(self._map, dtype=np.int64).reshape(_FIELDS, max(n, 1))

    def add(
        self,
        client: np.ndarray,
        price_cents: np.ndarray,
        start_us: np.ndarray,
        step: int = ADD_STEP,
    ) -> None:
        """Count one completed visit per element (client index, price, start time), ``step`` clients
        of the tally at a time: the pages and counting arrays an update touches stay the same size
        however many clients a barber block has (409,600 from SF 3.2 on)."""
        if not len(client):
            return
        lo, hi = int(client.min()), int(client.max()) + 1
        for first in range(lo, hi, step):
            last = min(first + step, hi)
            within = (client >= first) & (client < last)
            local = client[within] - first
            view = self._data[:, first:last]
            span = last - first
            view[0] += np.bincount(local, minlength=span)
            view[1] += np.bincount(local, weights=price_cents[within], minlength=span).astype(
                np.int64
            )
            np.maximum.at(view[2], local, LATEST_US - start_us[within])
            np.maximum.at(view[3], local, start_us[within])
            self.release()

    def merge(self, other: ClientTally, step: int = 1 << 16) -> None:
        """Add ``other``'s visits to this tally (the tallies of parallel workers), ``step`` at a time."""
        for lo in range(0, self.n, step):
            mine, theirs = self._data[:, lo : lo + step], other._data[:, lo : lo + step]
            mine[:2] += theirs[:2]
            np.maximum(mine[2:], theirs[2:], out=mine[2:])
            self.release()
            other.release()

    def rows(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(visits, spent cents, first visit, last visit) of clients lo..hi-1; times are -1 and
        LATEST_US where there was no visit."""
        data = self._data[:, lo:hi].copy()
        self.release()
        first = np.where(data[0] > 0, LATEST_US - data[2], LATEST_US)
        last = np.where(data[0] > 0, data[3], -1)
        return data[0], data[1], first, last

    @staticmethod
    def scratch_file(n: int, directory: Path | None = None) -> Path:
        """An empty tally file for ``n`` clients that a worker process can open by path."""
        with tempfile.NamedTemporaryFile(prefix="bbperf-tally-", dir=directory, delete=False) as f:
            try:
                _reserve(f, max(n, 1) * _FIELDS * 8, directory)
            except DataError:
                Path(f.name).unlink(missing_ok=True)
                raise
        return Path(f.name)

    def release(self) -> None:
        if hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        del self._data
        self._map.close()
        self._file.close()


def _reserve(file: Any, size: int, directory: Path | None) -> None:
    """``size`` bytes of ``file``, zeroed, with their blocks allocated now (plain ``truncate`` where
    the system has no ``posix_fallocate``); no room is a DataError that names the folder."""
    file.truncate(size)
    if not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(file.fileno(), 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it: stay sparse
            return
        where = directory if directory is not None else Path(tempfile.gettempdir())
        raise DataError(
            f"no room for the load's client tally ({size / 1e6:,.1f} MB) in {where}: "
            f"{os.strerror(exc.errno or errno.ENOSPC)}"
        ) from None
