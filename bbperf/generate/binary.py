"""PostgreSQL binary COPY payloads built with numpy: whole columns at a time, no Python per row.

Every row is laid out in a padded 2-D byte matrix (fixed-width fields, then each varying-width field
at its widest); one boolean-mask compaction turns the matrix into the COPY stream. Columns keep their
logical values (``kind``/``values``) so ``bbperf.generate.rowhash`` can render their text form too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 UTC in Unix microseconds
_NUMERIC_DIGITS = 3  # base-10000 digits before and after the point: values below 10^8
# Rows encoded per step: bounds the padded matrix (rows x widest row) whatever the chunk size.
ENCODE_ROWS = 8192
_NEEDS_QUOTES = re.compile(r'[ \t\n\r\v\f"\\(),]')  # record_out's test (C isspace, not Unicode)


@dataclass(frozen=True)
class Fixed:
    """A never-null column of one width, kept as its logical ``values``: integers ("int"), 0/1
    ("bool"), Unix microseconds ("timestamptz"), units of 10^-scale ("numeric"), an ``S<w>`` array
    ("bytes"). Its binary ``parts`` are computed when a slice of it is encoded."""

    kind: str
    values: np.ndarray
    width: int
    scale: int = 0

    @property
    def parts(self) -> tuple[tuple[str, str, np.ndarray | int], ...]:
        """(suffix, dtype, values) of the binary form's fields."""
        if self.kind == "timestamptz":
            return (("", ">i8", self.values - PG_EPOCH_US),)
        if self.kind == "numeric":
            whole, frac = np.divmod(self.values, 10**self.scale)
            return (
                ("n", ">i2", _NUMERIC_DIGITS),
                ("w", ">i2", 1),  # weight of the first digit: 10000^1
                ("s", ">i2", 0),
                ("d", ">i2", self.scale),
                ("0", ">i2", whole // 10_000),
                ("1", ">i2", whole % 10_000),
                ("2", ">i2", frac * 10 ** (4 - self.scale)),
            )
        dtype = {"int": f">i{self.width}", "bool": "u1"}.get(self.kind, self.values.dtype.str)
        return (("", dtype, self.values),)

    def take(self, rows: slice) -> Fixed:
        return Fixed(self.kind, self.values[rows], self.width, self.scale)


@dataclass(frozen=True)
class TextPool:
    """Distinct strings, encoded once, that rows refer to by index."""

    values: tuple[str, ...]
    matrix: np.ndarray  # (len, widest) uint8, NUL-padded
    length: np.ndarray

    @classmethod
    def of(cls, values: list[str] | tuple[str, ...]) -> TextPool:
        encoded = [v.encode() for v in values]
        widest = max((len(e) for e in encoded), default=0)
        matrix = np.array(encoded, dtype=f"S{max(widest, 1)}").view(np.uint8)
        length = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        return cls(tuple(values), matrix.reshape(len(encoded), max(widest, 1)), length)

    def __len__(self) -> int:
        return len(self.values)

    @cached_property
    def quoted(self) -> TextPool:
        """The same strings as a composite (row) value prints them: quoted when they need it."""
        return TextPool.of([record_quote(v) for v in self.values])


def record_quote(value: str) -> str:
    """``value`` as PostgreSQL's record output writes a field (``record_out``): in double quotes when
    empty or holding ``" \\ ( ) ,`` or white space, with ``"`` and ``\\`` doubled inside."""
    if value and not _NEEDS_QUOTES.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '""') + '"'


@dataclass(frozen=True)
class Var:
    """A column of varying width: row i is ``matrix[index[i], :length[i]]`` (``matrix[i]`` when
    ``index`` is None), NULL where length is -1. ``source`` is what the bytes mean."""

    matrix: np.ndarray
    index: np.ndarray | None
    length: np.ndarray
    source: TextPool | Fixed = field(repr=False)

    def take(self, rows: slice) -> Var:
        if self.index is not None:
            return Var(self.matrix, self.index[rows], self.length[rows], self.source)
        source = self.source.take(rows) if isinstance(self.source, Fixed) else self.source
        return Var(self.matrix[rows], None, self.length[rows], source)

    def rows(self) -> np.ndarray:
        """The (rows, widest) byte matrix of this column's values."""
        return self.matrix if self.index is None else self.matrix[self.index]


Column = Fixed | Var
Columns = dict[str, Column]


def int4(values: np.ndarray) -> Fixed:
    return Fixed("int", np.asarray(values, dtype=np.int32), 4)


def int8(values: np.ndarray) -> Fixed:
    return Fixed("int", np.asarray(values, dtype=np.int64), 8)


def boolean(values: np.ndarray) -> Fixed:
    return Fixed("bool", np.asarray(values, dtype=np.uint8), 1)


def timestamptz(unix_us: np.ndarray) -> Fixed:
    """Timestamps given as Unix microseconds (int64)."""
    return Fixed("timestamptz", np.asarray(unix_us, dtype=np.int64), 8)


def numeric(units: np.ndarray, scale: int) -> Fixed:
    """Non-negative numbers below 10^8 given as integers of 10^-scale (cents for scale 2), scale <= 4."""
    return Fixed("numeric", np.asarray(units, dtype=np.int64), 2 * (4 + _NUMERIC_DIGITS), scale)


def fixed_text(values: np.ndarray) -> Fixed:
    """Text of one byte width for every row, as a numpy ``S<w>`` array (ASCII, nothing to quote)."""
    return Fixed("bytes", values, values.dtype.itemsize)


