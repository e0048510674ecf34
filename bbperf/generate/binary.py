"""PostgreSQL binary COPY payloads built with numpy: whole columns at a time, no Python per row.

Fixed-width, never-null columns become one structured array per chunk; text and nullable columns are
scattered into place with index arithmetic. The caller gets the column order to name in ``COPY``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 UTC in Unix microseconds
_NUMERIC_DIGITS = 3  # base-10000 digits before and after the point: values below 10^8


@dataclass(frozen=True)
class Fixed:
    """A never-null column of one width: ``parts`` are (suffix, dtype, values) of its binary form."""

    parts: tuple[tuple[str, str, np.ndarray | int], ...]
    width: int


@dataclass(frozen=True)
class Var:
    """A column of varying width: row i is ``buf[off[i]:off[i]+length[i]]``, NULL where length is -1."""

    buf: np.ndarray
    off: np.ndarray
    length: np.ndarray


@dataclass(frozen=True)
class TextPool:
    """Distinct strings, encoded once, that rows refer to by index."""

    buf: np.ndarray
    off: np.ndarray
    length: np.ndarray

    @classmethod
    def of(cls, values: list[str] | tuple[str, ...]) -> TextPool:
        encoded = [v.encode() for v in values]
        length = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        off = np.zeros(len(encoded), dtype=np.int64)
        np.cumsum(length[:-1], out=off[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), off, length)

    def __len__(self) -> int:
        return len(self.off)


def int4(values: np.ndarray) -> Fixed:
    return Fixed((("", ">i4", values),), 4)


def int8(values: np.ndarray) -> Fixed:
    return Fixed((("", ">i8", values),), 8)


def boolean(values: np.ndarray) -> Fixed:
    return Fixed((("", "u1", values),), 1)


def timestamptz(unix_us: np.ndarray) -> Fixed:
    """Timestamps given as Unix microseconds (int64)."""
    return Fixed((("", ">i8", np.asarray(unix_us, dtype=np.int64) - PG_EPOCH_US),), 8)


def numeric(units: np.ndarray, scale: int) -> Fixed:
    """Non-negative numbers given as integers of 10^-scale (cents for scale 2), scale <= 4."""
    units = np.asarray(units, dtype=np.int64)
    whole, frac = np.divmod(units, 10**scale)
    parts: list[tuple[str, str, np.ndarray | int]] = [
        ("n", ">i2", _NUMERIC_DIGITS),
        ("w", ">i2", 1),  # weight of the first digit: 10000^1
        ("s", ">i2", 0),
        ("d", ">i2", scale),
        ("0", ">i2", whole // 10_000),
        ("1", ">i2", whole % 10_000),
        ("2", ">i2", frac * 10 ** (4 - scale)),
    ]
    return Fixed(tuple(parts), 2 * (4 + _NUMERIC_DIGITS))


def fixed_text(values: np.ndarray) -> Fixed:
    """Text of one byte width for every row, as a numpy ``S<w>`` array (ASCII)."""
    return Fixed((("", values.dtype.str, values),), values.dtype.itemsize)


def pooled(pool: TextPool, index: np.ndarray, null: np.ndarray | None = None) -> Var:
    """Text picked from ``pool`` by ``index``; NULL where ``null`` is True."""
    length = pool.length[index]
    if null is not None:
        length = np.where(null, -1, length)
    return Var(pool.buf, pool.off[index], length)


def nullable(column: Fixed, null: np.ndarray) -> Var:
    """A fixed-width column with NULL where ``null`` is True."""
    n = len(null)
    data = _structured(column, n).view(np.uint8)
    return Var(data, np.arange(n, dtype=np.int64) * column.width, np.where(null, -1, column.width))


def _structured(column: Fixed, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.dtype([(f"v{suffix}", dtype) for suffix, dtype, _ in column.parts]))
    for suffix, _, values in column.parts:
        out[f"v{suffix}"] = values
    return out


def encode(columns: dict[str, Fixed | Var], n: int) -> tuple[list[str], bytes]:
    """A complete binary COPY stream for ``n`` rows; returns (column order, payload)."""
    fixed = {name: c for name, c in columns.items() if isinstance(c, Fixed)}
    var = {name: c for name, c in columns.items() if isinstance(c, Var)}
    fields = [("count", ">i2")]
    for i, (_, column) in enumerate(fixed.items()):
        fields += [(f"c{i}len", ">i4")] + [(f"c{i}{s}", d) for s, d, _ in column.parts]
    block = np.empty(n, dtype=np.dtype(fields))
    block["count"] = len(columns)
    for i, (_, column) in enumerate(fixed.items()):
        block[f"c{i}len"] = column.width
        for suffix, _, values in column.parts:
            block[f"c{i}{suffix}"] = values
    width = block.dtype.itemsize
    sizes = [4 + np.maximum(c.length, 0) for c in var.values()]
    row_size = width + np.sum(sizes, axis=0) if sizes else np.full(n, width, dtype=np.int64)
    row_off = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(row_size[:-1], out=row_off[1:])
    body = int(row_off[-1] + row_size[-1]) if n else 0
    out = np.empty(len(HEADER) + body + len(TRAILER), dtype=np.uint8)
    out[: len(HEADER)] = np.frombuffer(HEADER, dtype=np.uint8)
    out[len(out) - len(TRAILER) :] = np.frombuffer(TRAILER, dtype=np.uint8)
    start = row_off + len(HEADER)
    raw = block.view(np.uint8).reshape(n, width)
    if not var:
        out[len(HEADER) : len(HEADER) + body] = raw.ravel()
    else:
        out[start[:, None] + np.arange(width)] = raw
    pos = start + width
    for text_column, size in zip(var.values(), sizes, strict=True):
        _scatter(out, pos, text_column)
        pos = pos + size
    return [*fixed, *var], out.tobytes()


def _scatter(out: np.ndarray, pos: np.ndarray, column: Var) -> None:
    """Write each row's 4-byte length and its bytes at ``pos``."""
    out[pos[:, None] + np.arange(4)] = column.length.astype(">i4").view(np.uint8).reshape(-1, 4)
    valid = column.length > 0
    length = column.length[valid]
    total = int(length.sum())
    if not total:
        return
    first = np.zeros(len(length), dtype=np.int64)
    np.cumsum(length[:-1], out=first[1:])
    within = np.arange(total, dtype=np.int64) - np.repeat(first, length)
    out[np.repeat(pos[valid] + 4, length) + within] = column.buf[
        np.repeat(column.off[valid], length) + within
    ]
