"""A small HTTP server for the health checks: ``/api/v1/health`` and ``/api/v1/health/detailed``.

Standard library only (``http.server.ThreadingHTTPServer``), bound to loopback by default. Checks
run one at a time and their answer is shared for ``probe_max_age_s`` (1 s): 32 clients polling at
once cause one probe, not 32, so the probe's own pool checkouts never look like pool pressure and
the database is not loaded by its own health checks. A database that cannot be reached answers 503
with status "unhealthy" and the server keeps serving, so it reports recovery within a second.
Other methods get 405 with ``Allow``; HEAD answers like GET without a body; idle or slow
connections are closed after ``request_timeout_s``.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
from sqlalchemy import Engine

from bbperf.errors import ConfigError
from bbperf.pool.health import health_basic, health_detailed, http_status
from bbperf.pool.monitor import PoolMonitor
from bbperf.pool.snapshot import DEFAULT_THRESHOLDS, Thresholds

LOOPBACK = "127.0.0.1"
ROUTES = ("/api/v1/health", "/api/v1/health/detailed")


@dataclass(frozen=True)
class Answer:
    """A probe's report as served: when it was taken, the HTTP status and the encoded body."""

    at: float
    status: int
    body: bytes
    report: dict[str, Any]


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, indent=2, default=str).encode()


class HealthServer(ThreadingHTTPServer):
    """Serves the health endpoints for one engine; the pool monitor lives as long as the server."""

    daemon_threads = True
    request_queue_size = 128  # listen backlog: socketserver's default of 5 queues bursts for ~1 s
    allow_reuse_address = False

    def __init__(
        self,
        engine: Engine,
        host: str,
        port: int,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        *,
        probe_max_age_s: float = 1.0,
    ) -> None:
        super().__init__((host, port), _Handler)  # bind first: a failed bind leaves nothing behind
        self.engine = engine
        self.thresholds = thresholds
        self.monitor = PoolMonitor(engine, thresholds)
        self.probe_max_age_s = probe_max_age_s
        self._probe_locks = {route: threading.Lock() for route in ROUTES}
        self._answers: dict[str, Answer] = {}
        psutil.cpu_percent(interval=None)  # the first probe's CPU % then covers the time since here
        # CPU % is the share since the previous probe (not a 0.1 s sample taken while requests wait).
        self.routes: dict[str, Callable[[], dict[str, Any]]] = {
            "/api/v1/health": lambda: health_basic(self.engine),
            "/api/v1/health/detailed": lambda: health_detailed(
                self.engine, self.monitor, self.thresholds, cpu_interval_s=None
            ),
        }

    def answer(self, route: str) -> Answer:
        """The route's answer, probed at most once per ``probe_max_age_s``.

        A fresh answer is shared. When it is stale, the first request to notice runs the probe and
        the others get the previous answer meanwhile (never older than twice the max age): a second
        of polling costs one probe, and no request queues behind it. With no answer yet, or one too
        old, requests wait for the probe.
        """
        now = time.monotonic()
        cached = self._answers.get(route)
        if cached is not None and now - cached.at < self.probe_max_age_s:
            return cached
        lock = self._probe_locks[route]
        usable = cached is not None and now - cached.at < 2 * self.probe_max_age_s
        if not lock.acquire(blocking=not usable):
            return cached  # type: ignore[return-value]  # usable: another request is probing
        try:
            latest = self._answers.get(route)
            if (
                latest is not None
                and latest is not cached
                and (time.monotonic() - latest.at < self.probe_max_age_s)
            ):
                return latest  # probed by the request this one waited for
            report = self.routes[route]()
            answer = Answer(time.monotonic(), http_status(report), _encode(report), report)
            self._answers[route] = answer
            return answer
        finally:
            lock.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    def server_close(self) -> None:
        super().server_close()
        monitor = getattr(self, "monitor", None)  # absent when binding failed
        if monitor is not None:
            monitor.close()


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer
    server_version = "bbperf-health"
    timeout = 10  # seconds a connection may sit idle or dribble a request before it is closed

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def _not_allowed(self) -> None:
        self._send(405, {"error": f"method {self.command} not allowed"}, allow="GET, HEAD")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _respond(self, body: bool) -> None:
        route = self.path.split("?", 1)[0].rstrip("/") or "/"
        if route not in self.server.routes:
            self._send(404, {"error": f"not found: {self.path}", "routes": list(ROUTES)}, body=body)
            return
        answer = self.server.answer(route)
        self._send(answer.status, answer.body, body=body)

    def _send(
        self,
        code: int,
        payload: dict[str, Any] | bytes,
        *,
        body: bool = True,
        allow: str | None = None,
    ) -> None:
        data = payload if isinstance(payload, bytes) else _encode(payload)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default: health probes would flood the terminal."""


def make_server(
    engine: Engine,
    host: str = LOOPBACK,
    port: int = 8000,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    probe_max_age_s: float = 1.0,
) -> HealthServer:
    """A bound, not yet serving, health server (``port=0`` picks a free port); answers are shared
    between requests for ``probe_max_age_s`` seconds (0: every request probes).

    ``host`` must be an IP address or a name that resolves; ``port`` 0–65535. A bad address or a
    port in use raises ConfigError in one line, before anything is served.
    """
    check_port(port)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            socket.getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError):
            raise ConfigError(
                f"host {host!r} is neither an IP address nor a name that resolves"
            ) from None
    try:
        return HealthServer(engine, host, port, thresholds, probe_max_age_s=probe_max_age_s)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use: choose another with --port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def check_port(port: Any) -> int:
    """A TCP port number, 0–65535 (0: any free port)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port {port!r} is not a TCP port (0-65535)")
    return port


def serve_in_thread(server: HealthServer) -> threading.Thread:
    """Serve ``server`` from a daemon thread (for notebooks and tests); stop with ``shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="bbperf-health", daemon=True)
    thread.start()
    return thread
