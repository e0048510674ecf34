"""Index advice for one statement with placeholders and no values: pg_stat_statements' ``$1`` form
(or ``:name`` without ``--params``) gets value sets drawn from the columns its placeholders are
compared with, so a candidate is scored over many values, not one.

The sets are the workload sampler's (``bbperf.workload.sample``: existing values, windows for
ranges, row-weighted, so busy values come often), plus, for each ``=`` placeholder, the column's
most common value and a rare one from its statistics (``pg_stats``): an index that serves the
busiest barber and walks the whole table for a quiet one shows both. A placeholder no column
explains leaves the statement to its generic plan (PostgreSQL 16+).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, text

from bbperf.errors import ConfigError
from bbperf.explain.index_advice import Advice, advise
from bbperf.explain.run import Params, clean_sql
from bbperf.explain.whatif import has_placeholders, named_placeholders
from bbperf.sql import parse_one
from bbperf.workload.capture import lookup_tables, table_columns
from bbperf.workload.file import Statement, Workload, placeholders_of
from bbperf.workload.parse import analyze
from bbperf.workload.sample import sample

VALUE_SETS = 10  # sampled sets; the most common and a rare value add up to two per placeholder


def advise_statement(
    engine: Engine,
    sql: str,
    params: Params = None,
    *,
    sets: int = VALUE_SETS,
    seed: int = 42,
    max_candidates: int = 16,
    allow_build: bool = False,
) -> Advice:
    """``bbperf.explain.index_advice.advise`` for ``sql``, with value sets drawn when the statement
    has placeholders and ``params`` gives none (``$n`` are renamed ``:pn``)."""
    statement = clean_sql(sql)
    checked = parse_one(statement)
    if params or not has_placeholders(checked.numbered):
        return advise(
            engine, statement, params, max_candidates=max_candidates, allow_build=allow_build
        )
    numbered = checked.numbered
    drawn = draw_value_sets(engine, numbered, sets=sets, seed=seed)
    return advise(
        engine,
        named_placeholders(numbered),
        value_sets=drawn or None,
        max_candidates=max_candidates,
        allow_build=allow_build,
    )


def draw_value_sets(
    engine: Engine, numbered: str, *, sets: int = VALUE_SETS, seed: int = 42
) -> list[dict[str, Any]]:
    """Value sets ``{"pn": value}`` for ``numbered``'s ``$n``; empty when a placeholder is tied to
    no column (the caller then plans generically)."""
    with engine.connect() as conn:
        statement = statement_of(conn, numbered)
        conn.rollback()
        if not statement.placeholders or statement.unresolved:
            return []
        drawn = sample(engine, Workload("advise", [statement]), sets=sets, seed=seed)
        filled = drawn.workload.statements[0]
        if not filled.values:
            return []
        rows = [list(r) for r in filled.values] + extreme_value_sets(conn, filled)
        conn.rollback()
    names = [f"p{p.number}" for p in filled.placeholders]
    return [dict(zip(names, row, strict=True)) for row in rows]


def drawn_params(engine: Engine, numbered: str, *, seed: int = 42) -> dict[str, Any]:
    """One value set ``{"pn": value}`` for ``numbered``'s ``$n``, drawn from their columns; a
    ConfigError naming the way out when a placeholder is tied to no column."""
    drawn = draw_value_sets(engine, numbered, sets=1, seed=seed)
    if not drawn:
        raise ConfigError(
            "a $n placeholder is compared with no column bbperf can draw values from: pass them "
            "with --params, named p1, p2, … (e.g. --params '{\"p1\": 7}')"
        )
    return drawn[0]


def statement_of(conn: Connection, numbered: str) -> Statement:
    """``numbered`` as a workload statement, each ``$n`` tied to its column as capture does."""
    analysis = analyze(numbered)
    tables = lookup_tables(conn, analysis.relations)
    columns = table_columns(conn, set(tables.values()))
    return Statement(
        name="statement",
        sql=numbered,
        fingerprint=analysis.fingerprint,
        kind=analysis.kind,
        read_only=analysis.read_only,
        placeholders=placeholders_of(analysis, tables, columns),
    )


def extreme_value_sets(conn: Connection, statement: Statement) -> list[list[Any]]:
    """For each ``=`` placeholder: the statement's first value set with that value swapped for the
    column's most common value, and again for a rare one (the middle histogram bound, which is no
    common value; the least common of the common values when the column has no histogram)."""
    if not statement.values:
        return []
    row = list(statement.values[0])
    out = []
    for i, p in enumerate(statement.placeholders):
        if p.operator != "=" or not p.table or not p.column:
            continue
        schema, _, table = p.table.rpartition(".")
        stats = conn.execute(
            text(
                "SELECT most_common_vals::text::text[], histogram_bounds::text::text[] "
                "FROM pg_stats WHERE (schemaname = :s OR :s = '') AND tablename = :t "
                "AND attname = :c ORDER BY inherited DESC LIMIT 1"
            ),
            {"s": schema, "t": table, "c": p.column},
        ).first()
        if stats is None:
            continue
        common, bounds = stats
        rare = bounds[len(bounds) // 2] if bounds else (common[-1] if common else None)
        for value in (common[0] if common else None, rare):
            if value is not None and value != row[i]:
                out.append([*row[:i], value, *row[i + 1 :]])
    return out
