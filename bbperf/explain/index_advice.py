"""What-if index advice for one statement: candidates, costed without keeping any index.

Candidates come from the statement's parse tree (``bbperf.explain.index_candidates``: equality
columns first, then the sort and range, partial and INCLUDE variants, on the partitioned parent,
never on a catalog). Each is costed by the planner alone (``bbperf.explain.whatif.plan_costs``),
over every value set given: with HypoPG (when installed in the database) as a hypothetical index,
otherwise by ``CREATE INDEX`` inside a transaction that is rolled back — the index is really built
(time and a SHARE lock on the table for the duration) and never committed. ``bbperf.explain.verify_advice`` then measures the top picks, so the predicted and the
measured speedups stand side by side.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.catalog import extension_schema
from bbperf.errors import ConfigError
from bbperf.explain.index_candidates import TableInfo, TableRef, candidates, table_uses
from bbperf.explain.run import Params, clean_sql
from bbperf.explain.whatif import (
    Candidate,
    Probe,
    choose_method,
    generic_plans,
    has_placeholders,
    plan_costs,
)
from bbperf.sql import parse_one
from bbperf.sqlnames import qualified, quote
from bbperf.target import is_embedded, query_error

NO_VALUES = (
    "the statement has placeholders and no values: pass --params, or run it on PostgreSQL 16+ "
    "where bbperf plans it generically (EXPLAIN (GENERIC_PLAN))"
)
NEARLY = 0.9  # share of the best saving a narrower candidate must reach to be preferred

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class CandidateCost:
    """Planner cost of the query without and with the candidate; ``used``: the plan picked it."""

    candidate: Candidate
    cost_before: float
    cost_after: float
    used: bool
    worst_before: float = 0.0  # the highest cost over the value sets, without the candidate
    worst_after: float = 0.0  # and with it

    @property
    def saved(self) -> float:
        return self.cost_before - self.cost_after

    @property
    def worst_saved(self) -> float:
        return self.worst_before - self.worst_after

    @property
    def predicted_speedup(self) -> float:
        return self.cost_before / self.cost_after if self.cost_after else float("inf")


@dataclass
class Advice:
    """Candidates of one query with their predicted costs (mean over ``value_sets``), best first.

    ``params`` is the first value set (what ``verify`` measures with); no value sets: the costs are
    the generic plan's.
    """

    sql: str
    params: dict[str, Any]
    base_cost: float
    method: str
    costs: list[CandidateCost] = field(default_factory=list)
    value_sets: tuple[dict[str, Any], ...] = ()

    @property
    def best(self) -> CandidateCost | None:
        """The narrowest candidate that saves nearly as much (``NEARLY``) as the one saving most,
        on the mean and on the worst value set: a wider index (more keys, INCLUDE) must earn its
        size and its cost on every write, and a narrow one cheap for some values only loses."""
        useful = [c for c in self.costs if c.used and c.cost_after < c.cost_before]
        if not useful:
            return None
        most = max(useful, key=lambda c: (c.saved, c.worst_saved))
        near = [
            c
            for c in useful
            if c.saved >= NEARLY * most.saved and c.worst_saved >= NEARLY * most.worst_saved
        ]
        return min(near, key=lambda c: (c.candidate.width, c.cost_after))

    def costed_over(self) -> str:
        """How the costs were planned: mean over N value sets, one value set, or the generic plan."""
        if not self.value_sets:
            return "generic plan"
        n = len(self.value_sets)
        return f"mean over {n} value sets" if n > 1 else "one value set"

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
        lines = [f"plan cost {self.base_cost:.2f} ({self.method}; {self.costed_over()})"]
        for c in self.costs:
            mark = "" if c.used else "  (not used by the planner)"
            where = f" [CTE {c.candidate.cte}]" if c.candidate.cte else ""
            worst = f", worst {c.worst_after:.2f}" if len(self.value_sets) > 1 else ""
            lines.append(
                f"{c.candidate}{where}: cost {c.cost_after:.2f}{worst}, "
                f"×{c.predicted_speedup:.2f}{mark}"
            )
        return "\n".join(lines)


def advise(
    engine: Engine,
    sql: str,
    params: Params = None,
    *,
    value_sets: Sequence[Mapping[str, Any]] | None = None,
    max_candidates: int = 16,
    allow_build: bool = False,
) -> Advice:
    """Propose and cost candidate indexes for ``sql``; nothing is left behind in the database.

    For a statement with CTEs, each CTE's relations get their own candidates first (``Candidate.cte``
    names the CTE), then the whole statement's. Candidates are costed with HypoPG's hypothetical
    indexes where it is installed; otherwise each is built inside a transaction that is rolled back
    (with a lock timeout) — only on bbperf's own embedded server, or anywhere with ``allow_build``.

    ``value_sets`` (each like ``params``): cost every candidate over each and rank by the mean, so
    an index cheap for one value and a full walk for another loses to one that serves all. A
    statement with placeholders and no values is costed by its generic plan (PostgreSQL 16+).
    """
    statement = clean_sql(sql)
    sets = value_sets_of(statement, params, value_sets)
    probe = Probe("statement", statement, sets)
    try:
        with engine.connect() as conn:
            if (
                not sets
                and has_placeholders(parse_one(statement).numbered)
                and not generic_plans(conn)
            ):
                raise ConfigError(NO_VALUES)
            _, found = proposals(conn, statement)
            hypopg = extension_schema(conn, "hypopg")
            base = plan_costs(conn, [probe])[probe.name]
            first = sets[0] if sets else {}
            if not found:
                return Advice(statement, first, base.mean, "none", value_sets=sets)
            owned = allow_build or is_embedded(engine)
            method = choose_method(hypopg, owned=owned, allow_build=False)
            costs = []
            for cand in found[:max_candidates]:
                after = plan_costs(conn, [probe], [cand], method=method, hypopg=hypopg)
                cost = after[probe.name]
                costs.append(
                    CandidateCost(cand, base.mean, cost.mean, cost.used, base.worst, cost.worst)
                )
    except DBAPIError as exc:
        raise query_error(exc, statement) from None
    costs.sort(key=lambda c: (not c.used, c.cost_after))
    return Advice(statement, first, base.mean, method, costs, value_sets=sets)


def value_sets_of(
    sql: str, params: Params, value_sets: Sequence[Mapping[str, Any]] | None
) -> tuple[dict[str, Any], ...]:
    """The value sets to cost ``sql`` with: ``value_sets``, else ``params``, else none (a statement
    without placeholders has the one empty set; one with placeholders, its generic plan)."""
    if value_sets:
        return tuple(dict(v) for v in value_sets)
    if params or not has_placeholders(parse_one(sql).numbered):
        return (dict(params or {}),)
    return ()


def proposals(conn: Connection, sql: str) -> tuple[set[tuple[str, str]], list[Candidate]]:
    """The tables ``sql`` names (resolved as the session's search_path does, a partition to its
    partitioned root) and the parse tree's candidates on them, each once, CTEs' first.

    ``sql`` has ``$n`` or ``:name`` placeholders. Names the catalog does not know (a function's
    result, a table dropped since) give no candidate.
    """
    tables: set[tuple[str, str]] = set()
    per_use: list[list[Candidate]] = []
    infos: dict[TableRef, TableInfo | None] = {}
    for use in sorted(table_uses(parse_one(sql).numbered), key=lambda u: u.cte == ""):
        ref = TableRef(use.table.name, use.table.schema)
        if ref not in infos:
            infos[ref] = table_info(conn, ref)
        info = infos[ref]
        if info is None:
            continue
        tables.add(((info.root or info).schema, (info.root or info).name))
        per_use.append(candidates(use, info))
    # Round robin: every use's best shape before any use's second, so a cap keeps them all.
    found: list[Candidate] = []
    for rank in itertools.zip_longest(*per_use):
        for cand in rank:
            if cand is not None and all(c.key() != cand.key() for c in found):
                found.append(cand)
    return tables, found


def table_info(conn: Connection, ref: TableRef) -> TableInfo | None:
    """The catalog's word on a named table: kind, columns, index key columns, partitioned root."""
    name = qualified(ref.schema, ref.name) if ref.schema else quote(ref.name)
    row = conn.execute(
        text(
            "SELECT c.oid::int, n.nspname, c.relname, c.relkind, "
            "array(SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 "
            "AND NOT attisdropped) AS cols, "
            "(SELECT r.oid::int FROM pg_partition_ancestors(c.oid) r(oid) JOIN pg_class rc "
            " ON rc.oid = r.oid WHERE c.relispartition AND NOT rc.relispartition) AS root "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(:name)"
        ),
        {"name": name},
    ).first()
    if row is None:
        return None
    root = None
    if row.root is not None:
        parent = conn.execute(
            text(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.oid = :oid"
            ),
            {"oid": row.root},
        ).one()
        root = table_info(conn, TableRef(parent.relname, parent.nspname))
    return TableInfo(
        schema=row.nspname,
        name=row.relname,
        kind=row.relkind,
        columns=frozenset(row.cols),
        indexes=_index_keys(conn, row.oid),
        root=root,
    )


def _index_keys(conn: Connection, oid: int) -> tuple[tuple[str, ...], ...]:
    """The key columns of each index on the table (an expression ends the list there)."""
    rows = conn.execute(
        text(
            "SELECT array(SELECT a.attname FROM unnest(i.indkey[0:i.indnkeyatts - 1]) "
            "WITH ORDINALITY k(attnum, pos) JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = k.attnum ORDER BY k.pos) FROM pg_index i WHERE i.indrelid = :oid"
        ),
        {"oid": oid},
    ).scalars()
    return tuple(tuple(r) for r in rows)
