"""PostgreSQL's own parser (pglast) on workload statements: fingerprint, kind, and what each ``$n``
placeholder is compared with, read off the parse tree. Pure: no database needed."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bbperf.errors import QueryError

# Operators as the parser spells them → as a workload file records them.
_OPERATORS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "<>": "<>"}
_KINDS = {
    "SelectStmt": "select",
    "InsertStmt": "insert",
    "UpdateStmt": "update",
    "DeleteStmt": "delete",
    "MergeStmt": "merge",
}
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


@dataclass(frozen=True)
class Relation:
    """A table named in a statement: ``schema`` when qualified, ``alias`` when given one."""

    name: str
    schema: str | None = None
    alias: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class ParamUse:
    """Placeholder ``$number`` compared by ``operator`` with ``column`` (qualified by ``qualifier``).

    Operators: ``=  <>  <  <=  >  >=`` (the column on the left), ``in``, ``any`` (an array),
    ``like``; ``set`` (UPDATE … SET column = $n), ``insert`` (INSERT (column) VALUES ($n));
    ``limit`` and ``offset`` have no column.
    """

    number: int
    operator: str
    column: str | None = None
    qualifier: str | None = None
    relation: Relation | None = None
    # The FROM lists around the placeholder, innermost first: an unqualified column belongs to the
    # nearest one that has it (a CTE or subquery there, whose columns are unknown, leaves it open).
    scopes: tuple[tuple[Relation, ...], ...] = ()


@dataclass(frozen=True)
class Analysis:
    """What the parser says of one statement."""

    sql: str
    fingerprint: str
    kind: str
    read_only: bool
    relations: tuple[Relation, ...]
    numbers: tuple[int, ...]
    uses: tuple[ParamUse, ...]

    @property
    def user_relations(self) -> tuple[Relation, ...]:
        return tuple(r for r in self.relations if r.schema not in _SYSTEM_SCHEMAS)


def fingerprint(sql: str) -> str:
    """The statement's fingerprint: equal for statements that differ only in constants/placeholders."""
    from pglast import parser

    try:
        return str(parser.fingerprint(sql))
    except parser.ParseError as exc:
        raise QueryError(f"PostgreSQL's parser rejects the statement: {exc}") from None


def analyze(sql: str) -> Analysis:
    """Parse exactly one statement and read its kind, relations and placeholder uses."""
    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(sql))
    except parser.ParseError as exc:
        raise QueryError(f"PostgreSQL's parser rejects the statement: {exc}") from None
    stmts = tree.get("stmts", [])
    if len(stmts) != 1:
        raise QueryError(
            f"expected exactly one SQL statement, found {len(stmts)}: give one statement per entry"
        )
    node = stmts[0]["stmt"]
    top = next(iter(node))
    kind = _KINDS.get(top, "utility")
    ctes = {c["ctename"] for c in _find(node, "CommonTableExpr")}
    relations = tuple(
        dict.fromkeys(_relation(rv) for rv in _range_vars(node) if not _is_cte(rv, ctes))
    )
    numbers = tuple(sorted({p["number"] for p in _find(node, "ParamRef") if "number" in p}))
    uses = tuple(_uses(node, (), ctes))
    return Analysis(
        sql=sql,
        fingerprint=fingerprint(sql),
        kind=kind,
        read_only=kind == "select" and _select_is_read_only(node),
        relations=relations,
        numbers=numbers,
        uses=uses,
    )


def resolve(
    analysis: Analysis,
    tables: Mapping[Relation, tuple[str, str]],
    columns: Mapping[tuple[str, str], set[str]],
) -> dict[int, tuple[tuple[str, str] | None, str | None, str]]:
    """Placeholder number → ((schema, table) or None, column or None, operator).

    ``tables`` maps each relation of the statement to the (schema, table) it names on the target;
    ``columns`` gives each table's columns. An unqualified column belongs to the one relation that has
    it; when none or several do, the table stays None (the placeholder is unresolved).
    Placeholders no rule reads (``now() - $1``, a select-list constant) are absent from the result.
    """
    out: dict[int, tuple[tuple[str, str] | None, str | None, str]] = {}
    for use in analysis.uses:
        if use.number in out:
            continue
        table: tuple[str, str] | None = None
        if use.relation is not None:
            table = tables.get(use.relation)
        elif use.column is not None:
            if use.qualifier is not None:
                named = [r for r in analysis.relations if use.qualifier in (r.alias, r.name)]
                table = tables.get(named[0]) if named else None
            else:
                table = _owner(use, analysis.relations, tables, columns)
            if table is not None and use.column not in columns.get(table, set()):
                table = None
        out[use.number] = (table, use.column, use.operator)
    return out


def _owner(
    use: ParamUse,
    relations: tuple[Relation, ...],
    tables: Mapping[Relation, tuple[str, str]],
    columns: Mapping[tuple[str, str], set[str]],
) -> tuple[str, str] | None:
    """The one table an unqualified column belongs to: the nearest FROM list that has it decides; a
    FROM list with a CTE or subquery in it (columns unknown here) or two owners leaves it open."""
    for scope in (*use.scopes, relations):
        owners = {
            tables[r] for r in scope if r in tables and use.column in columns.get(tables[r], set())
        }
        if len(owners) == 1:
            return owners.pop()
        if owners or any(r not in tables for r in scope):
            return None
    return None


