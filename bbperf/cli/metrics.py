"""``bbperf metrics --user-id N``: one barber's six-figure metrics (or their drift) as JSON."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

from bbperf.cli import MAX_BIGINT, bounded, engine_from, print_json, settings_from
from bbperf.errors import ConfigError
from bbperf.metrics.ladder import LADDER
from bbperf.metrics.model import DEFAULT_TARGET


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
        help="six-figure barber metrics for one barber, by any variant of the ladder",
        description="Print one barber's six-figure metrics as JSON. Windows end at the dataset's "
        "as_of unless --as-of is given.",
    )
    p.add_argument(
        "--user-id", type=bounded(int, 1, MAX_BIGINT), required=True, help="the barber's users.id"
    )
    p.add_argument(
        "--variant",
        default="after",
        help=f"which variant computes the figures: {', '.join(LADDER)}, or cached (reads through "
        "the result cache, `bbperf cache start`, filling it from before; default: after)",
    )
    p.add_argument(
        "--cache-policy",
        choices=("ttl", "invalidate"),
        default="ttl",
        help="with --variant cached: entries expire after 30 s, or are invalidated by the database",
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
    p.add_argument(
        "--check",
        action="store_true",
        help="compare the variant's eight figures with before's; exit 1 on any difference",
    )
    p.add_argument(
        "--build-view",
        action="store_true",
        help="(re)build the materialized view for this as_of first (variant view)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bbperf.asof import as_of_date
    from bbperf.metrics.drift import drift
    from bbperf.metrics.ladder import check_ladder_variant, check_one, ladder_metrics
    from bbperf.metrics.queries import check_barber

    target = _money(args.target)
    if args.as_of is not None:
        as_of_date(args.as_of)  # bad input answered before connecting
    if args.variant != "cached":
        check_ladder_variant(args.variant)
    engine = engine_from(args)
    if args.drift:
        check_barber(engine, args.user_id)
        print_json([d.to_dict() for d in drift(engine, args.user_id, args.as_of, target)])
        return 0
    if args.variant == "cached":
        from bbperf.cache.readthrough import cached_metrics

        metrics, hit = cached_metrics(
            engine, settings_from(args).home, args.user_id, args.cache_policy, target, args.as_of
        )
        print_json({"variant": "cached", "cache": "hit" if hit else "miss", **metrics.to_dict()})
        return 0
    if args.build_view:
        from bbperf.metrics.queries import resolve_as_of
        from bbperf.metrics.variants import create_metrics_view

        create_metrics_view(engine, resolve_as_of(engine, args.as_of))
    if args.check:
        verdict = check_one(engine, args.user_id, args.variant, args.as_of)
        print_json(verdict)
        return 0 if verdict["equivalent"] else 1
    metrics = ladder_metrics(engine, args.user_id, args.variant, target, args.as_of)
    print_json({"variant": args.variant, **metrics.to_dict()})
    return 0
