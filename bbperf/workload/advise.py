"""Index advice over a whole workload: candidates from every statement's plan (the advisor's
equality-range-sort shapes), each costed by the planner with the index present, scored as planner
cost saved × calls, chosen greedily above a minimum-savings bar (higher for multi-column indexes).

How an index is made present, by what the target allows:
* ``hypopg`` — a hypothetical index (HypoPG): no build, no lock, nothing written; read-only.
* ``transaction`` — on a target bbperf owns: CREATE INDEX in a transaction that is rolled back.
* ``build`` — elsewhere only when asked (``allow_build``): CREATE INDEX CONCURRENTLY under a
  ``lock_timeout``, then DROP INDEX CONCURRENTLY.
Without HypoPG on a target bbperf does not own, advice stops and says to install HypoPG.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.errors import ConfigError, QueryError, SchemaError
from bbperf.explain.advisor import Candidate, candidates, column_roles, table_catalog
from bbperf.explain.plan import Plan, parse_plan
from bbperf.explain.run import rolled_back
from bbperf.schema import extension_schema
from bbperf.sql import scratch_name
from bbperf.sqlnames import qualified
from bbperf.target import query_error
from bbperf.workload.file import Statement, Workload

if TYPE_CHECKING:
    import pandas as pd

Method = Literal["hypopg", "transaction", "build"]
INSTALL_HYPOPG = (
    "HypoPG is not installed in this database, and bbperf does not own this target, so it will not "
    "build indexes to cost them: an administrator runs CREATE EXTENSION hypopg (Debian/Ubuntu: "
    "apt-get install postgresql-<major>-hypopg), or pass --allow-build to build each candidate "
    "CONCURRENTLY under a lock_timeout"
)


@dataclass(frozen=True)
class Choice:
    """An index the advice keeps: planner cost saved × calls, per statement it helps."""

    candidate: Candidate
    saved: float
    statements: tuple[str, ...]

    @property
    def multicolumn(self) -> bool:
        return len(self.candidate.columns) > 1


@dataclass
class WorkloadAdvice:
    """The chosen indexes and each statement's planner cost before and with all of them."""

    method: Method
    calls: dict[str, int]
    base_cost: dict[str, float]
    chosen: list[Choice] = field(default_factory=list)
    final_cost: dict[str, float] = field(default_factory=dict)
    candidates_costed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def workload_cost(self) -> float:
        return sum(self.base_cost[n] * self.calls[n] for n in self.base_cost)

    @property
    def saved_pct(self) -> float:
        """Share of the workload's planner cost (× calls) the chosen set saves, in %."""
        total = self.workload_cost
        after = sum(self.final_cost.get(n, c) * self.calls[n] for n, c in self.base_cost.items())
        return 100 * (total - after) / total if total else 0.0

    def indexes(self) -> pd.DataFrame:
        """One row per chosen index: DDL-ready name, statements helped, cost saved × calls, %."""
        import pandas as pd

        total = self.workload_cost or 1.0
        return pd.DataFrame(
            [
                {
                    "index": str(c.candidate),
                    "statements": ", ".join(c.statements),
                    "cost_saved_x_calls": round(c.saved, 1),
                    "workload_saved_pct": round(100 * c.saved / total, 1),
                }
                for c in self.chosen
            ],
            columns=["index", "statements", "cost_saved_x_calls", "workload_saved_pct"],
        )

    def statements(self) -> pd.DataFrame:
        """One row per statement: calls, planner cost before and with the set, predicted speedup."""
        import pandas as pd

        rows = []
        for name, before in self.base_cost.items():
            after = self.final_cost.get(name, before)
            rows.append(
                {
                    "statement": name,
                    "calls": self.calls[name],
                    "cost_before": round(before, 2),
                    "cost_after": round(after, 2),
                    "predicted_speedup": round(before / after, 2) if after else None,
                }
            )
        return pd.DataFrame(rows)

    def ddl(self) -> list[str]:
        """CREATE INDEX CONCURRENTLY statements for the chosen set (to run under a lock_timeout)."""
        return [
            c.candidate.ddl(index_name(c.candidate)).replace(
                "CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1
            )
            for c in self.chosen
        ]

    def text(self) -> str:
        head = (
            f"{len(self.chosen)} index(es) from {self.candidates_costed} candidate(s) "
            f"({self.method}); planner cost × calls saved: {self.saved_pct:.1f} %"
        )
        lines = [head]
        if self.chosen:
            lines += [self.indexes().to_string(index=False), "", *self.ddl(), ""]
        lines.append(self.statements().to_string(index=False))
        lines += [f"skipped {n}: {r}" for n, r in self.skipped]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "saved_pct": round(self.saved_pct, 2),
            "candidates_costed": self.candidates_costed,
            "indexes": self.indexes().to_dict(orient="records"),
            "ddl": self.ddl(),
            "statements": self.statements().to_dict(orient="records"),
            "skipped": [{"statement": n, "reason": r} for n, r in self.skipped],
        }


