"""``bbperf metrics``: one barber's six-figure metrics (or their drift) as JSON; ``--check`` proves
the ladder's variants equal to before over every barber (or a seeded sample); ``--server-time``
prints a variant's mean server time per call from pg_stat_statements."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from bbperf.asof import as_of_date
from bbperf.cache.readthrough import cached_metrics
from bbperf.cli import MAX_BIGINT, bounded, print_json, settings_from
from bbperf.cli._engine import engine_from
from bbperf.errors import ConfigError
from bbperf.metrics.drift import drift
from bbperf.metrics.ladder import (
    EQUIVALENT,
    LADDER,
    check_ladder,
    check_ladder_variant,
    check_one,
    ladder_metrics,
)
from bbperf.metrics.model import DEFAULT_TARGET
from bbperf.metrics.queries import barber_sample, check_barber, resolve_as_of
from bbperf.metrics.servertime import server_time
from bbperf.metrics.variant_timing import pick_barbers
from bbperf.metrics.variants import create_metrics_view

if TYPE_CHECKING:
    from sqlalchemy import Engine


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
        "--user-id",
        type=bounded(int, 1, MAX_BIGINT),
        help="the barber's users.id (required, except with --check or --server-time)",
    )
    p.add_argument(
        "--variant",
        default=None,
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
        help="compare the variant's eight figures with before's; exit 1 on any difference. "
        "Without --user-id: every equivalent variant (or --variant) for every barber (or "
        "--barbers N), one line per differing figure",
    )
    p.add_argument(
        "--barbers",
        type=bounded(int, 0, MAX_BIGINT),
        default=0,
        help="with --check and no --user-id: a sample of N barbers drawn with --seed that always "
        "holds the busiest (default 0: every barber)",
    )
    p.add_argument(
        "--seed", type=bounded(int, 0, MAX_BIGINT), default=42, help="seed of --barbers' sample"
    )
    p.add_argument(
        "--server-time",
        action="store_true",
        help="the variant's mean server time per call from pg_stat_statements (the median "
        "barber unless --user-id)",
    )
    p.add_argument(
        "--calls",
        type=bounded(int, 1, 100_000),
        default=200,
        help="with --server-time: calls measured, in 5 batches (default 200)",
    )
    p.add_argument(
        "--format",
        choices=("json", "text"),
        default=None,
        help="json or text, for --check without --user-id (default text) and --server-time "
        "(default json); every other output is JSON",
    )
    p.add_argument(
        "--build-view",
        action="store_true",
        help="(re)build the materialized view for this as_of first (variant view)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = _money(args.target)
    # Bad input answered before connecting; the library reads the dataset's as_of when None.
    as_of = as_of_date(args.as_of) if args.as_of is not None else None
    if args.variant is not None and args.variant != "cached":
        check_ladder_variant(args.variant)
    if args.user_id is None and not (args.check or args.server_time):
        raise ConfigError("--user-id is required (except with --check or --server-time)")
    engine = engine_from(args)
    if args.server_time:
        return _server_time(engine, args)
    if args.check and args.user_id is None:
        return _check_ladder(engine, args)
    variant = args.variant or "after"
    if args.drift:
        check_barber(engine, args.user_id)
        print_json([d.to_dict() for d in drift(engine, args.user_id, as_of, target)])
        return 0
    if variant == "cached":
        metrics, hit = cached_metrics(
            engine, settings_from(args).home, args.user_id, args.cache_policy, target, as_of
        )
        print_json({"variant": "cached", "cache": "hit" if hit else "miss", **metrics.to_dict()})
        return 0
    if args.build_view:
        create_metrics_view(engine, resolve_as_of(engine, as_of))
    if args.check:
        verdict = check_one(engine, args.user_id, variant, as_of)
        print_json(verdict)
        return 0 if verdict["equivalent"] else 1
    metrics = ladder_metrics(engine, args.user_id, variant, target, as_of)
    print_json({"variant": variant, **metrics.to_dict()})
    return 0


def _check_ladder(engine: Engine, args: argparse.Namespace) -> int:
    """``--check`` without ``--user-id``: every variant (or ``--variant``) over the barbers."""
    if args.build_view:
        create_metrics_view(engine, resolve_as_of(engine, args.as_of))
    variants = EQUIVALENT if args.variant is None else (args.variant,)
    found = check_ladder(
        engine, barber_sample(engine, args.barbers, args.seed), variants, args.as_of
    )
    if args.format == "json":
        print_json(found.to_dict())
    else:
        print("\n".join(found.lines()))
    return 0 if found.equivalent else 1


def _server_time(engine: Engine, args: argparse.Namespace) -> int:
    """``--server-time``: pg_stat_statements' mean per call, for ``--user-id`` or the median barber."""
    variant = args.variant or "after"
    if variant == "cached":
        raise ConfigError("--server-time times a ladder variant, not the cache")
    when = resolve_as_of(engine, args.as_of)
    if args.user_id is not None:
        check_barber(engine, args.user_id)
        barber, user_id = "given", args.user_id
    else:
        picks = pick_barbers(engine, when, 2)
        if not picks:
            raise ConfigError("no barber has appointments to time: generate a dataset first")
        pick = picks[-1]
        barber, user_id = pick.label, pick.user_id
    found = server_time(engine, variant, user_id, when, calls=args.calls)
    if args.format == "text":
        print(
            f"{variant}: {found.mean_ms:.3f} ms per call on the server (pg_stat_statements mean "
            f"over {found.calls} calls; batch means {found.min_batch_ms:.3f}–"
            f"{found.max_batch_ms:.3f} ms), {barber} barber {user_id}"
        )
    else:
        print_json({"barber": barber, "as_of": when.isoformat(), **found.to_dict()})
    return 0
