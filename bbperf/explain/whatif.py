"""What if these indexes existed: the planner's cost of statements with and without them.

One costing function (``plan_costs``) serves the single-statement advice, the workload advice and
the metrics set's predicted-vs-measured table. An index is made visible to the planner by what the
target allows (``Method``):

* ``hypopg`` — a hypothetical index (HypoPG): no build, no lock, nothing written; read-only.
* ``transaction`` — on a target bbperf owns: CREATE INDEX in a transaction that is rolled back.
* ``build`` — elsewhere only when asked (``allow_build``): CREATE INDEX CONCURRENTLY under a
  ``lock_timeout``, then DROP INDEX CONCURRENTLY of exactly what was built.

A statement is costed once per value set (``Probe.value_sets``): a plan that is cheap for one value
and a full walk for another shows both. A statement with ``$n`` placeholders and no values is
costed by its generic plan (``EXPLAIN (GENERIC_PLAN)``, PostgreSQL 16+). EXPLAIN never names
ANALYZE: HypoPG ignores its hypothetical indexes whenever the option is present.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import psycopg2
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.binding import execute_args, prepared
from bbperf.errors import ConfigError, SchemaError
from bbperf.explain.plan import Plan, parse_plan
from bbperf.sql import parse_one, scratch_name
from bbperf.sqlnames import qualified, quote
from bbperf.target import query_error

Method = Literal["hypopg", "transaction", "build"]
GENERIC_PLAN_VERSION = 160000  # EXPLAIN (GENERIC_PLAN) arrived in PostgreSQL 16
LOCK_TIMEOUT_MS = 5000  # dexter's habit: never wait behind live writers to build an index
INSTALL_HYPOPG = (
    "HypoPG is not installed in this database and bbperf does not own this server, so it will not "
    "build indexes to cost them: an administrator runs CREATE EXTENSION hypopg (Debian/Ubuntu: "
    "apt-get install postgresql-<major>-hypopg), or pass --allow-build to cost each candidate by "
    "building it under a lock_timeout (nothing is kept)"
)


class WhatIfIndex(Protocol):
    """Anything that writes its own CREATE INDEX under a name bbperf picks."""

    def ddl(self, name: str) -> str: ...


@dataclass(frozen=True)
class Candidate:
    """A B-tree index proposal: ``schema.table (columns) INCLUDE (include) WHERE where``.

    ``where`` is a predicate of constants only (``status = 'confirmed'``), copied from the statement
    as pglast deparsed it; ``cte`` names the CTE whose scan suggested the candidate ("" otherwise).
    """

    schema: str
    table: str
    columns: tuple[str, ...]
    include: tuple[str, ...] = ()
    where: str = ""
    cte: str = field(default="", compare=False)

    def key(self) -> tuple[str, str, tuple[str, ...], tuple[str, ...], str]:
        return (self.schema, self.table, self.columns, self.include, self.where)

    @property
    def width(self) -> int:
        """Columns the index stores (keys and INCLUDE), partial ones counting one less: what a
        smaller index means when two serve alike."""
        return len(self.columns) + len(self.include) - (1 if self.where else 0)

    def ddl(self, name: str) -> str:
        cols = ", ".join(quote(c) for c in self.columns)
        sql = f"CREATE INDEX {quote(name)} ON {qualified(self.schema, self.table)} ({cols})"
        if self.include:
            sql += f" INCLUDE ({', '.join(quote(c) for c in self.include)})"
        if self.where:
            sql += f" WHERE {self.where}"
        return sql

    def __str__(self) -> str:
        out = f"{self.schema}.{self.table} ({', '.join(self.columns)})"
        if self.include:
            out += f" INCLUDE ({', '.join(self.include)})"
        if self.where:
            out += f" WHERE {self.where}"
        return out


@dataclass(frozen=True)
class Probe:
    """A statement to cost: SQL with ``:name`` or ``$n`` placeholders and the value sets to plan it
    with (``:name`` → a dict per set; ``$n`` → a tuple per set). No value sets for a statement with
    placeholders: its generic plan."""

    name: str
    sql: str
    value_sets: tuple[Any, ...] = ()


@dataclass(frozen=True)
class StatementCost:
    """Planner cost of one statement per value set, and whether any plan used the indexes costed."""

    name: str
    costs: tuple[float, ...]
    used: bool = False

    @property
    def mean(self) -> float:
        """Mean over the value sets: the cost a call drawn like the sample expects."""
        return statistics.fmean(self.costs)

    @property
    def worst(self) -> float:
        return max(self.costs)


def choose_method(hypopg: str | None, *, owned: bool, allow_build: bool) -> Method:
    """hypopg when installed; else a rolled-back build on an owned target; else only if allowed."""
    if hypopg:
        return "hypopg"
    if owned:
        return "transaction"
    if allow_build:
        return "build"
    raise SchemaError(INSTALL_HYPOPG)


def plan_costs(
    conn: Connection,
    probes: Sequence[Probe],
    indexes: Sequence[WhatIfIndex] = (),
    *,
    method: Method = "transaction",
    hypopg: str | None = None,
    engine: Engine | None = None,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> dict[str, StatementCost]:
    """Each probe's planner cost per value set with ``indexes`` present (none: as the table is).

    ``conn`` plans; its transaction is rolled back before returning, so nothing of the costing
    stays. ``hypopg`` is the schema HypoPG lives in (``method="hypopg"``); ``engine`` opens the
    autocommit connection a ``build`` needs for CONCURRENTLY. A probe that fails to plan raises
    QueryError.
    """
    with present(conn, indexes, method, hypopg, engine, lock_timeout_ms) as names:
        return {p.name: _cost(conn, p, names) for p in probes}


@contextlib.contextmanager
def present(
    conn: Connection,
    indexes: Sequence[WhatIfIndex],
    method: Method,
    hypopg: str | None = None,
    engine: Engine | None = None,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> Iterator[set[str]]:
    """Make ``indexes`` visible to the planner on ``conn`` for the block; yield their names."""
    try:
        if not indexes:
            yield set()
        elif method == "hypopg":
            with _hypothetical(conn, indexes, hypopg or "public") as names:
                yield names
        elif method == "transaction":
            conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
            names = set()
            for index in indexes:
                name = scratch_name("bbperf_whatif")
                conn.execute(text(index.ddl(name)))
                names |= _with_partitions(conn, index, name)
            yield names
        else:
            if engine is None:
                raise ConfigError("building candidates CONCURRENTLY needs the engine")
            with _built(conn, engine, indexes, lock_timeout_ms) as names:
                yield names
    except DBAPIError as exc:
        raise query_error(exc, "what-if index") from None
    finally:
        conn.rollback()


@contextlib.contextmanager
def _hypothetical(
    conn: Connection, indexes: Sequence[WhatIfIndex], schema: str
) -> Iterator[set[str]]:
    names = set()
    try:
        for index in indexes:
            row = conn.execute(
                text(f"SELECT indexname FROM {qualified(schema, 'hypopg_create_index')}(:ddl)"),
                {"ddl": index.ddl("hypo")},
            ).one()
            names.add(str(row[0]))
        yield names
    finally:
        conn.execute(text(f"SELECT {qualified(schema, 'hypopg_reset')}()"))


@contextlib.contextmanager
def _built(
    conn: Connection, engine: Engine, indexes: Sequence[WhatIfIndex], lock_timeout_ms: int
) -> Iterator[set[str]]:
    # CREATE INDEX CONCURRENTLY waits for every open transaction, ours included: end it first.
    conn.rollback()
    built: list[tuple[WhatIfIndex, str]] = []
    with engine.connect() as ddl:
        ddl = ddl.execution_options(isolation_level="AUTOCOMMIT")
        ddl.execute(text(f"SET lock_timeout = {int(lock_timeout_ms)}"))
        try:
            for index in indexes:
                name = scratch_name("bbperf_whatif")
                ddl.execute(text(_concurrently(index.ddl(name))))
                built.append((index, name))
            yield {n for index, name in built for n in _with_partitions(conn, index, name)}
        finally:
            conn.rollback()
            # Only what this run created: a name that failed to build is never dropped.
            for index, name in built:
                ddl.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {_index_of(index, name)}"))


def _with_partitions(conn: Connection, index: WhatIfIndex, name: str) -> set[str]:
    """``name`` and the names of the partition indexes it made: on a partitioned table the plan
    scans the partitions' indexes, never the parent's."""
    found = conn.execute(
        text(
            "SELECT c.relname FROM pg_partition_tree(to_regclass(:index)) t "
            "JOIN pg_class c ON c.oid = t.relid"
        ),
        {"index": _index_of(index, name)},
    ).scalars()
    return {name, *(str(n) for n in found)}


def _concurrently(ddl: str) -> str:
    return ddl.replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)


def _index_of(index: WhatIfIndex, name: str) -> str:
    schema = getattr(index, "schema", None)
    return qualified(schema, name) if schema else quote(name)


def _cost(conn: Connection, probe: Probe, names: set[str]) -> StatementCost:
    plans = [explain_plan(conn, probe.sql, values) for values in probe.value_sets or (None,)]
    used = any(node.index in names for plan in plans for node in plan.nodes())
    return StatementCost(probe.name, tuple(plan.total_cost for plan in plans), used)


def explain_plan(conn: Connection, sql: str, values: Any = None, *, verbose: bool = False) -> Plan:
    """The plan of ``sql`` without running it, values bound by the server.

    ``values``: a dict for ``:name`` placeholders, a tuple for ``$n``; None for a statement without
    placeholders, or the generic plan of one with ``$n`` (PostgreSQL 16+). Inside a savepoint, so
    a failure leaves ``conn``'s transaction usable.
    """
    checked = parse_one(sql)
    if values is None:
        bound: tuple[Any, ...] = ()
    elif checked.binds:
        bound = checked.values(values)
    else:
        bound = tuple(values)
    options = "VERBOSE, FORMAT JSON" if verbose else "FORMAT JSON"
    savepoint = conn.begin_nested()
    try:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if bound:
                with prepared(cursor, checked, bound) as name:
                    cursor.execute(
                        f"EXPLAIN ({options}) EXECUTE {name}{execute_args(bound)}", bound
                    )
                    data = cursor.fetchone()[0]
            else:
                generic = "GENERIC_PLAN, " if has_placeholders(checked.numbered) else ""
                cursor.execute(f"EXPLAIN ({generic}{options}) {checked.numbered}")
                data = cursor.fetchone()[0]
        finally:
            cursor.close()
    except (DBAPIError, psycopg2.Error) as exc:
        savepoint.rollback()
        error = exc if isinstance(exc, DBAPIError) else DBAPIError(checked.text, None, exc)
        raise query_error(error, checked.text) from None
    savepoint.rollback()
    return parse_plan(data, sql=checked.text)


def named_placeholders(numbered: str) -> str:
    """``numbered`` with each ``$n`` written ``:pn`` (pg_stat_statements' normalised form made
    bindable by name); literals, comments and quoted names are left as they are."""
    import pglast

    out, pos = [], 0
    for token in pglast.parser.scan(numbered):
        if token.name == "PARAM":
            out += [numbered[pos : token.start], f":p{numbered[token.start + 1 : token.end + 1]}"]
            pos = token.end + 1
    return "".join([*out, numbered[pos:]])


def has_placeholders(numbered: str) -> bool:
    """True when ``numbered`` (pglast-parseable SQL) has ``$n`` parameters."""
    return bool(placeholder_numbers(numbered))


def placeholder_numbers(numbered: str) -> set[int]:
    """The ``$n`` numbers of ``numbered``, found by PostgreSQL's own scanner (not in literals)."""
    import pglast

    return {
        int(numbered[t.start + 1 : t.end + 1])
        for t in pglast.parser.scan(numbered)
        if t.name == "PARAM"
    }


def generic_plan_available(engine: Engine) -> bool:
    """``generic_plans`` on a connection of ``engine``."""
    with engine.connect() as conn:
        return generic_plans(conn)


def generic_plan(engine: Engine, numbered: str) -> Plan:
    """The generic plan of ``numbered`` (``$n`` placeholders, no values; PostgreSQL 16+)."""
    with engine.connect() as conn:
        return explain_plan(conn, numbered, None)


def generic_plans(conn: Connection) -> bool:
    """True when the server plans ``$n`` statements without values (PostgreSQL 16+)."""
    version = conn.execute(text("SELECT current_setting('server_version_num')::int")).scalar_one()
    return int(version) >= GENERIC_PLAN_VERSION
