"""``bbperf pool show --environment NAME``: the effective pool configuration, secret-free."""

from __future__ import annotations

import argparse

from bbperf.cli import print_json, settings_from
from bbperf.cli.health import register_pool_load
from bbperf.embedded import resolve_url
from bbperf.pool.describe import ENVIRONMENTS, describe, pool_config


def register(sub: argparse._SubParsersAction) -> None:
    pool = sub.add_parser("pool", help="connection pool configurations")
    psub = pool.add_subparsers(dest="pool_command", metavar="ACTION", required=True)
    show = psub.add_parser("show", help="print an environment's effective pool config as JSON")
    show.add_argument(
        "--environment", "-e", default="development", help=f"one of {', '.join(ENVIRONMENTS)}"
    )
    show.set_defaults(func=show_config)
    register_pool_load(psub)


def show_config(args: argparse.Namespace) -> int:
    config = pool_config(args.environment)
    print_json(describe(config, resolve_url(settings_from(args))))
    return 0
