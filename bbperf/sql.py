"""User SQL, checked by PostgreSQL's own parser (pglast) before anything runs it.

Every path that runs SQL a user typed (``bbperf explain``, ``advise``, ``measure``, ``pool load
--workload``, the Jupyter magics) goes through ``parse_one``: exactly one statement, of a kind bbperf
knows how to run safely. A *read* runs in a read-only transaction; a *write* (INSERT, UPDATE, DELETE,
MERGE, or a SELECT with a data-modifying CTE) only under EXPLAIN ANALYZE, inside a transaction that is
always rolled back. Everything else — DDL, transaction control, ``COPY``, ``SET``/``SET ROLE``,
``SELECT … INTO``, ``EXPLAIN`` itself — is refused with one line. Functions whose effects escape a
rolled-back transaction (signalling backends, reloading the configuration, server-side files, dblink)
are refused too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bbperf.errors import ConfigError, QueryError

Kind = Literal["read", "write"]

# SQLAlchemy text()'s own bind-parameter pattern: ``:name`` but not ``::type`` casts.
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
_WRITES = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"}
_REFUSED_FUNCTIONS = frozenset(
    {
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_log_backend_memory_contexts",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "lo_import",
        "lo_export",
        "lo_unlink",
        "set_config",
        "pg_stat_reset",
        "pg_stat_statements_reset",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "dblink",
        "dblink_exec",
        "dblink_connect",
        "dblink_send_query",
    }
)
_MAX_SQL_CHARS = 1_000_000


@dataclass(frozen=True)
class Statement:
    """One checked statement: its text (no trailing ``;``), kind, bind names and fingerprint."""

    text: str
    kind: Kind
    binds: tuple[str, ...]
    fingerprint: str

    @property
    def is_write(self) -> bool:
        return self.kind == "write"

    def check_params(self, params: Mapping[str, Any] | None) -> None:
        """Refuse a statement whose ``:name`` placeholders have no value, naming the first."""
        missing = [name for name in self.binds if name not in (params or {})]
        if missing:
            names = ", ".join(f":{n}" for n in missing)
            example = ", ".join(f'"{n}": …' for n in missing)
            raise ConfigError(
                f"no value for {names}: pass them as parameters, e.g. --params '{{{example}}}'"
            )


def bind_names(sql: str) -> tuple[str, ...]:
    """The distinct ``:name`` placeholders of ``sql`` in order of first use."""
    return tuple(dict.fromkeys(_BIND.findall(sql)))


def parse_one(sql: str, *, allow_writes: bool = True) -> Statement:
    """Parse ``sql`` and return it as one Statement, or raise ConfigError in one line.

    ``allow_writes=False`` also refuses INSERT/UPDATE/DELETE/MERGE (for paths that run the statement
    for real, such as ``measure`` and load tests).
    """
    import pglast
    from pglast.parser import ParseError

    if not isinstance(sql, str) or not sql.strip():
        raise ConfigError("no SQL given: pass one statement")
    if len(sql) > _MAX_SQL_CHARS:
        raise ConfigError(
            f"the SQL is {len(sql):,} characters; bbperf takes at most {_MAX_SQL_CHARS:,}"
        )
    binds = bind_names(sql)
    numbered = _number_binds(sql, binds)
    try:
        parsed = pglast.parse_sql(numbered)
    except ParseError as exc:
        raise QueryError(f"SQL does not parse: {exc}") from None
    if len(parsed) != 1:
        raise ConfigError(
            f"bbperf runs exactly one statement; this SQL has {len(parsed)} "
            "(remove everything after the first ';')"
        )
    node = parsed[0].stmt
    kind = _kind(node)
    if kind == "write" and not allow_writes:
        raise ConfigError(
            f"{_name(node)} modifies data; this command runs the statement for real, so it takes "
            "read-only statements only (use `bbperf explain`, which rolls back)"
        )
    for function in _functions(node):
        if function in _REFUSED_FUNCTIONS:
            raise ConfigError(
                f"{function}() has effects a rolled-back transaction cannot undo; bbperf refuses it"
            )
    text = sql.strip().rstrip(";").strip()
    return Statement(
        text=text, kind=kind, binds=binds, fingerprint=pglast.parser.fingerprint(numbered)
    )


def cte_bodies(sql: str) -> dict[str, str]:
    """A top-level ``WITH`` statement's CTEs by name, each body as its own SELECT text (binds kept).

    PostgreSQL's own scanner finds the parentheses (quotes, comments and dollar quotes are tokens,
    never counted); a statement without a leading WITH, with WITH RECURSIVE (whose bodies cannot
    stand alone) or that does not parse has none.
    """
    import pglast
    from pglast.parser import ParseError

    body = sql.strip().rstrip(";").strip()
    numbered, to_source = _numbered_with_offsets(body)
    try:
        parsed = pglast.parse_sql(numbered)
        tokens = list(pglast.parser.scan(numbered))
    except ParseError:
        return {}
    if len(parsed) != 1:
        return {}
    with_clause = getattr(parsed[0].stmt, "withClause", None)
    if with_clause is None or with_clause.recursive or not tokens or tokens[0].name != "WITH":
        return {}
    names = [cte.ctename for cte in with_clause.ctes]
    out: dict[str, str] = {}
    i = 1
    for name in names:
        # name [ (columns) ] AS [ NOT ] [ MATERIALIZED ] ( body )
        while i < len(tokens) and tokens[i].name != "AS":
            i += 1
        while i < len(tokens) and tokens[i].name != "ASCII_40":
            i += 1
        if i >= len(tokens):
            return out
        opened, depth = tokens[i], 0
        for j in range(i, len(tokens)):
            depth += {"ASCII_40": 1, "ASCII_41": -1}.get(tokens[j].name, 0)
            if depth == 0:
                start, end = to_source(opened.end + 1), to_source(tokens[j].start)
                out[name] = body[start:end].strip()
                i = j + 1
                break
        else:
            return out
    return out


def _numbered_with_offsets(sql: str) -> tuple[str, Any]:
    """``sql`` with ``:name`` → ``$n``, and a function mapping an offset in it back to ``sql``."""
    numbers = {name: i for i, name in enumerate(bind_names(sql), start=1)}
    pieces, marks, last, shift = [], [(0, 0)], 0, 0
    for match in _BIND.finditer(sql):
        replacement = f"${numbers[match.group(1)]}"
        pieces += [sql[last : match.start()], replacement]
        shift += len(replacement) - (match.end() - match.start())
        marks.append((match.end() + shift, match.end()))  # numbered offset → source offset
        last = match.end()
    pieces.append(sql[last:])

    def to_source(offset: int) -> int:
        base_numbered, base_source = max(m for m in marks if m[0] <= offset)
        return base_source + offset - base_numbered

    return "".join(pieces), to_source


def _number_binds(sql: str, binds: tuple[str, ...]) -> str:
    """``:name`` → ``$n`` so PostgreSQL's grammar accepts the text (parse only; never executed)."""
    numbers = {name: i for i, name in enumerate(binds, start=1)}
    return _BIND.sub(lambda m: f"${numbers[m.group(1)]}", sql)


