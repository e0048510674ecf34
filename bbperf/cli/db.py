"""``bbperf db start | stop | status | url``: the embedded server's lifecycle."""

from __future__ import annotations

import argparse

from bbperf.cli import print_json, settings_from
from bbperf.embedded import EmbeddedServer
from bbperf.target import resolve_url
from bbperf.urls import mask_url


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="start, stop and inspect the embedded PostgreSQL server")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    dbsub.add_parser("start", help="start (or reuse) the embedded server").set_defaults(func=start)
    dbsub.add_parser(
        "stop", help="stop the embedded server (and the replica and pgbouncer bbperf started)"
    ).set_defaults(func=stop)
    dbsub.add_parser("status", help="show whether the server runs, and where").set_defaults(
        func=status
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
    print(mask_url(_server(args).start()))
    return 0


def stop(args: argparse.Namespace) -> int:
    from bbperf.cache.listener import stop_cache
    from bbperf.topology.companions import stop_companions

    if stop_cache(settings_from(args).home):  # the result cache bbperf started goes too
        print("cache server stopped")
    server = _server(args)
    for name in stop_companions(server.home):
        print(f"stopped {name}")
    print("stopped" if server.stop() else f"not running ({server.pgdata})")
    return 0


def status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.database_url:
        print_json({"target": "external", "url": mask_url(settings.database_url)})
        return 0
    st = _server(args).status()
    print_json({"target": "embedded", **st.__dict__})
    return 0


def url(args: argparse.Namespace) -> int:
    print(mask_url(resolve_url(settings_from(args))))
    return 0