def index_name(candidate: Candidate) -> str:
    return f"bbperf_{candidate.table}_{'_'.join(candidate.columns)}_idx"[:63]


def choose_method(has_hypopg: bool, *, owned: bool, allow_build: bool) -> Method:
    """hypopg when installed; else a rolled-back build on an owned target; else only if allowed."""
    if has_hypopg:
        return "hypopg"
    if owned:
        return "transaction"
    if allow_build:
        return "build"
    raise SchemaError(INSTALL_HYPOPG)


def select(
    base: dict[str, float],
    calls: dict[str, int],
    costs: dict[Candidate, dict[str, float]],
    *,
    min_savings: float = 0.10,
    min_savings_multicolumn: float = 0.20,
    max_indexes: int = 5,
) -> list[Choice]:
    """Greedy choice over costed candidates (pure).

    ``costs[c][s]``: planner cost of statement ``s`` with candidate ``c`` alone (only statements whose
    plan used ``c``). A candidate helps a statement when it lowers the statement's best cost so far
    by at least ``min_savings`` of it (``min_savings_multicolumn`` for multi-column candidates);
    its gain is Σ calls × cost saved over those statements. The best gain is kept, and again, up to
    ``max_indexes``; a statement's best cost so far is the lowest over the kept indexes.
    """
    best = dict(base)
    chosen: list[Choice] = []
    left = dict(costs)
    while left and len(chosen) < max_indexes:
        scored = []
        for cand, per in left.items():
            bar = min_savings_multicolumn if len(cand.columns) > 1 else min_savings
            helped = [
                s for s, cost in per.items() if best[s] > 0 and (best[s] - cost) / best[s] >= bar
            ]
            gain = sum(calls[s] * (best[s] - per[s]) for s in helped)
            if helped:
                # Ties go to fewer columns (a smaller index), then to the name, for determinism.
                scored.append((gain, -len(cand.columns), str(cand), cand, tuple(helped)))
        if not scored:
            break
        gain, _, _, cand, kept = max(scored, key=lambda t: (t[0], t[1], t[2]))
        chosen.append(Choice(cand, gain, kept))
        for s in kept:
            best[s] = min(best[s], left[cand][s])
        del left[cand]
    return chosen


def advise_workload(
    engine: Engine,
    workload: Workload,
    *,
    owned: bool = False,
    allow_build: bool = False,
    min_savings: float = 0.10,
    min_savings_multicolumn: float = 0.20,
    max_indexes: int = 5,
    max_candidates: int = 40,
    lock_timeout_ms: int = 2000,
) -> WorkloadAdvice:
    """Advise indexes for ``workload`` (its first value set per statement) on ``engine``'s target.

    ``owned``: the target is bbperf's own (the embedded server), where candidates may be built in a
    rolled-back transaction when HypoPG is absent; elsewhere that needs ``allow_build`` (CONCURRENTLY,
    ``lock_timeout_ms``), or raises SchemaError saying to install HypoPG. Bars are fractions (0.10 =
    10 % of a statement's planner cost). At most ``max_candidates`` candidates are costed.
    """
    if not 0 < min_savings < 1 or not 0 < min_savings_multicolumn < 1:
        raise ConfigError("minimum savings must be fractions between 0 and 1 (0.10 = 10 %)")
    statements = [s for s in workload.statements if s.runnable and s.kind != "utility"]
    skipped = [
        (s.name, "no values: run `bbperf workload sample` first")
        for s in workload.statements
        if not s.runnable
    ]
    if not statements:
        raise ConfigError(f"nothing to advise on in {workload.name!r}: sample values first")
    try:
        with engine.connect() as conn:
            hypopg = extension_schema(conn, "hypopg")
            conn.rollback()
            method = choose_method(hypopg is not None, owned=owned, allow_build=allow_build)
            if method == "hypopg":
                conn = conn.execution_options(postgresql_readonly=True)
            base, tables, proposals = _base_and_candidates(conn, statements, skipped)
            conn.rollback()
            proposals = proposals[:max_candidates]
            calls = {s.name: max(1, s.calls) for s in statements if s.name in base}
            by_name = {s.name: s for s in statements}
            costs: dict[Candidate, dict[str, float]] = {}
            for cand in proposals:
                relevant = [by_name[n] for n in base if (cand.schema, cand.table) in tables[n]]
                with _present(engine, conn, [cand], method, hypopg, lock_timeout_ms) as names:
                    costs[cand] = _costs(conn, relevant, names)
            chosen = select(
                base,
                calls,
                costs,
                min_savings=min_savings,
                min_savings_multicolumn=min_savings_multicolumn,
                max_indexes=max_indexes,
            )
            final: dict[str, float] = {}
            if chosen:
                together = [c.candidate for c in chosen]
                with _present(engine, conn, together, method, hypopg, lock_timeout_ms) as names:
                    final = {
                        s.name: cost
                        for s in statements
                        if s.name in base
                        for cost in [_plan_cost(conn, s)]
                    }
    except DBAPIError as exc:
        raise query_error(exc, "workload advice") from None
    return WorkloadAdvice(
        method=method,
        calls=calls,
        base_cost=base,
        chosen=chosen,
        final_cost=final,
        candidates_costed=len(proposals),
        skipped=skipped,
    )


