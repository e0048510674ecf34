"""Index candidates read off a statement's parse tree (PostgreSQL's own parser, pglast). Pure.

``table_uses`` says what each SELECT level (a CTE, a subquery, the statement) asks of each table it
names: columns compared for equality, with a constant, by a range, the ORDER BY, and every column
it reads. ``candidates`` turns one use into B-tree proposals, shaped as a B-tree serves them:

* equality columns first (with and without the columns a join compares), then the ORDER BY columns when they cover the range (one index serves
  the filter and the sort, and a LIMIT stops early), else the sort and the range each in turn;
* a partial index for predicates on constants (``WHERE status = 'confirmed'``);
* INCLUDE columns when the statement reads few other columns, so an index-only scan can follow;
* never a candidate whose columns are a prefix of an existing index (that index already serves it);
* on a partition, the candidate goes to the partitioned parent, which serves every partition;
* never on a system catalog, or on a view (over the catalogs or anything else).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bbperf.errors import QueryError
from bbperf.explain.whatif import Candidate
from bbperf.sqlnames import quote

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
INDEXABLE_KINDS = ("r", "p", "m")  # table, partitioned table, materialized view
MAX_KEY_COLUMNS = 4
MAX_INCLUDE_COLUMNS = 4
_RANGE_OPERATORS = ("<", "<=", ">", ">=")


@dataclass(frozen=True)
class TableRef:
    """A table as the statement names it: ``schema`` when qualified, ``alias`` when given one."""

    name: str
    schema: str | None = None
    alias: str | None = None


@dataclass
class TableUse:
    """What one SELECT level asks of one table. An unqualified column is recorded for every table of
    its level; ``candidates`` keeps only the columns the table really has."""

    table: TableRef
    cte: str = ""
    eq: list[str] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)  # equal to another table's column
    constants: dict[str, str] = field(default_factory=dict)  # column → predicate on a constant
    ranges: list[str] = field(default_factory=list)
    sort: list[str] = field(default_factory=list)
    read: set[str] = field(default_factory=set)
    star: bool = False  # SELECT * or t.*: every column is read


@dataclass(frozen=True)
class TableInfo:
    """What the catalog says of a named table: kind (pg_class.relkind), columns, the key columns of
    its indexes, and the partitioned table at the root of its tree (None when it is no partition)."""

    schema: str
    name: str
    kind: str
    columns: frozenset[str]
    indexes: tuple[tuple[str, ...], ...] = ()
    root: TableInfo | None = None


def advisable(info: TableInfo) -> bool:
    """True for a user's table: not a system catalog, not a view (an index cannot be built there)."""
    return (
        info.kind in INDEXABLE_KINDS
        and info.schema not in SYSTEM_SCHEMAS
        and not info.schema.startswith("pg_")
    )


def candidates(use: TableUse, info: TableInfo) -> list[Candidate]:
    """Proposals for one table use, best shapes first (see the module docstring for the rules)."""
    target = info.root or info
    if not advisable(info) or not advisable(target):
        return []
    cols = target.columns

    def real(names: list[str]) -> list[str]:
        return [c for c in dict.fromkeys(names) if c in cols]

    constants = {c: p for c, p in use.constants.items() if c in cols}
    eq = [c for c in real(use.eq) if c not in constants]
    fixed = list(constants)
    ranges = [c for c in real(use.ranges) if c not in eq and c not in fixed]
    sort = [c for c in real(use.sort) if c not in eq and c not in fixed]
    tails = _tails(sort, ranges)
    where = " AND ".join(constants[c] for c in fixed)
    read = None if use.star or not use.read <= cols else use.read
    joins = [c for c in real(use.joins) if c not in eq and c not in fixed]
    full: list[tuple[list[str], str]] = []
    for lead in [eq, joins + eq] if joins else [eq]:
        for tail in tails:
            full.append((lead + fixed + tail, ""))
            if where:
                full.append((lead + tail, where))
    smaller = [(eq + fixed, ""), *(([c], "") for c in eq + joins), *((t, "") for t in tails if t)]
    out: list[Candidate] = []
    shapes = [(k, p, True) for k, p in full] + [(k, p, False) for k, p in smaller]
    for columns, predicate, serves_all in shapes:
        keys = list(dict.fromkeys(columns))[:MAX_KEY_COLUMNS]
        if not keys:
            continue
        for include in _includes(keys, read if serves_all else None):
            cand = Candidate(target.schema, target.name, tuple(keys), include, predicate, use.cte)
            if _served(cand, target.indexes) or any(c.key() == cand.key() for c in out):
                continue
            out.append(cand)
    return out


def _tails(sort: list[str], ranges: list[str]) -> list[list[str]]:
    """What follows the equality columns: the ORDER BY when it also covers the range (one index
    serves both), else the sort and the first range column, each as its own shape."""
    if sort and (not ranges or ranges[0] == sort[0]):
        return [sort]
    if sort:
        return [sort, ranges[:1]]
    return [ranges[:1]]


