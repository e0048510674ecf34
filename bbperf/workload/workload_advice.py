"""Index advice over a whole workload: candidates from every statement's parse tree
(``bbperf.explain.index_candidates``), each costed by the planner with the index present over every
sampled value set (``bbperf.explain.whatif.plan_costs``), scored as mean planner cost saved × calls,
chosen greedily above a minimum-savings bar (higher for multi-column indexes).

How an index is made present is ``bbperf.explain.whatif.Method``: HypoPG where installed, a
rolled-back build on a target bbperf owns, CONCURRENTLY elsewhere only with ``allow_build``; without
HypoPG on a target bbperf does not own, advice stops and says to install HypoPG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from bbperf.catalog import extension_schema
from bbperf.errors import ConfigError, QueryError
from bbperf.explain.index_advice import proposals
from bbperf.explain.whatif import (
    Candidate,
    Method,
    Probe,
    choose_method,
    explain_plan,
    plan_costs,
)
from bbperf.target import query_error
from bbperf.workload.file import Statement, Workload
from bbperf.workload.statement_advice import extreme_value_sets

if TYPE_CHECKING:
    import pandas as pd

COSTED_VALUE_SETS = 10  # value sets per statement the planner costs (each is one EXPLAIN)


@dataclass(frozen=True)
class Choice:
    """An index the advice keeps: planner cost saved × calls, per statement it helps."""

    candidate: Candidate
    saved: float
    statements: tuple[str, ...]

    @property
    def multicolumn(self) -> bool:
        return len(self.candidate.columns) + len(self.candidate.include) > 1


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
            bar = (
                min_savings_multicolumn
                if len(cand.columns) + len(cand.include) > 1
                else min_savings
            )
            helped = [
                s for s, cost in per.items() if best[s] > 0 and (best[s] - cost) / best[s] >= bar
            ]
            gain = sum(calls[s] * (best[s] - per[s]) for s in helped)
            if helped:
                # Ties go to fewer columns (a smaller index), then to the name, for determinism.
                scored.append((gain, -cand.width, str(cand), cand, tuple(helped)))
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
    max_value_sets: int = COSTED_VALUE_SETS,
    lock_timeout_ms: int = 2000,
) -> WorkloadAdvice:
    """Advise indexes for ``workload`` on ``engine``'s target.

    Each statement is costed over its first ``max_value_sets`` sampled value sets and, for each
    ``=`` placeholder, its column's most common and a rare value (mean planner cost), so a plan
    cheap for one value and a full walk for another counts both.
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
            method = choose_method(hypopg, owned=owned, allow_build=allow_build)
            if method == "hypopg":
                conn = conn.execution_options(postgresql_readonly=True)
            tables, proposals = _tables_and_candidates(conn, statements, skipped)
            conn.rollback()
            proposals = proposals[:max_candidates]
            probes = {
                s.name: probe_of(s, max_value_sets, extreme_value_sets(conn, s))
                for s in statements
                if s.name in tables
            }
            base = {n: c.mean for n, c in plan_costs(conn, list(probes.values())).items()}
            calls = {s.name: max(1, s.calls) for s in statements if s.name in base}
            costs: dict[Candidate, dict[str, float]] = {}
            for cand in proposals:
                relevant = [p for n, p in probes.items() if (cand.schema, cand.table) in tables[n]]
                found = plan_costs(
                    conn, relevant, [cand], method=method, hypopg=hypopg, engine=engine,
                    lock_timeout_ms=lock_timeout_ms,
                )  # fmt: skip
                costs[cand] = {n: c.mean for n, c in found.items() if c.used}
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
                found = plan_costs(
                    conn, list(probes.values()), together, method=method, hypopg=hypopg,
                    engine=engine, lock_timeout_ms=lock_timeout_ms,
                )  # fmt: skip
                final = {n: c.mean for n, c in found.items()}
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


def probe_of(
    statement: Statement,
    max_value_sets: int = COSTED_VALUE_SETS,
    extra: list[list[Any]] | None = None,
) -> Probe:
    """The statement as a costing probe: its ``$n`` SQL, up to ``max_value_sets`` sampled value
    sets and the ``extra`` ones (rows in placeholder order, as ``Statement.values``)."""
    order = sorted(
        range(len(statement.placeholders)), key=lambda i: statement.placeholders[i].number
    )
    rows = [*statement.values[:max_value_sets], *(extra or [])]
    return Probe(statement.name, statement.sql, tuple(tuple(row[i] for i in order) for row in rows))


def _tables_and_candidates(
    conn: Connection, statements: list[Statement], skipped: list[tuple[str, str]]
) -> tuple[dict[str, set[tuple[str, str]]], list[Candidate]]:
    """Each plannable statement's tables, and the parse-tree candidates of all of them.

    A statement the target will not plan for this role (no INSERT privilege, …) joins ``skipped``.
    """
    tables: dict[str, set[tuple[str, str]]] = {}
    found: list[Candidate] = []
    for s in statements:
        probe = probe_of(s, 1)
        try:
            explain_plan(conn, s.sql, probe.value_sets[0] if probe.value_sets else None)
        except QueryError as exc:
            skipped.append((s.name, str(exc)))
            continue
        tables[s.name], proposed = proposals(conn, s.sql)
        found += [c for c in proposed if all(c.key() != f.key() for f in found)]
    return tables, found
