"""The workload file (TOML): statements with ``$n`` placeholders, their weight, what each placeholder is
compared with, and — once sampled — values to run them with.

The built-in BookedBarber catalogue is one such file (``bookedbarber.toml`` beside this module), a
captured workload is another; every consumer (sample, replay, advise, the index benchmark) takes either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bbperf.errors import BbperfError, ConfigError
from bbperf.files import loads_toml, read_input
from bbperf.sql import parse_one
from bbperf.workload.parse import Analysis, analyze, literal_spans, placeholder_tokens, resolve
from bbperf.workload.query import WorkloadQuery

if TYPE_CHECKING:
    import pandas as pd

FORMAT_VERSION = 1
BUILTIN = Path(__file__).with_name("bookedbarber.toml")
BUILTIN_NAMES = ("catalogue", "bookedbarber")
# Stated bounds: a workload is the top statements of pg_stat_statements (5,000 by default), each
# with value sets for a replay; beyond these a file is refused instead of hanging on the parse.
MAX_WORKLOAD_BYTES = 32_000_000
MAX_STATEMENTS = 10_000
MAX_VALUE_SETS = 10_000
# Operators a value can be drawn for from the compared column (see bbperf.workload.sample).
COLUMN_OPERATORS = ("=", "<>", "in", "any", "like", "<", "<=", ">", ">=", "set", "insert")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Placeholder:
    """``$number``: compared by ``operator`` with ``table.column``; ``name`` labels it in bound SQL.

    ``operator`` is None when no rule of the parse-tree walk read the placeholder (``now() - $1``);
    ``table`` is None when the column could not be tied to one table. Either way it is unresolved.
    """

    number: int
    operator: str | None = None
    table: str | None = None
    column: str | None = None
    name: str | None = None

    @property
    def resolved(self) -> bool:
        if self.operator in ("limit", "offset"):
            return True
        return self.operator in COLUMN_OPERATORS and bool(self.table and self.column)

    @property
    def bind_name(self) -> str:
        return self.name or f"p{self.number}"

    def __str__(self) -> str:
        if self.operator in ("limit", "offset"):
            return f"${self.number}: {self.operator.upper()}"
        if not self.resolved:
            return f"${self.number}: unresolved"
        return f"${self.number}: {self.table}.{self.column} {self.operator}"


@dataclass
class Statement:
    """One normalized statement of a workload, with its share of the calls and its placeholders."""

    name: str
    sql: str
    description: str = ""
    fingerprint: str = ""
    kind: str = "select"
    read_only: bool = True
    calls: int = 1
    total_ms: float | None = None
    mean_ms: float | None = None
    rows_per_call: float | None = None
    queryids: tuple[int, ...] = ()
    placeholders: tuple[Placeholder, ...] = ()
    values: list[list[Any]] = field(default_factory=list)

    @property
    def unresolved(self) -> list[Placeholder]:
        return [p for p in self.placeholders if not p.resolved]

    @property
    def runnable(self) -> bool:
        """True when every placeholder has a value (statements without placeholders always are)."""
        return not self.placeholders or bool(self.values)

    def bind_sql(self) -> str:
        """The SQL with ``:name`` parameters for ``sqlalchemy.text`` (``$n`` → ``:name`` or ``:pN``)."""
        names = {p.number: p.bind_name for p in self.placeholders}
        return _substitute(self.sql, lambda n: ":" + names.get(n, f"p{n}"), escape_colons=True)

    def driver_sql(self) -> str:
        """The SQL in the driver's paramstyle (``%(pN)s``), for ``Connection.exec_driver_sql``."""
        return _substitute(self.sql, lambda n: f"%(p{n})s", escape_percent=True)

    def params(self, index: int = 0, *, bind_names: bool = True) -> dict[str, Any]:
        """Value set ``index`` as {bind name: value} (``{"pN": …}`` with ``bind_names=False``)."""
        if not self.placeholders:
            return {}
        if not self.values:
            raise ConfigError(
                f"statement {self.name!r} has no values for its placeholders: "
                "run `bbperf workload sample` on the file first"
            )
        row = self.values[index % len(self.values)]
        return {
            (p.bind_name if bind_names else f"p{p.number}"): v
            for p, v in zip(self.placeholders, row, strict=True)
        }

    def query(self, index: int = 0) -> WorkloadQuery:
        """The statement as a ``WorkloadQuery`` (name, description, bound SQL, value set ``index``)."""
        return WorkloadQuery(self.name, self.description, self.bind_sql(), self.params(index))


