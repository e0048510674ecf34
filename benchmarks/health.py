"""How much the health server holds: requests/s and latency percentiles at N concurrent clients.

    python benchmarks/health.py --clients 8 32 --requests 50

Serves ``/api/v1/health/detailed`` for the embedded server on a loopback port, lets each client
thread send ``--requests`` GETs back to back, and prints per client count: requests/s, p50/p95/p99
latency and how many answers were not 200. Client and server share this machine's cores.
"""

from __future__ import annotations

import argparse
import threading
import time
import urllib.error
import urllib.request

from bbperf.explain.stats import summarize
from bbperf.pool.http import make_server, serve_in_thread
from bbperf.target import connect


def run(clients: int, requests: int, url: str) -> dict[str, float]:
    latencies: list[float] = []
    not_ok = 0
    lock = threading.Lock()

    def client() -> None:
        nonlocal not_ok
        for _ in range(requests):
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    response.read()
                    ok = response.status == 200
            except urllib.error.HTTPError:
                ok = False
            elapsed_ms = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed_ms)
                not_ok += 0 if ok else 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall_s = time.perf_counter() - started
    stats = summarize(latencies)
    return {
        "clients": clients,
        "requests": len(latencies),
        "rps": len(latencies) / wall_s,
        "p50_ms": stats.median,
        "p95_ms": stats.p95,
        "p99_ms": stats.p99,
        "not_200": not_ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--requests", type=int, default=50, help="GETs per client")
    args = parser.parse_args()
    engine = connect(echo_pool=False)
    server = make_server(engine, port=0)
    serve_in_thread(server)
    try:
        url = server.url + "/api/v1/health/detailed"
        print("clients  requests  req/s   p50 ms   p95 ms   p99 ms  not 200")
        for clients in args.clients:
            r = run(clients, args.requests, url)
            print(
                f"{r['clients']:>7}  {r['requests']:>8}  {r['rps']:>6.0f}  {r['p50_ms']:>7.1f}  "
                f"{r['p95_ms']:>7.1f}  {r['p99_ms']:>7.1f}  {r['not_200']:>7}"
            )
    finally:
        server.shutdown()
        server.server_close()
        engine.dispose()


if __name__ == "__main__":
    main()
