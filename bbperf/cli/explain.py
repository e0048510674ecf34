"""``bbperf explain "SQL"`` (plan analysis) and ``bbperf advise "SQL"`` (what-if index advice)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bbperf.cli import engine_from, print_json
from bbperf.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser(
        "explain", help="EXPLAIN ANALYZE a statement: self time per node, estimates"
    )
    ex.add_argument("sql", help="the statement; SQLAlchemy :name parameters come from --params")
    ex.add_argument("--params", metavar="JSON", help="parameter values, e.g. '{\"barber_id\": 7}'")
    ex.add_argument(
        "--format", choices=("text", "json"), default="text", help="output (default text)"
    )
    ex.add_argument("--no-analyze", action="store_true", help="plan only; do not execute")
    ex.add_argument(
        "--overhead",
        type=int,
        metavar="ROUNDS",
        help="also time plain vs EXPLAIN ANALYZE TIMING OFF vs ON over ROUNDS interleaved rounds",
    )
    ex.set_defaults(func=run_explain)

    ad = sub.add_parser("advise", help="propose and cost candidate indexes for a statement")
    ad.add_argument("sql", help="the statement; SQLAlchemy :name parameters come from --params")
    ad.add_argument("--params", metavar="JSON", help="parameter values as a JSON object")
    ad.add_argument(
        "--verify",
        action="store_true",
        help="build the best index in bbperf's schema, measure before/after, drop it",
    )
    ad.set_defaults(func=run_advise)


def parse_params(value: str | None) -> dict[str, Any]:
    """--params as a dict; anything but a JSON object is a ConfigError."""
    if not value:
        return {}
    try:
        params = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--params is not valid JSON ({exc.msg}): pass an object like '{{\"id\": 1}}'"
        ) from None
    if not isinstance(params, dict):
        raise ConfigError("--params must be a JSON object of parameter names to values")
    return params


def run_explain(args: argparse.Namespace) -> int:
    from bbperf.explain.run import explain

    engine = engine_from(args)
    params = parse_params(args.params)
    if args.overhead is not None and args.overhead < 1:
        raise ConfigError(f"--overhead needs a positive number of rounds, got {args.overhead}")
    plan = explain(engine, args.sql, params, analyze=not args.no_analyze)
    overhead = None
    if args.overhead:
        from bbperf.explain.overhead import explain_overhead

        overhead = explain_overhead(engine, args.sql, params, rounds=args.overhead)
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
    from bbperf.explain.advisor import advise, verify

    engine = engine_from(args)
    advice = advise(engine, args.sql, parse_params(args.params))
    print(advice.text())
    if args.verify:
        print(verify(engine, advice).text())
    return 0
