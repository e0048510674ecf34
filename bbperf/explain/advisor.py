"""What-if index advisor: candidates from a query's plan, costed without keeping any index.

Candidates are B-tree indexes of at most three columns per scanned relation, ordered as a B-tree wants
them: equality columns first, then one range column, then a sort column. Each is costed by the
planner alone: with HypoPG (when installed in the database) as a hypothetical index, otherwise by
``CREATE INDEX`` inside a transaction, ``EXPLAIN`` without ANALYZE, and ``ROLLBACK`` — the index is
really built (time and a SHARE lock on the table for the duration) and never committed.
``verify`` then builds the best candidate for real (only in bbperf's schema), measures the query
before and after, and drops it, so the predicted and the measured speedups stand side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.errors import BbperfError, SchemaError
from bbperf.explain.diff import PlanDiff, diff
from bbperf.explain.plan import Plan
from bbperf.explain.querystats import extension_schema
from bbperf.explain.run import Params, clean_sql, explain
from bbperf.explain.stats import Comparison, compare
from bbperf.sql import cte_bodies, scratch_name
from bbperf.sqlnames import qualified, quote
from bbperf.target import is_embedded, query_error, schema_of

INSTALL_HYPOPG = (
    "HypoPG is not installed in this database and bbperf does not own this server, so it will not "
    "build indexes to cost them: an administrator runs CREATE EXTENSION hypopg (Debian/Ubuntu: "
    "apt-get install postgresql-<major>-hypopg), or pass --allow-build to cost each candidate by "
    "building it in a rolled-back transaction under a lock_timeout"
)
BUILD_LOCK_TIMEOUT = "5s"  # dexter's habit: never wait behind live writers to build an index

if TYPE_CHECKING:
    import pandas as pd

MAX_COLUMNS = 3
_ATOM = re.compile(
    r"(?:(?<=\()|(?<=\s)|^)\(*(?:\"?(\w+)\"?\.)?\"?([A-Za-z_]\w*)\"?\)?(?:::[\w ]+?(?:\[\])?)?"
    r"\s+(=|<=|>=|<|>)\s"
)
_SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Range Scan")


@dataclass(frozen=True)
class Candidate:
    """A B-tree index proposal on ``schema.table (columns)``."""

    schema: str
    table: str
    columns: tuple[str, ...]
    cte: str = ""  # the CTE whose scan suggested it ("" for the statement as a whole)

    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.schema, self.table, self.columns)

    def ddl(self, name: str) -> str:
        cols = ", ".join(quote(c) for c in self.columns)
        return f"CREATE INDEX {quote(name)} ON {qualified(self.schema, self.table)} ({cols})"

    def __str__(self) -> str:
        return f"{self.schema}.{self.table} ({', '.join(self.columns)})"


@dataclass(frozen=True)
class CandidateCost:
    """Planner cost of the query without and with the candidate; ``used``: the plan picked it."""

    candidate: Candidate
    cost_before: float
    cost_after: float
    used: bool

    @property
    def predicted_speedup(self) -> float:
        return self.cost_before / self.cost_after if self.cost_after else float("inf")


@dataclass
class Advice:
    """Candidates of one query with their predicted costs, best first."""

    sql: str
    params: dict[str, Any]
    base_cost: float
    method: str
    costs: list[CandidateCost] = field(default_factory=list)

    @property
    def best(self) -> CandidateCost | None:
        useful = [c for c in self.costs if c.used and c.cost_after < c.cost_before]
        return useful[0] if useful else None

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "index": str(c.candidate),
                    "cte": c.candidate.cte,
                    "cost_before": c.cost_before,
                    "cost_after": c.cost_after,
                    "predicted_speedup": c.predicted_speedup,
                    "used": c.used,
                }
                for c in self.costs
            ],
            columns=["index", "cte", "cost_before", "cost_after", "predicted_speedup", "used"],
        )

    def text(self) -> str:
        if not self.costs:
            return f"no candidate index (plan cost {self.base_cost:.2f})"
        lines = [f"plan cost {self.base_cost:.2f} ({self.method})"]
        for c in self.costs:
            mark = "" if c.used else "  (not used by the planner)"
            where = f" [CTE {c.candidate.cte}]" if c.candidate.cte else ""
            lines.append(
                f"{c.candidate}{where}: cost {c.cost_after:.2f}, ×{c.predicted_speedup:.2f}{mark}"
            )
        return "\n".join(lines)


@dataclass
class Verification:
    """The best candidate built for real: predicted (planner cost) vs measured (client time)."""

    candidate: Candidate
    predicted_speedup: float
    measured: Comparison
    plan_diff: PlanDiff

    def text(self) -> str:
        return (
            f"{self.candidate}: predicted ×{self.predicted_speedup:.2f}, measured {self.measured}\n"
            f"{self.plan_diff.text()}"
        )


def column_roles(plan: Plan) -> dict[tuple[str, str], dict[str, list[str]]]:
    """(schema, table) → {"eq": [...], "range": [...], "sort": [...]} read off a VERBOSE plan."""
    roles: dict[tuple[str, str], dict[str, list[str]]] = {}
    aliases: dict[str, tuple[str, str]] = {}
    for node in plan.nodes():
        if node.node_type not in _SCANS or not node.relation:
            continue
        key = (node.schema or "public", node.relation)
        aliases[node.alias or node.relation] = key
        entry = roles.setdefault(key, {"eq": [], "range": [], "sort": []})
        for condition in node.conditions.values():
            for qualifier, column, op in _atoms(condition):
                if qualifier in (None, node.alias, node.relation):
                    _add(entry["eq" if op == "=" else "range"], column)
    for node in plan.nodes():
        for key_text in node.sort_key or []:
            match = re.match(r"\(?(?:\"?(\w+)\"?\.)?\"?(\w+)\"?\)?(?:\s|$)", key_text)
            if match and match.group(1) in aliases:
                entry = roles[aliases[match.group(1)]]
                _add(entry["sort"], match.group(2))
    return roles


def candidates(
    roles: dict[str, list[str]],
    table: tuple[str, str],
    columns: set[str],
    existing: list[tuple[str, ...]],
) -> list[Candidate]:
    """Index candidates for one table: composite (eq, range, sort), then single columns.

    Columns that are not real columns of the table are dropped; a candidate that is a prefix of an
    existing index is skipped (the index already serves it).
    """
    eq = [c for c in roles["eq"] if c in columns]
    rng = [c for c in roles["range"] if c in columns and c not in eq]
    srt = [c for c in roles["sort"] if c in columns and c not in eq and c not in rng]
    shapes = [eq + rng[:1] + srt[:1], eq + srt[:1], eq, *([c] for c in eq + rng + srt)]
    out: list[Candidate] = []
    for shape in shapes:
        cols = tuple(dict.fromkeys(shape))[:MAX_COLUMNS]
        if not cols or any(ix[: len(cols)] == cols for ix in existing):
            continue
        cand = Candidate(table[0], table[1], cols)
        if cand not in out:
            out.append(cand)
    return out


def part_roles(
    engine: Engine, statement: str, values: dict[str, Any], plan: Plan
) -> list[tuple[str, dict[tuple[str, str], dict[str, list[str]]]]]:
    """Column roles per part: each CTE's body planned on its own (a CTE the planner inlined loses
    its name in the plan, and one table scanned by several CTEs must not mix their columns), then
    the whole statement."""
    parts = []
    for name, body in cte_bodies(statement).items():
        try:
            cte_plan = explain(engine, body, values, analyze=False, buffers=False, verbose=True)
        except BbperfError:
            continue  # the body refers to an earlier CTE: the whole statement covers it
        parts.append((name, column_roles(cte_plan)))
    return [*parts, ("", column_roles(plan))]


def advise(
    engine: Engine,
    sql: str,
    params: Params = None,
    *,
    max_candidates: int = 8,
    allow_build: bool = False,
) -> Advice:
    """Propose and cost candidate indexes for ``sql``; nothing is left behind in the database.

    For a statement with CTEs, each CTE's relations get their own candidates first (``Candidate.cte``
    names the CTE), then the whole statement's. Candidates are costed with HypoPG's hypothetical
    indexes where it is installed; otherwise each is built inside a transaction that is rolled back
    (with a lock timeout) — only on bbperf's own embedded server, or anywhere with ``allow_build``.
    """
    statement = clean_sql(sql)
    values = dict(params or {})
    plan = explain(engine, statement, values, analyze=False, buffers=False, verbose=True)
    parts = part_roles(engine, statement, values, plan)
    try:
        with engine.connect() as conn:
            proposals: list[Candidate] = []
            for cte, part in parts:
                for table, roles in part.items():
                    cols, existing = table_catalog(conn, table)
                    for cand in candidates(roles, table, cols, existing):
                        if all(c.key() != cand.key() for c in proposals):
                            proposals.append(Candidate(*cand.key(), cte=cte))
            hypopg = extension_schema(conn, "hypopg")
            conn.rollback()
            if not hypopg and proposals and not (allow_build or is_embedded(engine)):
                raise SchemaError(INSTALL_HYPOPG)
            costs = [
                _cost(conn, cand, statement, values, plan.total_cost, hypopg)
                for cand in proposals[:max_candidates]
            ]
    except DBAPIError as exc:
        raise query_error(exc, statement) from None
    costs.sort(key=lambda c: (not c.used, c.cost_after))
    return Advice(statement, values, plan.total_cost, "hypopg" if hypopg else "transaction", costs)


def verify(
    engine: Engine,
    advice: Advice,
    *,
    rounds: int = 30,
    warmup: int = 5,
    allow_build: bool = False,
) -> Verification:
    """Build ``advice.best`` for real, measure before and after, drop it.

    Only in bbperf's schema, with a lock timeout so a busy table makes the build fail rather than
    queue writers behind it. On a server bbperf does not own only with ``allow_build``, and then
    CONCURRENTLY. The index gets a random name and only the index this call built is dropped.
    """
    from bbperf.explain.measure import measure

    best = advice.best
    if best is None:
        raise BbperfError("no candidate index lowered the plan cost: nothing to verify")
    schema = schema_of(engine)
    cand = best.candidate
    owned = is_embedded(engine)
    if not owned and not allow_build:
        raise SchemaError(
            f"--verify builds an index on {cand.schema}.{cand.table}, on a server bbperf does not "
            "own: pass --allow-build to build it CONCURRENTLY under a lock timeout and drop it after"
        )
    if cand.schema != schema:
        raise SchemaError(
            f"refusing to build an index on {cand.schema}.{cand.table}: verify only builds in "
            f"bbperf's schema {schema!r}"
        )
    name = scratch_name(f"bbperf_verify_{cand.table}")
    ddl = (
        cand.ddl(name)
        if owned
        else cand.ddl(name).replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
    )
    before_plan = explain(engine, advice.sql, advice.params)
    before = measure(
        engine, advice.sql, advice.params, rounds=rounds, warmup=warmup, label="before"
    )
    built = False
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f"SET lock_timeout = '{BUILD_LOCK_TIMEOUT}'"))
            conn.execute(text(ddl))
            built = True
        after = measure(
            engine, advice.sql, advice.params, rounds=rounds, warmup=warmup, label="after"
        )
        after_plan = explain(engine, advice.sql, advice.params)
    except DBAPIError as exc:
        raise query_error(exc, ddl) from None
    finally:
        if built:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                concurrently = "" if owned else " CONCURRENTLY"
                conn.execute(
                    text(f"DROP INDEX{concurrently} IF EXISTS {qualified(cand.schema, name)}")
                )
    return Verification(
        cand, best.predicted_speedup, compare(before, after), diff(before_plan, after_plan)
    )


def _cost(
    conn: Connection,
    cand: Candidate,
    sql: str,
    params: dict[str, Any],
    base: float,
    hypopg: str | None,
) -> CandidateCost:
    trans = conn.begin()
    try:
        if hypopg:
            row = conn.execute(
                text(f"SELECT indexname FROM {qualified(hypopg, 'hypopg_create_index')}(:ddl)"),
                {"ddl": cand.ddl("hypo")},
            ).one()
            name = str(row[0])
        else:
            name = scratch_name("bbperf_whatif")
            conn.execute(text(f"SET LOCAL lock_timeout = '{BUILD_LOCK_TIMEOUT}'"))
            conn.execute(text(cand.ddl(name)))
        plan = explain(conn, sql, params, analyze=False, buffers=False)
        if hypopg:
            conn.execute(text(f"SELECT {qualified(hypopg, 'hypopg_reset')}()"))
    finally:
        trans.rollback()
    used = any(n.index == name for n in plan.nodes())
    return CandidateCost(cand, base, plan.total_cost, used)


def table_catalog(
    conn: Connection, table: tuple[str, str]
) -> tuple[set[str], list[tuple[str, ...]]]:
    """The table's column names and the column lists of its existing indexes."""
    rel = qualified(table[0], table[1])
    cols = (
        conn.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:rel AS regclass) "
                "AND attnum > 0 AND NOT attisdropped"
            ),
            {"rel": rel},
        )
        .scalars()
        .all()
    )
    indexes = (
        conn.execute(
            text(
                "SELECT array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, pos) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.pos) "
                "FROM pg_index i WHERE i.indrelid = CAST(:rel AS regclass)"
            ),
            {"rel": rel},
        )
        .scalars()
        .all()
    )
    return set(cols), [tuple(ix) for ix in indexes]


def _atoms(condition: str) -> list[tuple[str | None, str, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in _ATOM.finditer(condition)]


def _add(target: list[str], column: str) -> None:
    if column not in target:
        target.append(column)
