"""``bbperf pgbouncer start | stop | status``: PgBouncer (transaction pooling) in front of the target."""

from __future__ import annotations

import argparse

from bbperf.cli import MAX_WORKERS, bounded, print_json, settings_from
from bbperf.embedded import resolve_url
from bbperf.errors import ServerError
from bbperf.topology.pgbouncer import PgBouncer, find_binary
from bbperf.urls import mask_url


def register(sub: argparse._SubParsersAction) -> None:
    bouncer = sub.add_parser(
        "pgbouncer", help="run the system pgbouncer in front of the target (transaction pooling)"
    )
    bsub = bouncer.add_subparsers(dest="pgbouncer_command", metavar="ACTION", required=True)
    start = bsub.add_parser("start", help="generate a config under BBPERF_HOME and start pgbouncer")
    start.add_argument(
        "--pool-mode",
        choices=("transaction", "session", "statement"),
        default="transaction",
        help="when a server connection returns to the pool (default transaction)",
    )
    start.add_argument(
        "--default-pool-size",
        type=bounded(int, 1, MAX_WORKERS),
        default=20,
        help="server connections per database and user (default 20)",
    )
    start.add_argument(
        "--max-client-conn",
        type=bounded(int, 1, 100_000),
        default=1100,
        help="client connections pgbouncer accepts (default 1100; needs as many open files)",
    )
    start.set_defaults(func=start_bouncer)
    bsub.add_parser("stop", help="stop the pgbouncer bbperf started").set_defaults(
        func=stop_bouncer
    )
    status = bsub.add_parser("status", help="state, pools and session-state warnings")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(func=show_status)
    for parser in (start, status):
        parser.add_argument(
            "--binary", metavar="PATH", help="the pgbouncer program (default: PATH, /usr/sbin)"
        )


def start_bouncer(args: argparse.Namespace) -> int:
    find_binary(args.binary)  # one line and exit 2 before anything starts
    settings = settings_from(args)
    bouncer = PgBouncer(settings.home, binary=args.binary)
    url = bouncer.start(
        resolve_url(settings),
        schema=settings.schema,
        pool_mode=args.pool_mode,
        default_pool_size=args.default_pool_size,
        max_client_conn=args.max_client_conn,
    )
    print(mask_url(url))
    return 0


def stop_bouncer(args: argparse.Namespace) -> int:
    bouncer = PgBouncer(settings_from(args).home)
    print("stopped" if bouncer.stop() else f"not running ({bouncer.directory})")
    return 0


def show_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        target: str | None = resolve_url(settings, start=False)
    except ServerError:
        target = None
    status = PgBouncer(settings.home, binary=args.binary).status(target)
    if args.format == "json":
        print_json(status.to_dict())
        return 0
    for key, value in status.to_dict().items():
        if key not in ("warnings", "pools") and value is not None:
            print(f"{key:<18} {value}")
    for pool in status.pools:
        print("pool  " + "  ".join(f"{k}={v}" for k, v in pool.items()))
    for warning in status.warnings:
        print(f"warning: {warning}")
    return 0
