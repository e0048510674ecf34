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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine

from bbperf.errors import ConfigError
from bbperf.pool.health import health_basic, health_detailed, http_status
from bbperf.pool.monitor import PoolMonitor
from bbperf.pool.snapshot import DEFAULT_THRESHOLDS, Thresholds

LOOPBACK = "127.0.0.1"
ROUTES = ("/api/v1/health", "/api/v1/health/detailed")


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
        self._probe_lock = threading.Lock()
        self._answers: dict[str, tuple[float, dict[str, Any]]] = {}
        self.routes: dict[str, Callable[[], dict[str, Any]]] = {
            "/api/v1/health": lambda: health_basic(self.engine),
            "/api/v1/health/detailed": lambda: health_detailed(
                self.engine, self.monitor, self.thresholds
            ),
        }

    def answer(self, route: str) -> dict[str, Any]:
        """The route's report: run now, or shared when another request ran it within the max age."""
        with self._probe_lock:
            cached = self._answers.get(route)
            if cached is not None and time.monotonic() - cached[0] < self.probe_max_age_s:
                return cached[1]
            report = self.routes[route]()
            self._answers[route] = (time.monotonic(), report)
            return report

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
        report = self.server.answer(route)
        self._send(http_status(report), report, body=body)

    def _send(
        self, code: int, payload: dict[str, Any], *, body: bool = True, allow: str | None = None
    ) -> None:
        data = json.dumps(payload, indent=2, default=str).encode()
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
