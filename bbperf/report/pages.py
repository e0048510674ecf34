"""Clean notebook pages: tables without the pandas index, numbers rounded with their units, long text
(SQL) wrapped instead of cut, "none" for an empty result — one ``show_table`` call per table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from html import escape
from typing import Any

import pandas as pd

from bbperf.humanize import format_number

# Column-name endings → the unit a number in that column is rounded and labelled with.
_SUFFIX_UNITS = (
    ("_ms", "ms"),
    ("_s", "s"),
    ("_bytes", "bytes"),
    ("_pct", "%"),
    ("speedup", "x"),
    ("slowdown", "x"),
    ("predicted", "x"),
    ("measured", "x"),
    ("_ratio", "ratio"),
    ("_rps", "req/s"),
    ("rows_per_s", "rows/s"),
)
# Text left, numbers right; long text (SQL, findings) wraps at spaces, words are never cut.
_STYLE = (
    "<style>.bbperf-table{border-collapse:collapse}"
    ".bbperf-table th,.jp-RenderedHTMLCommon .bbperf-table th{text-align:left;vertical-align:bottom}"
    ".bbperf-table td,.jp-RenderedHTMLCommon .bbperf-table td{text-align:left;white-space:normal;"
    "overflow-wrap:break-word;max-width:40em;vertical-align:top;padding:.25em .6em}"
    ".bbperf-table td.num,.jp-RenderedHTMLCommon .bbperf-table td.num"
    "{text-align:right;white-space:nowrap}</style>"
)


def unit_of(column: str) -> str | None:
    """The unit a column's numbers carry, from its name (``server_after_ms`` → ms), or None."""
    name = column.lower()
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix):
            return unit
    return None


def format_cell(value: Any, unit: str | None) -> str:
    """One cell for reading: numbers rounded (with the column's unit), lists joined, empties blank."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):  # pandas Timestamps too: to the second, no microseconds
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, Decimal):  # numeric columns: rounded like any number
        value = float(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return "∞" if value > 0 else ""
        if unit is None:
            return f"{value:,}" if isinstance(value, int) else format_number(value)
        return format_number(value, unit)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, set | frozenset):  # sorted: a set's order changes from run to run
        return ", ".join(sorted(str(v) for v in value))
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


class CleanTable:
    """A DataFrame shown for reading: no index, rounded numbers with units, wrapped text.

    ``units`` overrides the unit guessed from a column's name; ``empty`` is what an empty table says.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        units: Mapping[str, str | None] | None = None,
        empty: str = "none",
    ) -> None:
        self.frame = frame
        self.units = {c: unit_of(str(c)) for c in frame.columns} | dict(units or {})
        self.empty = empty

    def formatted(self) -> pd.DataFrame:
        """The table as text cells, the way it is shown."""
        columns: dict[str, list[str]] = {}
        for column in self.frame.columns:
            unit = self.units.get(column)
            columns[str(column)] = [format_cell(v, unit) for v in self.frame[column].tolist()]
        return pd.DataFrame(columns, columns=[str(c) for c in self.frame.columns])

    def _numeric(self, column: Any) -> bool:
        return bool(pd.api.types.is_numeric_dtype(self.frame[column])) and not bool(
            pd.api.types.is_bool_dtype(self.frame[column])
        )

    def _repr_html_(self) -> str:
        if self.frame.empty:
            return f"<p><i>{escape(self.empty)}</i></p>"
        cells = self.formatted()
        head = "".join(f"<th>{escape(str(c))}</th>" for c in cells.columns)
        numeric = [self._numeric(c) for c in self.frame.columns]
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="num">{escape(v)}</td>' if num else f"<td>{escape(v)}</td>"
                for v, num in zip(row, numeric, strict=True)
            )
            + "</tr>"
            for row in cells.itertuples(index=False)
        )
        return (
            f'{_STYLE}<table class="bbperf-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )

    def __repr__(self) -> str:
        if self.frame.empty:
            return self.empty
        return str(self.formatted().to_string(index=False))


def show_table(
    frame: pd.DataFrame | pd.Series | Mapping[str, Any],
    *,
    units: Mapping[str, str | None] | None = None,
    empty: str = "none",
    key: str = "name",
    value: str = "value",
) -> CleanTable:
    """``frame`` ready to display: a Series or mapping becomes two columns (``key``, ``value``)."""
    if isinstance(frame, pd.Series):
        frame = pd.DataFrame({key: [str(i) for i in frame.index], value: frame.tolist()})
    elif not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame({key: list(frame.keys()), value: list(frame.values())})
    return CleanTable(frame.reset_index(drop=True), units=units, empty=empty)


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested JSON document (the health check) as ``a.b.c → value`` rows for a table."""
    rows: dict[str, Any] = {}
    for name, item in document.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(item, Mapping):
            rows |= flatten(item, path)
        else:
            rows[path] = item
    return rows