@dataclass
class Workload:
    """Statements and where they came from (``source``: catalogue, pg_stat_statements, file)."""

    name: str
    statements: list[Statement]
    source: str = "file"
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def total_calls(self) -> int:
        return sum(s.calls for s in self.statements)

    def share(self, statement: Statement) -> float:
        """``statement``'s share of the workload's calls (0–1)."""
        total = self.total_calls
        return statement.calls / total if total else 0.0

    def statement(self, name: str) -> Statement:
        for s in self.statements:
            if s.name == name:
                return s
        raise ConfigError(
            f"no statement {name!r} in workload {self.name!r}: choose from "
            + ", ".join(s.name for s in self.statements)
        )

    def queries(self, index: int = 0) -> list[WorkloadQuery]:
        """Every runnable statement as a WorkloadQuery (what the index benchmark consumes)."""
        return [s.query(index) for s in self.statements if s.runnable]

    def to_frame(self) -> pd.DataFrame:
        """One row per statement: name, kind, calls, share %, times (ms), rows, placeholders."""
        import pandas as pd

        rows = [
            {
                "statement": s.name,
                "kind": s.kind,
                "calls": s.calls,
                "share_pct": round(100 * self.share(s), 1),
                "mean_ms": s.mean_ms,
                "total_ms": s.total_ms,
                "rows_per_call": s.rows_per_call,
                "placeholders": "; ".join(str(p) for p in s.placeholders),
                "value_sets": len(s.values),
            }
            for s in self.statements
        ]
        return pd.DataFrame(rows)


# --- building statements -------------------------------------------------------------------------


def placeholders_of(
    analysis: Analysis,
    tables: dict[Any, tuple[str, str]],
    columns: dict[tuple[str, str], set[str]],
    names: dict[int, str] | None = None,
) -> tuple[Placeholder, ...]:
    """Every placeholder of ``analysis``, tied to its column where the parse tree and catalog allow.

    ``tables`` / ``columns`` as for ``bbperf.workload.parse.resolve``; an empty schema in ``tables``
    leaves the table name unqualified (resolved on the target's search_path).
    """
    found = resolve(analysis, tables, columns)
    out = []
    for number in analysis.numbers:
        table, column, operator = found.get(number, (None, None, None))
        label = (names or {}).get(number)
        qualified = None
        if table is not None:
            qualified = f"{table[0]}.{table[1]}" if table[0] else table[1]
        out.append(Placeholder(number, operator, qualified, column, label))
    return tuple(out)


def from_named_sql(
    name: str,
    sql: str,
    columns: dict[tuple[str, str], set[str]],
    *,
    description: str = "",
    calls: int = 1,
) -> Statement:
    """A Statement from hand-written SQL with ``:name`` parameters (``$n`` in order of appearance).

    ``columns`` maps (schema, table) → columns; tables are looked up by name in any schema.
    """
    numbers: dict[str, int] = {}

    literals = literal_spans(sql)

    def number(match: re.Match[str]) -> str:
        if any(start <= match.start() < end for start, end in literals):
            return match.group(0)
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    dollar_sql = _NAMED.sub(number, sql)
    analysis = analyze(dollar_sql)
    by_name = {t[1]: t for t in columns}
    tables = {r: ("", r.name) for r in analysis.relations if r.name in by_name}
    bare = {("", t[1]): cols for t, cols in columns.items()}
    labels = {n: label for label, n in numbers.items()}
    return Statement(
        name=name,
        sql=dollar_sql,
        description=description,
        fingerprint=analysis.fingerprint,
        kind=analysis.kind,
        read_only=analysis.read_only,
        calls=calls,
        placeholders=placeholders_of(analysis, tables, bare, labels),
    )


def _substitute(
    sql: str, render: Any, *, escape_colons: bool = False, escape_percent: bool = False
) -> str:
    out: list[str] = []
    pos = 0
    for start, end, number in placeholder_tokens(sql):
        out.append(_escape(sql[pos:start], escape_colons, escape_percent))
        out.append(render(number))
        if escape_colons and sql.startswith("::", end):
            out.append(" ")  # sqlalchemy.text reads ":p1::int" as no parameter at all
        pos = end
    out.append(_escape(sql[pos:], escape_colons, escape_percent))
    return "".join(out)