def pooled(pool: TextPool, index: np.ndarray, null: np.ndarray | None = None) -> Var:
    """Text picked from ``pool`` by ``index``; NULL where ``null`` is True."""
    length = pool.length[index]
    if null is not None:
        length = np.where(null, -1, length)
    return Var(pool.matrix, index, length, pool)


def nullable(column: Fixed, null: np.ndarray) -> Var:
    """A fixed-width column with NULL where ``null`` is True."""
    n = len(null)
    data = _structured(column, n).view(np.uint8).reshape(n, column.width)
    return Var(data, None, np.where(null, -1, column.width), column)


def _structured(column: Fixed, n: int) -> np.ndarray:
    parts = column.parts
    out = np.empty(n, dtype=np.dtype([(f"v{suffix}", dtype) for suffix, dtype, _ in parts]))
    for suffix, _, values in parts:
        out[f"v{suffix}"] = values
    return out


def take(columns: dict[str, Column], rows: slice) -> dict[str, Column]:
    """The same columns restricted to ``rows``."""
    return {name: c.take(rows) for name, c in columns.items()}


def compact(pieces: list[tuple[np.ndarray, np.ndarray | None]], n: int) -> np.ndarray:
    """Concatenate, row by row, byte matrices of shape (n, w): all w bytes of a piece whose lengths
    are None, else the first ``lengths[i]`` bytes of row i (the last ``-lengths[i]`` when any is
    negative). Returns the flat uint8 result.

    Pieces that are one row broadcast (``strides[0] == 0``: separators, quotes) go into a template
    row copied once, not a pass each. Which bytes are kept is one comparison: each byte's distance
    from the kept side of its piece against its row's count for that piece (the counts repeated
    across the piece's width), not a comparison per piece."""
    widths = [m.shape[1] for m, _ in pieces]
    width = sum(widths)
    small = max(widths, default=0) < 255
    template = np.zeros(width, dtype=np.uint8)
    distance = np.empty(width, dtype=np.uint8 if small else np.int64)
    counts = np.empty((n, len(pieces)), dtype=distance.dtype)
    placed: list[tuple[int, np.ndarray]] = []
    at = 0
    for k, (matrix, lengths) in enumerate(pieces):
        w = widths[k]
        if lengths is None and matrix.strides[0] == 0 and n:
            template[at : at + w] = matrix[0]
        else:
            placed.append((at, matrix))
        if lengths is None:
            counts[:, k] = w
            distance[at : at + w] = np.arange(w)
        elif lengths.min(initial=0) < 0:
            counts[:, k] = np.clip(-lengths, 0, w)
            distance[at : at + w] = np.arange(w - 1, -1, -1)
        else:
            counts[:, k] = np.clip(lengths, 0, w)
            distance[at : at + w] = np.arange(w)
        at += w
    padded = np.empty((n, width), dtype=np.uint8)
    if len(placed) < len(pieces):
        padded[:] = template
    for at, matrix in placed:
        padded[:, at : at + matrix.shape[1]] = matrix
    keep = distance < np.repeat(counts, widths, axis=1)
    # A 1-D mask: no index array (np.compress makes one, 8 bytes a kept byte), no 2-D iteration.
    return padded.ravel()[keep.ravel()]


def encode_body(columns: dict[str, Column], n: int) -> np.ndarray:
    """The rows of a binary COPY stream (no header, no trailer) as a flat uint8 array."""
    fixed = [c for c in columns.values() if isinstance(c, Fixed)]
    var = [c for c in columns.values() if isinstance(c, Var)]
    fields = [("count", ">i2")]
    parts = [column.parts for column in fixed]
    for i, column_parts in enumerate(parts):
        fields += [(f"c{i}len", ">i4")] + [(f"c{i}{s}", d) for s, d, _ in column_parts]
    block = np.empty(n, dtype=np.dtype(fields))
    block["count"] = len(columns)
    for i, (column, column_parts) in enumerate(zip(fixed, parts, strict=True)):
        block[f"c{i}len"] = column.width
        for suffix, _, values in column_parts:
            block[f"c{i}{suffix}"] = values
    pieces: list[tuple[np.ndarray, np.ndarray | None]] = [
        (block.view(np.uint8).reshape(n, block.dtype.itemsize), None)
    ]
    for text in var:
        pieces.append((text.length.astype(">i4").view(np.uint8).reshape(n, 4), None))
        pieces.append((text.rows(), np.maximum(text.length, 0)))
    return compact(pieces, n)


def order(columns: dict[str, Column]) -> list[str]:
    """The column order of ``encode``'s stream: fixed-width columns first."""
    return [k for k, c in columns.items() if isinstance(c, Fixed)] + [
        k for k, c in columns.items() if isinstance(c, Var)
    ]


def encode(columns: dict[str, Column], n: int) -> tuple[list[str], bytes]:
    """A complete binary COPY stream for ``n`` rows; returns (column order, payload)."""
    parts = [np.frombuffer(HEADER, dtype=np.uint8)]
    for lo in range(0, n, ENCODE_ROWS):
        rows = slice(lo, min(lo + ENCODE_ROWS, n))
        parts.append(encode_body(take(columns, rows), rows.stop - rows.start))
    parts.append(np.frombuffer(TRAILER, dtype=np.uint8))
    return order(columns), np.concatenate(parts).tobytes()
