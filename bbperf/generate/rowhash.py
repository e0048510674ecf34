"""Fingerprints computed as rows stream: the text PostgreSQL prints for ``ROW(columns)`` with
TimeZone UTC and DateStyle ISO, rendered with numpy, hashed with md5 row by row.

It is the definition ``bbperf.generate.fingerprint`` evaluates on the server (sum over rows of the
first 15 hex digits of ``md5(ROW(...)::text)``), so a load's stored fingerprints can be checked
against the server at any time (``bbperf data verify``) without the load re-reading its rows.
"""

from __future__ import annotations

from functools import cache
from operator import methodcaller

import numpy as np

from bbperf.generate import binary as b
from bbperf.generate.binary import ENCODE_ROWS, Column, Fixed, TextPool, compact

try:  # CPython's own md5 has no OpenSSL set-up cost: ~2.5x faster on rows of ~100 bytes
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - other interpreters
    from hashlib import md5 as _md5

# (rows x width bytes, bytes of each row that count: the first n, the last -n when negative, all
# when None)
Piece = tuple[np.ndarray, np.ndarray | None]
_LOW_BITS = (1 << 30) - 1
_DIGEST = methodcaller("digest")
_FOUR_DIGITS = np.frombuffer(b"".join(b"%04d" % i for i in range(10_000)), dtype=np.uint32)
_THREE_DIGITS = np.frombuffer(b"".join(b"%03d" % i for i in range(1000)), dtype="V3")
_TRAILING_ZEROS = np.array(
    [3 if i == 0 else 2 if i % 100 == 0 else i % 10 == 0 for i in range(1000)]
)
_TIMESTAMP = np.dtype(  # packed: 27 bytes, the layout of the text
    [
        ("quote", "u1"),
        ("date", "V10"),
        ("space", "u1"),
        ("clock", "V8"),
        ("point", "u1"),
        ("high", "V3"),
        ("low", "V3"),
    ]
)
_POWERS = 10 ** np.arange(1, 19, dtype=np.int64)
_DAY_US = 86_400 * 1_000_000


def _constant(text: bytes, n: int) -> Piece:
    row = np.frombuffer(text, dtype=np.uint8)
    return np.broadcast_to(row, (n, len(row))), None


