"""``bbperf shard start | stop | status | apply | drop``: shard servers beside the embedded server, and
appointments and payments hash-partitioned over postgres_fdw foreign tables on them (docs/scale.md)."""

from __future__ import annotations

import argparse

from bbperf.cli import bounded, print_json, print_table, settings_from
from bbperf.cli._engine import engine_from
from bbperf.errors import ConfigError
from bbperf.shard.layout import BY_CHOICES, ShardChange, apply, drop, layout_status
from bbperf.shard.servers import (
    MAX_SHARDS,
    running_shard_urls,
    shard_statuses,
    start_shards,
    stop_shards,
)
from bbperf.target import is_embedded
from bbperf.urls import mask_url


def register(sub: argparse._SubParsersAction) -> None:
    shard = sub.add_parser(
        "shard",
        help="shard appointments and payments over postgres_fdw (shard servers, apply, drop)",
        description="Shards are extra embedded servers under BBPERF_HOME/shards, or servers you "
        "name with --shard-url; see docs/scale.md.",
    )
    ssub = shard.add_subparsers(dest="shard_command", metavar="ACTION", required=True)
    start = ssub.add_parser("start", help="start N shard servers (created on first use)")
    start.add_argument(
        "--shards",
        type=bounded(int, 1, MAX_SHARDS),
        required=True,
        help=f"how many shards (1 to {MAX_SHARDS})",
    )
    start.set_defaults(func=start_command)
    stop = ssub.add_parser("stop", help="stop the shard servers bbperf started")
    stop.add_argument("--remove", action="store_true", help="also delete their data directories")
    stop.set_defaults(func=stop_command)
    status = ssub.add_parser(
        "status", help="which shards run, and how the tables are sharded (exit 1: a shard is down)"
    )
    status.set_defaults(func=status_command)
    ap = ssub.add_parser(
        "apply", help="hash-partition appointments and payments over foreign tables on the shards"
    )
    ap.add_argument("--by", choices=BY_CHOICES, default="barber", help="shard key (default barber)")
    ap.set_defaults(func=apply_command)
    dr = ssub.add_parser(
        "drop", help="bring the rows back into plain tables; remove what apply made"
    )
    dr.set_defaults(func=drop_command)
    for parser in (start, stop, status, ap, dr):
        parser.add_argument("--format", choices=("text", "json"), default="text")
    for parser in (status, ap, dr):
        parser.add_argument(
            "--shard-url",
            action="append",
            metavar="URL",
            help="a shard server you run (repeat per shard; default: bbperf's running shards)",
        )


def start_command(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.database_url:
        raise ConfigError(
            "bbperf starts shards only beside its embedded server; for an external coordinator "
            "name your shard servers with --shard-url"
        )
    urls = start_shards(settings.home, args.shards, settings.database)
    if args.format == "json":
        print_json({"shards": urls})
    else:
        for index, url in enumerate(urls):
            print(f"shard{index} {url}")
    return 0


def stop_command(args: argparse.Namespace) -> int:
    stopped = stop_shards(settings_from(args).home, remove=args.remove)
    if args.format == "json":
        print_json({"stopped": stopped})
    else:
        print(f"stopped {', '.join(stopped)}" if stopped else "no shard was running")
    return 0


def _shard_urls(args: argparse.Namespace) -> list[str]:
    """--shard-url as given, else bbperf's running shards (only beside its embedded server)."""
    if args.shard_url:
        return list(args.shard_url)
    engine = engine_from(args)
    if not is_embedded(engine):
        raise ConfigError(
            "the coordinator is not bbperf's embedded server: name its shards with --shard-url"
        )
    settings = settings_from(args)
    return running_shard_urls(settings.home, engine.url.database or settings.database)


def _report(change: ShardChange, args: argparse.Namespace) -> int:
    if args.format == "json":
        print_json(change.to_dict())
        return 0
    print(
        f"{change.action} by {change.by} over {len(change.shards)} shards in {change.seconds:.1f} s"
    )
    print_table([{"table": t, "rows": n} for t, n in change.rows.items()])
    for item in change.removed:
        print(f"removed {item}")
    return 0


def apply_command(args: argparse.Namespace) -> int:
    return _report(apply(engine_from(args), _shard_urls(args), args.by), args)


def drop_command(args: argparse.Namespace) -> int:
    return _report(drop(engine_from(args), args.shard_url), args)


def status_command(args: argparse.Namespace) -> int:
    engine = engine_from(args)
    # bbperf's own shard servers serve only its embedded coordinator.
    own = is_embedded(engine) and not args.shard_url
    servers = [s.to_dict() for s in shard_statuses(settings_from(args).home)] if own else []
    layout = layout_status(engine)
    # A stopped shard server is down only while the tables are sharded over it.
    down = [s["shard"] for s in servers if not s["running"]] if layout.sharded else []
    down += [f"shard{s['shard']}" for s in layout.unreachable if f"shard{s['shard']}" not in down]
    if args.format == "json":
        print_json({"servers": servers, "layout": layout.to_dict(), "down": down})
        return 1 if down else 0
    for server in servers:
        where = (
            f"pid {server['pid']}, port {server['port']}" if server["running"] else "NOT RUNNING"
        )
        print(f"{server['shard']:<8} {where} ({server['data_dir']})")
    if not layout.sharded:
        print(f"appointments and payments in {layout.schema} are not sharded")
    else:
        keys = ", ".join(f"{t} by {k}" for t, k in layout.keys.items())
        print(f"sharded by {layout.by} ({keys}) over {len(layout.shards)} shards")
        print_table(
            [
                {
                    "shard": s["shard"],
                    "url": mask_url(s["url"]),
                    "appointments": s.get("appointments_rows", ""),
                    "payments": s.get("payments_rows", ""),
                    "reachable": "yes" if s["reachable"] else "NO",
                }
                for s in layout.shards
            ]
        )
    for name in down:
        print(f"{name} is down: `bbperf shard start` restarts bbperf's own shards")
    return 1 if down else 0
