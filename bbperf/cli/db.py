"""``bbperf db start | stop | status | url``: the embedded server's lifecycle.

``start`` and ``status`` on a running server load neither SQLAlchemy nor pandas (tens of a second
each): ``stop`` reaches the cache's and the topology's processes through those packages' lazy faces,
so their modules load only when ``stop`` runs.
"""

from __future__ import annotations

import argparse

from bbperf import cache, topology
from bbperf.cli import print_json, settings_from
from bbperf.embedded import EmbeddedServer, resolve_url
from bbperf.shard.servers import stop_shards
from bbperf.urls import mask_url


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="start, stop and inspect the embedded PostgreSQL server")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    dbsub.add_parser("start", help="start (or reuse) the embedded server").set_defaults(
        func=start, queries=False
    )
    dbsub.add_parser(
        "stop",
        help="stop the embedded server (and the replica, shards and pgbouncer bbperf started)",
    ).set_defaults(func=stop)
    dbsub.add_parser("status", help="show whether the server runs, and where").set_defaults(
        func=status, queries=False
    )
    dbsub.add_parser("url", help="print the target URL (password masked)").set_defaults(func=url)


def _server(args: argparse.Namespace) -> EmbeddedServer:
    settings = settings_from(args)
    return EmbeddedServer(settings.home, database=settings.database)


def start(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.database_url:
        print(f"using external server {mask_url(settings.database_url)}; nothing to start")
        return 0
    # The embedded server's URL holds no password (trust over its private socket) and is built
    # in the form mask_url prints (bbperf.urls.socket_url): nothing to mask.
    print(_server(args).start())
    return 0


def stop(args: argparse.Namespace) -> int:
    if cache.stop_cache(settings_from(args).home):  # the result cache bbperf started goes too
        print("cache server stopped")
    server = _server(args)
    for name in stop_shards(server.home):
        print(f"stopped {name}")
    for name in topology.stop_companions(server.home):
        print(f"stopped {name}")
    print("stopped" if server.stop() else f"not running ({server.pgdata})")
    return 0


def status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.database_url:
        print_json({"target": "external", "url": mask_url(settings.database_url)})
        return 0
    print_json({"target": "embedded", **_server(args).status().to_dict()})
    return 0


def url(args: argparse.Namespace) -> int:
    print(mask_url(resolve_url(settings_from(args))))
    return 0
