"""Load on the health server from loopback clients in a process of their own, two ways.

- ``poll``: open loop, what health checks do. Each of ``clients`` threads sends a GET every
  ``1 / rate_hz`` seconds on a fixed schedule for ``duration_s``. Latency counts from the *scheduled*
  send time, so a slow answer that delays the next request is charged to that request too (no
  coordinated omission).
- ``hammer``: closed loop. Each client sends its next GET as soon as the previous answer arrives:
  this measures throughput; its latency is concurrency ÷ throughput by Little's law, whatever the
  server does per request.

Clients run in a spawned process, so their own Python work does not share the server's interpreter
lock. Only loopback addresses are accepted, and clients, rate, duration and requests are bounded.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bbperf.errors import ConfigError
from bbperf.explain.timingstats import summarize

MAX_CLIENTS = 256
MAX_RATE_HZ = 1000.0
MAX_DURATION_S = 600.0
MAX_REQUESTS = 100_000
_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class HttpLoad:
    """What a load run measured: client latencies (ms), answers that were not 200, wall time."""

    mode: str
    clients: int
    latencies_ms: tuple[float, ...]
    not_200: int
    wall_s: float

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        stats = summarize(list(self.latencies_ms))
        return {
            "mode": self.mode,
            "clients": self.clients,
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "p50_ms": round(stats.median, 2),
            "p95_ms": round(stats.p95, 2),
            "p99_ms": round(stats.p99, 2),
            "not_200": self.not_200,
        }


def check_loopback(url: str) -> str:
    """``url`` when it is http:// to a loopback address, else ConfigError: load goes nowhere else."""
    parts = urlsplit(url)
    try:
        loopback = parts.scheme == "http" and ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"load is sent to http:// loopback addresses only, not {url!r}")
    return url


def _bounded(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value:g}")


def poll(
    url: str, *, clients: int = 32, rate_hz: float = 10.0, duration_s: float = 5.0
) -> HttpLoad:
    """Open loop: ``clients`` pollers at ``rate_hz`` each for ``duration_s`` (see the module)."""
    check_loopback(url)
    _bounded("clients", clients, 1, MAX_CLIENTS)
    _bounded("rate", rate_hz, 0.1, MAX_RATE_HZ)
    _bounded("duration", duration_s, 0.1, MAX_DURATION_S)
    return _in_client_process(_poll, url, clients, rate_hz, duration_s)


def hammer(url: str, *, clients: int = 32, requests: int = 50) -> HttpLoad:
    """Closed loop: ``clients`` threads each send ``requests`` GETs back to back (see the module)."""
    check_loopback(url)
    _bounded("clients", clients, 1, MAX_CLIENTS)
    _bounded("requests per client", requests, 1, MAX_REQUESTS // clients)
    return _in_client_process(_hammer, url, clients, requests)


def _in_client_process(function: Any, *args: Any) -> HttpLoad:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result(timeout=MAX_DURATION_S + 2 * _TIMEOUT_S)


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            response.read()
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _run(clients: int, work: Any) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    failed = [0]
    lock = threading.Lock()

    def client(index: int) -> None:
        mine, bad = work(index)
        with lock:
            latencies.extend(mine)
            failed[0] += bad

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failed[0], time.perf_counter() - started


def _poll(url: str, clients: int, rate_hz: float, duration_s: float) -> HttpLoad:
    period = 1.0 / rate_hz
    sends = max(1, round(duration_s * rate_hz))  # per client
    start = time.perf_counter() + 0.05

    def work(index: int) -> tuple[list[float], int]:
        mine, bad = [], 0
        offset = period * index / clients  # the clients spread over one period
        for k in range(sends):
            scheduled = start + offset + k * period
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ok = _get(url)
            mine.append((time.perf_counter() - scheduled) * 1000)
            bad += not ok
        return mine, bad

    latencies, bad, wall = _run(clients, work)
    return HttpLoad("poll", clients, tuple(latencies), bad, wall)


def _hammer(url: str, clients: int, requests: int) -> HttpLoad:
    def work(index: int) -> tuple[list[float], int]:
        mine, bad = [], 0
        for _ in range(requests):
            sent = time.perf_counter()
            ok = _get(url)
            mine.append((time.perf_counter() - sent) * 1000)
            bad += not ok
        return mine, bad

    latencies, bad, wall = _run(clients, work)
    return HttpLoad("hammer", clients, tuple(latencies), bad, wall)