def _name(node: Any) -> str:
    return type(node).__name__.removesuffix("Stmt").upper() or type(node).__name__


def _kind(node: Any) -> Kind:
    name = type(node).__name__
    if name in _WRITES:
        return "write"
    if name == "SelectStmt":
        if _has(node, "intoClause"):
            raise ConfigError("SELECT … INTO creates a table; bbperf refuses it")
        return "write" if any(type(n).__name__ in _WRITES for n in _walk(node)) else "read"
    if name == "ExecuteStmt":
        # Only bbperf itself can PREPARE (users cannot); it runs read-only like any query.
        return "read"
    if name == "ExplainStmt":
        raise ConfigError("pass the statement without EXPLAIN: bbperf adds its own EXPLAIN options")
    raise ConfigError(
        f"bbperf runs queries and DML only; {_describe(node)} is refused "
        "(DDL, transaction control, COPY and SET are never run on your behalf)"
    )


def _describe(node: Any) -> str:
    name = type(node).__name__
    return {
        "TransactionStmt": "transaction control",
        "CopyStmt": "COPY",
        "VariableSetStmt": "SET",
        "DropStmt": "DROP",
        "TruncateStmt": "TRUNCATE",
        "CallStmt": "CALL",
        "DoStmt": "DO",
    }.get(name, name.removesuffix("Stmt"))


def _has(node: Any, attr: str) -> bool:
    return getattr(node, attr, None) is not None


def _walk(node: Any) -> Iterator[Any]:
    """Every pglast node under ``node`` (itself included)."""
    from pglast.ast import Node

    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Node):
            yield current
            for slot in getattr(type(current), "__slots__", ()):
                stack.append(getattr(current, slot, None))
        elif isinstance(current, tuple | list):
            stack.extend(current)


def _functions(node: Any) -> Iterator[str]:
    for current in _walk(node):
        if type(current).__name__ == "FuncCall":
            parts = [getattr(p, "sval", "") for p in current.funcname or ()]
            if parts:
                yield str(parts[-1]).lower()
