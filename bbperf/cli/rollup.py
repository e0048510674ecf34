"""``bbperf rollup apply | drop | status``: the six-figure metrics' per-barber, per-day summary table."""

from __future__ import annotations

import argparse

from bbperf.cli import engine_from, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollup",
        help="the metrics rollup: a per-barber, per-day summary kept current by triggers",
        description="Build, drop or inspect <schema>.metrics_daily, the table the `rollup` "
        "variant of `bbperf metrics` reads.",
    )
    actions = p.add_subparsers(dest="rollup_command", metavar="ACTION", required=True)
    apply = actions.add_parser(
        "apply", help="(re)build the table from the data and install its triggers"
    )
    apply.add_argument(
        "--mode",
        default="statement",
        help="statement (default): one trigger per statement, with transition tables; "
        "row: one trigger call per changed row",
    )
    apply.set_defaults(func=run_apply)
    actions.add_parser("drop", help="drop the triggers, functions and table").set_defaults(
        func=run_drop
    )
    actions.add_parser("status", help="installed or not, trigger mode, rows, size").set_defaults(
        func=run_status
    )


def run_apply(args: argparse.Namespace) -> int:
    from bbperf.metrics.rollup import apply_rollup

    print_json(apply_rollup(engine_from(args), args.mode))
    return 0


def run_drop(args: argparse.Namespace) -> int:
    from bbperf.metrics.rollup import drop_rollup

    print("dropped" if drop_rollup(engine_from(args)) else "not installed; nothing to drop")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from bbperf.metrics.rollup import rollup_status

    print_json(rollup_status(engine_from(args)))
    return 0