def _escape(chunk: str, colons: bool, percent: bool) -> str:
    if colons:
        chunk = re.sub(r"(?<![:\w\\]):(?=\w)", r"\\:", chunk)
    if percent:
        chunk = chunk.replace("%", "%%")
    return chunk


# --- reading -------------------------------------------------------------------------------------


def is_builtin(source: str | Path) -> bool:
    return str(source) in BUILTIN_NAMES


def load_workload(source: str | Path) -> Workload:
    """Read a workload file; ``"catalogue"`` (or ``"bookedbarber"``) is the built-in one."""
    path = BUILTIN if is_builtin(source) else Path(source)
    if not path.exists():
        raise ConfigError(
            f"workload file {str(path)!r} not found: give a file written by "
            "`bbperf workload capture`, or 'catalogue' for the built-in one"
        )
    kind = f"workload file {str(path)!r}"
    text = read_input(path, limit_bytes=MAX_WORKLOAD_BYTES, kind=kind)
    return workload_from_dict(loads_toml(text, kind=kind), str(path))


def workload_from_dict(data: dict[str, Any], where: str = "workload") -> Workload:
    """A Workload from parsed TOML; ConfigError naming the entry when a field is wrong."""
    version = data.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ConfigError(f"{where}: format version {version!r} unknown (this bbperf reads 1)")
    entries = data.get("statement", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: no [[statement]] entries")
    if len(entries) > MAX_STATEMENTS:
        raise ConfigError(
            f"{where}: {len(entries):,} statements, more than the {MAX_STATEMENTS:,} a workload holds"
        )
    statements = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, 1):
        statements.append(_statement(entry, f"{where}: statement {i}"))
        if statements[-1].name in seen:
            raise ConfigError(f"{where}: statement name {statements[-1].name!r} is used twice")
        seen.add(statements[-1].name)
    meta = {
        k: v
        for k, v in data.items()
        if k not in ("statement", "name", "source", "description", "version")
    }
    return Workload(
        name=str(data.get("name", Path(where).stem)),
        statements=statements,
        source=str(data.get("source", "file")),
        description=str(data.get("description", "")),
        meta=meta,
    )


def _statement(entry: dict[str, Any], where: str) -> Statement:
    if not isinstance(entry, dict) or not isinstance(entry.get("sql"), str):
        raise ConfigError(f'{where}: needs sql = "…"')
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: needs a name")
    try:
        # The shared check for SQL a user hands bbperf: one statement, a query or DML, no function
        # whose effects escape a rolled-back transaction. Then the workload's own parse-tree walk.
        parse_one(entry["sql"])
        analysis = analyze(entry["sql"])
    except BbperfError as exc:
        raise ConfigError(f"{where} ({name}): {exc}") from None
    given = {p.get("number"): p for p in entry.get("placeholder", []) if isinstance(p, dict)}
    placeholders = []
    for number in analysis.numbers:
        p = given.get(number, {})
        placeholders.append(
            Placeholder(
                number,
                p.get("operator"),
                p.get("table"),
                p.get("column"),
                p.get("name"),
            )
        )
    values = entry.get("values", [])
    if isinstance(values, list) and len(values) > MAX_VALUE_SETS:
        raise ConfigError(
            f"{where} ({name}): {len(values):,} value sets, more than {MAX_VALUE_SETS:,}"
        )
    if not isinstance(values, list) or any(
        not isinstance(v, list) or len(v) != len(placeholders) for v in values
    ):
        raise ConfigError(
            f"{where} ({name}): each entry of values needs {len(placeholders)} value(s), "
            "one per placeholder in number order"
        )
    calls = entry.get("calls", 1)
    if not isinstance(calls, int) or calls < 0:
        raise ConfigError(f"{where} ({name}): calls must be a whole number ≥ 0, got {calls!r}")
    return Statement(
        name=name,
        sql=entry["sql"],
        description=str(entry.get("description", "")),
        fingerprint=analysis.fingerprint,
        kind=analysis.kind,
        read_only=analysis.read_only,
        calls=calls,
        total_ms=entry.get("total_ms"),
        mean_ms=entry.get("mean_ms"),
        rows_per_call=entry.get("rows_per_call"),
        queryids=tuple(entry.get("queryids", ())),
        placeholders=tuple(placeholders),
        values=[list(v) for v in values],
    )