def typed_literals_as_casts(sql: str) -> str:
    """``interval $4`` → ``$4::interval``. pg_stat_statements replaces the literal of a typed literal
    (``interval '7 days'``, ``date '2026-11-01'``) by ``$n``, which the server's grammar does not take
    (only a string may follow the type name); the cast it means does. The rest is left as it was."""
    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(sql))
    except parser.ParseError:
        return sql
    data = sql.encode()
    spans = []
    for cast in _find(tree, "TypeCast"):
        param = cast.get("arg", {}).get("ParamRef", {})
        start, at = cast.get("typeName", {}).get("location", -1), param.get("location", -1)
        if "number" in param and 0 <= start < at:  # the type name stands before the placeholder
            token = f"${param['number']}".encode()
            if data[at : at + len(token)] == token:
                spans.append((start, at + len(token), token + b"::" + data[start:at].strip()))
    for start, end, text in sorted(spans, reverse=True):
        data = data[:start] + text + data[end:]
    return data.decode()


def placeholder_tokens(sql: str) -> list[tuple[int, int, int]]:
    """(start, end exclusive, number) of every ``$n`` token: string literals and comments excluded."""
    from pglast import parser

    try:
        tokens = parser.scan(sql)
    except parser.ParseError as exc:
        raise QueryError(f"PostgreSQL's scanner rejects the statement: {exc}") from None
    return [
        (t.start, t.end + 1, int(sql[t.start + 1 : t.end + 1])) for t in tokens if t.name == "PARAM"
    ]


def literal_spans(sql: str) -> list[tuple[int, int]]:
    """(start, end exclusive) of string literals and identifiers in quotes."""
    from pglast import parser

    try:
        tokens = parser.scan(sql)
    except parser.ParseError as exc:
        raise QueryError(f"PostgreSQL's scanner rejects the statement: {exc}") from None
    quoted = ("SCONST", "BCONST", "XCONST", "USCONST", "UIDENT", "IDENT")
    return [(t.start, t.end + 1) for t in tokens if t.name in quoted]


# --- the tree walk -----------------------------------------------------------------------------


def _walk(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (node type, fields) pair below ``node``, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict) and key[:1].isupper():
                yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _find(node: Any, kind: str) -> Iterator[dict[str, Any]]:
    return (fields for name, fields in _walk(node) if name == kind)


def _range_vars(node: Any) -> Iterator[dict[str, Any]]:
    yield from _find(node, "RangeVar")
    # INSERT/UPDATE/DELETE/MERGE name their target as a bare RangeVar under "relation".
    for name, fields in _walk(node):
        if name in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt") and "relation" in fields:
            yield fields["relation"]


def _relation(rv: dict[str, Any]) -> Relation:
    alias = rv.get("alias", {}).get("aliasname")
    return Relation(name=rv["relname"], schema=rv.get("schemaname"), alias=alias)


def _is_cte(rv: dict[str, Any], ctes: set[str]) -> bool:
    return "schemaname" not in rv and rv["relname"] in ctes


def _select_is_read_only(node: dict[str, Any]) -> bool:
    for name, fields in _walk(node):
        if name in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
            return False
        if name == "SelectStmt" and (fields.get("lockingClause") or fields.get("intoClause")):
            return False
    return True


def _strip(expr: Any) -> Any:
    """The expression under casts and COLLATE."""
    while isinstance(expr, dict) and len(expr) == 1:
        name, fields = next(iter(expr.items()))
        if name in ("TypeCast", "CollateClause"):
            expr = fields.get("arg")
        else:
            break
    return expr


def _param(expr: Any) -> int | None:
    expr = _strip(expr)
    if isinstance(expr, dict) and "ParamRef" in expr:
        number = expr["ParamRef"].get("number")
        return int(number) if number else None
    return None


def _column(expr: Any) -> tuple[str | None, str] | None:
    expr = _strip(expr)
    if not (isinstance(expr, dict) and "ColumnRef" in expr):
        return None
    names = [f["String"]["sval"] for f in expr["ColumnRef"]["fields"] if "String" in f]
    if not names or len(names) != len(expr["ColumnRef"]["fields"]):
        return None
    return (names[-2] if len(names) > 1 else None), names[-1]


def _items(expr: Any) -> list[Any]:
    if isinstance(expr, dict) and "List" in expr:
        return list(expr["List"].get("items", []))
    return list(expr) if isinstance(expr, list) else [expr]


_SCOPED = {
    "SelectStmt": ("fromClause",),
    "UpdateStmt": ("fromClause",),
    "DeleteStmt": ("usingClause",),
}


