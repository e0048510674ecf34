"""``bbperf cache start | stop | status``: the result cache's Valkey server under BBPERF_HOME."""

from __future__ import annotations

import argparse

from bbperf.cache.daemons import listener_pid, stop_cache
from bbperf.cache.listener import start_listener
from bbperf.cache.server import CacheServer
from bbperf.cli import print_json, settings_from
from bbperf.cli._engine import engine_from


def register(sub: argparse._SubParsersAction) -> None:
    cache = sub.add_parser(
        "cache",
        help="start, stop and inspect the result cache's Valkey server",
        description="The six-figure metrics' result cache: a Valkey server on a Unix socket under "
        "BBPERF_HOME/cache, and (with --listen) a listener that drops a barber's entry when "
        "the database says their appointments or payments changed.",
    )
    csub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    start = csub.add_parser("start", help="start (or reuse) the cache server")
    start.add_argument(
        "--listen",
        action="store_true",
        help="also install the invalidation triggers on the target and start a listener "
        "process (needed by `bbperf metrics --variant cached --cache-policy invalidate`)",
    )
    start.set_defaults(func=start_cmd)
    stop = csub.add_parser("stop", help="stop the listener and the cache server")
    stop.set_defaults(func=stop_cmd)
    status = csub.add_parser("status", help="show whether the server and listener run, and where")
    status.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    status.set_defaults(func=status_cmd)


def _server(args: argparse.Namespace):
    return CacheServer(settings_from(args).home)


def start_cmd(args: argparse.Namespace) -> int:
    st = _server(args).start()
    print(f"cache server running (pid {st.pid}, {st.version}) on {st.socket}")
    if args.listen:
        pid = start_listener(engine_from(args), settings_from(args).home)
        print(f"invalidation listener running (pid {pid})")
    return 0


def stop_cmd(args: argparse.Namespace) -> int:
    home = settings_from(args).home
    print("stopped" if stop_cache(home) else f"not running ({_server(args).directory})")
    return 0


def status_cmd(args: argparse.Namespace) -> int:
    home = settings_from(args).home
    data = {**_server(args).status().to_dict(), "listener_pid": listener_pid(home)}
    if args.format == "json":
        print_json(data)
        return 0
    for key, value in data.items():
        print(f"{key:18} {'-' if value is None else value}")
    return 0
