"""``bbperf replica start | stop | status``: a streaming hot standby of the embedded server."""

from __future__ import annotations

import argparse
import os

from bbperf.cli import MAX_SECONDS, bounded, print_json, settings_from
from bbperf.embedded import resolve_url
from bbperf.errors import ConfigError, ServerError
from bbperf.topology.replica import REPLICA_URL_ENV, EmbeddedReplica
from bbperf.topology.replicatarget import is_embedded_primary, replica_status
from bbperf.urls import mask_url


def register(sub: argparse._SubParsersAction) -> None:
    replica = sub.add_parser(
        "replica", help="a streaming read replica of the embedded server (or one you name)"
    )
    rsub = replica.add_subparsers(dest="replica_command", metavar="ACTION", required=True)
    start = rsub.add_parser("start", help="create (pg_basebackup -R) and start the replica")
    start.add_argument(
        "--port",
        type=bounded(int, 1024, 65535),
        default=5433,
        help="the replica's socket port (default 5433)",
    )
    start.add_argument(
        "--no-hot-standby-feedback",
        action="store_true",
        help="let the primary's VACUUM cancel long replica queries instead of bloating the primary",
    )
    start.set_defaults(func=start_replica)
    stop = rsub.add_parser("stop", help="stop the replica bbperf started")
    stop.add_argument("--remove", action="store_true", help="also delete its data directory")
    stop.set_defaults(func=stop_replica)
    status = rsub.add_parser("status", help="state and replay lag (bytes and seconds)")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.add_argument(
        "--max-lag-s",
        type=bounded(float, 0, MAX_SECONDS),
        default=10.0,
        help="flag the replica as lagging beyond this many seconds (default 10; exit 1)",
    )
    status.set_defaults(func=show_status)
    for parser in (start, stop, status):
        parser.add_argument(
            "--replica-url",
            metavar="URL",
            help="an existing replica of an external primary (env: BBPERF_REPLICA_URL)",
        )


def _named(args: argparse.Namespace) -> str | None:
    return args.replica_url or os.environ.get(REPLICA_URL_ENV) or None


def start_replica(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    named = _named(args)
    if named:
        print(f"using external replica {mask_url(named)}; nothing to start")
        return 0
    if settings.database_url and not is_embedded_primary(settings.database_url, settings.home):
        raise ConfigError(
            "bbperf creates replicas only of its embedded server; for "
            f"{mask_url(settings.database_url)} name an existing replica with {REPLICA_URL_ENV} "
            "or --replica-url"
        )
    replica = EmbeddedReplica(
        settings.home,
        port=args.port,
        hot_standby_feedback=not args.no_hot_standby_feedback,
        database=settings.database,
    )
    print(mask_url(replica.start()))
    return 0


def stop_replica(args: argparse.Namespace) -> int:
    if _named(args):
        print("the replica is external: bbperf never stops it")
        return 0
    replica = EmbeddedReplica(settings_from(args).home)
    stopped = replica.stop(remove=args.remove)
    print("stopped" if stopped else f"not running ({replica.pgdata})")
    return 0


def show_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        primary: str | None = resolve_url(settings, start=False)
    except ServerError:
        primary = None
    status = replica_status(primary, settings.home, args.replica_url, max_lag_s=args.max_lag_s)
    if args.format == "json":
        print_json(status.to_dict())
    else:
        for key, value in status.to_dict().items():
            if key != "warnings" and value is not None:
                print(f"{key:<21} {value}")
        for warning in status.warnings:
            print(f"warning: {warning}")
    return 1 if status.lagging else 0
