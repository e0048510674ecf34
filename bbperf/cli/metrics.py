"""``bbperf metrics --user-id N``: one barber's six-figure metrics (or their drift) as JSON."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

from bbperf.cli import engine_from, print_json
from bbperf.errors import ConfigError
from bbperf.metrics.model import DEFAULT_TARGET
from bbperf.metrics.queries import VARIANTS


def _money(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"--target {value!r} is not an amount such as 100000") from None
    if not amount.is_finite() or amount <= 0:
        raise ConfigError(f"--target {value!r} must be a positive amount")
    if amount > MAX_TARGET:
        raise ConfigError(f"--target {value!r} is above {MAX_TARGET:,} dollars a year")
    return amount


MAX_TARGET = Decimal("1000000000000")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "metrics",
        help="six-figure barber metrics for one barber (before / after / after_equivalent SQL)",
        description="Print one barber's six-figure metrics as JSON. Windows end at the dataset's "
        "as_of unless --as-of is given.",
    )
    p.add_argument("--user-id", type=int, required=True, help="the barber's users.id")
    p.add_argument(
        "--variant",
        choices=VARIANTS,
        default="after",
        help="which SQL computes the figures (default: after, the CTE rewrite)",
    )
    p.add_argument(
        "--target",
        default=str(DEFAULT_TARGET),
        help="annual income target in dollars (default: 100000)",
    )
    p.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="end of the 30/365-day windows (default: the dataset's as_of)",
    )
    p.add_argument(
        "--drift",
        action="store_true",
        help="print the metrics that differ between before and after, with reasons",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bbperf.asof import as_of_date
    from bbperf.metrics.drift import drift
    from bbperf.metrics.queries import check_barber, six_figure_metrics

    target = _money(args.target)
    if args.as_of is not None:
        as_of_date(args.as_of)  # bad input answered before connecting
    engine = engine_from(args)
    if args.drift:
        check_barber(engine, args.user_id)
        print_json([d.to_dict() for d in drift(engine, args.user_id, args.as_of, target)])
        return 0
    metrics = six_figure_metrics(engine, args.user_id, args.variant, target, args.as_of)
    print_json({"variant": args.variant, **metrics.to_dict()})
    return 0