def _base_and_candidates(
    conn: Connection, statements: list[Statement], skipped: list[tuple[str, str]]
) -> tuple[dict[str, float], dict[str, set[tuple[str, str]]], list[Candidate]]:
    """Each statement's planner cost and scanned tables, and the candidates of all of them.

    A statement the target will not plan for this role (no INSERT privilege, …) joins ``skipped``.
    """
    base: dict[str, float] = {}
    tables: dict[str, set[tuple[str, str]]] = {}
    proposals: list[Candidate] = []
    catalogs: dict[tuple[str, str], Any] = {}
    for s in statements:
        try:
            plan = _explain(conn, s, verbose=True, guarded=True)
        except QueryError as exc:
            skipped.append((s.name, str(exc)))
            continue
        base[s.name] = plan.total_cost
        tables[s.name] = {(n.schema or "public", n.relation) for n in plan.nodes() if n.relation}
        for table, roles in column_roles(plan).items():
            if table not in catalogs:
                catalogs[table] = table_catalog(conn, table)
            cols, existing = catalogs[table]
            for cand in candidates(roles, table, cols, existing):
                if cand not in proposals:
                    proposals.append(cand)
    return base, tables, proposals


def _plan_cost(conn: Connection, s: Statement) -> float:
    return _explain(conn, s).total_cost


def _costs(conn: Connection, statements: list[Statement], names: list[str]) -> dict[str, float]:
    """Planner cost of each statement whose plan uses one of the indexes ``names``."""
    out: dict[str, float] = {}
    for s in statements:
        plan = _explain(conn, s)
        if any(n.index in names for n in plan.nodes()):
            out[s.name] = plan.total_cost
    return out


@contextlib.contextmanager
def _present(
    engine: Engine,
    conn: Connection,
    cands: list[Candidate],
    method: Method,
    hypopg: str | None,
    lock_timeout_ms: int,
) -> Iterator[list[str]]:
    """Make ``cands`` visible to the planner on ``conn`` for the block; yield their index names."""
    if method == "hypopg":
        schema = hypopg or "public"
        names = []
        try:
            for cand in cands:
                row = conn.execute(
                    text(f"SELECT indexname FROM {qualified(schema, 'hypopg_create_index')}(:ddl)"),
                    {"ddl": cand.ddl("hypo")},
                ).one()
                names.append(str(row[0]))
            yield names
        finally:
            conn.execute(text(f"SELECT {qualified(schema, 'hypopg_reset')}()"))
            conn.rollback()
    elif method == "transaction":
        names = [scratch_name("bbperf_whatif") for _ in cands]
        try:
            for cand, name in zip(cands, names, strict=True):
                conn.execute(text(cand.ddl(name)))
            yield names
        finally:
            conn.rollback()
    else:
        names = [scratch_name("bbperf_whatif") for _ in cands]
        # CREATE INDEX CONCURRENTLY waits for every open transaction, ours included: end it first.
        conn.rollback()
        built: list[tuple[Candidate, str]] = []
        with engine.connect() as ddl:
            ddl = ddl.execution_options(isolation_level="AUTOCOMMIT")
            ddl.execute(text(f"SET lock_timeout = {int(lock_timeout_ms)}"))
            try:
                for cand, name in zip(cands, names, strict=True):
                    ddl.execute(
                        text(cand.ddl(name).replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1))
                    )
                    built.append((cand, name))
                yield names
            finally:
                conn.rollback()
                # Only what this run created: a name that failed to build is never dropped.
                for cand, name in built:
                    ddl.execute(
                        text(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(cand.schema, name)}")
                    )


def _explain(
    conn: Connection, s: Statement, *, verbose: bool = False, guarded: bool = False
) -> Plan:
    """The plan, without executing (``guarded``: inside a savepoint). No ANALYZE option at all:
    HypoPG ignores its hypothetical indexes whenever the option is present, even as ANALYZE FALSE."""
    options = "VERBOSE, FORMAT JSON" if verbose else "FORMAT JSON"
    sql = s.bind_sql()
    statement = text(f"EXPLAIN ({options}) {sql}")
    try:
        if guarded:  # a failure must leave the transaction usable for the next statement
            with rolled_back(conn) as c:
                data = c.execute(statement, s.params(0)).scalar_one()
        else:
            data = conn.execute(statement, s.params(0)).scalar_one()
    except DBAPIError as exc:
        raise query_error(exc, sql) from None
    return parse_plan(data, sql=sql)
