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

import itertools
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bbperf.errors import ConfigError, QueryError
from bbperf.secrets import passwords, redact

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

Kind = Literal["read", "write"]

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
_NAME = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class CheckedStatement:
    """One checked statement.

    ``text`` is what the user wrote (no trailing ``;``); ``numbered`` is the same text with each
    ``:name`` placeholder turned into ``$n`` — the text PostgreSQL prepares and runs, parsed by
    pglast to be exactly one statement. ``binds`` are the names in ``$n`` order.
    """

    text: str
    kind: Kind
    binds: tuple[str, ...]
    fingerprint: str
    numbered: str = ""
    executes: str | None = None  # EXECUTE of a statement bbperf prepared itself: its name

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

    def values(self, params: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """The values for ``$1 … $n`` from ``params`` (checked first)."""
        self.check_params(params)
        return tuple((params or {})[name] for name in self.binds)


def placeholders(sql: str) -> list[tuple[int, int, str]]:
    """The ``:name`` placeholders of ``sql`` as (start, end, name), found by PostgreSQL's own scanner.

    Only real tokens count: a ``:`` token immediately followed by a name, not preceded by a word
    character (``arr[1:n]`` is a slice, ``::`` a cast). Inside string literals (plain, ``E''``,
    dollar-quoted), quoted identifiers and comments there are no tokens, so a value can never be
    spliced there. Raises QueryError when the text does not scan (an unterminated literal).
    """
    import pglast
    from pglast.parser import ParseError

    try:
        tokens = list(pglast.parser.scan(sql))
    except ParseError as exc:
        raise QueryError(f"SQL does not parse: {exc}") from None
    found = []
    for colon, name in itertools.pairwise(tokens):
        if colon.name != "ASCII_58" or name.start != colon.end + 1:
            continue
        word = sql[name.start : name.end + 1]
        if not _NAME.fullmatch(word):
            continue
        before = sql[colon.start - 1] if colon.start > 0 else ""
        if before and (before.isalnum() or before in "_:\\"):
            continue
        found.append((colon.start, name.end + 1, word))
    return found


def bind_names(sql: str) -> tuple[str, ...]:
    """The distinct ``:name`` placeholders of ``sql`` in order of first use."""
    return tuple(dict.fromkeys(name for _, _, name in placeholders(sql)))


def parse_one(
    sql: str, *, allow_writes: bool = True, refuse_functions: bool = True
) -> CheckedStatement:
    """Parse ``sql`` and return it as one CheckedStatement, or raise ConfigError in one line.

    ``allow_writes=False`` also refuses INSERT/UPDATE/DELETE/MERGE (for paths that run the statement
    for real, such as ``measure`` and load tests). ``refuse_functions=False`` skips the friendly
    denylist of functions (the tests use it to show PostgreSQL's privileges refuse them alone).
    """
    import pglast
    from pglast.parser import ParseError

    if not isinstance(sql, str) or not sql.strip():
        raise ConfigError("no SQL given: pass one statement")
    if len(sql) > _MAX_SQL_CHARS:
        raise ConfigError(
            f"the SQL is {len(sql):,} characters; bbperf takes at most {_MAX_SQL_CHARS:,}"
        )
    text = sql.strip()
    numbered, _ = _numbered_with_offsets(text)
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
    if refuse_functions:
        for function in _functions(node):
            if function in _REFUSED_FUNCTIONS:
                raise ConfigError(
                    f"{function}() has effects a rolled-back transaction cannot undo; "
                    "bbperf refuses it"
                )
    # The one statement pglast found, without the ';' and anything after it (comments only).
    location = parsed[0].stmt_location or 0
    length = parsed[0].stmt_len or len(numbered) - location
    runs = numbered[location : location + length].strip()
    return CheckedStatement(
        text=text.rstrip(";").strip(),
        kind=kind,
        binds=bind_names(text),
        fingerprint=pglast.parser.fingerprint(numbered),
        numbered=runs,
        executes=_executes(node),
    )


def _executes(node: Any) -> str | None:
    """The name an ``EXECUTE name($1, …, $n)`` runs, its arguments exactly ``$1 … $n`` in order."""
    if type(node).__name__ != "ExecuteStmt":
        return None
    numbers = [getattr(p, "number", None) for p in node.params or ()]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ConfigError("EXECUTE takes only :name parameters as its arguments, each once")
    return str(node.name)


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
    found = placeholders(sql)
    numbers = {name: i for i, name in enumerate(dict.fromkeys(n for _, _, n in found), start=1)}
    pieces, marks, last, shift = [], [(0, 0)], 0, 0
    for start, end, name in found:
        replacement = f"${numbers[name]}"
        pieces += [sql[last:start], replacement]
        shift += len(replacement) - (end - start)
        marks.append((end + shift, end))  # numbered offset → source offset
        last = end
    pieces.append(sql[last:])

    def to_source(offset: int) -> int:
        base_numbered, base_source = max(m for m in marks if m[0] <= offset)
        return base_source + offset - base_numbered

    return "".join(pieces), to_source


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


def scratch_name(prefix: str) -> str:
    """A name for an object bbperf creates and drops within one run (a what-if or verify index): a
    random suffix, so it can never be a user's object of the same name; at most 63 bytes."""
    suffix = secrets.token_hex(4)
    return f"{prefix[: 63 - len(suffix) - 1]}_{suffix}"


_PREPARED_PREFIX = re.compile(r"^\s*PREPARE\s+bbperf_[0-9a-f]{12}\s*(\([^)]*\))?\s+AS\s+", re.I)


def unwrap_prepared(query: str) -> str:
    """A pg_stat_statements text without the ``PREPARE bbperf_… AS`` ``bbperf.binding`` wrapped it in (the
    statement as the user wrote it, with ``$n`` placeholders); any other text unchanged."""
    return _PREPARED_PREFIX.sub("", query, count=1)


def statement_text(query: str, url: URL | None = None, chars: int | None = None) -> str:
    """A statement text from the server (pg_stat_statements, auto_explain) fit to show: blanks
    collapsed, passwords masked (``url``'s and any ``PASSWORD '…'`` literal), then cut to ``chars``."""
    known = passwords(url, environ={}, pgpass=False) if url is not None else []
    text = redact(" ".join(unwrap_prepared(query).split()), known)
    return text if chars is None or len(text) <= chars else text[: chars - 1] + "…"