def _includes(keys: list[str], read: set[str] | None) -> list[tuple[str, ...]]:
    """No INCLUDE, then (when the statement reads few other columns) the INCLUDE that lets an
    index-only scan answer it. Only for shapes that serve the whole filter and sort."""
    if read is None:
        return [()]
    extra = tuple(sorted(read - set(keys)))
    if not extra or len(extra) > MAX_INCLUDE_COLUMNS:
        return [()]
    return [(), extra]


def _served(cand: Candidate, existing: tuple[tuple[str, ...], ...]) -> bool:
    return any(ix[: len(cand.columns)] == cand.columns for ix in existing)


# --- reading the parse tree -----------------------------------------------------------------------


def table_uses(sql: str) -> list[TableUse]:
    """Every table use of ``sql`` (``$n`` placeholders, one statement), CTEs and subqueries included."""
    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(sql))
    except parser.ParseError as exc:
        raise QueryError(f"PostgreSQL's parser rejects the statement: {exc}") from None
    stmts = tree.get("stmts", [])
    if len(stmts) != 1:
        raise QueryError(f"expected exactly one SQL statement, found {len(stmts)}")
    ctes = {c["ctename"] for c in _find(stmts[0]["stmt"], "CommonTableExpr")}
    return list(_statement(stmts[0]["stmt"], "", ctes, ()))


def _statement(
    node: dict[str, Any], cte: str, ctes: set[str], outer: tuple[TableUse, ...]
) -> Iterator[TableUse]:
    """The uses of one statement level, then of its CTEs, subqueries and sublinks. ``outer``: the
    enclosing levels' tables, which a qualified column of a correlated subquery may name."""
    kind, fields = next(iter(node.items()))
    for item in fields.get("withClause", {}).get("ctes", []):
        body = item["CommonTableExpr"]
        yield from _statement(body["ctequery"], body["ctename"], ctes, outer)
    if kind == "SelectStmt" and fields.get("op", "SETOP_NONE") != "SETOP_NONE":
        for side in ("larg", "rarg"):
            yield from _statement({"SelectStmt": fields[side]}, cte, ctes, outer)
        return
    if kind not in ("SelectStmt", "UpdateStmt", "DeleteStmt"):
        return
    uses: list[TableUse] = []
    quals: list[Any] = []
    nested: list[Any] = []
    if kind != "SelectStmt":
        uses.append(TableUse(_ref(fields["relation"]), cte))
    for item in fields.get("fromClause", []) + fields.get("usingClause", []):
        _from_item(item, cte, ctes, uses, quals, nested)
    where = fields.get("whereClause")
    if where is not None:
        quals.append(where)
    scope = Scope(uses, outer)
    for qual in quals:
        for conjunct in _conjuncts(qual):
            _classify(conjunct, scope)
    _sort(fields.get("sortClause", []), uses)
    for part in ("targetList", "whereClause", "sortClause", "groupClause", "havingClause"):
        _reads(fields.get(part), scope)
    _reads(quals, scope)
    if kind == "SelectStmt":
        for target in fields.get("targetList", []):
            _stars(target, uses)
    yield from uses
    for sub in nested:
        yield from _statement(sub, cte, ctes, (*uses, *outer))
    for part in ("targetList", "whereClause", "havingClause"):
        for link in _find(fields.get(part), "SubLink"):
            yield from _statement(link["subselect"], cte, ctes, (*uses, *outer))


def _from_item(
    item: dict[str, Any],
    cte: str,
    ctes: set[str],
    uses: list[TableUse],
    quals: list[Any],
    nested: list[Any],
) -> None:
    kind, fields = next(iter(item.items()))
    if kind == "RangeVar":
        if "schemaname" in fields or fields["relname"] not in ctes:
            uses.append(TableUse(_ref(fields), cte))
    elif kind == "JoinExpr":
        _from_item(fields["larg"], cte, ctes, uses, quals, nested)
        _from_item(fields["rarg"], cte, ctes, uses, quals, nested)
        if fields.get("quals") is not None:
            quals.append(fields["quals"])
    elif kind == "RangeSubselect":
        nested.append(fields["subquery"])


def _ref(fields: dict[str, Any]) -> TableRef:
    alias = fields.get("alias", {}).get("aliasname")
    return TableRef(fields["relname"], fields.get("schemaname"), alias)


def _conjuncts(expr: Any) -> Iterator[Any]:
    if isinstance(expr, dict) and "BoolExpr" in expr:
        if expr["BoolExpr"]["boolop"] == "AND_EXPR":
            for arg in expr["BoolExpr"]["args"]:
                yield from _conjuncts(arg)
        return  # OR and NOT: no single index column serves them
    yield expr


