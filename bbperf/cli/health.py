"""``bbperf health``, ``bbperf serve`` and ``bbperf pool load``: health checks and pools under load."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import Engine

from bbperf.cli import (
    MAX_SECONDS,
    MAX_WORKERS,
    bounded,
    print_json,
    print_table,
    seconds,
    settings_from,
)
from bbperf.cli._engine import engine_from
from bbperf.errors import ConfigError
from bbperf.pool import pool_costs
from bbperf.pool.describe import ENVIRONMENTS
from bbperf.pool.health import health_basic, health_detailed
from bbperf.pool.http import LOOPBACK, make_server
from bbperf.pool.loadtest import validate
from bbperf.target import engine_for
from bbperf.topology.bouncerload import pool_load_via


def register(sub: argparse._SubParsersAction) -> None:
    health = sub.add_parser(
        "health", help="print the detailed health check as JSON (exit 1 when unhealthy)"
    )
    _environment(health)
    health.add_argument(
        "--basic", action="store_true", help="only the database round trip (/api/v1/health)"
    )
    health.set_defaults(func=show_health)

    serve = sub.add_parser(
        "serve", help="serve /api/v1/health and /api/v1/health/detailed over HTTP"
    )
    _environment(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.set_defaults(func=serve_health)


def register_pool_load(psub: argparse._SubParsersAction) -> None:
    """Add ``load`` to ``bbperf pool`` (called from bbperf.cli.pool)."""
    load = psub.add_parser(
        "load", help="run concurrent workers through each environment's pool and print the figures"
    )
    load.add_argument(
        "--environment",
        "-e",
        action="append",
        help=f"one of {', '.join(ENVIRONMENTS)} (repeatable; default development)",
    )
    load.add_argument(
        "--concurrency",
        "-c",
        default="1,4,16,64",
        type=_levels,
        help="comma-separated worker counts (default 1,4,16,64)",
    )
    load.add_argument(
        "--duration",
        type=seconds(),
        default=2.0,
        help="seconds per step (default 2; at most a day)",
    )
    load.add_argument(
        "--workload",
        default="select1",
        help="select1, sleep_5ms, point_lookup (needs a dataset) or any SQL text",
    )
    load.add_argument(
        "--pool-timeout",
        type=bounded(float, 0, MAX_SECONDS),
        help="override pool_timeout_s for every environment",
    )
    load.add_argument(
        "--pool-size",
        type=bounded(int, 0, MAX_WORKERS),
        help="override pool_size for every environment",
    )
    load.add_argument(
        "--max-overflow",
        type=bounded(int, 0, MAX_WORKERS),
        help="override max_overflow for every environment",
    )
    load.add_argument(
        "--via",
        choices=("direct", "pgbouncer"),
        default="direct",
        help="connect directly (default) or through bbperf's pgbouncer (started for the run)",
    )
    load.add_argument(
        "--costs",
        type=bounded(int, 1, 100_000),
        metavar="ROUNDS",
        help="also measure pre-ping and connection-setup cost over ROUNDS requests",
    )
    load.add_argument(
        "--format", choices=("text", "json"), default="text", help="tables (default) or JSON"
    )
    load.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    load.set_defaults(func=pool_load)


def _environment(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--environment",
        "-e",
        default="development",
        help=f"pool settings: one of {', '.join(ENVIRONMENTS)} (default development)",
    )


def _levels(value: str) -> list[int]:
    """Whole numbers up to MAX_WORKERS; levels below 1 are refused by ``pool.loadtest.validate``."""
    level = bounded(int, -MAX_WORKERS, MAX_WORKERS)
    return [level(part.strip()) for part in value.split(",") if part.strip()]


def _health_engine(args: argparse.Namespace) -> Engine:
    """An unchecked engine: reporting a database that is down is the point of these commands."""
    return engine_for(
        settings_from(args), args.environment, check=False, echo_pool=False, connect_timeout_s=5
    )


def show_health(args: argparse.Namespace) -> int:
    engine = _health_engine(args)
    report = health_basic(engine) if args.basic else health_detailed(engine)
    engine.dispose()
    print_json(report)
    return 1 if report["status"] == "unhealthy" else 0


def serve_health(args: argparse.Namespace) -> int:
    server = make_server(_health_engine(args), args.host, args.port)
    if args.host != LOOPBACK:
        print(f"warning: serving health details on {args.host}, not loopback", file=sys.stderr)
    print(f"serving {server.url}/api/v1/health and /api/v1/health/detailed (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        server.engine.dispose()
    return 0


def pool_load(args: argparse.Namespace) -> int:
    validate(args.environment or ["development"], args.concurrency, args.duration)
    given = {
        "pool_timeout_s": args.pool_timeout,
        "pool_size": args.pool_size,
        "max_overflow": args.max_overflow,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    for name in ("pool_size", "max_overflow"):
        if overrides.get(name, 0) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be 0 or more")
    target = engine_from(args)
    frame = pool_load_via(
        target,
        environments=args.environment or ["development"],
        concurrency=args.concurrency,
        duration_s=args.duration,
        workload=args.workload,
        via=args.via,
        home=settings_from(args).home,
        **overrides,
    )
    costs = pool_costs(target, args.costs) if args.costs else None
    if args.format == "json":
        # NaN is not JSON: steps that served nothing have no percentiles.
        out = {"load": frame.astype(object).where(frame.notna(), None).to_dict(orient="records")}
        if costs is not None:
            out["costs"] = costs.to_dict(orient="records")
        print_json(out)
        return 0
    columns = [
        "environment",
        "concurrency",
        "throughput_rps",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "checkout_wait_p95_ms",
        "pool_timeouts",
        "server_refusals",
        "overflow_used",
        "server_connections_peak",
        "status",
    ]
    print_table(frame[columns].round(3).to_dict(orient="records"))
    for row in frame.itertuples():
        for line in [*row.notes, *row.warnings]:
            print(f"{row.environment} c={row.concurrency}: {line}")
    if costs is not None:
        print()
        print_table(costs.drop(columns="samples_ms").round(3).to_dict(orient="records"))
    return 0
