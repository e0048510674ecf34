"""How much the health server holds, from 32 loopback clients in a process of their own.

    python benchmarks/health.py [--clients 32] [--rate 10] [--duration 5] [--requests 50]

Serves both routes for the embedded server (or ``BBPERF_DATABASE_URL``) on a loopback port, then per
route: ``poll`` (open loop: each client GETs every 1/rate s on a fixed schedule, latency counted from
the scheduled time: what health checks do) and ``hammer`` (closed loop: back to back, which measures
throughput; its latency is clients ÷ throughput by Little's law). Prints requests/s, p50/p95/p99 and
the answers that were not 200. The logic lives in ``bbperf.pool.httpload``.
"""

from __future__ import annotations

import argparse
import json
import os

from bbperf.pool.http import ROUTES, make_server, serve_in_thread
from bbperf.pool.httpload import hammer, poll
from bbperf.target import connect


def measure(clients: int, rate: float, duration: float, requests: int) -> list[dict[str, object]]:
    engine = connect(echo_pool=False)
    server = make_server(engine, port=0)
    serve_in_thread(server)
    rows = []
    try:
        for route in ROUTES:
            url = server.url + route
            for load in (
                poll(url, clients=clients, rate_hz=rate, duration_s=duration),
                hammer(url, clients=clients, requests=requests),
            ):
                rows.append({"route": route, **load.to_dict()})
    finally:
        server.shutdown()
        server.server_close()
        engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=10.0, help="GETs per second per poller")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of polling")
    parser.add_argument("--requests", type=int, default=50, help="GETs per client, closed loop")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = measure(args.clients, args.rate, args.duration, args.requests)
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(
        "route                      mode    clients requests  req/s  p50 ms  p95 ms  p99 ms  not 200"
    )
    for r in rows:
        print(
            f"{r['route']:<26} {r['mode']:<7} {r['clients']:>7} {r['requests']:>8} {r['rps']:>6.0f} "
            f"{r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['not_200']:>8}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
