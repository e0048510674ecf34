"""``bbperf rollup apply | drop | status | price``: the six-figure metrics' per-barber running totals."""

from __future__ import annotations

import argparse

from bbperf.cli import bounded, print_json
from bbperf.cli._engine import engine_from
from bbperf.metrics.prices import trigger_cost
from bbperf.metrics.rollup import apply_rollup, drop_rollup, rollup_status


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollup",
        help="the metrics rollup: per-barber running totals kept current by triggers",
        description="Build, drop, inspect or price <schema>.metrics_running, the table the "
        "`rollup` variant of `bbperf metrics` reads.",
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
    price = actions.add_parser(
        "price",
        help="write latency with no, row and statement triggers (every write rolled back)",
        description="Time a booking, a booking back-dated 300 days, a status change, a refund and "
        "a batch insert with each trigger mode; the rollup is built at most once and left as found.",
    )
    price.add_argument(
        "--rounds", type=bounded(int, 2, 10_000), default=30, help="timed rounds per write and mode"
    )
    price.add_argument(
        "--batch-rows", type=bounded(int, 1, 100_000), default=1000, help="rows of the batch insert"
    )
    price.set_defaults(func=run_price)


def run_apply(args: argparse.Namespace) -> int:
    print_json(apply_rollup(engine_from(args), args.mode))
    return 0


def run_drop(args: argparse.Namespace) -> int:
    print("dropped" if drop_rollup(engine_from(args)) else "not installed; nothing to drop")
    return 0


def run_status(args: argparse.Namespace) -> int:
    print_json(rollup_status(engine_from(args)))
    return 0


def run_price(args: argparse.Namespace) -> int:
    table = trigger_cost(engine_from(args), rounds=args.rounds, batch_rows=args.batch_rows)
    print_json(table.to_dict(orient="records"))
    return 0