def _from_list(fields: dict[str, Any], kind: str, ctes: set[str]) -> tuple[Relation, ...]:
    """The relations a SELECT/UPDATE/DELETE reads at its own level (joins, not subqueries); a CTE or
    subquery stands as a relation with no schema and the name ``?``."""
    found: list[Relation] = []
    if kind in ("UpdateStmt", "DeleteStmt"):
        found.append(_relation(fields["relation"]))

    def visit(item: Any) -> None:
        if not isinstance(item, dict):
            return
        for name, inner in item.items():
            if name == "RangeVar":
                found.append(Relation("?") if _is_cte(inner, ctes) else _relation(inner))
            elif name == "JoinExpr":
                visit(inner.get("larg"))
                visit(inner.get("rarg"))
            elif name in ("RangeSubselect", "RangeFunction"):
                found.append(Relation("?"))

    for key in _SCOPED[kind]:
        for item in fields.get(key, []):
            visit(item)
    return tuple(found)


def _uses(
    node: Any, scopes: tuple[tuple[Relation, ...], ...], ctes: set[str]
) -> Iterator[ParamUse]:
    """Every placeholder use under ``node``, each with the FROM lists around it (innermost first)."""
    if isinstance(node, list):
        for item in node:
            yield from _uses(item, scopes, ctes)
        return
    if not isinstance(node, dict):
        return
    for name, fields in node.items():
        if not (isinstance(fields, dict) and name[:1].isupper()):
            yield from _uses(fields, scopes, ctes)
            continue
        inner = scopes
        if name in _SCOPED:
            inner = (_from_list(fields, name, ctes), *scopes)
        for use in _node_uses(name, fields):
            yield replace(use, scopes=inner) if use.relation is None else use
        yield from _uses(fields, inner, ctes)


def _node_uses(name: str, fields: dict[str, Any]) -> Iterator[ParamUse]:
    if name == "A_Expr":
        yield from _expr_uses(fields)
    elif name == "SelectStmt":
        for key, op in (("limitCount", "limit"), ("limitOffset", "offset")):
            number = _param(fields.get(key))
            if number is not None:
                yield ParamUse(number, op)
    elif name == "UpdateStmt":
        target = _relation(fields["relation"])
        for res in fields.get("targetList", []):
            res = res.get("ResTarget", {})
            number = _param(res.get("val"))
            if number is not None and res.get("name"):
                yield ParamUse(number, "set", res["name"], relation=target)
    elif name == "InsertStmt":
        target = _relation(fields["relation"])
        cols = [c.get("ResTarget", {}).get("name") for c in fields.get("cols", [])]
        select = fields.get("selectStmt", {}).get("SelectStmt", {})
        rows = [_items(row) for row in select.get("valuesLists", [])]
        if not rows and select.get("targetList"):  # INSERT … SELECT: the i-th output fills column i
            rows = [[t.get("ResTarget", {}).get("val") for t in select["targetList"]]]
        for row in rows:
            for col, value in zip(cols, row, strict=False):
                number = _param(value)
                if number is not None and col:
                    yield ParamUse(number, "insert", col, relation=target)


def _shifted_param(expr: Any) -> int | None:
    """``$n`` in ``$n + interval`` or ``$n - 7``: the base of the arithmetic bounds the column too
    (what is added to it is left to its type)."""
    expr = _strip(expr)
    if not (isinstance(expr, dict) and "A_Expr" in expr):
        return None
    inner = expr["A_Expr"]
    op = inner.get("name", [{}])[-1].get("String", {}).get("sval", "")
    if inner.get("kind") != "AEXPR_OP" or op not in ("+", "-"):
        return None
    return _param(inner.get("lexpr"))


def _expr_uses(expr: dict[str, Any]) -> Iterator[ParamUse]:
    kind = expr.get("kind")
    op = expr.get("name", [{}])[-1].get("String", {}).get("sval", "")
    left, right = expr.get("lexpr"), expr.get("rexpr")
    if kind == "AEXPR_OP" and op in _OPERATORS:
        for col_side, param_side, flip in ((left, right, False), (right, left, True)):
            column, number = _column(col_side), _param(param_side)
            if number is None:
                number = _shifted_param(param_side)
            if column and number is not None:
                operator = _FLIPPED[_OPERATORS[op]] if flip else _OPERATORS[op]
                yield ParamUse(number, operator, column[1], column[0])
    elif kind == "AEXPR_IN" and (column := _column(left)):
        for item in _items(right):
            number = _param(item)
            if number is not None:
                yield ParamUse(number, "in" if op == "=" else "<>", column[1], column[0])
    elif kind in ("AEXPR_OP_ANY", "AEXPR_OP_ALL") and op == "=" and (column := _column(left)):
        number = _param(right)
        if number is not None:
            yield ParamUse(number, "any", column[1], column[0])
    elif kind in ("AEXPR_LIKE", "AEXPR_ILIKE") and (column := _column(left)):
        number = _param(right)
        if number is not None:
            yield ParamUse(number, "like", column[1], column[0])
    elif kind in ("AEXPR_BETWEEN", "AEXPR_BETWEEN_SYM") and (column := _column(left)):
        bounds = _items(right)
        for item, operator in zip(bounds, (">=", "<="), strict=False):
            number = _param(item)
            if number is not None:
                yield ParamUse(number, operator, column[1], column[0])