def _classify(expr: Any, scope: Scope) -> None:
    """Record one AND-ed condition on the tables of ``scope`` it compares."""
    if "NullTest" in expr:
        test = expr["NullTest"]
        column = _column(test.get("arg"))
        if column:
            how = "IS NULL" if test.get("nulltesttype") == "IS_NULL" else "IS NOT NULL"
            for use in _owners(column, scope):
                use.constants.setdefault(column[1], f"{quote(column[1])} {how}")
        return
    if "A_Expr" not in expr:
        return
    fields = expr["A_Expr"]
    kind = fields.get("kind")
    operator = _operator(fields)
    left, right = fields.get("lexpr"), fields.get("rexpr")
    if kind == "AEXPR_BETWEEN":
        column = _column(left)
        for use in _owners(column, scope):
            use.ranges.append(column[1])  # type: ignore[index]
        return
    if kind not in ("AEXPR_OP", "AEXPR_IN", "AEXPR_OP_ANY") or operator is None:
        return
    for this, other in ((left, right), (right, left)):
        column = _column(this)
        if column is None:
            continue
        literal = _literal(other) if kind == "AEXPR_OP" else None
        joined = _column(other) is not None
        for use in _owners(column, scope):
            if operator == "=" and literal is not None:
                use.constants.setdefault(column[1], f"{quote(column[1])} = {literal}")
            elif operator == "=" and joined:
                use.joins.append(column[1])
            elif operator == "=":
                use.eq.append(column[1])
            elif operator in _RANGE_OPERATORS:
                use.ranges.append(column[1])


def _operator(fields: dict[str, Any]) -> str | None:
    names = [n["String"]["sval"] for n in fields.get("name", []) if "String" in n]
    return names[-1] if names else None


def _sort(sort_clause: list[Any], uses: list[TableUse]) -> None:
    """ORDER BY columns, on the table that owns every one of them (no table serves a mixed sort)."""
    keys = [_column(s["SortBy"]["node"]) for s in sort_clause]
    if not keys or any(k is None for k in keys):
        return
    for use in uses:
        if all(_belongs(k, use) for k in keys):  # type: ignore[arg-type]
            use.sort = [k[1] for k in keys]  # type: ignore[index]


def _reads(part: Any, scope: Scope) -> None:
    for ref in _find(part, "ColumnRef", skip="SubLink"):
        column = _column({"ColumnRef": ref})
        for use in _owners(column, scope):
            use.read.add(column[1])  # type: ignore[index]


def _stars(target: dict[str, Any], uses: list[TableUse]) -> None:
    ref = target.get("ResTarget", {}).get("val", {}).get("ColumnRef")
    if not ref or "A_Star" not in ref["fields"][-1]:
        return
    qualifier = [f["String"]["sval"] for f in ref["fields"][:-1] if "String" in f]
    for use in uses:
        if not qualifier or _belongs((qualifier[-1], ""), use):
            use.star = True


@dataclass(frozen=True)
class Scope:
    """The tables of one level (``local``) and of the levels around it (``outer``)."""

    local: list[TableUse]
    outer: tuple[TableUse, ...]


def _owners(column: tuple[str | None, str] | None, scope: Scope) -> list[TableUse]:
    """The uses a column may belong to: an unqualified one, this level's; a qualified one, the
    nearest level's table of that name or alias."""
    if column is None:
        return []
    if column[0] is None:
        return list(scope.local)
    for level in (scope.local, scope.outer):
        found = [use for use in level if _belongs(column, use)]
        if found:
            return found
    return []


def _belongs(column: tuple[str | None, str], use: TableUse) -> bool:
    qualifier = column[0]
    if qualifier is None:
        return True
    return qualifier == (use.table.alias or use.table.name)


def _strip(expr: Any) -> Any:
    while isinstance(expr, dict) and ("TypeCast" in expr or "CollateClause" in expr):
        expr = next(iter(expr.values())).get("arg")
    return expr


def _column(expr: Any) -> tuple[str | None, str] | None:
    """(qualifier, column) of a plain column reference, under casts; None for anything else."""
    expr = _strip(expr)
    if not (isinstance(expr, dict) and "ColumnRef" in expr):
        return None
    fields = expr["ColumnRef"]["fields"]
    names = [f["String"]["sval"] for f in fields if "String" in f]
    if not names or len(names) != len(fields):
        return None
    return (names[-2] if len(names) > 1 else None), names[-1]


def _literal(expr: Any) -> str | None:
    """A constant as SQL (``'confirmed'``, ``42``, ``true``); None for anything else ($n too)."""
    expr = _strip(expr)
    if not (isinstance(expr, dict) and "A_Const" in expr):
        return None
    const = expr["A_Const"]
    if "sval" in const:
        return "'" + const["sval"]["sval"].replace("'", "''") + "'"
    if "ival" in const:
        return str(const["ival"].get("ival", 0))
    if "fval" in const:
        return str(const["fval"]["fval"])
    if "boolval" in const:
        return "true" if const["boolval"].get("boolval") else "false"
    return None  # NULL: "= NULL" is never true, no index serves it


def _find(node: Any, kind: str, skip: str = "") -> Iterator[dict[str, Any]]:
    """Every ``kind`` node under ``node``, not descending into a found one nor into ``skip``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == kind:
                yield value
            elif key != skip:
                yield from _find(value, kind, skip)
    elif isinstance(node, list):
        for item in node:
            yield from _find(item, kind, skip)
