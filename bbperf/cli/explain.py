"""``bbperf explain "SQL"`` (plan analysis) and ``bbperf advise "SQL"`` (what-if index advice)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bbperf.cli import bounded, print_json
from bbperf.cli._analysis import SEARCH_PATH_RULE, analysis_engine
from bbperf.errors import ConfigError
from bbperf.explain.overhead import explain_overhead
from bbperf.explain.plan import parse_plan
from bbperf.explain.run import explain
from bbperf.explain.verify_advice import verify as verify_advice
from bbperf.explain.whatif import (
    generic_plan,
    generic_plan_available,
    has_placeholders,
    named_placeholders,
)
from bbperf.files import check_output, loads_json, read_input
from bbperf.sql import parse_one
from bbperf.target import is_embedded, privilege_note, user_engine
from bbperf.workload.statement_advice import advise_statement, drawn_params


def register(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser(
        "explain",
        help="EXPLAIN ANALYZE a statement: self time per node, estimates",
        description=SEARCH_PATH_RULE,
    )
    add_sql_source(ex)
    ex.add_argument("--params", metavar="JSON", help="parameter values, e.g. '{\"barber_id\": 7}'")
    ex.add_argument(
        "--from-file",
        metavar="PLAN",
        help="analyze saved EXPLAIN output instead of running SQL: FORMAT JSON or the TEXT psql "
        "prints / auto_explain logs ('-' reads stdin); needs no database",
    )
    ex.add_argument(
        "--out",
        metavar="PLAN.json",
        help="also save the plan and query for PEV2 / explain.dalibo.com",
    )
    ex.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    ex.add_argument(
        "--format", choices=("text", "json"), default="text", help="output (default text)"
    )
    ex.add_argument("--no-analyze", action="store_true", help="plan only; do not execute")
    ex.add_argument(
        "--overhead",
        type=bounded(int, 1, 10_000),
        metavar="ROUNDS",
        help="also time plain vs EXPLAIN ANALYZE TIMING OFF vs ON over ROUNDS interleaved rounds "
        "(each run rolled back)",
    )
    ex.add_argument(
        "--allow-writes",
        action="store_true",
        help="on a server bbperf does not own: EXPLAIN ANALYZE a data-modifying statement there "
        "(rolled back, but it takes locks and fires triggers)",
    )
    ex.set_defaults(func=run_explain)

    ad = sub.add_parser(
        "advise",
        help="propose and cost candidate indexes for a statement",
        description=SEARCH_PATH_RULE,
    )
    add_sql_source(ad)
    ad.add_argument("--params", metavar="JSON", help="parameter values as a JSON object")
    ad.add_argument(
        "--format", choices=("text", "json"), default="text", help="output (default text)"
    )
    ad.add_argument(
        "--verify",
        action="store_true",
        help="build the top picks one at a time in bbperf's schema (rolled back on its own "
        "server), measure the server time before/after with CIs, withdraw a pick whose gain is "
        "not significant",
    )
    ad.add_argument(
        "--picks",
        type=bounded(int, 1, 10),
        default=3,
        metavar="N",
        help="how many picks --verify measures (default 3)",
    )
    ad.add_argument(
        "--allow-build",
        action="store_true",
        help="on a server bbperf does not own: without HypoPG, cost candidates by building each "
        "in a rolled-back transaction under a lock_timeout; with --verify, build the best one "
        "CONCURRENTLY (a random name; only what this run built is dropped)",
    )
    ad.set_defaults(func=run_advise)


def add_sql_source(parser: argparse.ArgumentParser) -> None:
    """The statement as an argument, or ``-f FILE`` (``-f -`` reads stdin)."""
    parser.add_argument(
        "sql",
        nargs="?",
        help="the statement ('-' reads stdin); :name parameters come from --params; $1-style "
        "ones (pg_stat_statements' form) too, or `advise` draws values from their columns",
    )
    parser.add_argument(
        "-f", "--file", metavar="FILE", help="read the statement from FILE ('-' for stdin)"
    )


MAX_SQL_BYTES = 1_000_000
MAX_PLAN_BYTES = 64_000_000


def sql_of(args: argparse.Namespace) -> str:
    """The statement from the positional argument, ``-f FILE`` or stdin — exactly one of them."""
    if args.sql is not None and args.file is not None:
        raise ConfigError("give the statement either as an argument or with -f FILE, not both")
    if args.file is not None:
        sql = read_input(args.file, limit_bytes=MAX_SQL_BYTES, kind="the statement")
    elif args.sql == "-":
        sql = read_input("-", limit_bytes=MAX_SQL_BYTES, kind="the statement")
    elif args.sql is not None:
        sql = args.sql
    else:
        raise ConfigError("no statement: pass it as an argument, with -f FILE, or '-' for stdin")
    if not sql.strip():
        raise ConfigError("the statement is empty")
    return sql


def parse_params(value: str | None) -> dict[str, Any]:
    """--params as a dict; anything but a JSON object is a ConfigError."""
    if not value:
        return {}
    params = loads_json(value, kind="--params")
    if not isinstance(params, dict):
        raise ConfigError("--params must be a JSON object of parameter names to values")
    return params


def run_explain(args: argparse.Namespace) -> int:
    if args.overhead is not None and args.overhead < 1:
        raise ConfigError(f"--overhead needs a positive number of rounds, got {args.overhead}")
    overhead = None
    if args.out:
        check_output(args.out, force=args.force)  # refused before any statement runs
    if args.from_file is not None:
        if args.overhead:
            raise ConfigError("--overhead runs the statement: it cannot be used with --from-file")
        query = sql_of(args) if (args.sql is not None or args.file is not None) else None
        try:
            plan = parse_plan(
                read_input(args.from_file, limit_bytes=MAX_PLAN_BYTES, kind="the plan"), sql=query
            )
        except ValueError as exc:
            raise ConfigError(f"{args.from_file}: {exc}") from None
        return _show_plan(args, plan, None)

    sql = sql_of(args)
    params = parse_params(args.params)
    checked = parse_one(sql)
    executes = not args.no_analyze or bool(args.overhead)
    engine = analysis_engine(args)
    note_privileges(engine)
    if checked.is_write and executes and not is_embedded(engine) and not args.allow_writes:
        raise ConfigError(
            "EXPLAIN ANALYZE runs this data-modifying statement on a server bbperf does not own "
            "(rolled back, but it takes locks, fires triggers and draws from sequences): pass "
            "--allow-writes, or --no-analyze for the plan alone"
        )
    engine = user_engine(engine, writes=checked.is_write)
    if not checked.binds and has_placeholders(checked.numbered):
        # pg_stat_statements' $n form: the generic plan where the server has one, else values.
        if not params and not executes and generic_plan_available(engine):
            return _show_plan(args, generic_plan(engine, checked.numbered), None)
        sql = named_placeholders(checked.numbered)
        if not params:
            params = drawn_params(engine, checked.numbered)
            print(f"bbperf: note: values drawn from the columns: {params}", file=sys.stderr)
    plan = explain(engine, sql, params, analyze=not args.no_analyze)
    if args.overhead:
        overhead = explain_overhead(engine, sql, params, rounds=args.overhead)
    return _show_plan(args, plan, overhead)


def note_privileges(engine: Any) -> None:
    """One line on stderr when the role on a server bbperf does not own can do more than it needs."""
    note = privilege_note(engine)
    if note:
        print(f"bbperf: note: {note}", file=sys.stderr)


def _show_plan(args: argparse.Namespace, plan: Any, overhead: Any) -> int:
    if args.out:
        saved = plan.save(args.out, force=args.force)
        print(f"plan saved for PEV2: {saved}", file=sys.stderr)
    if args.format == "json":
        print_json(
            {
                "planning_ms": plan.planning_ms,
                "execution_ms": plan.execution_ms,
                "nodes": plan.to_frame().reset_index().to_dict(orient="records"),
                "plan": plan.raw,
                "overhead": overhead.to_dict() if overhead else None,
            }
        )
    else:
        print(plan.text())
        if overhead:
            print(f"EXPLAIN ANALYZE overhead: {overhead}")
    return 0


def run_advise(args: argparse.Namespace) -> int:
    sql = sql_of(args)
    engine = analysis_engine(args)
    note_privileges(engine)
    advice = advise_statement(engine, sql, parse_params(args.params), allow_build=args.allow_build)
    checked = (
        verify_advice(engine, advice, picks=args.picks, allow_build=args.allow_build)
        if args.verify
        else None
    )
    if args.format == "json":
        best = advice.best
        print_json(
            {
                "plan_cost": advice.base_cost,
                "method": advice.method,
                "costed_over": advice.costed_over(),
                "best": str(best.candidate) if best else None,
                "candidates": advice.to_frame().to_dict(orient="records"),
                "verification": checked.to_dict() if checked else None,
            }
        )
        return 0
    print(advice.text())
    if checked:
        print(checked.text())
    return 0
