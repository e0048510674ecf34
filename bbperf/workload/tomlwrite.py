"""Write a workload as TOML (Python reads TOML but does not write it): the format ``bbperf.workload.file``
reads back, with the SQL kept readable and each unresolved placeholder marked by a comment."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from bbperf.files import write_output
from bbperf.workload.file import FORMAT_VERSION, Workload

_HEADER = (
    "# A bbperf workload: normalized statements ($n placeholders), their calls, what each placeholder\n"
    "# is compared with (from PostgreSQL's parse tree) and, once sampled, values to run them with.\n"
    "# Read by `bbperf workload sample | replay | advise`.\n"
)


def save_workload(workload: Workload, path: str | Path, *, force: bool = False) -> Path:
    """Write ``workload`` as TOML (atomically, through ``bbperf.files.write_output``); refuse to
    replace an existing file unless ``force``."""
    return write_output(path, dumps(workload), force=force)


def dumps(workload: Workload) -> str:
    """The workload as TOML text (what ``save_workload`` writes)."""
    lines = [_HEADER, f"version = {FORMAT_VERSION}", f"name = {_str(workload.name)}"]
    lines.append(f"source = {_str(workload.source)}")
    if workload.description:
        lines.append(f"description = {_str(workload.description)}")
    for key, value in workload.meta.items():
        lines.append(f"{key} = {_value(value)}")
    total = workload.total_calls
    for s in workload.statements:
        lines += ["", "[[statement]]", f"name = {_str(s.name)}"]
        if s.description:
            lines.append(f"description = {_str(s.description)}")
        lines.append(f"kind = {_str(s.kind)}  # read_only = {str(s.read_only).lower()}")
        lines.append(f"fingerprint = {_str(s.fingerprint)}")
        lines.append(f"calls = {s.calls}")
        if total:
            lines.append(f"calls_share = {round(s.calls / total, 6)!r}")
        for key in ("total_ms", "mean_ms", "rows_per_call"):
            value = getattr(s, key)
            if value is not None:
                lines.append(f"{key} = {_value(round(float(value), 6))}")
        if s.queryids:
            lines.append(f"queryids = {_value(list(s.queryids))}")
        lines.append(f"sql = {_sql(s.sql)}")
        if s.values:
            lines.append("values = [")
            lines += [f"  {_value(row)}," for row in s.values]
            lines.append("]")
        for p in s.placeholders:
            lines += ["", "[[statement.placeholder]]", f"number = {p.number}"]
            for key in ("name", "operator", "table", "column"):
                value = getattr(p, key)
                if value is not None:
                    lines.append(f"{key} = {_str(value)}")
            if not p.resolved:
                lines.append("# unresolved: no column to draw values from")
    return "\n".join(lines) + "\n"


def _str(text: str) -> str:
    return json.dumps(str(text), ensure_ascii=False)


def _sql(sql: str) -> str:
    if "\n" in sql and "'''" not in sql and not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", sql):
        return "'''\n" + sql + "'''"
    return _str(sql)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_str(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Decimal | UUID):
        return _str(str(value))
    return _str(str(value))