def _strings(values: np.ndarray) -> Piece:
    """An ``S<w>`` array as a byte matrix and the length of each value."""
    n = len(values)
    matrix = values.view(np.uint8).reshape(n, values.dtype.itemsize)
    return matrix, np.count_nonzero(matrix, axis=1)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers as ``width`` zero-padded ASCII digits, one row each."""
    n = len(values)
    groups = -(-width // 4)
    out = np.empty((n, 4 * groups), dtype=np.uint8)
    fours = out.view(np.uint32)  # four digits a step, from a table of "0000".."9999"
    rest = np.asarray(values, dtype=np.int64)
    for k in range(groups - 1, -1, -1):
        rest, four = np.divmod(rest, 10_000)
        fours[:, k] = _FOUR_DIGITS[four]
    return out[:, 4 * groups - width :]


def _integers(values: np.ndarray) -> Piece:
    """Non-negative integers in decimal: right-aligned digits, so the piece keeps the last bytes."""
    values = np.asarray(values, dtype=np.int64)
    if len(values) and values.min() < 0:
        raise ValueError("the generator's integers are never negative")
    width = len(str(int(values.max()))) if len(values) else 1
    count = np.searchsorted(_POWERS, values, side="right") + 1
    return _digits(values, width), -count  # negative: keep the last |count| bytes


def _decimals(values: np.ndarray, scale: int) -> Piece:
    """Non-negative numbers of 10^-scale units as ``whole.fraction`` (``scale`` digits after the
    point), right-aligned in one piece."""
    whole, frac = np.divmod(np.asarray(values, dtype=np.int64), 10**scale)
    digits, count = _integers(whole)
    width = digits.shape[1]
    out = np.empty((len(values), width + 1 + scale), dtype=np.uint8)
    out[:, :width] = digits
    out[:, width] = ord(".")
    out[:, width + 1 :] = _digits(frac, scale)
    return out, count - 1 - scale


@cache
def _clock() -> np.ndarray:
    """``HH:MM:SS`` of every second of a day, as 8-byte values (one gather renders a column)."""
    seconds = np.arange(86_400)
    out = np.empty((86_400, 8), dtype=np.uint8)
    out[:, 0:2] = _digits(seconds // 3600, 2)
    out[:, 3:5] = _digits(seconds // 60 % 60, 2)
    out[:, 6:8] = _digits(seconds % 60, 2)
    out[:, [2, 5]] = ord(":")
    return out.view("V8").ravel()


def _calendar(first_day: int, days: int) -> np.ndarray:
    """``YYYY-MM-DD`` of ``days`` days from ``first_day`` (days since 1970-01-01), as 10-byte values."""
    dates = np.arange(first_day, first_day + days).astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    out = np.empty((days, 10), dtype=np.uint8)
    out[:, 0:4] = _digits(months.astype(np.int64) // 12 + 1970, 4)
    out[:, 5:7] = _digits(months.astype(np.int64) % 12 + 1, 2)
    out[:, 8:10] = _digits((dates - months).astype(np.int64) + 1, 2)
    out[:, [4, 7]] = ord("-")
    return out.view("V10").ravel()


def _timestamps(unix_us: np.ndarray) -> Piece:
    """``"YYYY-MM-DD HH:MM:SS[.ffffff]`` (the opening quote included): fractional seconds without
    trailing zeros. Dates, clock times and digit triples come from tables, a gather each."""
    n = len(unix_us)
    day = np.floor_divide(unix_us, _DAY_US)
    second, frac = np.divmod(unix_us - day * _DAY_US, 1_000_000)
    first_day = int(day.min()) if n else 0
    out = np.empty(n, dtype=_TIMESTAMP)
    out["quote"] = ord('"')
    out["date"] = _calendar(first_day, int(day.max()) - first_day + 1 if n else 1)[day - first_day]
    out["space"] = ord(" ")
    out["clock"] = _clock()[second]
    out["point"] = ord(".")
    high, low = np.divmod(frac, 1000)
    out["high"] = _THREE_DIGITS[high]
    out["low"] = _THREE_DIGITS[low]
    zeros = np.where(low == 0, 3 + _TRAILING_ZEROS[high], _TRAILING_ZEROS[low])
    return out.view(np.uint8).reshape(n, 27), np.where(frac == 0, 20, 27 - zeros)


def _fixed_pieces(column: Fixed) -> list[Piece]:
    n, values = len(column.values), column.values
    if column.kind == "int":
        return [_integers(values)]
    if column.kind == "bool":
        return [_strings(np.where(values != 0, b"t", b"f"))]
    if column.kind == "bytes":
        return [_strings(values)]
    if column.kind == "numeric":
        return [_decimals(values, column.scale)]
    if column.kind == "timestamptz":
        return [_timestamps(values), _constant(b'+00"', n)]
    raise ValueError(f"no text form for column kind {column.kind!r}")


def _pieces(column: Column) -> list[Piece]:
    """The column's text pieces; a NULL prints as nothing."""
    if isinstance(column, Fixed):
        return _fixed_pieces(column)
    null = column.length < 0
    if isinstance(column.source, TextPool):
        pool = column.source.quoted
        index = column.index if column.index is not None else np.arange(len(column.length))
        return [(pool.matrix[index], np.where(null, 0, pool.length[index]))]
    return [
        (m, np.where(null, 0, m.shape[1] if length is None else length))
        for m, length in _fixed_pieces(column.source)
    ]


def row_text(columns: b.Columns, names: tuple[str, ...], n: int) -> tuple[bytes, np.ndarray]:
    """``ROW(names)::text`` of ``n`` rows, each followed by a newline, concatenated; and where each
    row's text ends (its newline's offset)."""
    pieces: list[Piece] = [_constant(b"(", n)]
    for i, name in enumerate(names):
        if i:
            pieces.append(_constant(b",", n))
        pieces += _pieces(columns[name])
    pieces.append(_constant(b")\n", n))
    flat = compact(pieces, n)
    width = sum(m.shape[1] for m, length in pieces if length is None)
    ends = np.cumsum(width + np.sum([np.abs(x) for _, x in pieces if x is not None], axis=0)) - 1
    return flat.tobytes(), ends


def _digests(text: bytes, ends: np.ndarray) -> bytes:
    """md5 of every row: split at the newlines when only the row ends hold one (C loops only)."""
    lines = text.split(b"\n")
    if len(lines) == len(ends) + 1:  # no newline but the rows' own
        return b"".join(map(_DIGEST, map(_md5, lines[:-1])))
    view = memoryview(text)
    starts = [0, *(ends[:-1] + 1).tolist()]
    return b"".join(_DIGEST(_md5(view[s:e])) for s, e in zip(starts, ends.tolist(), strict=True))


def checksum(columns: b.Columns, names: tuple[str, ...], n: int) -> int:
    """Sum over the rows of the first 60 bits of md5(row text): one table's fingerprint, in part."""
    total = 0
    for lo in range(0, n, ENCODE_ROWS):
        rows = slice(lo, min(lo + ENCODE_ROWS, n))
        text, ends = row_text(b.take(columns, rows), names, rows.stop - rows.start)
        prefix = np.frombuffer(_digests(text, ends), dtype=">u8")[::2] >> np.uint64(4)
        total += (int(np.sum(prefix >> np.uint64(30), dtype=np.uint64)) << 30) + int(
            np.sum(prefix & np.uint64(_LOW_BITS), dtype=np.uint64)
        )
    return total
